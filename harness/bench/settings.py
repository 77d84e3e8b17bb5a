"""The gate's files and default settings, apart from the gate so that `pcfes bench --help` needs no torch."""

from __future__ import annotations

from pathlib import Path

BASELINE_PATH = Path("benchmarks/baseline.json")
REPLAY_PATH = Path("benchmarks/replay.json")
CACHE_DIR = Path(".bench-cache")
DEFAULT_MARGIN = 0.25
DEFAULT_REPEATS = 3
# The same-machine layer's pytest-benchmark threshold (--benchmark-compare-fail).
MACHINE_FAIL = "min:25%"

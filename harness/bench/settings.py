"""The gate's files and default settings, apart from the gate so that `pcfes bench --help` needs no torch."""

from __future__ import annotations

from pathlib import Path

from harness.provenance import REPO_ROOT

# The committed baseline and replay live in the repository (benchmarks/), found from the package's
# location so `pcfes bench` works from any directory of a source checkout or editable install.
BASELINE_DIR = REPO_ROOT / "benchmarks"
BASELINE_NAME = "baseline.json"
REPLAY_NAME = "replay.json"
BASELINE_PATH = BASELINE_DIR / BASELINE_NAME
REPLAY_PATH = BASELINE_DIR / REPLAY_NAME
CACHE_DIR = Path(".bench-cache")
DEFAULT_MARGIN = 0.25
DEFAULT_REPEATS = 3
# The same-machine layer's pytest-benchmark threshold (--benchmark-compare-fail).
MACHINE_FAIL = "min:25%"

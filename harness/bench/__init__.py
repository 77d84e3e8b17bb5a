"""The CI performance regression gate (`pcfes bench`): decisions, work, timing, same-machine layers.

The names below load from their modules on first use: ``harness.bench.settings`` (the paths and
defaults `pcfes bench --help` shows) is then importable without the gate's torch and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.bench.action import (
        write_benchmark_action,
        SERIES,
        benchmark_action_entries,
    )
    from harness.bench.baseline import (
        FORMAT,
        FORMAT_VERSION,
        load_baseline,
        write_baseline,
        check_format,
    )
    from harness.bench.gate import (
        BENCH_SEARCHERS,
        LEVELS,
        NO_REUSE,
        REFERENCE,
        TIMING_PAIRS,
        BenchConfig,
        BenchResult,
        Replayed,
        TimingPair,
        measure_replay,
        measure_timing,
        prepare_workspace,
        record_replay,
        run_bench,
        smoke_config,
        trace_searches,
    )
    from harness.bench.landscape import Landscape, SearchTrace, trace_search
    from harness.bench.machine import SUITE, MachineBenchOutcome, machine_benchmark, machine_storage
    from harness.bench.replay import Replay, ReplaySearcher, load_replay, write_replay
    from harness.bench.session import GateOptions, run_gate
    from harness.bench.verdict import GateReport, check, format_result
    from harness.bench.settings import BASELINE_DIR, BASELINE_NAME, REPLAY_NAME, BASELINE_PATH, CACHE_DIR, DEFAULT_MARGIN, DEFAULT_REPEATS, MACHINE_FAIL, REPLAY_PATH

_MODULES = {
    "harness.bench.action": (
        "write_benchmark_action", "SERIES", "benchmark_action_entries",
    ),
    "harness.bench.baseline": (
        "FORMAT", "FORMAT_VERSION", "load_baseline", "write_baseline", "check_format",
    ),
    "harness.bench.gate": (
        "BENCH_SEARCHERS", "LEVELS", "NO_REUSE", "REFERENCE", "TIMING_PAIRS", "BenchConfig", "BenchResult", "Replayed", "TimingPair", "measure_replay", "measure_timing", "prepare_workspace", "record_replay", "run_bench", "smoke_config", "trace_searches",
    ),
    "harness.bench.landscape": ("Landscape", "SearchTrace", "trace_search"),
    "harness.bench.machine": ("SUITE", "MachineBenchOutcome", "machine_benchmark", "machine_storage"),
    "harness.bench.replay": ("Replay", "ReplaySearcher", "load_replay", "write_replay"),
    "harness.bench.session": ("GateOptions", "run_gate"),
    "harness.bench.verdict": ("GateReport", "check", "format_result"),
    "harness.bench.settings": ("BASELINE_DIR", "BASELINE_NAME", "REPLAY_NAME", "BASELINE_PATH", "CACHE_DIR", "DEFAULT_MARGIN", "DEFAULT_REPEATS", "MACHINE_FAIL", "REPLAY_PATH"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}
_SUBMODULES = ("action", "baseline", "gate", "landscape", "machine", "replay", "session", "settings", "verdict")

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'harness.bench' has no attribute {name!r}")

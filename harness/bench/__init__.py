"""The CI performance regression gate (`pcfes bench`): decisions, work, timing, same-machine layers."""

from harness.bench.gate import (
    BASELINE_DIR,
    BASELINE_NAME,
    BASELINE_PATH,
    BENCH_SEARCHERS,
    CACHE_DIR,
    DEFAULT_MARGIN,
    DEFAULT_REPEATS,
    FORMAT,
    FORMAT_VERSION,
    LEVELS,
    NO_REUSE,
    REFERENCE,
    REPLAY_NAME,
    REPLAY_PATH,
    SERIES,
    TIMING_PAIRS,
    BenchConfig,
    BenchResult,
    GateReport,
    Replayed,
    TimingPair,
    check,
    format_result,
    load_baseline,
    measure_replay,
    measure_timing,
    prepare_workspace,
    record_replay,
    run_bench,
    smoke_config,
    trace_searches,
    write_baseline,
    benchmark_action_entries,
    check_format,
    write_benchmark_action,
)
from harness.bench.landscape import Landscape, SearchTrace, trace_search
from harness.bench.machine import MACHINE_FAIL, SUITE, MachineBenchOutcome, machine_benchmark, machine_storage
from harness.bench.replay import Replay, ReplaySearcher, load_replay, write_replay

__all__ = [
    "BASELINE_DIR", "BASELINE_NAME", "BASELINE_PATH", "BENCH_SEARCHERS", "CACHE_DIR", "DEFAULT_MARGIN", "DEFAULT_REPEATS", "FORMAT", "FORMAT_VERSION",
    "LEVELS", "MACHINE_FAIL", "NO_REUSE", "REFERENCE", "REPLAY_NAME", "REPLAY_PATH", "SERIES", "SUITE", "TIMING_PAIRS", "BenchConfig",
    "BenchResult", "GateReport", "Landscape", "MachineBenchOutcome", "Replay", "ReplaySearcher", "Replayed",
    "SearchTrace", "TimingPair", "benchmark_action_entries", "check", "check_format", "format_result", "load_baseline", "load_replay", "machine_benchmark",
    "machine_storage", "measure_replay", "measure_timing", "prepare_workspace", "record_replay", "run_bench", "smoke_config",
    "trace_search", "trace_searches", "write_baseline", "write_benchmark_action", "write_replay",
]

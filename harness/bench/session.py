"""What one `pcfes bench` does end to end: load or refresh the committed files, run the gate, write and check.

The command line parses into :class:`GateOptions` and hands :func:`run_gate` a ``say`` function;
every line the gate has to tell (files written, the result, the verdict) goes through it, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from harness.bench.action import write_benchmark_action
from harness.bench.baseline import load_baseline, write_baseline
from harness.bench.gate import BenchConfig, prepare_workspace, record_replay, run_bench
from harness.bench.verdict import check, format_result
from harness.bench.machine import machine_benchmark
from harness.bench.replay import load_replay, write_replay
from harness.bench.settings import CACHE_DIR, DEFAULT_MARGIN, DEFAULT_REPEATS


@dataclass(frozen=True)
class GateOptions:
    """One `pcfes bench` run: its files, whether to refresh them, and what else to write."""

    baseline: Path
    replay: Path
    cache_dir: Path = CACHE_DIR
    disable_reuse: bool = False
    update_baseline: bool = False
    update_replay: bool = False
    timing_repeats: int = DEFAULT_REPEATS  # 0: the exact layers only
    margin: float = DEFAULT_MARGIN
    # series ("costs", "decisions", "times") -> where to write it in github-action-benchmark's format
    outputs: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    record: Path | None = None  # also write this run in the baseline's format
    save_machine_baseline: bool = False
    progress: bool = True


def run_gate(options: GateOptions, say: Callable[[str], None]) -> bool:
    """Run the gate; whether it passed (a first or refreshed baseline passes once written)."""
    config = BenchConfig(disable_reuse=options.disable_reuse)
    update = options.update_baseline or options.update_replay
    baseline = None if update else load_baseline(options.baseline)
    if options.update_replay:
        write_replay(record_replay(config), options.replay)
        say(f"wrote {options.replay}")
    replay = load_replay(options.replay)
    workspace = prepare_workspace(config, options.cache_dir, progress=options.progress)
    result = run_bench(
        config, workspace, replay, options.cache_dir / "runs", timing_repeats=options.timing_repeats,
        progress=options.progress,
    )
    say(format_result(result))
    for series, path in options.outputs.items():
        write_benchmark_action(result, path, series)
    if options.record:
        write_baseline(result, options.record)
    passed = True
    if baseline is None:
        write_baseline(result, options.baseline)
        say(f"wrote {options.baseline}. Commit it with a message that says WHY the counts changed, "
            f"e.g. git -C {Path(options.baseline).resolve().parent} commit -m 'bench baseline: <reason>' "
            f"{Path(options.baseline).resolve()} {Path(options.replay).resolve()}")
    else:
        report = check(baseline, result, margin=options.margin)
        say(report.format())
        passed = report.passed
    if baseline is not None or options.save_machine_baseline:
        machine = machine_benchmark(save=options.save_machine_baseline)
        say(f"pytest-benchmark layer {machine.status}: {machine.reason}")
        if machine.status == "failed":
            say(machine.output[-4000:])
            passed = False
    return passed

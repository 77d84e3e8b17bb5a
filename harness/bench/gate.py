"""The CI performance regression gate, in three layers that each answer one question.

1. **Decisions** (exact): every bench searcher runs on an integer ``Landscape``; its asks per
   generation, frozen depths and answer must equal the baseline's. Nothing floating-point is
   involved, so this holds on any CPU.
2. **Work** (exact): the committed replay (``benchmarks/replay.json``: each searcher's recorded
   hints and archs) is scored through the real runner and evaluator at every reuse level; MACs,
   images, candidates and cache bytes must equal the baseline's, and the MAC ratios to
   ``evolution`` without reuse must not grow. The counts are a pure function of the replay and the
   evaluator code (the weights are a seeded initialisation: no training, no float-dependent
   choice), so a disabled or weakened cache or a change in the work accounting fails here,
   naming searcher, level, metric and both numbers.
3. **Timing**: CPU-time ratios of replays measured side by side (alternating, minimum of each)
   must stay below the baseline's ratio plus a margin. Energy and CO2 are printed, never gated.

``bench.machine`` adds the pytest-benchmark layer (same-machine absolute timings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import harness
import searchers
import supernets
from harness import provenance, schema, store, workflow
from harness.bench.landscape import Landscape, SearchTrace, trace_search
from harness.bench.replay import Replay, ReplaySearcher
from harness.bench.settings import BASELINE_DIR, BASELINE_PATH, CACHE_DIR, DEFAULT_MARGIN, DEFAULT_REPEATS, REPLAY_PATH
from harness.config import EvalProtocol, ReuseConfig, RunConfig, content_hash
from harness.datasets import load_dataset
from harness.evaluation import SEARCH_WORK_PHASES
from harness.matrix import Matrix, build
from harness.progress import progress_bar
from harness.resolution import resolve
from supernets.checkpoint import code_fingerprint, save_checkpoint
from supernets.train import init_weights

log = logging.getLogger(__name__)

FORMAT = "pcfes-bench-baseline"
FORMAT_VERSION = 2

# The built-in searchers in registration order, fixed at import: the baseline file's identity must
# not change with the plugins a process loads.
BENCH_SEARCHERS = tuple(name for name, entry in searchers.registered_searchers().items() if entry.builtin)
REFERENCE = searchers.baseline_name()
# MACs(x at a reuse level) / MACs(evolution without reuse) may not grow for the reference and the
# freezing searchers `compare` runs by default; evolution's own are its reuse's saving.
RATIO_SEARCHERS = (REFERENCE, *(n for n in searchers.default_compare() if searchers.searcher_entry(n).freezing))
LEVELS = ("none", "frozen", "prefix")
NO_REUSE = "none"
# Exact counts of a replay, gated: name -> run.json totals key.
COUNT_METRICS = {
    "macs": "macs",
    "macs_avoided": "macs_avoided",
    "images": "images",
    "candidates": "candidates_evaluated",
    "cache_peak_bytes": "cache_peak_bytes",
    "store_peak_bytes": "store_peak_bytes",
    "store_evictions": "store_evictions",
}
INFO_METRICS = ("wall_s", "cpu_s", "energy_j", "co2_g")  # noisy or estimated: reported only


@dataclass(frozen=True)
class Replayed:
    """One replay run: the recorded search of ``searcher`` scored at reuse ``level``."""

    searcher: str
    level: str

    @property
    def label(self) -> str:
        """``pcf-es[frozen]``."""
        return f"{self.searcher}[{self.level}]"


@dataclass(frozen=True)
class TimingPair:
    """cpu time(numerator) / cpu time(denominator), measured side by side."""

    numerator: Replayed
    denominator: Replayed

    @property
    def name(self) -> str:
        """``cpu pcf-es[frozen]/evolution[none]``."""
        return f"cpu {self.numerator.label}/{self.denominator.label}"


# The paper's pairing (PCF-ES with its frozen-prefix cache against evolution without reuse), and what
# the prefix tree saves evolution: a slower cache or a slower tree walk each move one of them.
TIMING_PAIRS = (
    TimingPair(Replayed("pcf-es", "frozen"), Replayed(REFERENCE, NO_REUSE)),
    TimingPair(Replayed(REFERENCE, "prefix"), Replayed(REFERENCE, NO_REUSE)),
)


def timed_replays() -> list[Replayed]:
    """Every replay a timing pair measures, once each."""
    return list(dict.fromkeys(r for pair in TIMING_PAIRS for r in (pair.numerator, pair.denominator)))


@dataclass(frozen=True)
class BenchConfig:
    """What the bench runs. Everything but ``disable_reuse`` is its identity (the baseline's key)."""

    supernet: str = supernets.DEFAULT_SUPERNET
    supernet_overrides: Mapping[str, Any] = field(default_factory=dict)
    weights_seed: int = 0  # a seeded initialisation: the counts never depend on the weights
    protocol: EvalProtocol = EvalProtocol(calib_batches=2, calib_batch_size=32, val_size=256, eval_batch_size=128)
    searchers: tuple[str, ...] = BENCH_SEARCHERS
    # Evolution-family parameters (random gets the same budget); on the landscape PCF-ES freezes
    # step by step, CF-ES once, and PCF-ES-IS samples after its first freeze.
    searcher_params: Mapping[str, Any] = field(
        default_factory=lambda: {"population": 24, "top_k": 6, "mutation_num": 12, "crossover_num": 12, "generations": 10}
    )
    seed: int = 0
    landscape_seed: int = 1  # PCF-ES freezes 1, 2, 5, 6, then 8 blocks: the cache is built and extended
    levels: tuple[str, ...] = LEVELS
    # A fixed budget, so what the store keeps is the same on every machine (never "auto").
    reuse_budget_bytes: int = 32 * 2**20
    threads: int = 1  # one intra-op thread: comparable timings, no OpenMP oversubscription
    # Not identity: a disabled cache must show up as changed counts against the same baseline.
    disable_reuse: bool = False

    def __post_init__(self) -> None:
        missing = [name for name in (REFERENCE, *RATIO_SEARCHERS) if name not in self.searchers]
        pairs = {r.searcher for p in TIMING_PAIRS for r in (p.numerator, p.denominator)}
        missing += sorted(pairs - set(self.searchers) - set(missing))
        if missing:
            raise ValueError(f"bench searchers {list(self.searchers)} lack {', '.join(missing)}, which the gate compares")
        if NO_REUSE not in self.levels:
            raise ValueError(f"bench levels {list(self.levels)} lack {NO_REUSE!r}, the reference of every MAC ratio")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def identity(self) -> dict[str, Any]:
        """The JSON form of every field that shapes the decisions and counts (all but ``disable_reuse``)."""
        data = dataclasses.asdict(self)
        data.pop("disable_reuse")
        return json.loads(json.dumps(data, sort_keys=True))

    def run_config(self, checkpoint: Path | str, searcher: str, level: str) -> RunConfig:
        """The run config of one replay at reuse ``level`` (``disable_reuse`` forces none)."""
        return RunConfig(
            supernet=self.supernet,
            supernet_overrides=dict(self.supernet_overrides),
            checkpoint=str(checkpoint),
            searcher=searcher,
            seed=self.seed,
            protocol=self.protocol,
            reuse=ReuseConfig(level=NO_REUSE if self.disable_reuse else level, budget_bytes=self.reuse_budget_bytes),
        )

    def searcher_configs(self) -> dict[str, RunConfig]:
        """Each bench searcher's run config, as ``compare`` builds it (random gets evolution's budget)."""
        base = RunConfig(supernet=self.supernet, searcher_params=dict(self.searcher_params), seed=self.seed)
        return {r.config.searcher: r.config for r in build(base, Matrix(searchers=self.searchers, seeds=(self.seed,)))}


def smoke_config() -> BenchConfig:
    """A seconds-scale bench for tests: the default supernet at half width and depth."""
    return BenchConfig(
        supernet_overrides={"widths": [8, 16, 32], "depths": [2, 2, 2], "stem_width": 8, "last_width": 64},
        protocol=EvalProtocol(calib_batches=1, calib_batch_size=64, val_size=300, eval_batch_size=300),
        searcher_params={"population": 16, "top_k": 4, "mutation_num": 8, "crossover_num": 8, "generations": 8},
        landscape_seed=4,  # PCF-ES freezes 1, 2, 4, then all 6 blocks; CF-ES 1
        reuse_budget_bytes=2 * 2**20,  # small enough to evict
    )


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, restoring the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- layer 1: decisions


def _space(config: BenchConfig) -> searchers.SearchSpace:
    net = supernets.get_supernet(config.supernet, **dict(config.supernet_overrides))
    return searchers.SearchSpace(net.choices)


def landscape(config: BenchConfig) -> Landscape:
    """The bench's score landscape over its supernet's choices."""
    return Landscape(_space(config).choices, config.landscape_seed)


def trace_searches(config: BenchConfig) -> dict[str, SearchTrace]:
    """Every bench searcher run to its end on the landscape."""
    space, scores = _space(config), landscape(config)
    return {
        name: trace_search(searchers.get_searcher(name, space, run.seed, **dict(run.searcher_params)), scores)
        for name, run in config.searcher_configs().items()
    }


def _generation_digest(generation: Any) -> str:
    text = json.dumps(
        [list(generation.hints.frozen), generation.hints.importance_rate, [list(a) for a in generation.archs]]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def decision_record(trace: SearchTrace) -> dict[str, Any]:
    """What layer 1 compares: candidates, generations, frozen depth and ask digest per generation, answer."""
    return {
        "candidates": trace.candidates,
        "generations": len(trace.generations),
        "frozen_depth": [len(g.hints.frozen) for g in trace.generations],
        "importance_rate": [g.hints.importance_rate for g in trace.generations],
        "asks": [_generation_digest(g) for g in trace.generations],
        "answer": [schema.arch_to_str(trace.best[0]), trace.best[1]],
    }


def record_replay(config: BenchConfig) -> Replay:
    """The replay of this config's landscape searches (what ``--update-replay`` commits)."""
    return Replay(trace_searches(config), config.identity())


# --------------------------------------------------------------------------- layer 2: work


def prepare_workspace(config: BenchConfig, cache_dir: Path = CACHE_DIR, *, progress: bool = False) -> workflow.Workspace:
    """The bench supernet with seeded initial weights (saved once as a checkpoint) and its evaluator."""
    net = supernets.get_supernet(config.supernet, **dict(config.supernet_overrides))
    key = content_hash({"code": code_fingerprint(net.spec), "weights_seed": config.weights_seed, "torch": torch.__version__}, 12)
    path = Path(cache_dir) / f"{config.supernet}-init{config.weights_seed}-{key}.pt"
    if not path.exists():
        init_weights(net, torch.Generator().manual_seed(config.weights_seed))
        splits = load_dataset(config.protocol.dataset)
        save_checkpoint(path, net, metadata={"dataset": splits.name, "input_shape": list(splits.input_shape)})
    run = config.run_config(path, REFERENCE, NO_REUSE)
    return workflow.open_workspace(resolve(run), progress=progress)


@dataclass(frozen=True)
class ReplayMeasurement:
    """One replay run: its exact counts and its noisy or estimated costs."""

    replayed: Replayed
    counts: Mapping[str, int]
    info: Mapping[str, Any]


def measure_replay(
    config: BenchConfig, workspace: workflow.Workspace, trace: SearchTrace, level: str, run_dir: Path
) -> ReplayMeasurement:  # one replay is a second or two: progress is counted per replay, by the caller
    """Score ``trace`` through the runner at reuse ``level``, recorded in ``run_dir`` (replaced)."""
    run = config.run_config(workspace.checkpoint.path, trace.searcher, level)
    with torch_threads(config.threads):
        record = workflow.run_search(
            resolve(run), workspace, run_dir=Path(run_dir), overwrite=True, progress=False,
            searcher=ReplaySearcher(trace, searchers.SearchSpace(workspace.net.choices)),
        ).run
    totals, work = record.totals, record.evaluation["work_macs_by_phase"]
    counts = {name: int(getattr(totals, key)) for name, key in COUNT_METRICS.items()}
    counts.update({f"macs_{phase}": int(work[phase]) for phase in SEARCH_WORK_PHASES})  # gated per phase too
    info = {key: getattr(totals, key) for key in INFO_METRICS}
    info["energy_source"] = record.environment.meter_sources.get("energy_j")
    return ReplayMeasurement(Replayed(trace.searcher, level), counts, info)


# --------------------------------------------------------------------------- the bench


@dataclass(frozen=True)
class TimingMeasurement:
    """CPU times of a timing pair's two replays from alternating runs."""

    pair: TimingPair
    numerator_s: tuple[float, ...]
    denominator_s: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """min CPU time of the numerator over min CPU time of the denominator."""
        return min(self.numerator_s) / min(self.denominator_s)


@dataclass(frozen=True)
class BenchResult:
    """Everything one bench measured, and where."""

    config: BenchConfig
    decisions: Mapping[str, Mapping[str, Any]]  # searcher -> decision_record
    replay_sha256: str
    work: Mapping[Replayed, ReplayMeasurement]
    timing: tuple[TimingMeasurement, ...]
    environment: Mapping[str, Any]
    wall_s: float

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """searcher -> level -> metric -> count."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for replayed, m in self.work.items():
            out.setdefault(replayed.searcher, {})[replayed.level] = dict(m.counts)
        return out

    def ratios(self) -> dict[str, float]:
        """MACs of each RATIO_SEARCHERS replay at each reuse level over evolution's without reuse."""
        ref = self.work[Replayed(REFERENCE, NO_REUSE)].counts["macs"]
        return {
            f"macs {r.label}/{REFERENCE}[{NO_REUSE}]": m.counts["macs"] / ref
            for r, m in self.work.items()
            if r.searcher in RATIO_SEARCHERS and r != Replayed(REFERENCE, NO_REUSE)
        }

    def to_dict(self) -> dict[str, Any]:
        """The baseline file's content."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "pcfes_version": harness.__version__,
            "recorded_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": self.config.identity(),
            "environment": dict(self.environment),
            "decisions": {name: dict(d) for name, d in self.decisions.items()},
            "replay_sha256": self.replay_sha256,
            "counts": self.counts(),
            "ratios": self.ratios(),
            "timing": {
                t.pair.name: {"ratio": t.ratio, "numerator_cpu_s": list(t.numerator_s), "denominator_cpu_s": list(t.denominator_s)}
                for t in self.timing
            },
            "info": {r.label: dict(m.info) for r, m in self.work.items()},
            "bench_wall_s": self.wall_s,
        }


def run_bench(
    config: BenchConfig, workspace: workflow.Workspace, replay: Replay, runs_dir: Path, *,
    timing_repeats: int = DEFAULT_REPEATS, progress: bool = False,
) -> BenchResult:
    """Layer 1 on the landscape, layer 2 on ``replay`` at every level, then (repeats > 0) the timing pairs;
    ``progress`` counts the replays (a bar on a terminal, a log line per replay elsewhere)."""
    if dict(replay.recorded_from) != config.identity():
        raise ValueError(
            "the replay was recorded for another bench configuration; regenerate it with "
            "`pcfes bench --update-baseline --update-replay`"
        )
    started = time.perf_counter()
    runs_dir = Path(runs_dir)
    decisions = {name: decision_record(trace) for name, trace in trace_searches(config).items()}
    work = {}
    with progress_bar(len(config.searchers) * len(config.levels), "bench work replays", "replay", enabled=progress) as bar:
        for name in config.searchers:
            for level in config.levels:
                replayed = Replayed(name, level)
                work[replayed] = measure_replay(config, workspace, replay.traces[name], level, runs_dir / replayed.label)
                bar.set_postfix(done=replayed.label)
                bar.update(1)
    timing = (
        measure_timing(config, workspace, replay, runs_dir / "timing", timing_repeats, progress=progress)
        if timing_repeats > 0 else ()
    )
    environment = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "fingerprint": provenance.fingerprint(),
        "checkpoint_hash": workspace.checkpoint.content_hash,
        "threads": config.threads,
    }
    return BenchResult(config, decisions, replay.digest(), work, timing, environment, time.perf_counter() - started)


def measure_timing(
    config: BenchConfig, workspace: workflow.Workspace, replay: Replay, runs_dir: Path, repeats: int = DEFAULT_REPEATS,
    *, progress: bool = False,
) -> tuple[TimingMeasurement, ...]:
    """CPU time of each timing pair's replays, alternating ``repeats`` times, so a slow spell hits both alike."""
    measured = []
    with progress_bar(2 * repeats * len(TIMING_PAIRS), "bench timing replays", "replay", enabled=progress) as bar:
        for pair in TIMING_PAIRS:
            times: dict[Replayed, list[float]] = {pair.numerator: [], pair.denominator: []}
            for _ in range(repeats):
                for replayed in (pair.denominator, pair.numerator):
                    trace = replay.traces[replayed.searcher]
                    run = measure_replay(config, workspace, trace, replayed.level, Path(runs_dir) / replayed.label)
                    times[replayed].append(float(run.info["cpu_s"]))
                    bar.set_postfix(done=replayed.label)
                    bar.update(1)
            measured.append(TimingMeasurement(pair, tuple(times[pair.numerator]), tuple(times[pair.denominator])))
    return tuple(measured)


# --------------------------------------------------------------------------- the verdict


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict: failures (each naming searcher, level or ratio, metric, baseline and new value) and notes."""

    failures: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when nothing failed (notes never fail the gate)."""
        return not self.failures

    def format(self) -> str:
        """Notes, then one FAIL line per failure, then the verdict."""
        lines = [f"note: {n}" for n in self.notes]
        lines += [f"FAIL {f}" for f in self.failures]
        lines.append("gate: PASSED" if self.passed else f"gate: FAILED ({len(self.failures)} problem(s))")
        return "\n".join(lines)


def _change(old: float, new: float) -> str:
    return f"{(new - old) / old:+.2%}" if old else "from 0"


def _decision_failures(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    failures = []
    for metric, value in new.items():
        before = old.get(metric)
        if before == value:
            continue
        if isinstance(value, list) and isinstance(before, list):
            first = next((i for i, (a, b) in enumerate(zip(before, value)) if a != b), min(len(before), len(value)))
            failures.append(
                f"{name}: {metric} changed from generation {first}: baseline {before[first:first + 4]} "
                f"({len(before)} generations), now {value[first:first + 4]} ({len(value)} generations)"
            )
        else:
            failures.append(f"{name}: {metric} changed: baseline {before}, now {value}")
    return failures


def check(baseline: Mapping[str, Any], result: BenchResult, *, margin: float = DEFAULT_MARGIN) -> GateReport:
    """Compare a bench result with a baseline: decisions, exact counts, MAC ratios, timing ratios + ``margin``."""
    check_format(baseline)
    identity = result.config.identity()
    if baseline["config"] != identity:
        keys = sorted(k for k in identity.keys() | baseline["config"].keys() if identity.get(k) != baseline["config"].get(k))
        diffs = "; ".join(f"{k}: baseline {baseline['config'].get(k)!r}, now {identity.get(k)!r}" for k in keys)
        return GateReport(
            (f"bench configuration differs from the baseline's ({diffs}); counts are not comparable — "
             "if the change is intended, run `pcfes bench --update-baseline` and commit the reason",),
            (),
        )
    failures: list[str] = []
    notes: list[str] = []
    for name, decisions in result.decisions.items():
        if name not in baseline["decisions"]:
            failures.append(f"{name}: not in the baseline (searchers {sorted(baseline['decisions'])})")
            continue
        failures += _decision_failures(name, baseline["decisions"][name], decisions)
    if baseline.get("replay_sha256") != result.replay_sha256:
        failures.append(
            f"replay changed (baseline sha256 {str(baseline.get('replay_sha256'))[:12]}, now {result.replay_sha256[:12]}): "
            "work counts are not comparable; run `pcfes bench --update-baseline` and commit why"
        )
    else:
        failures += _count_failures(baseline["counts"], result.counts())
    for ratio, new in result.ratios().items():
        old = baseline["ratios"].get(ratio)
        if old is None:
            failures.append(f"ratio {ratio}: not in the baseline (now {new:.6f})")
        elif new > old:
            failures.append(f"ratio {ratio}: {new:.6f} > baseline {old:.6f}")
    env, base_env = result.environment, baseline.get("environment", {})
    if base_env.get("fingerprint") != env.get("fingerprint"):
        notes.append(
            f"machine differs from the baseline's ({base_env.get('fingerprint')!r} -> {env.get('fingerprint')!r}): "
            "exact layers compared as usual; timing ratios are compared with the margin"
        )
    if not result.timing:
        notes.append("timing layer skipped (no timing runs)")
    for t in result.timing:
        old_timing = baseline.get("timing", {}).get(t.pair.name)
        if old_timing is None:
            notes.append(f"timing {t.pair.name}: not in the baseline, not gated (now {t.ratio:.3f})")
            continue
        old, limit = float(old_timing["ratio"]), float(old_timing["ratio"]) + margin
        line = (
            f"time {t.pair.name}: {t.ratio:.3f} (min of {len(t.numerator_s)}: {t.pair.numerator.label} "
            f"{min(t.numerator_s):.3f} s, {t.pair.denominator.label} {min(t.denominator_s):.3f} s) "
            f"vs baseline {old:.3f} + margin {margin:.2f} = {limit:.3f}"
        )
        (failures if t.ratio > limit else notes).append(line)
    return GateReport(tuple(failures), tuple(notes))


def _count_failures(baseline: Mapping[str, Any], counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> list[str]:
    failures = []
    for name, levels in counts.items():
        for level, measured in levels.items():
            base = baseline.get(name, {}).get(level)
            if base is None:
                failures.append(f"{name}[{level}]: not in the baseline")
                continue
            for metric, new in measured.items():
                old = base.get(metric)
                if old != new:
                    change = _change(old, new) if isinstance(old, int) else "new metric"
                    failures.append(f"{name}[{level}]: {metric} changed: baseline {old}, now {new} ({change})")
    return failures


# --------------------------------------------------------------------------- files


def check_format(baseline: Mapping[str, Any], path: Path | None = None) -> None:
    """Refuse a file that is not a baseline of this format version (another project version wrote it)."""
    if baseline.get("format") != FORMAT or baseline.get("format_version") != FORMAT_VERSION:
        where = f" {path}" if path else ""
        writer = f", written by pcfes {baseline['pcfes_version']}" if baseline.get("pcfes_version") else ""
        raise ValueError(
            f"baseline{where} is not a {FORMAT} v{FORMAT_VERSION} file (got {baseline.get('format')!r} "
            f"v{baseline.get('format_version')!r}{writer}); regenerate it with this version: "
            f"`pcfes bench{baseline_dir_flag(path)} --update-baseline`"
        )


def baseline_dir_flag(path: Path | None) -> str:
    """`` --baseline-dir DIR`` where ``path`` is not in the default folder, so a suggested command works as typed."""
    if path is None or Path(path).resolve().parent == BASELINE_DIR:
        return ""
    return f" --baseline-dir {Path(path).resolve().parent}"


def load_baseline(path: Path = BASELINE_PATH) -> dict[str, Any]:
    """Read a baseline file and check its format, before any bench runs; say how to get one when it is missing."""
    path = Path(path)
    if not path.exists():
        if not path.parent.is_dir():
            raise FileNotFoundError(
                f"no bench baseline: {path.parent} does not exist (this pcfes is installed without the repository's "
                "benchmarks/ folder); run `pcfes bench` from a source checkout (git clone, then pip install -e .) or "
                "pass --baseline-dir DIR, a folder with baseline.json and replay.json"
            )
        raise FileNotFoundError(
            f"no bench baseline at {path}; record one with `pcfes bench{baseline_dir_flag(path)} --update-baseline`"
        )
    baseline = store.read_json(path)
    check_format(baseline, path)
    return baseline


def write_baseline(result: BenchResult, path: Path = BASELINE_PATH) -> None:
    """Write ``result`` as the new baseline (atomically)."""
    store.write_json(Path(path), result.to_dict())


_UNITS = {"macs": "MACs", "images": "images", "cache_peak_bytes": "bytes", "store_peak_bytes": "bytes", "store_evictions": "evictions"}
NOT_COSTS = ("macs_avoided", "candidates")  # more is not worse: never an alerting series
SERIES = ("costs", "decisions", "times")


def benchmark_action_entries(result: BenchResult, series: str = "costs") -> list[dict[str, Any]]:
    """github-action-benchmark's ``customSmallerIsBetter`` list of one kind of series.

    ``costs`` (what a CI alerts on; every series can regress): each replay's exact work counts,
    the MAC ratios to evolution without reuse and the same-machine CPU-time ratios. ``decisions``
    (charted, machine-independent, not a cost): candidates, generations and final frozen depth of
    each searcher on the landscape. ``times``: absolute CPU seconds of each replay on this runner,
    labelled so; they move with the runner's hardware and load.

    A series that is structurally constant is left out: a zero count (no cache at level none, no
    importance phase without sampling) and a count equal to the same searcher's at level none (a
    level that gives that searcher nothing to reuse). Both follow from counts the gate keeps
    exact, so every passing run writes the same set of series.
    """
    if series not in SERIES:
        raise ValueError(f"unknown series {series!r}; choose from {', '.join(SERIES)}")
    if series == "decisions":
        return [
            {"name": f"{name} {metric}", "unit": unit, "value": value}
            for name, d in result.decisions.items()
            for metric, unit, value in (
                ("candidates", "candidates", d["candidates"]),
                ("generations", "generations", d["generations"]),
                ("final frozen depth", "blocks", d["frozen_depth"][-1] if d["frozen_depth"] else 0),
            )
            if value
        ]
    if series == "times":
        return [
            {"name": f"absolute cpu time {r.label} (this runner)", "unit": "s", "value": float(m.info["cpu_s"]),
             "extra": f"absolute, not comparable across runners; fingerprint {result.environment['fingerprint']}"}
            for r, m in result.work.items()
        ]
    entries = []
    for replayed, m in result.work.items():
        plain = result.work.get(Replayed(replayed.searcher, NO_REUSE))
        for metric, value in m.counts.items():
            same_as_plain = replayed.level != NO_REUSE and plain is not None and plain.counts[metric] == value
            if metric in NOT_COSTS or value == 0 or same_as_plain:
                continue
            entries.append({"name": f"{replayed.label} {metric}", "unit": _UNITS.get(metric, "MACs"), "value": value})
    # A ratio of exactly 1 is evolution at a level that reuses nothing for it: constant.
    entries += [{"name": name, "unit": "ratio", "value": value} for name, value in result.ratios().items() if value != 1.0]
    for t in result.timing:
        entries.append({
            "name": f"time {t.pair.name}",
            "unit": "ratio",
            "value": t.ratio,
            "extra": f"same-machine ratio, min of {len(t.numerator_s)} alternating runs; fingerprint {result.environment['fingerprint']}",
        })
    return entries


def write_benchmark_action(result: BenchResult, path: Path, series: str = "costs") -> None:
    """Write ``benchmark_action_entries`` of ``series`` as JSON for github-action-benchmark (customSmallerIsBetter)."""
    store.write_json(Path(path), benchmark_action_entries(result, series))


def format_result(result: BenchResult) -> str:
    """A table of decisions and per-replay counts and costs, the ratios and the timing."""
    decisions = pd.DataFrame(
        [{"searcher": n, "candidates": d["candidates"], "generations": d["generations"],
          "frozen depth per generation": " ".join(map(str, d["frozen_depth"]))} for n, d in result.decisions.items()]
    )
    rows = [
        {"replay": r.label, **{k: m.counts[k] for k in COUNT_METRICS}, **{k: m.info[k] for k in INFO_METRICS}}
        for r, m in result.work.items()
    ]
    work = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}")
    lines = ["decisions on the integer landscape:", decisions.to_string(index=False), "", "work of the replay:", work]
    lines += [f"{k}: {v:.4f}" for k, v in result.ratios().items()]
    for t in result.timing:
        lines.append(
            f"time {t.pair.name}: {t.ratio:.3f} ({t.pair.numerator.label} runs {', '.join(f'{s:.2f}' for s in t.numerator_s)} s; "
            f"{t.pair.denominator.label} runs {', '.join(f'{s:.2f}' for s in t.denominator_s)} s CPU)"
        )
    sources = {str(m.info["energy_source"]) for m in result.work.values()}
    lines.append(f"energy / CO2 (information only, source: {', '.join(sorted(sources))}); bench wall {result.wall_s:.1f} s")
    return "\n".join(lines)

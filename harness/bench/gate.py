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
This module runs the layers; ``bench.verdict`` compares a result with the baseline, ``bench.baseline``
reads and writes the baseline file and ``bench.action`` exports a result as CI benchmark series.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import harness
import searchers
import supernets
from harness import provenance, schema, workflow
from harness.bench.baseline import FORMAT, FORMAT_VERSION
from harness.bench.landscape import Landscape, SearchTrace, trace_search
from harness.bench.replay import Replay, ReplaySearcher
from harness.bench.settings import CACHE_DIR, DEFAULT_REPEATS
from harness.config import EvalProtocol, ReuseConfig, RunConfig, content_hash
from harness.datasets import load_dataset
from harness.evaluation import SEARCH_WORK_PHASES
from harness.matrix import Matrix, build
from harness.progress import progress_bar
from harness.resolution import resolve
from supernets.checkpoint import code_fingerprint, save_checkpoint
from supernets.train import init_weights

log = logging.getLogger(__name__)


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

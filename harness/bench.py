"""The CI performance regression gate: a fixed small search of every searcher, gated in layers.

1. Deterministic counts (MACs executed, images forwarded, candidates evaluated, cache peak
   bytes) must equal ``benchmarks/baseline.json`` exactly, and the MAC ratios of the freezing
   searchers to ``evolution`` must not grow.
2. Time(pcf-es) / time(evolution), measured side by side in one process (alternating runs,
   minimum of each), must stay below the baseline ratio plus a margin.
3. The pytest-benchmark suite ``tests/benchmarks/test_bench_search.py`` is compared with
   ``--benchmark-compare-fail`` only against a run saved on the same machine fingerprint.

Energy and CO2 are reported, never gated. The bench trains its own small supernet
deterministically (one thread, fixed seed) into a cache folder and reuses it, so the counts
are reproducible wherever the same torch build runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

import supernets
from harness import provenance, store, workflow
from harness.config import CacheConfig, EvalProtocol, RunConfig, content_hash
from harness.data import DatasetSplits, load_dataset
from supernets.train import TrainConfig, data_hash, load_checkpoint, train_supernet

log = logging.getLogger(__name__)

FORMAT = "pcfes-bench-baseline"
FORMAT_VERSION = 1
BASELINE_PATH = Path("benchmarks/baseline.json")
CACHE_DIR = Path(".bench-cache")
SUITE = Path("tests/benchmarks/test_bench_search.py")
MACHINE_STORAGE = Path(".benchmarks")

BENCH_SEARCHERS = ("random", "evolution", "cf-es", "pcf-es", "pcf-es-is")
# Deterministic per-searcher counts (gated exactly), with the run.json totals key each comes from.
COUNT_METRICS = {"macs": "macs", "images": "images", "candidates": "candidates_evaluated", "cache_peak_bytes": "cache_peak_bytes"}
INFO_METRICS = ("wall_s", "cpu_s", "energy_j", "co2_g")  # noisy or estimated: reported only
REFERENCE = "evolution"
RATIO_SEARCHERS = ("pcf-es", "pcf-es-is")  # MACs(x) / MACs(evolution) may not grow
TIMED = "pcf-es"  # time(TIMED) / time(REFERENCE) is the timing layer's ratio
DEFAULT_MARGIN = 0.25
DEFAULT_REPEATS = 3
MACHINE_FAIL = "min:25%"


def _default_supernet() -> str:
    return getattr(supernets, "DEFAULT_SUPERNET", "conv-tiny")


@dataclass(frozen=True)
class BenchConfig:
    """What the bench runs. Everything but ``cache`` is part of its identity (the baseline's key)."""

    supernet: str = field(default_factory=_default_supernet)
    supernet_overrides: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = TrainConfig(epochs=3, batch_size=128, seed=0, device="cpu")
    train_images: int = 0  # first images of the training split; 0 = all
    protocol: EvalProtocol = EvalProtocol(calib_batches=2, calib_batch_size=64, val_size=500)
    searchers: tuple[str, ...] = BENCH_SEARCHERS
    # Evolution-family parameters; random gets the same budget (population x generations). On the
    # default supernet CF-ES and PCF-ES both freeze 9 of 12 blocks at once (baseline of 2026-11-29);
    # the smoke config in the tests is the one that freezes progressively and extends the cache.
    searcher_params: Mapping[str, Any] = field(
        default_factory=lambda: {"population": 24, "top_k": 6, "mutation_num": 12, "crossover_num": 12, "generations": 10}
    )
    seed: int = 0
    threads: int = 1  # one intra-op thread: reproducible reductions, and no OpenMP oversubscription
    # Not identity: the cache never changes a score, so a disabled or broken cache shows up as
    # changed counts against the same baseline, which is what the gate must catch.
    cache: CacheConfig = CacheConfig()

    def __post_init__(self) -> None:
        missing = [name for name in (REFERENCE, TIMED, *RATIO_SEARCHERS) if name not in self.searchers]
        if missing:
            raise ValueError(f"bench searchers {list(self.searchers)} lack {', '.join(missing)}, which the gate compares")
        if self.threads < 1 or self.train_images < 0:
            raise ValueError(f"threads must be >= 1 and train_images >= 0, got {self.threads} and {self.train_images}")

    def identity(self) -> dict[str, Any]:
        """The JSON form of every field that shapes the counts (all but ``cache``)."""
        data = dataclasses.asdict(self)
        data.pop("cache")
        return json.loads(json.dumps(data, sort_keys=True))

    def run_config(self, checkpoint: Path | str = "") -> RunConfig:
        """The run config shared by the bench searches (``compare_configs`` sets searcher and budget)."""
        return RunConfig(
            supernet=self.supernet,
            supernet_overrides=dict(self.supernet_overrides),
            checkpoint=str(checkpoint),
            searcher_params=dict(self.searcher_params),
            seed=self.seed,
            protocol=self.protocol,
            cache=self.cache,
        )


def smoke_config() -> BenchConfig:
    """A seconds-scale bench for tests: the default supernet at half width and depth, freezing early."""
    # The overrides are the keys shared by the ``*-tiny`` supernets. Threshold 0.55 and 4 parents
    # make the short searches freeze progressively (PCF-ES depth 2 then 5; CF-ES stops at 2), so the
    # cache is built and extended within eight generations.
    return BenchConfig(
        supernet_overrides={"widths": [8, 16, 32], "depths": [2, 2, 2], "stem_width": 8, "last_width": 64},
        train=TrainConfig(epochs=2, batch_size=64, seed=0, device="cpu"),
        train_images=4000,
        protocol=EvalProtocol(calib_batches=1, calib_batch_size=64, val_size=300, eval_batch_size=300),
        searcher_params={
            "population": 16, "top_k": 4, "mutation_num": 8, "crossover_num": 8, "generations": 8, "threshold": 0.55,
        },
    )


@dataclass(frozen=True)
class SearcherMeasurement:
    """One bench search: its deterministic counts and its noisy or estimated costs."""

    searcher: str
    counts: Mapping[str, int]  # COUNT_METRICS
    info: Mapping[str, Any]  # INFO_METRICS, energy source, final score, final frozen depth


@dataclass(frozen=True)
class TimingMeasurement:
    """Search wall times of TIMED and REFERENCE from alternating runs in one process."""

    timed_s: tuple[float, ...]
    reference_s: tuple[float, ...]

    @property
    def ratio(self) -> float:
        """min time of TIMED over min time of REFERENCE."""
        return min(self.timed_s) / min(self.reference_s)


@dataclass(frozen=True)
class BenchResult:
    """Everything one bench measured, and where."""

    config: BenchConfig
    searchers: Mapping[str, SearcherMeasurement]
    timing: TimingMeasurement | None
    environment: Mapping[str, Any]  # torch, python, fingerprint, checkpoint hash, threads
    wall_s: float  # the whole bench, training excluded

    def ratios(self) -> dict[str, float]:
        """MACs of each RATIO_SEARCHERS searcher over MACs of evolution."""
        ref = self.searchers[REFERENCE].counts["macs"]
        return {f"macs {name}/{REFERENCE}": self.searchers[name].counts["macs"] / ref for name in RATIO_SEARCHERS}

    def to_dict(self) -> dict[str, Any]:
        """The baseline file's content."""
        timing = None
        if self.timing is not None:
            timing = {
                f"ratio {TIMED}/{REFERENCE}": self.timing.ratio,
                f"{TIMED}_s": list(self.timing.timed_s),
                f"{REFERENCE}_s": list(self.timing.reference_s),
            }
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "recorded_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": self.config.identity(),
            "environment": dict(self.environment),
            "counts": {name: dict(m.counts) for name, m in self.searchers.items()},
            "ratios": self.ratios(),
            "timing": timing,
            "info": {name: dict(m.info) for name, m in self.searchers.items()},
            "bench_wall_s": self.wall_s,
        }


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads, restoring the previous count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _source_hash(package: Any) -> str:
    """sha256 of a package's .py sources: a code change retrains the bench supernet."""
    h = hashlib.sha256()
    root = Path(package.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _training_data(config: BenchConfig) -> tuple[DatasetSplits, torch.Tensor, torch.Tensor]:
    splits = load_dataset(config.protocol.dataset)
    n = config.train_images or len(splits.train_x)
    return splits, splits.train_x[:n], splits.train_y[:n]


def checkpoint_path(config: BenchConfig, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the bench supernet lives: keyed by spec, training, data, supernet code and torch version."""
    _, train_x, train_y = _training_data(config)
    key = content_hash(
        {
            "supernet": config.supernet,
            "overrides": dict(config.supernet_overrides),
            "train": config.train.to_dict(),
            "data": data_hash(train_x, train_y),
            "threads": config.threads,
            "code": _source_hash(supernets),
            "torch": torch.__version__,
        },
        12,
    )
    return Path(cache_dir) / f"{config.supernet}-{config.protocol.dataset}-{key}.pt"


def prepare_workspace(config: BenchConfig, cache_dir: Path = CACHE_DIR, *, progress: bool = False) -> workflow.Workspace:
    """Load the bench supernet (training it deterministically on first use) and its evaluator."""
    path = checkpoint_path(config, cache_dir)
    with torch_threads(config.threads):
        # A partial checkpoint (an interrupted training) is resumed by train_supernet.
        if not (path.exists() and load_checkpoint(path)[1].complete):
            splits, train_x, train_y = _training_data(config)
            net = supernets.get_supernet(config.supernet, **dict(config.supernet_overrides))
            log.info("training the bench supernet %s on %d %s images -> %s", net.display_name, len(train_x), splits.name, path)
            train_supernet(
                net,
                train_x,
                train_y,
                config.train,
                checkpoint_path=path,
                metadata={"dataset": splits.name, "input_shape": list(splits.input_shape), "train_images": len(train_x)},
                progress=progress,
            )
        return workflow.open_workspace(config.run_config(checkpoint=path), progress=progress)


def search_configs(config: BenchConfig, workspace: workflow.Workspace) -> dict[str, RunConfig]:
    """The run config of each bench searcher (random gets evolution's budget)."""
    if workspace.evaluator.cache_config != config.cache:
        raise ValueError(
            f"the workspace's evaluator has cache {workspace.evaluator.cache_config}, the bench config "
            f"{config.cache}; prepare a workspace for this config with prepare_workspace(config)"
        )
    base = config.run_config(checkpoint=workspace.checkpoint.path)
    return {c.searcher: c for c in workflow.compare_configs(base, config.searchers, [config.seed])}


def measure_searcher(config: BenchConfig, workspace: workflow.Workspace, searcher: str, run_dir: Path) -> SearcherMeasurement:
    """One bench search of ``searcher``, recorded in ``run_dir`` (replaced)."""
    configs = search_configs(config, workspace)
    if searcher not in configs:
        raise ValueError(f"searcher {searcher!r} is not one of the bench's {', '.join(configs)}")
    with torch_threads(config.threads):
        path = workflow.run_search(configs[searcher], workspace, run_dir=Path(run_dir), overwrite=True, progress=False)
    record = store.load_run(path)
    run, totals = record.run, record.run["totals"]
    info: dict[str, Any] = {key: totals[key] for key in INFO_METRICS}
    info["energy_source"] = run["meter_sources"].get("energy_j")
    info["final_score"] = run["result"]["final_score"]
    info["frozen_depth"] = int(record.generations["frozen_depth"].iloc[-1]) if len(record.generations) else 0
    return SearcherMeasurement(searcher, {name: int(totals[key]) for name, key in COUNT_METRICS.items()}, info)


def run_bench(
    config: BenchConfig,
    workspace: workflow.Workspace,
    runs_dir: Path,
    *,
    timing_repeats: int = DEFAULT_REPEATS,
) -> BenchResult:
    """Run every bench searcher once, then (``timing_repeats`` > 0) the alternating timing runs."""
    started = time.perf_counter()
    runs_dir = Path(runs_dir)
    measured = {name: measure_searcher(config, workspace, name, runs_dir / name) for name in config.searchers}
    timing = None
    if timing_repeats > 0:
        times: dict[str, list[float]] = {TIMED: [], REFERENCE: []}
        for _ in range(timing_repeats):
            # Alternating, so that a slow spell of a shared machine hits both alike.
            for name in (REFERENCE, TIMED):
                run = measure_searcher(config, workspace, name, runs_dir / "timing" / name)
                times[name].append(float(run.info["wall_s"]))
        timing = TimingMeasurement(tuple(times[TIMED]), tuple(times[REFERENCE]))
    environment = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "fingerprint": provenance.fingerprint(),
        "checkpoint_hash": workspace.checkpoint.content_hash,
        "threads": config.threads,
    }
    return BenchResult(config, measured, timing, environment, time.perf_counter() - started)


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict: failures (each naming searcher or ratio, metric, baseline and new value) and notes."""

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


def check(baseline: Mapping[str, Any], result: BenchResult, *, margin: float = DEFAULT_MARGIN) -> GateReport:
    """Compare a bench result with a baseline: exact counts, MAC ratios, and the timing ratio + ``margin``."""
    failures: list[str] = []
    notes: list[str] = []
    if baseline.get("format") != FORMAT or baseline.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"baseline is not a {FORMAT} v{FORMAT_VERSION} file (got {baseline.get('format')!r} "
            f"v{baseline.get('format_version')!r}); regenerate it with `pcfes bench --update-baseline`"
        )
    identity = result.config.identity()
    if baseline["config"] != identity:
        keys = sorted(k for k in identity.keys() | baseline["config"].keys() if identity.get(k) != baseline["config"].get(k))
        diffs = "; ".join(f"{k}: baseline {baseline['config'].get(k)!r}, now {identity.get(k)!r}" for k in keys)
        return GateReport(
            (f"bench configuration differs from the baseline's ({diffs}); counts are not comparable — "
             "if the change is intended, run `pcfes bench --update-baseline` and commit the reason",),
            (),
        )
    env, base_env = result.environment, baseline.get("environment", {})
    for key in ("torch", "fingerprint", "checkpoint_hash"):
        if base_env.get(key) != env.get(key):
            notes.append(
                f"{key} differs from the baseline's ({base_env.get(key)!r} -> {env.get(key)!r}); counts are still "
                "gated, but floating-point differences between torch builds / CPU ISAs can change scores, hence "
                "which archs are chosen and the counts"
            )
    for name, measured in result.searchers.items():
        base_counts = baseline["counts"].get(name)
        if base_counts is None:
            failures.append(f"{name}: not in the baseline (searchers {sorted(baseline['counts'])})")
            continue
        for metric, new in measured.counts.items():
            old = base_counts.get(metric)
            if old != new:
                change = _change(old, new) if isinstance(old, int) else "new metric"
                failures.append(f"{name}: {metric} changed: baseline {old}, now {new} ({change})")
    for ratio, new in result.ratios().items():
        old = baseline["ratios"].get(ratio)
        if old is None:
            failures.append(f"ratio {ratio}: not in the baseline (now {new:.6f})")
        elif new > old:
            failures.append(f"ratio {ratio}: {new:.6f} > baseline {old:.6f}")
    timing_key = f"ratio {TIMED}/{REFERENCE}"
    if result.timing is None:
        notes.append("timing layer skipped (no timing runs)")
    elif not baseline.get("timing"):
        notes.append("timing layer skipped: the baseline has no timing ratio")
    else:
        old, new = float(baseline["timing"][timing_key]), result.timing.ratio
        limit = old + margin
        line = (
            f"time {timing_key}: {new:.3f} (min of {len(result.timing.timed_s)}: {TIMED} {min(result.timing.timed_s):.3f} s, "
            f"{REFERENCE} {min(result.timing.reference_s):.3f} s) vs baseline {old:.3f} + margin {margin:.2f} = {limit:.3f}"
        )
        (failures if new > limit else notes).append(line)
    return GateReport(tuple(failures), tuple(notes))


def load_baseline(path: Path = BASELINE_PATH) -> dict[str, Any]:
    """Read a baseline file, saying how to make one when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no bench baseline at {path}; record one with `pcfes bench --update-baseline`")
    return store.read_json(path)


def write_baseline(result: BenchResult, path: Path = BASELINE_PATH) -> None:
    """Write ``result`` as the new baseline (atomically)."""
    store.write_json(Path(path), result.to_dict())


def format_result(result: BenchResult) -> str:
    """A table of the per-searcher counts and costs, the ratios and the timing."""
    rows = []
    for name, m in result.searchers.items():
        rows.append({"searcher": name, **m.counts, **{k: m.info[k] for k in (*INFO_METRICS, "final_score", "frozen_depth")}})
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}")
    lines = [table, *(f"{k}: {v:.4f}" for k, v in result.ratios().items())]
    if result.timing is not None:
        t = result.timing
        lines.append(
            f"time {TIMED}/{REFERENCE}: {t.ratio:.3f} ({TIMED} runs {', '.join(f'{s:.2f}' for s in t.timed_s)} s; "
            f"{REFERENCE} runs {', '.join(f'{s:.2f}' for s in t.reference_s)} s)"
        )
    sources = {m.info["energy_source"] for m in result.searchers.values()}
    lines.append(f"energy / CO2 (information only, source: {', '.join(map(str, sorted(sources)))}); bench wall {result.wall_s:.1f} s")
    return "\n".join(lines)


@dataclass(frozen=True)
class MachineBenchOutcome:
    """What the pytest-benchmark layer did: passed, failed, skipped or saved, and why."""

    status: Literal["passed", "failed", "skipped", "saved"]
    reason: str
    output: str = ""


def machine_storage(root: Path = MACHINE_STORAGE) -> Path:
    """pytest-benchmark storage for this machine: saved runs are only compared on an equal fingerprint."""
    return Path(root) / f"pcfes-{content_hash(provenance.fingerprint(), 12)}"


def machine_benchmark(
    *, save: bool = False, suite: Path = SUITE, storage_root: Path = MACHINE_STORAGE, fail: str = MACHINE_FAIL
) -> MachineBenchOutcome:
    """Run the pytest-benchmark suite: save it for this machine, or compare with ``--benchmark-compare-fail``."""
    if not Path(suite).exists():
        return MachineBenchOutcome("skipped", f"suite {suite} not found (run from the repository root)")
    storage = machine_storage(storage_root)
    saved = sorted(storage.rglob("*.json")) if storage.exists() else []
    args = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "--benchmark-enable"]
    args.append(f"--benchmark-storage=file://{storage.resolve()}")
    if save:
        args.append("--benchmark-save=pcfes-bench")
    elif not saved:
        return MachineBenchOutcome(
            "skipped",
            f"no saved pytest-benchmark run for this machine (fingerprint {provenance.fingerprint()!r}, "
            f"storage {storage}); record one with `pcfes bench --save-machine-baseline`",
        )
    else:
        args += ["--benchmark-compare", f"--benchmark-compare-fail={fail}"]
    done = subprocess.run(args, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        what = "saving" if save else f"comparison with {saved[-1].name} ({fail})"
        return MachineBenchOutcome("failed", f"pytest-benchmark {what} failed (exit {done.returncode})", output)
    if save:
        return MachineBenchOutcome("saved", f"saved a pytest-benchmark run for this machine in {storage}", output)
    return MachineBenchOutcome("passed", f"pytest-benchmark within {fail} of {saved[-1].name}", output)

"""`pcfes bench --cost`: does the CPU time that reuse saves follow the MACs it saves?

Per searcher and reuse level, one process, one torch thread: a real search (the seeded
initial weights of the gate's workspace, no training: cost per MAC does not depend on the
weights) through the real runner, repeated with the levels alternating so a slow spell on a
shared machine hits each alike, the minimum of each kept. Reported next to each other:

- MAC ratio and CPU-time ratio to the same searcher without reuse, and their quotient (CPU
  seconds per MAC with reuse over without: 1.00 means time follows the MACs);
- user and kernel time and minor / major page faults (``resource.getrusage`` around the
  run, its final re-scoring included: the same two scorings at every level);
- GMAC per CPU-second of the search phases next to a one-thread roofline measured in the
  same process: a 1x1 convolution of each unit's input and output shapes at the protocol's
  batch size, combined with the weights of the MACs the run executed in each unit;
- the prefix store's captured and read-again node counts.

A benchmark, not a test: it measures and prints, it gates nothing.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import supernets
from harness import store, workflow
from harness.bench.gate import BenchConfig, prepare_workspace, torch_threads
from harness.config import AUTO_BUDGET, EvalProtocol, ReuseConfig, RunConfig
from harness.evaluation.budget import node_shapes
from harness.evaluation.work import SEARCH_WORK_PHASES
from harness.matrix import Matrix, build
from harness.resolution import ResolvedRun, resolve

NO_REUSE = "none"


@dataclass(frozen=True)
class CostConfig:
    """What the cost benchmark runs (the issue's case: spos-tiny, seed 3, 10 generations)."""

    supernet: str = "spos-tiny"
    supernet_overrides: Mapping[str, Any] = field(default_factory=dict)
    searchers: tuple[str, ...] = ("evolution", "random", "pcf-es")
    levels: tuple[str, ...] = (NO_REUSE, "prefix")
    protocol: EvalProtocol = EvalProtocol()
    searcher_params: Mapping[str, Any] = field(default_factory=dict)  # over the searchers' defaults
    generations: int = 10
    seed: int = 3
    weights_seed: int = 0
    budget_bytes: int | str = AUTO_BUDGET
    repeats: int = 2
    threads: int = 1

    def __post_init__(self) -> None:
        if NO_REUSE not in self.levels:
            raise ValueError(f"cost levels {list(self.levels)} lack {NO_REUSE!r}, the reference of every ratio")
        if self.repeats < 1 or self.threads < 1 or self.generations < 1:
            raise ValueError("repeats, threads and generations must each be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON data (recorded next to the rows)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def workspace_config(self) -> BenchConfig:
        """The gate's config for the same supernet, weights and protocol (its workspace is reused)."""
        return BenchConfig(
            supernet=self.supernet, supernet_overrides=dict(self.supernet_overrides), weights_seed=self.weights_seed,
            protocol=self.protocol,
        )

    def run_configs(self, checkpoint: Path) -> dict[str, RunConfig]:
        """Each searcher's run as ``compare`` builds it (random gets evolution's evaluation budget)."""
        base = RunConfig(
            supernet=self.supernet, supernet_overrides=dict(self.supernet_overrides), checkpoint=str(checkpoint),
            searcher_params={**self.searcher_params, "generations": self.generations}, seed=self.seed, protocol=self.protocol,
        )
        return {r.config.searcher: r.config for r in build(base, Matrix(searchers=self.searchers, seeds=(self.seed,)))}


# A real-size space (224 px, 1000 classes) at a protocol that one GPU runs in minutes: seeded
# synthetic images of its shape (cost per MAC depends on shapes, not on pixels or weights), two
# calibration batches, 128 validation images, smaller populations.
REAL_SIZE_PROTOCOL = EvalProtocol(dataset="synthetic-224", calib_batches=2, calib_batch_size=32, val_size=128, eval_batch_size=64)
REAL_SIZE_SEARCH = {"population": 16, "top_k": 4, "mutation_num": 8, "crossover_num": 8}


def space_config(supernet: str, **fields: Any) -> CostConfig:
    """The cost bench of ``supernet``: the issue's protocol, or for a real-size space the reduced one above."""
    if supernets.supernet_entry(supernet).scale == "real":
        fields = {"protocol": REAL_SIZE_PROTOCOL, "searcher_params": REAL_SIZE_SEARCH, **fields}
    return CostConfig(supernet=supernet, **fields)


@dataclass(frozen=True)
class CostSample:
    """One run's costs: search-phase CPU time and MACs, whole-run rusage, store counts."""

    search_cpu_s: float
    search_wall_s: float
    user_s: float
    kernel_s: float
    minor_faults: int
    major_faults: int
    macs: int
    unit_macs: tuple[int, ...]  # executed search MACs per unit (stem, blocks, head)
    captured: int
    read_again: int


@dataclass(frozen=True)
class CostRow:
    """One searcher at one level: the minimum-CPU sample and its ratios to the same searcher without reuse."""

    searcher: str
    level: str
    sample: CostSample
    reference: CostSample
    roofline_gmac_s: float
    samples: int

    @property
    def mac_ratio(self) -> float:
        return self.sample.macs / self.reference.macs

    @property
    def cpu_ratio(self) -> float:
        return self.sample.search_cpu_s / self.reference.search_cpu_s

    @property
    def wall_ratio(self) -> float:
        """Wall-time ratio (what counts on a GPU, where process CPU time is mostly kernel launches)."""
        return self.sample.search_wall_s / self.reference.search_wall_s

    @property
    def quotient(self) -> float:
        """CPU seconds per MAC with this level over without reuse."""
        return self.cpu_ratio / self.mac_ratio

    @property
    def gmac_per_cpu_s(self) -> float:
        return self.sample.macs / self.sample.search_cpu_s / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {
            "searcher": self.searcher, "level": self.level, "mac_ratio": self.mac_ratio, "cpu_ratio": self.cpu_ratio,
            "cpu_per_mac_ratio": self.quotient, "wall_ratio": self.wall_ratio, "gmac_per_cpu_s": self.gmac_per_cpu_s,
            "roofline_gmac_per_s": self.roofline_gmac_s, "samples": self.samples,
            **{k: v for k, v in dataclasses.asdict(self.sample).items() if k != "unit_macs"},
        }


def conv_roofline(
    shapes: Sequence[tuple[tuple[int, ...], tuple[int, ...]]], batch: int, device: str = "cpu", *, min_s: float = 0.2
) -> list[float]:
    """GMAC/s of a 1x1 convolution per (input, output) per-image shape: c_in -> c_out at the output's size, ``batch`` images.

    Channels-last float32 like the protocol's default; timed for at least ``min_s`` after one
    warm-up call, by process CPU time on the CPU and by synchronised wall time on a GPU.
    """
    cuda = torch.device(device).type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    rates = []
    for (c_in, _, _), (c_out, h, w) in shapes:
        x = torch.randn(batch, c_in, h, w, device=device).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c_out, c_in, 1, 1, device=device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            F.conv2d(x, weight)
            calls, start, spent = 0, clock(), 0.0
            while spent < min_s:
                F.conv2d(x, weight)
                calls += 1
                if cuda:
                    torch.cuda.synchronize(device)
                spent = clock() - start
        rates.append(calls * batch * h * w * c_in * c_out / spent / 1e9)
    return rates


def unit_shapes(workspace: workflow.Workspace) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input, output) per-image shape of the stem and every block."""
    outputs = list(node_shapes(workspace.net))
    return list(zip([tuple(workspace.net.input_shape), *outputs[:-1]], outputs))


def combined_roofline(rates: Sequence[float], unit_macs: Sequence[int]) -> float:
    """One GMAC/s for a run: the time its per-unit MACs would take at each unit's roofline (head excluded)."""
    macs = unit_macs[: len(rates)]
    return sum(macs) / sum(m / r for m, r in zip(macs, rates) if m)


def _usage() -> resource.struct_rusage:
    return resource.getrusage(resource.RUSAGE_SELF)


def measure_run(run: ResolvedRun, workspace: workflow.Workspace, run_dir: Path) -> CostSample:
    """One search through the runner, with rusage around it."""
    before = _usage()
    record = workflow.run_search(run, workspace, run_dir=run_dir, overwrite=True, progress=False).run
    after = _usage()
    totals = record.totals
    work = workspace.evaluator.work
    unit_macs = tuple(sum(units) for units in zip(*(work.block_macs[p] for p in SEARCH_WORK_PHASES)))
    return CostSample(
        search_cpu_s=float(totals.cpu_s),
        search_wall_s=float(totals.wall_s),
        user_s=after.ru_utime - before.ru_utime,
        kernel_s=after.ru_stime - before.ru_stime,
        minor_faults=after.ru_minflt - before.ru_minflt,
        major_faults=after.ru_majflt - before.ru_majflt,
        macs=int(totals.macs),
        unit_macs=unit_macs,
        captured=int(totals.store_captured),
        read_again=int(totals.store_read_again),
    )


def run_cost(config: CostConfig, cache_dir: Path, *, progress: Callable[[str], None] | None = None) -> list[CostRow]:
    """Every searcher at every level, ``repeats`` times alternating; rows in searcher, level order."""
    workspace = prepare_workspace(config.workspace_config(), cache_dir)
    runs = config.run_configs(workspace.checkpoint.path)
    rows = []
    with torch_threads(config.threads):
        rates = conv_roofline(unit_shapes(workspace), config.protocol.eval_batch_size, config.protocol.device)
        for name, base in runs.items():
            samples: dict[str, list[CostSample]] = {level: [] for level in config.levels}
            for repeat in range(config.repeats):
                for level in config.levels:
                    run = resolve(dataclasses.replace(base, reuse=ReuseConfig(level=level, budget_bytes=config.budget_bytes)))
                    if progress is not None:
                        progress(f"{name}[{level}] run {repeat + 1}/{config.repeats}")
                    samples[level].append(measure_run(run, workspace, Path(cache_dir) / "cost-runs" / f"{name}-{level}"))
            best = {level: min(s, key=lambda x: x.search_cpu_s) for level, s in samples.items()}
            for level in config.levels:
                rows.append(CostRow(name, level, best[level], best[NO_REUSE], combined_roofline(rates, best[level].unit_macs), config.repeats))
    return rows


def write_record(path: Path, config: CostConfig, rows: Sequence[CostRow]) -> None:
    """``--record``: the config and its rows as JSON."""
    store.write_json(path, {"config": config.to_dict(), "rows": [r.to_dict() for r in rows]})


def format_cost(rows: Sequence[CostRow], config: CostConfig) -> str:
    """The table: one line per searcher and level."""
    lines = [
        f"cost of reuse on {config.supernet} ({config.protocol.dataset}, {config.protocol.val_size} validation images, "
        f"seed {config.seed}, {config.generations} generations, budget "
        f"{config.budget_bytes}, {config.threads} thread(s), min of {config.repeats} alternating runs, process CPU time)",
        f"{'run':<22} {'MACs':>7} {'CPU':>7} {'CPU/MAC':>8} {'wall':>7} {'user_s':>8} {'kernel_s':>8} {'minflt':>10} "
        f"{'GMAC/cpu-s':>10} {'roofline':>8} {'captured':>8} {'read':>6}",
    ]
    for r in rows:
        s = r.sample
        lines.append(
            f"{r.searcher + '[' + r.level + ']':<22} {r.mac_ratio:>6.3f}x {r.cpu_ratio:>6.3f}x {r.quotient:>8.3f} "
            f"{r.wall_ratio:>6.3f}x "
            f"{s.user_s:>8.1f} {s.kernel_s:>8.1f} {s.minor_faults:>10,d} {r.gmac_per_cpu_s:>10.2f} "
            f"{r.roofline_gmac_s:>8.2f} {s.captured:>8,d} {s.read_again:>6,d}"
        )
    lines.append(
        "ratios: to the same searcher at level none (MACs, search-phase CPU and wall time); user / kernel time and "
        "page faults: the whole run; roofline: 1x1 conv of the run's unit shapes (GMAC/s, same threads, device "
        f"{config.protocol.device})"
    )
    return "\n".join(lines)

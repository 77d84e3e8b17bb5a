"""Can a supernet rank candidates at a protocol? The measurements behind a report's answer.

Every one-shot search rests on the supernet ordering candidates the way their stand-alone
networks would be ordered. Four checks, from cheap to dear:

- ``noise_vs_signal``: the binomial standard error of one candidate's score at the protocol's
  validation size next to the spread of the candidates' scores (all, and the top decile) — from
  the candidates.csv the runs recorded;
- ``split_half``: a fixed, seeded sample of archs under the MAC limit scored on two disjoint
  halves of the validation split (the evaluator's public API, one extra pass), Kendall τ between
  the halves: how well the scores rank against their own noise;
- one-shot vs stand-alone: Kendall τ between the full-protocol scores of that sample and the
  stand-alone test accuracy of its first archs (``harness.retrain``; opt-in, it trains);
- ``drift_depths``: how far a freezing searcher freezes with the run's settings when every score
  is an independent uniform draw (genetic drift alone), to set beside the depth the real run froze.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

import searchers
import supernets
from harness import schema, store, workflow
from harness.config import RunConfig
from harness.evaluation import Evaluator
from harness.resolution import ResolvedRun, recorded_run
from harness.retrain import RetrainJob, RetrainRecipe, answer_jobs

SAMPLE_ARCHS = 100  # archs of the split-half pass: tau's standard error ~ sqrt(0.437 / (n - 4)) = 0.07
SAMPLE_SEED = 2024
RETRAIN_ARCHS = 24  # the first archs of the sample trained stand-alone for the rank agreement (>= 20)
DRIFT_SEEDS = 20
DRIFT_GENERATIONS = 20
TOP_SHARE = 0.1  # the top decile of candidate scores
FILE_PREFIX = "rank_check-"


@dataclass(frozen=True)
class RankAgreement:
    """Kendall τ-b between two score lists with a Fieller-Hartley-Pearson interval (None below 5 pairs)."""

    tau: float
    low: float | None
    high: float | None
    n: int
    p_value: float


def kendall(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> RankAgreement:
    """Kendall τ-b of ``x`` and ``y`` (``scipy.stats.kendalltau``), its p-value and a confidence interval.

    The interval transforms τ by atanh with standard error sqrt(0.437 / (n - 4)) (Fieller,
    Hartley & Pearson 1957), so it stays inside [-1, 1].
    """
    if len(x) != len(y):
        raise ValueError(f"kendall: {len(x)} and {len(y)} values; give one pair per arch")
    n = len(x)
    result = stats.kendalltau(x, y)
    tau, p = float(result.statistic), float(result.pvalue)
    if n < 5 or math.isnan(tau):
        return RankAgreement(tau, None, None, n, p)
    z = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt(0.437 / (n - 4))
    centre = math.atanh(min(max(tau, -1.0 + 1e-12), 1.0 - 1e-12))
    return RankAgreement(tau, math.tanh(centre - z), math.tanh(centre + z), n, p)


@dataclass(frozen=True)
class NoiseSignal:
    """Evaluation noise of one candidate's score against the spread of candidate scores."""

    val_images: int
    score: float  # the median candidate score the standard error is taken at
    se: float  # binomial standard error of one score, in accuracy units
    spread_all: float  # std of the distinct candidates' scores
    spread_top: float  # std of the top decile of them
    candidates: int

    @property
    def ratio_all(self) -> float:
        return self.se / self.spread_all if self.spread_all > 0 else math.inf

    @property
    def ratio_top(self) -> float:
        return self.se / self.spread_top if self.spread_top > 0 else math.inf


def noise_vs_signal(candidates: pd.DataFrame, val_images: int) -> NoiseSignal:
    """From candidates.csv rows (any runs of one supernet and protocol) scored on ``val_images`` images.

    Importance-sampled scores (``sample_size`` below the full set) are left out: they are estimates
    on other images. An arch scored by several runs counts once (its scores agree exactly).
    """
    full = candidates[candidates["sample_size"] == val_images].drop_duplicates("arch")
    if full.empty:
        raise ValueError(f"no candidate was scored on all {val_images} validation images")
    scores = full["score"].to_numpy(dtype=float)
    top = np.sort(scores)[-max(2, math.ceil(TOP_SHARE * len(scores))) :]
    median = float(np.median(scores))
    return NoiseSignal(
        val_images=val_images, score=median, se=math.sqrt(median * (1 - median) / val_images),
        spread_all=float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
        spread_top=float(np.std(top, ddof=1)) if len(top) > 1 else 0.0, candidates=len(scores),
    )


def sample_archs(net: supernets.Supernet, limit: int | None, count: int, seed: int = SAMPLE_SEED) -> list[tuple[int, ...]]:
    """``count`` distinct archs drawn uniformly from those within ``limit`` MACs per image (the search space's sampling)."""
    rng = np.random.default_rng(seed)
    found: dict[tuple[int, ...], None] = {}
    try:  # a limit that (nearly) no arch meets fails in the space's own bounded draws
        space = workflow.search_space(net, limit)
        for _ in range(100 * count):
            found.setdefault(space.sample(rng), None)
            if len(found) == count:
                return list(found)
    except searchers.ConstraintError:
        pass
    within = "in the space" if limit is None else f"within {limit:,} MACs per image"
    raise ValueError(f"{net.display_name}: fewer than {count} distinct archs found {within}")


@dataclass(frozen=True)
class SplitHalf:
    """rank_check-*.json: the seeded sample's scores on the full protocol and on two disjoint validation halves."""

    supernet: str
    supernet_config: dict[str, Any]
    dataset: str
    checkpoint_hash: str
    protocol_hash: str
    val_images: int
    half_images: int
    mac_limit: int | None
    sample_seed: int
    archs: list[str]
    full_scores: list[float]
    half_a: list[float]
    half_b: list[float]
    cpu_s: float

    @property
    def agreement(self) -> RankAgreement:
        return kendall(self.half_a, self.half_b)

    @property
    def paired_noise(self) -> float:
        """The noise of one full-protocol score as it matters for ranking, estimated from the halves (accuracy units).

        Each half's scores are centred on their mean over the sample, which removes what the halves' images do to
        every arch alike (the binomial SE of one score counts that too, so it overstates the noise of comparing archs
        on the same images); half the std of the centred differences is the arch-specific noise of their mean.
        """
        a, b = np.asarray(self.half_a), np.asarray(self.half_b)
        return float(np.std((a - a.mean()) - (b - b.mean()), ddof=1) / 2)


def split_half(run: ResolvedRun, *, count: int | None = None, seed: int = SAMPLE_SEED, progress: bool = False) -> SplitHalf:
    """Score a seeded sample of ``count`` (default SAMPLE_ARCHS) archs within the run's MAC limit on the full
    protocol and on each validation half."""
    count = SAMPLE_ARCHS if count is None else count
    start = time.process_time()
    workspace = workflow.open_workspace(run, progress=progress)
    config = run.config
    protocol, splits = workspace.protocol, workspace.splits
    half = protocol.val_size // 2
    if half < 1:
        raise ValueError(f"protocol.val_size {protocol.val_size} cannot be halved")
    limit = run.mac_limit
    archs = sample_archs(workspace.net, limit, count, seed)
    full = workspace.evaluator.score(archs)
    halves = []
    for part in (slice(0, half), slice(half, 2 * half)):
        half_splits = dataclasses.replace(splits, val_x=splits.val_x[: protocol.val_size][part], val_y=splits.val_y[: protocol.val_size][part])
        evaluator = Evaluator(workspace.net, half_splits, dataclasses.replace(protocol, val_size=half), config.reuse)
        halves.append(evaluator.score(archs))
    return SplitHalf(
        supernet=config.supernet, supernet_config=dict(workspace.net.spec.config) if workspace.net.spec else {},
        dataset=splits.name, checkpoint_hash=workspace.checkpoint.content_hash, protocol_hash=protocol.hash(),
        val_images=protocol.val_size, half_images=half, mac_limit=limit, sample_seed=seed,
        archs=[schema.arch_to_str(a) for a in archs], full_scores=full, half_a=halves[0], half_b=halves[1],
        cpu_s=time.process_time() - start,
    )


def check_path(folder: Path, supernet: str, checkpoint_hash: str, protocol_hash: str) -> Path:
    return Path(folder) / f"{FILE_PREFIX}{supernet}-c{checkpoint_hash[:12]}-p{protocol_hash[:12]}.json"


def write_checks(records: Sequence[store.StoredRun], folder: Path, *, progress: bool = False) -> list[Path]:
    """The split-half record of every (supernet, checkpoint, protocol) of ``records`` in ``folder``; missing ones computed."""
    paths = []
    seen: set[Path] = set()
    for record in records:
        setup = record.run.setup
        path = check_path(folder, setup.supernet, setup.checkpoint_hash, setup.protocol_hash)
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            check = split_half(recorded_run(setup, at_recorded_checkpoint=True), progress=progress)
            if check.checkpoint_hash != setup.checkpoint_hash or check.protocol_hash != setup.protocol_hash:
                raise ValueError(
                    f"the checkpoint or protocol of {record.path} changed since the run (now {check.checkpoint_hash[:12]}, "
                    f"{check.protocol_hash[:12]}); a rank check must score with the weights the run searched"
                )
            store.write_json(path, dataclasses.asdict(check))
        paths.append(path)
    return paths


def read_checks(folders: Sequence[Path]) -> list[SplitHalf]:
    """Every rank_check-*.json in ``folders`` (files of another layout are skipped)."""
    checks = []
    names = {f.name for f in dataclasses.fields(SplitHalf)}
    for folder in folders:
        for path in sorted(Path(folder).glob(f"{FILE_PREFIX}*.json")) if Path(folder).is_dir() else []:
            data = json.loads(path.read_text())
            if set(data) == names:
                checks.append(SplitHalf(**data))
    return checks


def drift_depths(
    supernet: str, supernet_overrides: dict[str, Any], searcher: str, params: dict[str, Any], mac_limit: int | None,
    *, seeds: int = DRIFT_SEEDS, generations: int = DRIFT_GENERATIONS,
) -> list[tuple[int | None, int]]:
    """Per seed: the generation after which the first freeze happened (None: never) and the final frozen depth,
    for ``searcher`` with ``params`` when every candidate's score is an independent uniform draw."""
    with torch.device("meta"):  # the searcher needs the space and its costs, no weights
        net = supernets.get_supernet(supernet, **supernet_overrides)
    space = workflow.search_space(net, mac_limit)
    outcomes = []
    for seed in range(seeds):
        search = searchers.get_searcher(searcher, space, seed, **params)
        scores = np.random.default_rng([seed, 1])  # independent of the searcher's own stream
        first, depth = None, 0
        for generation in range(1, generations + 1):
            if search.done():
                break
            archs = search.ask()
            search.tell(list(zip(archs, scores.random(len(archs)).tolist())))
            depth = len(search.hints().frozen)
            if depth and first is None:
                first = generation
        outcomes.append((first, depth))
    return outcomes


def retrain_jobs(
    records: Sequence[store.StoredRun], folders: Sequence[Path], recipe: RetrainRecipe, count: int | None = None
) -> list[RetrainJob]:
    """The stand-alone retrains a report reads: every run's answer, then the first ``count`` archs of each
    rank check's sample recorded in ``folders`` (default ``RETRAIN_ARCHS``, read when called)."""
    return answer_jobs(records, recipe) + sample_jobs(read_checks(folders), recipe, RETRAIN_ARCHS if count is None else count)


def sample_jobs(checks: Sequence[SplitHalf], recipe: RetrainRecipe, count: int) -> list[RetrainJob]:
    """The stand-alone retrains of the first ``count`` archs of each check's sample (the rank agreement's ground truth)."""
    jobs = []
    for check in checks:
        config = RunConfig(
            supernet=check.supernet, supernet_overrides=check.supernet_config,
            mac_limit="none" if check.mac_limit is None else check.mac_limit,
        )
        config = dataclasses.replace(config, protocol=dataclasses.replace(config.protocol, dataset=check.dataset))
        jobs += [RetrainJob(config, schema.arch_from_str(arch), recipe) for arch in check.archs[:count]]
    return jobs

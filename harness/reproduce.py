"""The paper's experiment matrix and sensitivity sweeps as run configs (`pcfes reproduce`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.config import EvalProtocol, RunConfig

Scale = Literal["cpu", "gpu"]
Sweep = Literal["threshold", "monitor", "rate"]

# SPOS-like, FairNAS-like and GreedyNAS-like spaces; the paper's H and f come from
# searchers.preset_for(name) when a run is resolved.
SUPERNETS: dict[Scale, tuple[str, ...]] = {
    "cpu": ("spos-tiny", "fairnas-tiny", "greedynas-tiny"),
    "gpu": ("spos", "fairnas", "greedynas"),
}
MAIN_SEARCHERS = ("evolution", "cf-es", "pcf-es", "pcf-es-is", "random")

# Paper Figs. 9-11: which searcher a sweep varies, and the values.
SWEEPS: dict[Sweep, tuple[str, tuple[float, ...]]] = {
    "threshold": ("pcf-es", (0.5, 0.6, 0.7, 0.8)),
    "monitor": ("pcf-es", (1, 2, 3, 4)),
    "rate": ("pcf-es-is", (0.2, 0.4, 0.6, 0.8, 1.0)),
}
SWEEP_SUPERNET: dict[Scale, str] = {"cpu": "spos-tiny", "gpu": "spos"}

# GPU scale follows SPOS: 200 calibration batches of 128 images with momentum-0.1 BN stats;
# the whole validation split.
GPU_PROTOCOL = dict(
    calib_batches=200, calib_batch_size=128, bn_mode="ema", val_size=0, eval_batch_size=500, device="cuda"
)


@dataclass(frozen=True)
class Plan:
    """Runs grouped by supernet: each group shares one workspace (data + checkpoint)."""

    groups: tuple[tuple[RunConfig, ...], ...]

    @property
    def runs(self) -> list[RunConfig]:
        return [c for group in self.groups for c in group]


def base_config(scale: Scale, base: RunConfig, dataset: str | None) -> RunConfig:
    """The protocol of a scale: the CPU default on fashion16, or SPOS's on a user's dataset."""
    if scale == "cpu":
        protocol = dataclasses.replace(base.protocol, dataset=dataset or base.protocol.dataset)
        return dataclasses.replace(base, protocol=protocol)
    if not dataset or not base.data_root:
        raise ValueError("--scale gpu needs --dataset (cifar10 or imagefolder) and --data-root FOLDER")
    protocol = EvalProtocol(**{**dataclasses.asdict(base.protocol), **GPU_PROTOCOL, "dataset": dataset})
    return dataclasses.replace(base, protocol=protocol)


def _runs(base: RunConfig, supernet: str, searcher: str, seeds: Sequence[int], params: dict) -> list[RunConfig]:
    return [
        dataclasses.replace(base, supernet=supernet, searcher=searcher, seed=seed, searcher_params=params, run_id="")
        for seed in seeds
    ]


def main_plan(base: RunConfig, supernets: Sequence[str], seeds: Sequence[int]) -> Plan:
    """Every searcher of the paper on every space, for every seed (evolution first per seed)."""
    groups = []
    for name in supernets:
        runs: list[RunConfig] = []
        for seed in seeds:
            for searcher in MAIN_SEARCHERS:
                runs += _runs(base, name, searcher, [seed], {})
        groups.append(tuple(runs))
    return Plan(tuple(groups))


def sweep_plan(base: RunConfig, supernet: str, sweep: Sweep, seeds: Sequence[int]) -> Plan:
    """One searcher with one parameter varied, plus the evolution baseline of each seed."""
    searcher, values = SWEEPS[sweep]
    runs = _runs(base, supernet, "evolution", seeds, {})
    for value in values:
        runs += _runs(base, supernet, searcher, seeds, {sweep: value})
    return Plan((tuple(runs),))

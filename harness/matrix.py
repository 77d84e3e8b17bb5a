"""The one run-matrix builder behind ``compare``, ``reproduce``, ``sweep`` and ``bench``.

A matrix is supernets x parameter grid x seeds x searchers x reuse levels over a base run
config. Every run gets the base's searcher parameters (with the grid point laid over them) that
its searcher accepts, a searcher registered with a ``matched_budget`` gets the baseline's
(random: evolution's population x generations), and the searcher's presets for the supernet's
family fill what is still unset. A searcher that takes no grid parameter yields the same run at every grid point: it is kept
once (runs are identified by their run id, which holds the config hash).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import searchers
from harness.config import REUSE_LEVELS, RunConfig
from harness.resolution import ResolvedRun, resolve

EVERY_SEARCHER = "*"


@dataclass(frozen=True)
class Matrix:
    """What varies over a base config; an empty ``supernets`` means the base's supernet."""

    searchers: tuple[str, ...]
    seeds: tuple[int, ...]
    supernets: tuple[str, ...] = ()
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # Reuse levels per searcher name ("*": every searcher not named); default: the base's level.
    reuse: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what, values in (("searchers", self.searchers), ("seeds", self.seeds), ("supernets", self.supernets)):
            listed = [str(v) for v in values]
            twice = sorted({v for v in listed if listed.count(v) > 1})
            if twice:
                raise ValueError(f"{', '.join(twice)} listed twice in {what}: each is run once")
        if not self.searchers or not self.seeds:
            raise ValueError(f"a matrix needs at least one searcher and one seed, got {list(self.searchers)} and {list(self.seeds)}")
        if not all(self.searchers):
            raise ValueError(f"searchers {list(self.searchers)} hold an empty name; give comma-separated names, e.g. random,evolution")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid {key} must be a non-empty list of values")
        for name, levels in self.reuse.items():
            bad = [level for level in levels if level not in REUSE_LEVELS]
            if bad or not levels:
                raise ValueError(f"reuse levels of {name} must be a non-empty list of {', '.join(REUSE_LEVELS)}, got {list(levels)}")
            if name != EVERY_SEARCHER and name not in self.searchers:
                raise ValueError(f"reuse levels are given for {name!r}, which is not among the searchers {list(self.searchers)}")

    def levels(self, searcher: str, default: str) -> tuple[str, ...]:
        """The reuse levels ``searcher`` runs at."""
        return tuple(self.reuse.get(searcher, self.reuse.get(EVERY_SEARCHER, (default,))))


def _matched_budget(name: str, params: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """What a searcher with a ``matched_budget`` adds to ``params`` to spend the baseline's budget (the baseline's defaults updated by ``given``)."""
    match = searchers.searcher_entry(name).matched_budget
    if match is None:
        return {}
    baseline = searchers.searcher_defaults(searchers.baseline_name())
    baseline.update({k: v for k, v in given.items() if k in baseline})
    return dict(match(baseline, params))


def build(base: RunConfig, matrix: Matrix) -> list[ResolvedRun]:
    """Every run of ``matrix`` over ``base``, resolved (presets filled in), in order, without duplicates."""
    accepted = {name: searchers.searcher_defaults(name) for name in matrix.searchers}
    keys = list(matrix.grid)
    given_keys = set(base.searcher_params) | set(keys)
    unused = sorted(given_keys - {key for params in accepted.values() for key in params})
    if unused:
        raise ValueError(f"no searcher of {', '.join(matrix.searchers)} takes parameter(s) {', '.join(unused)}")
    runs: dict[str, ResolvedRun] = {}
    for supernet in matrix.supernets or (base.supernet,):
        for point in itertools.product(*(matrix.grid[k] for k in keys)):
            given = {**base.searcher_params, **dict(zip(keys, point))}
            for seed in matrix.seeds:
                for name in matrix.searchers:
                    params = {k: v for k, v in given.items() if k in accepted[name]}
                    params.update(_matched_budget(name, params, given))
                    for level in matrix.levels(name, base.reuse.level):
                        config = dataclasses.replace(
                            base, supernet=supernet, searcher=name, seed=seed, searcher_params=params, run_id="",
                            reuse=dataclasses.replace(base.reuse, level=level),
                        )
                        run = resolve(config)
                        runs.setdefault(run.run_id, run)
    return list(runs.values())

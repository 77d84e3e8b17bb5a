"""Uniform random search with the same evaluation budget as SPOS evolution."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from searchers.base import Arch, GenerationalSearcher, check_int
from searchers.registry import register_searcher


@dataclass(frozen=True)
class RandomParams:
    """``budget`` = evolution's population x generations (50 x 20), asked ``batch_size`` at a time."""

    budget: int = 1000
    batch_size: int = 50

    def __post_init__(self) -> None:
        check_int("budget", self.budget, 1)
        check_int("batch_size", self.batch_size, 1)


def baseline_budget(baseline: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline's evaluation budget, population x generations, asked a population at a time (unless given)."""
    if "budget" in given:
        return {}
    return {
        "budget": baseline["population"] * baseline["generations"],
        "batch_size": given.get("batch_size", baseline["population"]),
    }


@register_searcher("random", matched_budget=baseline_budget, in_default_compare=True, colour="#999999")
class RandomSearcher(GenerationalSearcher):
    """Distinct uniform archs meeting the constraint until the budget is spent."""

    Params = RandomParams
    params: RandomParams

    def propose(self) -> list[Arch]:
        wanted = min(self.params.batch_size, self.params.budget - len(self.told))
        batch: dict[Arch, None] = {}
        if wanted > 0:
            self.draw_new(lambda: self.space.sample(self.rng), wanted, batch)
        return list(batch)

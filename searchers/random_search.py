"""Uniform random search with the same evaluation budget as SPOS evolution."""

from __future__ import annotations

from dataclasses import dataclass

from searchers.base import Arch, GenerationalSearcher, check_int, register_searcher


@dataclass(frozen=True)
class RandomParams:
    """``budget`` = evolution's population x generations (50 x 20), asked ``batch_size`` at a time."""

    budget: int = 1000
    batch_size: int = 50

    def __post_init__(self) -> None:
        check_int("budget", self.budget, 1)
        check_int("batch_size", self.batch_size, 1)


@register_searcher("random")
class RandomSearcher(GenerationalSearcher):
    """Distinct uniform archs meeting the constraint until the budget is spent."""

    Params = RandomParams
    params: RandomParams

    def _propose(self) -> list[Arch]:
        wanted = min(self.params.batch_size, self.params.budget - len(self._scores))
        batch: dict[Arch, None] = {}
        if wanted > 0:
            self._draw_new(lambda: self.space.sample(self.rng), wanted, batch)
        return list(batch)

"""SPOS evolutionary search (Guo et al., ECCV 2020), with the frozen prefix PCF-ES builds on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from searchers.base import (
    Arch,
    GenerationalSearcher,
    Hints,
    Score,
    SearchSpace,
    check_fraction,
    check_int,
)
from searchers.registry import register_searcher


@dataclass(frozen=True)
class EvolutionParams:
    """SPOS defaults: 20 generations of 50 (1,000 evaluations), top-10 parents, 25 + 25 children."""

    population: int = 50
    top_k: int = 10
    generations: int = 20
    mutation_num: int = 25
    mutation_prob: float = 0.1
    crossover_num: int = 25

    def __post_init__(self) -> None:
        check_int("population", self.population, 1)
        check_int("top_k", self.top_k, 1)
        check_int("generations", self.generations, 1)
        check_int("mutation_num", self.mutation_num, 0)
        check_int("crossover_num", self.crossover_num, 0)
        check_fraction("mutation_prob", self.mutation_prob, low=0.0, high=1.0, open_low=False, open_high=False)
        if self.mutation_num + self.crossover_num > self.population:
            raise ValueError(
                f"mutation_num + crossover_num ({self.mutation_num} + {self.crossover_num}) must not exceed "
                f"population ({self.population}); random archs top each generation up to population"
            )


@register_searcher("evolution", baseline=True, in_default_compare=True, colour="#000000", generations_param="generations")
class EvolutionSearcher(GenerationalSearcher):
    """SPOS evolution: random generation 0, then mutations and crossovers of the top-k, random top-up.

    Every child keeps the frozen prefix ``_frozen``, which plain evolution never sets; the
    freezing searchers in ``pcf.py`` set it from ``on_tell``, so all share this one loop and,
    without a freeze, draw exactly the same random numbers. Savings are measured against it
    (the registry's baseline).
    """

    Params = EvolutionParams
    params: EvolutionParams

    def __init__(self, space: SearchSpace, seed: int, params: EvolutionParams | None = None):
        super().__init__(space, seed, params)
        self._top: list[Arch] = []  # parents: the best told archs, best first
        self._frozen: Arch = ()

    def hints(self) -> Hints:
        return Hints(frozen=self._frozen, reuse_from=tuple(self._top))

    def propose(self) -> list[Arch]:
        p = self.params
        if self.generation >= p.generations:
            return []
        # Parents rewritten by a freeze are new archs: they are asked along with the children.
        batch = dict.fromkeys(a for a in self._top if a not in self.told)
        carried = len(batch)
        if self._top:
            self.draw_new(self._mutant, p.mutation_num, batch)
            self.draw_new(self._crossed, p.crossover_num, batch)
        children = len(batch) - carried
        self.draw_new(lambda: self.space.sample(self.rng, self._frozen), p.population - children, batch)
        return list(batch)

    def _parent(self) -> Arch:
        return self._top[int(self.rng.integers(len(self._top)))]

    def _mutant(self) -> Arch:
        return self.space.mutate(self.rng, self._parent(), self.params.mutation_prob, self._frozen)

    def _crossed(self) -> Arch:
        first = self._parent()
        return self.space.crossover(self.rng, first, self._parent(), self._frozen)

    def on_tell(self, scored: list[tuple[Arch, Score]]) -> None:
        told = self.told
        told_order = {arch: i for i, arch in enumerate(told)}
        pool = dict.fromkeys(self._top + [arch for arch, _ in scored])
        # Ties go to the arch told first, so the parents never depend on set iteration order.
        self._top = sorted(pool, key=lambda a: (-told[a], told_order[a]))[: self.params.top_k]
        # The answer is the top-1 parent (SPOS / PCF-ES); after a freeze every parent carries
        # the frozen prefix, so an older arch scored under another protocol cannot win.
        self.set_best(self._top[0])

    def extra_state(self) -> dict[str, Any]:
        return {"top": [list(a) for a in self._top], "frozen": list(self._frozen)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._top = [tuple(a) for a in state["top"]]
        self._frozen = tuple(state["frozen"])

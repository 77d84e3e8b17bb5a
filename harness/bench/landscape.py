"""A score landscape in exact integer arithmetic, on which the gate runs the real searchers.

A score is ``sum(weight[block][choice]) / 2**k`` with integer weights: a dyadic rational whose
float is exact on every IEEE-754 machine, and so is every comparison or share a searcher computes
from it. The asks, freezes and answers of a search on the landscape are therefore a pure function
of the searcher code and the seed: no CPU model, instruction set, thread count or floating-point
library can move them (unlike a search on a trained supernet, whose scores are float results).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from searchers import Arch, Hints, Searcher

WEIGHT_BITS = 16


@dataclass(frozen=True)
class Landscape:
    """Additive integer scores; shallow blocks weigh more, so they converge first (paper observation 1)."""

    choices: tuple[int, ...]
    seed: int = 0

    @cached_property
    def weights(self) -> tuple[tuple[int, ...], ...]:
        """``weights[block][choice]``: a sha256 draw of ``WEIGHT_BITS`` bits times the block's depth rank."""
        depth = len(self.choices)
        return tuple(
            tuple(self._draw(block, choice) * (depth - block) for choice in range(count))
            for block, count in enumerate(self.choices)
        )

    @cached_property
    def denominator(self) -> int:
        """The smallest power of two above every total, so scores lie in [0, 1) and stay exact."""
        top = sum(max(row) for row in self.weights)
        return 1 << top.bit_length()

    def score(self, arch: Sequence[int]) -> float:
        """The exact score of ``arch``."""
        if len(arch) != len(self.choices):
            raise ValueError(f"arch {tuple(arch)} has {len(arch)} choices; the landscape has {len(self.choices)} blocks")
        return sum(row[c] for row, c in zip(self.weights, arch)) / self.denominator

    def _draw(self, block: int, choice: int) -> int:
        digest = hashlib.sha256(f"pcfes-landscape:{self.seed}:{block}:{choice}".encode()).digest()
        return int.from_bytes(digest[: WEIGHT_BITS // 8], "big")


@dataclass(frozen=True)
class GenerationTrace:
    """One generation as the runner sees it: hints, the best answer before the ask, the asked archs."""

    hints: Hints
    best: tuple[Arch, float] | None  # searcher.best() before the ask (None in generation 0)
    archs: tuple[Arch, ...]


@dataclass(frozen=True)
class SearchTrace:
    """A whole search: its generations and final answer."""

    searcher: str
    generations: tuple[GenerationTrace, ...]
    best: tuple[Arch, float]

    @property
    def candidates(self) -> int:
        """Archs asked over the search."""
        return sum(len(g.archs) for g in self.generations)


def trace_search(searcher: Searcher, landscape: Landscape, *, max_generations: int = 10_000) -> SearchTrace:
    """Run ``searcher`` to the end on ``landscape`` in the runner's order (hints, best, ask, tell)."""
    generations = []
    while not searcher.done():
        if len(generations) >= max_generations:
            raise RuntimeError(f"{searcher.name}: no end after {max_generations} generations")
        hints = searcher.hints()
        best = searcher.best() if searcher.generation > 0 else None
        archs = tuple(searcher.ask())
        if not archs:
            raise RuntimeError(f"{searcher.name}: ask() returned no archs while done() is False")
        searcher.tell([(arch, landscape.score(arch)) for arch in archs])
        generations.append(GenerationTrace(hints, best, archs))
    return SearchTrace(searcher.name, tuple(generations), searcher.best())

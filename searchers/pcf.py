"""CF-ES and PCF-ES (Zhang et al., 2024): SPOS evolution plus choice freezing, and importance sampling.

The freezing is an add-on to ``EvolutionSearcher``: it only sets the frozen prefix and
rewrites the parents after a tell, and draws no random numbers, so a threshold H > 1
(which never freezes) reproduces ``evolution`` exactly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from searchers.base import Arch, Hints, Score, check_fraction, check_int
from searchers.evolution import EvolutionParams, EvolutionSearcher
from searchers.registry import register_searcher

logger = logging.getLogger(__name__)

# The paper's settings per search-space family (PAPER.md; block ratio 0.5 everywhere); a space
# outside these families gets the SPOS settings (``SearcherEntry.preset``).
_PROGRESSIVE_PRESETS = {
    "spos": {"threshold": 0.7, "monitor": 3},
    "fairnas": {"threshold": 0.4, "monitor": 2},
    "greedynas": {"threshold": 0.4, "monitor": 3},
}
# CF-ES has no monitoring window, and the paper's Table 1 runs it with H = 0.5 on FairNAS (PCF-ES: 0.4).
_CF_PRESETS = {"spos": {"threshold": 0.7}, "fairnas": {"threshold": 0.5}, "greedynas": {"threshold": 0.4}}
# Each freezing searcher's sweep reports vary its own parameters (SearcherEntry.sweepable).
_THRESHOLD_SWEEP = {"threshold": "threshold H"}
_PROGRESSIVE_SWEEP = {**_THRESHOLD_SWEEP, "monitor": "monitor size f"}


def freeze_depth(
    shares: Sequence[float],
    frozen_depth: int,
    *,
    threshold: float,
    block_ratio: float,
    monitor: int,
    max_initial: int | None = None,
) -> int:
    """New frozen-prefix length by the CF-ES / PCF-ES rule for one generation's majority shares.

    With nothing frozen yet (initial freeze): the longest prefix 1..j, j = N (or
    ``max_initial``) down to 1, whose mean share M_j > threshold and whose fraction of blocks
    with share > threshold Br_j > block_ratio. Afterwards (progressive freeze): the largest
    window of x <= monitor blocks right after the frozen prefix passing the same two tests;
    monitor 0 = never (CF-ES). Returns ``frozen_depth`` when nothing passes.
    """
    n = len(shares)
    if not 0 <= frozen_depth <= n:
        raise ValueError(f"frozen_depth must be in 0..{n} for {n} shares, got {frozen_depth}")
    check_int("monitor", monitor, 0)
    if frozen_depth == 0:
        longest = n if max_initial is None else min(n, check_int("max_initial", max_initial, 1))
        windows = [(0, stop) for stop in range(longest, 0, -1)]
    else:
        last = min(monitor, n - frozen_depth)
        windows = [(frozen_depth, frozen_depth + x) for x in range(last, 0, -1)]
    for start, stop in windows:
        if _window_passes(shares[start:stop], threshold, block_ratio):
            return stop
    return frozen_depth


def _window_passes(window: Sequence[float], threshold: float, block_ratio: float) -> bool:
    # Exact rational arithmetic: a mean or ratio equal to its threshold must not pass, and a
    # rounded float sum could land on either side of it.
    size = len(window)
    mean_above = sum(map(Fraction, window)) > Fraction(threshold) * size
    above = sum(1 for share in window if share > threshold)
    return mean_above and Fraction(above) > Fraction(block_ratio) * size


@dataclass(frozen=True)
class CFParams(EvolutionParams):
    """Evolution params plus the threshold H (> 1: never freeze) and the block-ratio threshold.

    ``max_initial_freeze`` (not in the paper; 1.0 = the paper's rule) caps the share of blocks
    the initial freeze may take. On 12-block spaces the paper's rule often froze every block at
    once and stopped the search (reports/reference-cpu/README.md).
    """

    threshold: float = 0.7
    block_ratio: float = 0.5
    max_initial_freeze: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        # Any H > 1 is allowed: it never freezes, which reproduces plain evolution.
        check_fraction("threshold", self.threshold, low=0.0, high=math.inf, open_low=True, open_high=True)
        check_fraction("block_ratio", self.block_ratio, low=0.0, high=1.0, open_low=False, open_high=True)
        check_fraction(
            "max_initial_freeze", self.max_initial_freeze, low=0.0, high=1.0, open_low=True, open_high=False
        )


@dataclass(frozen=True)
class PCFParams(CFParams):
    """CF-ES params plus the monitor size f: at most f more blocks frozen per generation."""

    monitor: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("monitor", self.monitor, 1)


@dataclass(frozen=True)
class PCFISParams(PCFParams):
    """PCF-ES params plus the importance-sampling rate (share of validation images kept)."""

    rate: float = 0.4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction("rate", self.rate, low=0.0, high=1.0, open_low=True, open_high=False)


@register_searcher(
    "cf-es", freezing=True, generations_param="generations", threshold_param="threshold", presets=_CF_PRESETS,
    sweepable=_THRESHOLD_SWEEP, colour="#E69F00",
)
class ChoiceFreezingSearcher(EvolutionSearcher):
    """CF-ES: evolution plus one initial freeze of the longest converged prefix."""

    Params = CFParams
    params: CFParams

    def _monitor(self) -> int:
        return 0  # CF-ES freezes once

    def propose(self) -> list[Arch]:
        if len(self._frozen) == self.space.num_blocks:
            # Everything frozen: the search has converged. The fully frozen arch (the rewritten
            # parents) is scored once, so that it can be the answer; then the search is done.
            return [a for a in self._top if a not in self.told]
        return super().propose()

    def on_tell(self, scored: list[tuple[Arch, Score]]) -> None:
        super().on_tell(scored)
        diag = self.diagnostics()
        if diag is None or self.generation >= self.params.generations:
            return  # no generation left that a freeze could speed up
        depth = freeze_depth(
            diag.share,
            len(self._frozen),
            threshold=self.params.threshold,
            block_ratio=self.params.block_ratio,
            monitor=self._monitor(),
            max_initial=max(1, math.floor(self.params.max_initial_freeze * self.space.num_blocks)),
        )
        if depth > len(self._frozen):
            self._freeze(diag.majority[:depth])

    def _freeze(self, prefix: Arch) -> None:
        """Fix ``prefix`` for all future candidates and rewrite the parents' first genes to it."""
        k = len(prefix)
        rewritten = dict.fromkeys(prefix + parent[k:] for parent in self._top)
        self._top = [arch for arch in rewritten if self.space.contains(arch)]
        if len(self._top) < len(rewritten):
            logger.warning(
                "%s: %d rewritten parents break the constraint and were dropped",
                self.name,
                len(rewritten) - len(self._top),
            )
        logger.info("%s: generation %d froze blocks 0..%d to %s", self.name, self.generation, k - 1, prefix)
        self._frozen = prefix


@register_searcher(
    "pcf-es", freezing=True, generations_param="generations", threshold_param="threshold",
    presets=_PROGRESSIVE_PRESETS, sweepable=_PROGRESSIVE_SWEEP, paper_method=True, in_default_compare=True,
    colour="#0072B2",
)
class ProgressiveChoiceFreezingSearcher(ChoiceFreezingSearcher):
    """PCF-ES: CF-ES plus progressive freezing of up to ``monitor`` blocks per generation."""

    Params = PCFParams
    params: PCFParams

    def _monitor(self) -> int:
        return self.params.monitor


@register_searcher(
    "pcf-es-is", freezing=True, generations_param="generations", threshold_param="threshold",
    importance_rate_param="rate", presets=_PROGRESSIVE_PRESETS, sweepable={**_PROGRESSIVE_SWEEP, "rate": "sample rate"},
    in_default_compare=True, colour="#D55E00",
)
class ImportanceSampledPCFSearcher(ProgressiveChoiceFreezingSearcher):
    """PCF-ES whose hints ask the evaluator for importance sampling once a prefix is frozen."""

    Params = PCFISParams
    params: PCFISParams

    def hints(self) -> Hints:
        hints = super().hints()
        # Sampling starts at the first freeze (DESIGN.md step 4); before it, full validation.
        return replace(hints, importance_rate=self.params.rate if hints.frozen else None)

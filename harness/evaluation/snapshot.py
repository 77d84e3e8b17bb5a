"""A frozen record of an evaluator's work at one moment; ``after - before`` is the work in between.

The runner takes one before and one after each generation and writes the difference as the
generation's row, so it reads the evaluator through this record alone. Counts (MACs, images,
candidates, evictions) are cumulative and subtract; bytes held (the frozen-prefix node, the
store) are levels, and a difference keeps the later record's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.evaluation.work import SEARCH_WORK_PHASES, PhaseWork, WorkPhase


@dataclass(frozen=True)
class WorkSnapshot:
    """Per-phase work, candidates scored and store evictions so far; bytes held now."""

    phases: Mapping[WorkPhase, PhaseWork]  # every WorkPhase
    candidates: int  # archs scored (memo hits and repeats cost nothing)
    store_evictions: int  # prefix nodes evicted to make room
    cache_bytes: int  # held: the frozen-prefix node
    store_bytes: int  # held: every stored prefix node (the frozen one included)

    def macs(self, phases: Iterable[WorkPhase] = SEARCH_WORK_PHASES) -> int:
        """Executed MACs of ``phases`` (default: the search's)."""
        return sum(self.phases[p].macs for p in phases)

    def images(self, phases: Iterable[WorkPhase] = SEARCH_WORK_PHASES) -> int:
        """Images that completed a pass in ``phases`` (default: the search's)."""
        return sum(self.phases[p].images for p in phases)

    def avoided_macs(self, phases: Iterable[WorkPhase] = SEARCH_WORK_PHASES) -> int:
        """MACs level "none" runs on top of what was executed in ``phases`` (rebuild has no such reference)."""
        phases = tuple(phases)
        if WorkPhase.REBUILD in phases:
            raise ValueError("rebuild work has no level-'none' reference; read macs([WorkPhase.REBUILD])")
        return sum(self.phases[p].reference_macs - self.phases[p].macs for p in phases)

    def __sub__(self, before: WorkSnapshot) -> WorkSnapshot:
        return WorkSnapshot(
            phases={p: work - before.phases[p] for p, work in self.phases.items()},
            candidates=self.candidates - before.candidates,
            store_evictions=self.store_evictions - before.store_evictions,
            cache_bytes=self.cache_bytes,
            store_bytes=self.store_bytes,
        )

"""The evaluator's work counter: exact integer MACs and images, per phase and per unit.

Units are the stem (0), the blocks (1..N) and the head (N+1). Next to what was executed the
counter keeps the *reference*: what reuse level "none" would have executed for the same
requests (every candidate from the input). MACs avoided = reference - executed, per phase and
per unit. Reuse can cost work that "none" never does (building the frozen-prefix node), so
the avoided MACs of ``cache_build`` are <= 0; the run total nets them out.

Every number is a pure function of the arch / hint sequence and the reuse budget: no clock,
no floating point. ``rebuild`` (tensors of stored prefix nodes recomputed after a resume) is
counted apart and never enters the search totals, so a resumed run counts what an
uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.evaluation.units import head_unit, unit_macs
from supernets.base import Supernet



class WorkPhase(StrEnum):
    """What a unit of the evaluator's work was for; its value names the phase in run.json and the gate."""

    CALIBRATION = "calibration"  # candidates' BN recalibration passes
    VALIDATION = "validation"  # candidates' scoring passes
    CACHE_BUILD = "cache_build"  # building the frozen-prefix node
    IMPORTANCE = "importance"  # the reference arch's per-image losses for importance sampling
    FINAL = "final"  # re-scoring the answer under the full protocol
    REBUILD = "rebuild"  # stored nodes' tensors recomputed after a resume


WORK_PHASES = tuple(WorkPhase)
CANDIDATE_PHASES = (WorkPhase.CALIBRATION, WorkPhase.VALIDATION)  # scoring the searcher's candidates
PREPARE_PHASES = (WorkPhase.CACHE_BUILD, WorkPhase.IMPORTANCE)  # setting up a generation (``Evaluator.prepare``)
# The phases whose work the run totals ``macs`` / ``images`` add up (the search's cost).
SEARCH_WORK_PHASES = (*CANDIDATE_PHASES, *PREPARE_PHASES)


@dataclass(frozen=True)
class PhaseWork:
    """One phase's totals: executed MACs, images that completed a pass, and what level "none" executes."""

    macs: int
    images: int
    reference_macs: int

    def __sub__(self, before: PhaseWork) -> PhaseWork:
        return PhaseWork(self.macs - before.macs, self.images - before.images, self.reference_macs - before.reference_macs)


def _zeros(num_blocks: int) -> list[int]:
    return [0] * (num_blocks + 2)


@dataclass
class WorkCounter:
    """Executed MACs / images and the level-"none" reference MACs, per phase and per unit."""

    num_blocks: int
    macs: dict[str, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)  # images that completed a pass (a score, a node)
    block_macs: dict[str, list[int]] = field(default_factory=dict)
    block_images: dict[str, list[int]] = field(default_factory=dict)  # images through each unit
    reference_block_macs: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for phase in WORK_PHASES:
            # Plain str keys, as a restored state has: run.json and the checkpoint write them as they are.
            key = phase.value
            self.macs.setdefault(key, 0)
            self.images.setdefault(key, 0)
            self.block_macs.setdefault(key, _zeros(self.num_blocks))
            self.block_images.setdefault(key, _zeros(self.num_blocks))
            self.reference_block_macs.setdefault(key, _zeros(self.num_blocks))

    def add_unit(self, phase: WorkPhase, net: Supernet, arch: Sequence[int], unit: int, images: int) -> int:
        """Record ``images`` forwarded through one unit of ``arch``; returns its MACs."""
        return self.add_unit_macs(phase, unit, unit_macs(net, arch, unit), images)

    def add_unit_macs(self, phase: WorkPhase, unit: int, per_image: int, images: int) -> int:
        """``add_unit`` given the unit's MACs per image (the tree walk keeps them per node: looking them up costs more)."""
        macs = per_image * images
        self.block_macs[phase][unit] += macs
        self.block_images[phase][unit] += images
        self.macs[phase] += macs
        return macs

    def add_units(self, phase: WorkPhase, net: Supernet, arch: Sequence[int], units: range, images: int) -> int:
        """Record ``images`` through consecutive ``units`` of ``arch``; returns their MACs."""
        return sum(self.add_unit(phase, net, arch, u, images) for u in units)

    def add_pass(self, phase: WorkPhase, images: int) -> None:
        """Count ``images`` that completed a pass: scored by a head, or stored as a prefix node."""
        self.images[phase] += images

    def add_reference(self, phase: WorkPhase, net: Supernet, arch: Sequence[int], images: int) -> None:
        """Record what level "none" executes for one request: ``images`` through the whole ``arch``."""
        reference = self.reference_block_macs[phase]
        for unit in range(head_unit(net) + 1):
            reference[unit] += unit_macs(net, arch, unit) * images

    def phase_work(self, phase: WorkPhase) -> PhaseWork:
        """The totals of one phase so far."""
        return PhaseWork(self.macs[phase], self.images[phase], sum(self.reference_block_macs[phase]))

    def avoided_block_macs(self, phase: WorkPhase) -> list[int]:
        """Reference minus executed MACs of one phase, per unit (rebuild is never compared)."""
        if phase == WorkPhase.REBUILD:
            raise ValueError("rebuild work has no level-'none' reference; read block_macs['rebuild']")
        return [r - e for r, e in zip(self.reference_block_macs[phase], self.block_macs[phase])]

    def avoided_macs(self, phase: WorkPhase) -> int:
        """Reference minus executed MACs of one phase (<= 0 for cache_build)."""
        return sum(self.avoided_block_macs(phase))

    def search_macs(self) -> int:
        """MACs of the search phases (the run total ``macs``)."""
        return sum(self.macs[p] for p in SEARCH_WORK_PHASES)

    def search_images(self) -> int:
        """Images of the search phases (the run total ``images``)."""
        return sum(self.images[p] for p in SEARCH_WORK_PHASES)

    def search_avoided_macs(self) -> int:
        """MACs that reuse avoided over the search phases (the run total ``macs_avoided``)."""
        return sum(self.avoided_macs(p) for p in SEARCH_WORK_PHASES)

    def state_dict(self) -> dict[str, Any]:
        """Every count, as plain JSON data."""
        return {
            "macs": dict(self.macs),
            "images": dict(self.images),
            "block_macs": {k: list(v) for k, v in self.block_macs.items()},
            "block_images": {k: list(v) for k, v in self.block_images.items()},
            "reference_block_macs": {k: list(v) for k, v in self.reference_block_macs.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counts of ``state_dict``."""
        self.macs = {k: int(v) for k, v in state["macs"].items()}
        self.images = {k: int(v) for k, v in state["images"].items()}
        for name in ("block_macs", "block_images", "reference_block_macs"):
            setattr(self, name, {k: [int(x) for x in v] for k, v in state[name].items()})

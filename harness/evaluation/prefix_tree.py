"""The within-generation prefix-tree walk (reuse level "prefix").

Under the fixed protocol every intermediate result after block j — the train-mode output on
each calibration batch, the BN statistics of block j's op, the eval-mode output on each
scoring chunk — is a function of ``arch[:j+1]`` alone, and the stem's of nothing. So a
generation's new archs are evaluated as the trie of their prefixes: each distinct prefix that
no stored node covers is computed once, and the results come back in the order asked.

The data is streamed through the tree, so memory grows with depth x batch size, not with the
data set: phase 1, for each calibration batch in order, a depth-first walk in train mode in
which each node loads its own BN state (running mean, variance and batch count of every BN of
its op, from the reset state) before it runs and so sees its batches in order, exactly as the
op of an uncached candidate does; phase 2, each scoring chunk through the tree in eval mode
with the nodes' final BN states, and every leaf's head. The batches are the uncached path's
(calibration batches as drawn, the scoring set in ``eval_batch_size`` chunks): never
concatenated or re-chunked, since kernels may pick other algorithms for other batch sizes.

Supernet contract that this relies on (``Evaluator`` checks the second point):

- a unit (the stem, one op of a block, the head) never modifies its input in place: one
  node's output is read by all its children and may be stored;
- every batch norm belongs to one block (ops of one block may share modules, e.g. a shortcut;
  two blocks, the stem or the head may not);
- ``forward(x, arch, start, stop)`` may be split at any block boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from harness.evaluation.prefix_store import NodeOutputs
from harness.evaluation.recalibration import (
    BatchNorm,
    BnStatistics,
    batchnorms,
    load_statistics,
    recalibrating,
    reset_statistics,
    statistics_kept,
)
from harness.evaluation.units import UnitRunner, head_unit, unit_macs, unit_module
from harness.evaluation.work import WorkCounter, WorkPhase
from supernets.base import Arch, Supernet

INPUT = None  # the source key of the raw data: the stem's parent


@dataclass(frozen=True)
class WalkPlan:
    """Which prefixes a request computes, from which stored nodes, and who pays for each."""

    archs: tuple[Arch, ...]  # the new archs, in the order asked
    starts: tuple[int, ...]  # per arch: depth of the stored node it starts from (-1: the input)
    owners: dict[Arch, int]  # computed prefix -> index of the first arch through it (pays for it)
    shares: dict[Arch, int]  # computed prefix -> number of archs through it

    def reused_depth(self, index: int) -> int:
        """Blocks of arch ``index`` whose outputs it took from a stored node or an earlier arch."""
        arch = self.archs[index]
        for depth in range(self.starts[index] + 1, len(arch) + 1):
            if self.owners[arch[:depth]] == index:
                return max(depth - 1, 0)
        return len(arch)

    def executed_macs(self, net: Supernet, images: int) -> list[int]:
        """MACs each arch pays: the nodes it owns and its head, ``images`` per unit."""
        paid = [net.head_macs * images for _ in self.archs]
        for prefix, owner in self.owners.items():
            paid[owner] += unit_macs(net, prefix, len(prefix)) * images  # node p is unit len(p)
        return paid


def plan_walk(archs: Sequence[Arch], start_depth: Callable[[Arch], int]) -> WalkPlan:
    """The trie of ``archs`` below the stored nodes they start from (``start_depth``: -1 = input)."""
    starts = tuple(start_depth(a) for a in archs)
    owners: dict[Arch, int] = {}
    shares: dict[Arch, int] = {}
    for index, (arch, start) in enumerate(zip(archs, starts)):
        for depth in range(start + 1, len(arch) + 1):
            prefix = arch[:depth]
            owners.setdefault(prefix, index)
            shares[prefix] = shares.get(prefix, 0) + 1
    return WalkPlan(tuple(archs), starts, owners, shares)


@dataclass(frozen=True)
class NodeState:
    """What a node's unit needs at every visit: its MACs per image and each BN with the node's own statistics."""

    macs_per_image: int
    statistics: tuple[tuple[BatchNorm, BnStatistics], ...]


@dataclass
class WalkOutcome:
    """Per arch: hits on every scoring chunk and whether all its logits were finite; captured nodes."""

    hits: dict[Arch, list[torch.Tensor]] = field(default_factory=dict)
    finite: dict[Arch, bool] = field(default_factory=dict)
    captured: dict[Arch, NodeOutputs] = field(default_factory=dict)


class TreeWalk:
    """Executes a ``WalkPlan``: streams calibration batches, then scoring chunks, through the trie."""

    def __init__(
        self,
        net: Supernet,
        units: UnitRunner,
        plan: WalkPlan,
        *,
        source: Callable[[Arch | None], NodeOutputs],
        labels: Sequence[torch.Tensor],
        unit_batchnorms: Callable[[nn.Module], list[BatchNorm]],
        captures: set[Arch],
        park: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        work: WorkCounter,
    ):
        self.net = net
        self.units = units
        self.plan = plan
        self.source = source
        self.labels = labels
        self.unit_batchnorms = unit_batchnorms
        self.park = park
        self.device = device
        self.work = work
        self.outcome = WalkOutcome(captured={p: NodeOutputs([], []) for p in captures})
        self.children: dict[Arch | None, list[Arch]] = {}
        for prefix in sorted(plan.owners):
            parent = prefix[:-1] if prefix else INPUT
            self.children.setdefault(parent, []).append(prefix)
        n = net.num_blocks
        # Sources: stored nodes (or the input) that computed nodes hang from, and stored full archs
        # (a fully frozen prefix) whose heads run straight from the store.
        self.roots = sorted((k for k in self.children if k is INPUT or k not in plan.owners), key=_source_order)
        self.head_roots = sorted({a for a, s in zip(plan.archs, plan.starts) if s == n})
        self.num_blocks, self.head = n, head_unit(net)
        self.states: dict[tuple[str, Arch], NodeState] = {}

    def run(self, calib_count: int, chunk_count: int) -> WalkOutcome:
        """Phase 1 over ``calib_count`` batches in train mode, then phase 2 over ``chunk_count`` chunks."""
        bns = batchnorms(self.net)
        # Each node starts from its own reset statistics (_load_state), so nothing is reset here.
        with statistics_kept(bns):
            with recalibrating(bns, reset=False):
                for b in range(calib_count):
                    self._pass(b, train=True)
            for c in range(chunk_count):
                self._pass(c, train=False)
        return self.outcome

    def _pass(self, index: int, *, train: bool) -> None:
        for key in self.roots:
            x = self._source_tensor(key, index, train)
            for child in self.children[key]:
                self._visit(child, x, index, train)
        for arch in self.head_roots:
            self._head(arch, self._source_tensor(arch, index, train), index, train)

    def _source_tensor(self, key: Arch | None, index: int, train: bool) -> torch.Tensor:
        outputs = self.source(key)
        return (outputs.calib if train else outputs.val)[index].to(self.device, non_blocking=True)

    def _visit(self, prefix: Arch, x: torch.Tensor, index: int, train: bool) -> None:
        unit = len(prefix)  # the node of prefix p is the output of units 0..len(p)
        state = self._load_state(("node", prefix), unit)
        y = self.units.run(x, prefix, range(unit, unit + 1))
        self.work.add_unit_macs(_phase(train), unit, state.macs_per_image, x.shape[0])
        captured = self.outcome.captured.get(prefix)
        if captured is not None:
            (captured.calib if train else captured.val).append(self.park(y))
        if unit == self.num_blocks:
            self._head(prefix, y, index, train)
        for child in self.children.get(prefix, ()):
            self._visit(child, y, index, train)

    def _head(self, arch: Arch, x: torch.Tensor, index: int, train: bool) -> None:
        head, images = self.head, x.shape[0]
        state = self._load_state(("head", arch), head)
        phase = _phase(train)
        logits = self.units.run(x, arch, range(head, head + 1))
        self.work.add_unit_macs(phase, head, state.macs_per_image, images)
        self.work.add_pass(phase, images)
        if train:
            return
        self.outcome.hits.setdefault(arch, []).append(logits.argmax(dim=1) == self.labels[index])
        finite = bool(torch.isfinite(logits).all())
        self.outcome.finite[arch] = self.outcome.finite.get(arch, True) and finite

    def _load_state(self, key: tuple[str, Arch], unit: int) -> NodeState:
        """Point the BNs of ``unit`` of ``key``'s arch at this node's own running statistics (reset ones on first use)."""
        state = self.states.get(key)
        if state is None:  # looked up once per node: module and MAC lookups cost more than a load
            bns = self.unit_batchnorms(unit_module(self.net, key[1], unit))
            statistics = tuple((bn, reset_statistics(bn)) for bn in bns)
            state = self.states[key] = NodeState(unit_macs(self.net, key[1], unit), statistics)
        for bn, statistics in state.statistics:
            load_statistics(bn, statistics)
        return state


def _source_order(key: Arch | None) -> tuple[int, Arch]:
    return (0, ()) if key is INPUT else (1, key)


def _phase(train: bool) -> WorkPhase:
    """Train-mode passes recalibrate, eval-mode passes score."""
    return WorkPhase.CALIBRATION if train else WorkPhase.VALIDATION

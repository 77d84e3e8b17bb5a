"""The byte-budgeted store of prefix nodes that the evaluator keeps across generations.

A prefix node of ``p = arch[:d]`` holds the whole-data outputs of the stem and blocks 0..d-1:
the train-mode output on every calibration batch and the eval-mode output on every chunk of
the scoring set, in the batches the uncached path uses. Under the fixed protocol they are a
function of ``p`` alone, so every later candidate with that prefix can start from them exactly.

Policy — a pure function of the arch sequence, the hints, node byte sizes and the budget, never
of scores or floating point (the bench gate replays a fixed arch sequence and compares counts).
The store keeps what will be read again, not what there is room for: nodes kept without a
reader are memory the allocator cannot recycle, and every new one lands on fresh pages.

- *Pins* are never evicted: the searcher's frozen-prefix node, and before any freeze the stem.
- *Recency*: a clock ticks once per request (``prepare`` that builds, ``evaluate``); a node is
  stamped when it is stored and whenever a walk starts from it (counted in ``reads``).
- *Expected*: the prefixes of the archs the searcher hints (``Hints.reuse_from``: evolution's
  parents, whose mutants and crossovers start from them), ``expect``-ed before each request.
- *Retirement*: after a walk (a request that evaluates: ``tick(walk=True)``) has chosen the
  nodes it starts from, ``retire`` evicts every unpinned node that is not expected and that
  neither this walk nor the previous ``IDLE_WALKS - 1`` stored or read: what a searcher's
  last generations did not read and its hints do not name. Walks, not ticks, so that building
  a frozen-prefix node does not shorten the window.
- *Eviction* to make room: the lowest value per byte first, value = (1 + reads + the number of
  hinted archs through the node) x the MACs that recomputing it from the input costs (exact
  integer ratios); among equal values the least recently used, then the deeper, then the
  smaller prefix tuple. Nodes used or stored at the current tick are never evicted for it.
- *Capture*: what a walk computes is offered in ``capture_order``; a node is kept when room can
  be made for it, else skipped (its later readers recompute it). The store never holds more
  than its budget, and it stops growing once retirements match captures: the tensors of
  retired nodes go back to the allocator, which hands the same pages to the next outputs.
  (Measured on spos-tiny, evolution: minor page faults fall to about 100 per generation once
  the store stops growing; copying captures into recycled buffers instead cost 14% more CPU.)

The logical state (prefixes, sizes, recency, pins, counters) is the resumable part; after a
resume the tensors are missing and the evaluator rebuilds them when a walk needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch

from supernets.base import Arch

# The walks after the one that stored or last read a node within which one must read it again (unless hinted).
IDLE_WALKS = 2


@dataclass
class NodeOutputs:
    """A prefix node's tensors: one per calibration batch, one per scoring-set chunk."""

    calib: list[torch.Tensor]
    val: list[torch.Tensor]


@dataclass
class StoredNode:
    """One stored prefix node; ``outputs`` is None while only its logical state is known."""

    prefix: Arch
    nbytes: int
    last_used: int
    outputs: NodeOutputs | None = None
    reads: int = 0  # requests that started from this node
    last_walk: int = 0  # the walk that stored or last read it
    macs: int = 0  # what recomputing it from the input costs


def capture_order(shares: Mapping[Arch, int]) -> list[Arch]:
    """The order in which a walk's nodes are offered to the store: shallow first, then most shared.

    ``shares`` maps each computed prefix to the number of this request's archs through it.
    Shallow nodes are the most expensive to recompute (the stem and the first blocks run at the
    highest resolution) and the most shared by later mutants and crossovers.
    """
    return sorted(shares, key=lambda p: (len(p), -shares[p], p))


class PrefixStore:
    """Prefix nodes under a byte budget: pins, expected reuse, value-per-byte eviction, logical state."""

    def __init__(self, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"store budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._nodes: dict[Arch, StoredNode] = {}
        self._pins: set[Arch] = set()
        self._expected: dict[Arch, int] = {}  # hinted prefix -> hinted archs through it
        self._bytes = 0
        # This tick's evictable nodes, next victim last; built when first needed, dropped on any change
        # but the evictions it serves and new (unevictable) nodes: one sort per request, not per node.
        self._queue: list[StoredNode] | None = None
        self._queue_bytes = 0
        self.clock = 0
        self.walks = 0
        self.peak_bytes = 0
        self.evictions = 0  # nodes evicted to make room or retired for lack of expected reuse
        self.dropped = 0  # nodes dropped because no later candidate can use them
        self.captured = 0  # nodes stored
        self.read_again = 0  # stored nodes that at least one later request started from

    @property
    def nbytes(self) -> int:
        """Bytes of every stored node (the logical size, with or without its tensors)."""
        return self._bytes

    def __contains__(self, prefix: Arch) -> bool:
        return prefix in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, prefix: Arch) -> StoredNode | None:
        """The node of ``prefix``, if stored."""
        return self._nodes.get(prefix)

    def deepest(self, arch: Arch, max_depth: int | None = None) -> StoredNode | None:
        """The stored node of the longest prefix ``arch[:d]``, d <= ``max_depth`` (default len(arch))."""
        top = len(arch) if max_depth is None else min(max_depth, len(arch))
        for depth in range(top, -1, -1):
            node = self._nodes.get(arch[:depth])
            if node is not None:
                return node
        return None

    def tick(self, *, walk: bool = False) -> int:
        """Start a new request (``walk``: one that evaluates): what it touches or stores is more recent than anything before."""
        self.clock += 1
        self.walks += walk
        self._queue = None
        return self.clock

    def touch(self, prefixes: Iterable[Arch]) -> None:
        """Stamp stored nodes as used by the current request."""
        for prefix in prefixes:
            node = self._nodes[prefix]
            if node.last_used < self.clock:
                self.read_again += node.reads == 0
                node.reads += 1
            node.last_used = self.clock
            node.last_walk = self.walks
        self._queue = None

    def expect(self, archs: Iterable[Arch]) -> None:
        """The archs whose prefixes coming requests will likely start from (replaces the last hint)."""
        expected: dict[Arch, int] = {}
        for arch in dict.fromkeys(tuple(a) for a in archs):
            for depth in range(len(arch)):
                expected[arch[:depth]] = expected.get(arch[:depth], 0) + 1
        self._expected = expected
        self._queue = None

    def retire(self) -> int:
        """Evict unpinned nodes neither expected nor stored or read in the last ``IDLE_WALKS`` walks."""
        idle = [
            n.prefix for n in self._nodes.values()
            if n.last_walk <= self.walks - IDLE_WALKS and n.prefix not in self._pins and n.prefix not in self._expected
        ]
        for prefix in sorted(idle):
            self._remove(prefix)
        self.evictions += len(idle)
        self._queue = None
        return len(idle)

    def _value_per_byte(self, node: StoredNode) -> Fraction:
        weight = 1 + node.reads + self._expected.get(node.prefix, 0)
        return Fraction(weight * node.macs, max(node.nbytes, 1))

    def make_room(self, nbytes: int) -> bool:
        """Evict old unpinned nodes until ``nbytes`` more fit; False (evicting nothing) if they cannot."""
        excess = self._bytes + nbytes - self.budget_bytes
        if excess <= 0:
            return True
        if self._queue is None:
            evictable = [n for n in self._nodes.values() if n.prefix not in self._pins and n.last_used < self.clock]
            self._queue = sorted(
                evictable, key=lambda n: (self._value_per_byte(n), n.last_used, -len(n.prefix), n.prefix), reverse=True
            )
            self._queue_bytes = sum(n.nbytes for n in evictable)
        if excess > self._queue_bytes:
            return False
        while excess > 0:
            node = self._queue.pop()
            self._remove(node.prefix)
            self._queue_bytes -= node.nbytes
            excess -= node.nbytes
            self.evictions += 1
        return True

    def _remove(self, prefix: Arch) -> None:
        self._bytes -= self._nodes.pop(prefix).nbytes
        self._pins.discard(prefix)

    def reserve(self, prefix: Arch, nbytes: int, macs: int = 0) -> bool:
        """Make room for and register ``prefix`` (tensors via ``fill``); False if it cannot fit.

        ``macs``: what recomputing the node from the input costs (its value, with its reads).
        """
        if prefix in self._nodes:
            raise ValueError(f"prefix {prefix} is already stored")
        if not self.make_room(nbytes):
            return False
        self._nodes[prefix] = StoredNode(prefix, int(nbytes), self.clock, macs=int(macs), last_walk=self.walks)
        self._bytes += int(nbytes)
        self.captured += 1
        self.peak_bytes = max(self.peak_bytes, self._bytes)
        return True

    def fill(self, prefix: Arch, outputs: NodeOutputs) -> None:
        """Attach the tensors of a reserved or logically known node."""
        self._nodes[prefix].outputs = outputs

    def pin(self, prefix: Arch) -> None:
        """Never evict ``prefix`` (it must be stored)."""
        if prefix not in self._nodes:
            raise ValueError(f"cannot pin prefix {prefix}: it is not stored")
        self._pins.add(prefix)
        self._queue = None

    def unpin(self, prefix: Arch) -> None:
        """Let ``prefix`` be evicted like any other node."""
        self._pins.discard(prefix)
        self._queue = None

    def is_pinned(self, prefix: Arch) -> bool:
        return prefix in self._pins

    def evict(self, prefix: Arch) -> None:
        """Evict one unpinned node to make room (counted as an eviction)."""
        if prefix in self._pins:
            raise ValueError(f"cannot evict pinned prefix {prefix}")
        self._remove(prefix)
        self._queue = None
        self.evictions += 1

    def discard(self, prefixes: Iterable[Arch]) -> None:
        """Forget nodes whose tensors were never filled (a walk that failed)."""
        for prefix in prefixes:
            if prefix in self._nodes:
                self._remove(prefix)
        self._queue = None

    def drop_where(self, useless: Callable[[Arch], bool]) -> int:
        """Drop every node for which ``useless(prefix)`` holds (pins included); returns how many."""
        gone = [p for p in self._nodes if useless(p)]
        self.discard(gone)
        self.dropped += len(gone)
        return len(gone)

    def state_dict(self) -> dict[str, Any]:
        """The logical state: prefixes, sizes, recency, pins and counters (no tensors)."""
        return {
            "budget_bytes": self.budget_bytes,
            "clock": self.clock,
            "walks": self.walks,
            "nodes": [[list(n.prefix), n.nbytes, n.last_used, n.reads, n.macs, n.last_walk] for n in sorted(self._nodes.values(), key=lambda n: n.prefix)],
            "pins": sorted(list(p) for p in self._pins),
            "expected": [[list(p), count] for p, count in sorted(self._expected.items())],
            "peak_bytes": self.peak_bytes,
            "evictions": self.evictions,
            "dropped": self.dropped,
            "captured": self.captured,
            "read_again": self.read_again,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a logical state, budget included (an "auto" budget is kept from the run's start)."""
        self.budget_bytes = int(state["budget_bytes"])
        self.clock = int(state["clock"])
        self.walks = int(state["walks"])
        self._nodes = {
            tuple(prefix): StoredNode(tuple(prefix), int(nbytes), int(used), reads=int(reads), macs=int(macs), last_walk=int(walk))
            for prefix, nbytes, used, reads, macs, walk in state["nodes"]
        }
        self._pins = {tuple(p) for p in state["pins"]}
        self._expected = {tuple(p): int(count) for p, count in state["expected"]}
        self._bytes = sum(n.nbytes for n in self._nodes.values())
        self._queue = None
        self.peak_bytes = int(state["peak_bytes"])
        self.evictions = int(state["evictions"])
        self.dropped = int(state["dropped"])
        self.captured = int(state["captured"])
        self.read_again = int(state["read_again"])

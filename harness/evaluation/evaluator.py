"""Candidate scoring: BN recalibration + top-1 under a fixed protocol, with exact work reuse.

Reuse levels (``ReuseConfig.level``):

- ``none``: every candidate from the input;
- ``frozen``: the searcher's frozen prefix is computed once (in ``prepare``) and every
  candidate that carries it starts from its stored outputs (the paper's mechanism);
- ``prefix``: as ``frozen``, and each generation is evaluated as a prefix tree
  (harness.evaluation.prefix_tree) whose nodes are kept across generations in a byte-budgeted
  store (harness.evaluation.prefix_store).

Exactness: a stored node holds exactly the tensors the uncached path computes at that prefix
(train-mode outputs per calibration batch, eval-mode outputs per scoring chunk, same batches,
same memory format), and every node of a tree walk runs its batches in order on its own BN
state from the reset state, so the remaining units see bit-identical inputs: scores, and so
archs, are identical at every level. Only the cost columns differ.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import EvalProtocol, ReuseConfig
from harness.datasets import DatasetSplits
from harness.evaluation.budget import element_size, node_shapes, numel, resolve_budget
from harness.evaluation.importance import ImportanceSubset, check_rate, importance_sample
from harness.evaluation.prefix_store import NodeOutputs, PrefixStore, capture_order
from harness.evaluation.prefix_tree import INPUT, TreeWalk, plan_walk
from harness.evaluation.recalibration import BatchNorm, batchnorms, check_batchnorm_ownership, recalibrating, use_protocol_momentum
from harness.evaluation.units import UnitRunner, head_unit, unit_macs, unit_module
from harness.evaluation.scoring import CandidateResult, EvaluationError, ProtocolData, ScoringSet, accuracy, non_finite
from harness.evaluation.snapshot import WorkSnapshot
from harness.evaluation.work import WORK_PHASES, WorkCounter, WorkPhase
from searchers.base import Hints
from supernets.base import Arch, Supernet

log = logging.getLogger(__name__)


class Evaluator:
    """Scores archs of one supernet under one protocol; memoised, reused exactly, work-counted."""

    def __init__(
        self,
        net: Supernet,
        splits: DatasetSplits,
        protocol: EvalProtocol,
        reuse: ReuseConfig | None = None,
    ):
        self.net = net
        self.protocol = protocol
        if tuple(splits.input_shape) != tuple(net.input_shape):
            raise ValueError(
                f"dataset {splits.name} has input shape {tuple(splits.input_shape)} but supernet "
                f"{net.display_name} expects {tuple(net.input_shape)}; pass input_size/in_channels overrides"
            )
        self.data = ProtocolData(splits, protocol)
        self.device = self.data.device
        net.to(device=self.device, dtype=self.data.dtype, memory_format=self.data.memory_format).eval()
        net.requires_grad_(False)
        self._units = UnitRunner(net)  # after .to(): compiled on the network as it runs
        self._bns = {id(m): batchnorms(m) for m in self._all_unit_modules()}
        check_batchnorm_ownership(net)
        use_protocol_momentum([bn for bns in self._bns.values() for bn in bns], protocol)

        # Bytes per image of each prefix depth's output, from one uncounted probe image.
        self._node_bytes_per_image = [numel(s) * element_size(protocol.dtype) for s in node_shapes(net)]
        self.set_reuse(reuse or ReuseConfig())

    def set_reuse(self, reuse: ReuseConfig) -> None:
        """Switch to another reuse setting (its "auto" budget resolved now) and reset."""
        self.reuse = reuse
        self._resolved_budget = resolve_budget(reuse, self.device) if reuse.level != "none" else 0
        self.reset()

    def reset(self) -> None:
        """Forget memo, stored nodes, subset and work: a new run on the same materialised tensors."""
        self.work = WorkCounter(self.net.num_blocks)
        self.memo: dict[Arch, float] = {}
        self.subset: ImportanceSubset | None = None
        self._set = self.data.full_set
        self._subset_rng = np.random.default_rng(np.random.SeedSequence([self.protocol.seed, 0x15]))
        self._store = PrefixStore(self._resolved_budget)
        self._hinted: Arch | None = None  # the last frozen prefix prepared for
        self._frozen: Arch | None = None  # the frozen prefix whose node is stored and pinned
        self.cache_peak_bytes = 0  # peak bytes of the frozen-prefix node
        self.cache_events: list[str] = []  # degradations and invalidations, for the run record

    # --- public API -------------------------------------------------------------------

    @property
    def cache_bytes(self) -> int:
        """Bytes of the stored frozen-prefix node (0 without one)."""
        return self._store.get(self._frozen).nbytes if self._frozen is not None else 0

    @property
    def cache_depth(self) -> int:
        """Length of the frozen prefix whose node is stored (0 without one)."""
        return len(self._frozen) if self._frozen is not None else 0

    @property
    def store(self) -> PrefixStore:
        """The prefix-node store (read it; the evaluator alone changes it): bytes, peak, evictions, budget."""
        return self._store

    @property
    def budget_bytes(self) -> int:
        """The store's byte budget ("auto" resolved when the evaluator was built, kept on resume)."""
        return self._store.budget_bytes

    @property
    def sample_size(self) -> int:
        return self._set.size

    def snapshot(self) -> WorkSnapshot:
        """The work done so far and the bytes held now; ``after - before`` is the work in between."""
        return WorkSnapshot(
            phases={p: self.work.phase_work(p) for p in WORK_PHASES},
            candidates=len(self.memo),  # one entry per arch scored
            store_evictions=self._store.evictions,
            cache_bytes=self.cache_bytes,
            store_bytes=self._store.nbytes,
        )

    def check_importance_rate(self, rate: float) -> int:
        """Images a sampling rate scores on this validation set; raises naming the smallest valid rate."""
        return check_rate(rate, self.data.full_set.size)

    def score(self, archs: Sequence[Sequence[int]]) -> list[float]:
        """Top-1 accuracy (importance-weighted under sampling) of each arch; memoised."""
        return [r.score for r in self.evaluate(archs)]

    def evaluate(self, archs: Sequence[Sequence[int]]) -> list[CandidateResult]:
        """Score each arch (memo hits and repeats cost nothing) and say what each cost, in the order asked."""
        checked = [self.net.check_arch(a) for a in archs]
        new = [a for a in dict.fromkeys(checked) if a not in self.memo]
        if not new:
            fresh = {}
        elif self.reuse.level == "prefix":
            fresh = {r.arch: r for r in self._evaluate_tree(new)}
        else:
            fresh = {a: self._evaluate_direct(a) for a in new}
        results = []
        for arch in checked:
            result = fresh.pop(arch, None)
            results.append(result or CandidateResult(arch, self.memo[arch], self.net.macs(arch), 0, 0, self._set.size, True))
        return results

    def prepare(self, hints: Hints, reference_archs: Sequence[Sequence[int]] = ()) -> None:
        """Set up the scoring subset and the stored node of the searcher's frozen prefix.

        ``reference_archs[0]`` (needed for importance sampling) should carry the frozen prefix:
        its per-image losses decide which images are scored.
        """
        frozen = tuple(int(c) for c in hints.frozen)
        self._check_prefix(frozen)
        if frozen and hints.importance_rate is not None:
            refresh = self.protocol.importance_refresh and self.subset is not None and self.subset.frozen != frozen
            if self.subset is None or refresh:
                if not reference_archs:
                    raise ValueError("importance sampling needs a reference arch (the best arch with the frozen prefix)")
                self._draw_subset(self.net.check_arch(reference_archs[0]), hints.importance_rate, frozen)
        if self.reuse.level == "prefix":
            self._store.expect(self.net.check_arch(a) for a in hints.reuse_from)
        if self.reuse.level == "none" or not frozen or frozen == self._hinted:
            return
        self._hinted = frozen
        self._store.tick()
        self._freeze(frozen)

    def score_full(self, arch: Sequence[int], split: str = "val") -> float:
        """Re-score under the full protocol: no reuse, no sampling, no memo ('val' or 'test')."""
        arch = self.net.check_arch(arch)
        if split == "val":
            target = self.data.full_set
        elif split == "test":
            target = self.data.test_set()
        else:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self._run_candidate(arch, -1, None, target, WorkPhase.FINAL, WorkPhase.FINAL)

    def state_dict(self) -> dict[str, Any]:
        """Memo, importance subset, work counters and the store's logical state (no tensors)."""
        return {
            "memo": [[list(a), s] for a, s in self.memo.items()],
            "subset": self.subset.to_dict() if self.subset else None,
            "subset_rng": self._subset_rng.bit_generator.state,
            "work": self.work.state_dict(),
            "store": self._store.state_dict(),
            "hinted": None if self._hinted is None else list(self._hinted),
            "frozen": None if self._frozen is None else list(self._frozen),
            "cache_peak_bytes": self.cache_peak_bytes,
            "cache_events": list(self.cache_events),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``; stored nodes' tensors are rebuilt when first needed (work: 'rebuild')."""
        self.memo = {tuple(a): float(s) for a, s in state["memo"]}
        self._subset_rng.bit_generator.state = state["subset_rng"]
        self.work.load_state_dict(state["work"])
        self.cache_peak_bytes = int(state["cache_peak_bytes"])
        self.cache_events = list(state["cache_events"])
        self.subset = None
        self._set = self.data.full_set
        if state["subset"]:
            self._apply_subset(ImportanceSubset.from_dict(state["subset"]))
        self._store = PrefixStore(self._resolved_budget)
        self._store.load_state_dict(state["store"])
        self._hinted = None if state["hinted"] is None else tuple(state["hinted"])
        self._frozen = None if state["frozen"] is None else tuple(state["frozen"])

    # --- internals: data --------------------------------------------------------------

    def _input(self) -> NodeOutputs:
        """The raw data as a node: what the stem reads."""
        return NodeOutputs(self.data.calib, self._set.chunks)

    def _node_bytes(self, depth: int) -> int:
        return self._node_bytes_per_image[depth] * (self.data.calib_images + self._set.size)

    def _node_macs(self, prefix: Arch) -> int:
        """What recomputing the node of ``prefix`` from the input costs."""
        return sum(unit_macs(self.net, prefix, u) for u in range(len(prefix) + 1)) * (self.data.calib_images + self._set.size)

    def _park(self, t: torch.Tensor) -> torch.Tensor:
        if self.reuse.location == "host" and t.device.type != "cpu":
            return t.to("cpu").pin_memory()
        return t

    def _all_unit_modules(self) -> list[nn.Module]:
        ops = [op for block in self.net.blocks for op in block.ops]
        return [self.net.stem, *ops, self.net.head]

    def _batchnorms_of(self, module: nn.Module) -> list[BatchNorm]:
        return self._bns[id(module)]

    def _unit_batchnorms(self, arch: Arch, units: range) -> list[BatchNorm]:
        return [bn for u in units for bn in self._bns[id(unit_module(self.net, arch, u))]]

    def _check_prefix(self, frozen: Arch) -> None:
        if len(frozen) > self.net.num_blocks:
            raise ValueError(f"frozen prefix {frozen} is longer than the {self.net.num_blocks} blocks")
        for i, c in enumerate(frozen):
            if not 0 <= c < self.net.choices[i]:
                raise ValueError(f"frozen prefix {frozen}: choice {c} at block {i} is out of range")

    def _event(self, message: str) -> None:
        self.cache_events.append(message)
        log.warning(message)

    # --- internals: scoring -----------------------------------------------------------

    def _evaluate_direct(self, arch: Arch) -> CandidateResult:
        """Levels none / frozen: one candidate, from the frozen-prefix node when it carries it."""
        node = self._store.deepest(arch)
        depth = -1 if node is None else len(node.prefix)
        if node is not None:
            self._materialise([node.prefix])
        score = self._run_candidate(arch, depth, None if node is None else node.outputs, self._set, WorkPhase.CALIBRATION, WorkPhase.VALIDATION)
        self.memo[arch] = score
        images = self.data.calib_images + self._set.size
        executed = sum(unit_macs(self.net, arch, u) for u in range(depth + 1, head_unit(self.net) + 1)) * images
        return CandidateResult(arch, score, self.net.macs(arch), executed, max(depth, 0), self._set.size)

    def _run_candidate(
        self, arch: Arch, depth: int, source: NodeOutputs | None, target: ScoringSet, train_phase: WorkPhase, eval_phase: WorkPhase
    ) -> float:
        """Recalibrate BN on the units after prefix depth ``depth`` (-1: all), then score on ``target``."""
        units = range(depth + 1, head_unit(self.net) + 1)
        calib = self.data.calib if source is None else source.calib
        val = target.chunks if source is None else source.val
        with torch.inference_mode():
            self._recalibrate(arch, units, calib, train_phase)
            logits = self._forward_eval(arch, units, val, eval_phase)
            hits = [out.argmax(dim=1) == y for out, y in zip(logits, target.labels)]
            finite = all(bool(torch.isfinite(out).all()) for out in logits)
        self.work.add_reference(train_phase, self.net, arch, self.data.calib_images)
        self.work.add_reference(eval_phase, self.net, arch, target.size)
        if not finite:
            raise non_finite(arch, self.protocol.dtype)
        return accuracy(hits, target)

    def _forward(self, arch: Arch, units: range, x: torch.Tensor) -> torch.Tensor:
        return self._units.run(x.to(self.device, non_blocking=True), arch, units)

    def _recalibrate(self, arch: Arch, units: range, inputs: Sequence[torch.Tensor], phase: WorkPhase) -> list[torch.Tensor]:
        """Reset the BN stats of ``units`` and re-estimate them in train mode; returns the train-mode outputs."""
        with recalibrating(self._unit_batchnorms(arch, units), reset=True):
            outputs = [self._forward(arch, units, x) for x in inputs]
        images = sum(len(x) for x in inputs)
        self.work.add_units(phase, self.net, arch, units, images)
        self.work.add_pass(phase, images)
        return outputs

    def _forward_eval(self, arch: Arch, units: range, inputs: Sequence[torch.Tensor], phase: WorkPhase) -> list[torch.Tensor]:
        outputs = [self._forward(arch, units, x) for x in inputs]
        images = sum(len(x) for x in inputs)
        self.work.add_units(phase, self.net, arch, units, images)
        self.work.add_pass(phase, images)
        return outputs

    def _evaluate_tree(self, archs: list[Arch]) -> list[CandidateResult]:
        """Level prefix: the new archs of one request as one streamed prefix-tree walk."""
        store = self._store
        store.tick(walk=True)
        plan = plan_walk(archs, lambda a: -1 if (node := store.deepest(a)) is None else len(node.prefix))
        used = {a[:start] for a, start in zip(plan.archs, plan.starts) if start >= 0}
        store.touch(used)
        store.retire()
        self._materialise(sorted(used, key=len))
        captures = self._reserve_captures(plan.shares)
        walk = TreeWalk(
            self.net,
            self._units,
            plan,
            source=lambda key: self._input() if key is INPUT else store.get(key).outputs,
            labels=self._set.labels,
            unit_batchnorms=self._batchnorms_of,
            captures=captures,
            park=self._park,
            device=self.device,
            work=self.work,
        )
        try:
            with torch.inference_mode():
                outcome = walk.run(len(self.data.calib), len(self._set.chunks))
        except BaseException:
            store.discard(captures)
            raise
        for prefix in captures:
            store.fill(prefix, outcome.captured[prefix])
        if () in captures and self._hinted is None:
            store.pin(())  # the stem: every arch shares it until a freeze
        for arch in archs:
            self.work.add_reference(WorkPhase.CALIBRATION, self.net, arch, self.data.calib_images)
            self.work.add_reference(WorkPhase.VALIDATION, self.net, arch, self._set.size)
        bad = next((a for a in archs if not outcome.finite[a]), None)
        if bad is not None:
            raise non_finite(bad, self.protocol.dtype)
        executed = plan.executed_macs(self.net, self.data.calib_images + self._set.size)
        results = []
        for i, arch in enumerate(archs):
            score = accuracy(outcome.hits[arch], self._set)
            self.memo[arch] = score
            results.append(CandidateResult(arch, score, self.net.macs(arch), executed[i], plan.reused_depth(i), self._set.size))
        return results

    def _reserve_captures(self, shares: dict[Arch, int]) -> set[Arch]:
        """Register, in ``capture_order``, every computed prefix the store can make room for."""
        n = self.net.num_blocks
        # A full arch is scored once (memo), so its own node would never be read again.
        offered = capture_order({p: s for p, s in shares.items() if len(p) < n})
        return {p for p in offered if self._store.reserve(p, self._node_bytes(len(p)), self._node_macs(p))}

    # --- internals: the frozen-prefix node and rebuilds -------------------------------

    def _freeze(self, frozen: Arch) -> None:
        """Store and pin the node of a new frozen prefix; drop what no later candidate can use."""
        store, k = self._store, len(frozen)

        def inconsistent(prefix: Arch) -> bool:
            depth = min(len(prefix), k)
            return prefix[:depth] != frozen[:depth]

        store.drop_where(inconsistent)
        for pinned in (self._frozen, ()):
            if pinned is not None:
                store.unpin(pinned)
        self._frozen = None
        if frozen not in store:
            self._build_node(frozen)
        if frozen in store:
            store.pin(frozen)
            self._frozen = frozen
            self.cache_peak_bytes = max(self.cache_peak_bytes, store.get(frozen).nbytes)
            store.drop_where(lambda p: len(p) < k)  # its ancestors: every later arch starts below it

    def _build_node(self, frozen: Arch) -> None:
        """Compute the node of ``frozen`` (phase cache_build) from its deepest stored ancestor, if room allows."""
        store, need = self._store, self._node_bytes(len(frozen))
        if need > store.budget_bytes:
            self._event(
                f"prefix depth {len(frozen)} needs {need} bytes > reuse budget {store.budget_bytes}: not stored; "
                "candidates start from the deepest stored prefix node or the input"
            )
            return
        source = store.deepest(frozen, len(frozen) - 1)
        if source is not None:
            store.touch([source.prefix])
            if not store.reserve(frozen, need, self._node_macs(frozen)):  # the ancestor and the new node do not fit together
                store.evict(source.prefix)
                source = None
        if source is None and not store.reserve(frozen, need, self._node_macs(frozen)):
            raise AssertionError("an empty-enough store could not take a node within its budget")
        if source is not None:
            self._materialise([source.prefix])
        built = self._compute_path(frozen, source.prefix if source else None, [len(frozen)], WorkPhase.CACHE_BUILD)
        store.fill(frozen, built[len(frozen)])

    def _materialise(self, prefixes: Iterable[Arch]) -> None:
        """Rebuild the tensors of stored nodes known only logically (after a resume); phase rebuild."""
        for prefix in prefixes:
            if self._store.get(prefix).outputs is not None:
                continue
            present = next(
                (prefix[:d] for d in range(len(prefix) - 1, -1, -1) if self._present(prefix[:d])), None
            )
            start = -1 if present is None else len(present)
            missing = [d for d in range(start + 1, len(prefix) + 1) if prefix[:d] in self._store and not self._present(prefix[:d])]
            for depth, outputs in self._compute_path(prefix, present, missing, WorkPhase.REBUILD).items():
                self._store.fill(prefix[:depth], outputs)

    def _present(self, prefix: Arch) -> bool:
        node = self._store.get(prefix)
        return node is not None and node.outputs is not None

    def _compute_path(self, prefix: Arch, source: Arch | None, depths: list[int], phase: WorkPhase) -> dict[int, NodeOutputs]:
        """Outputs of ``prefix[:d]`` for each of ``depths``, run from stored node ``source`` (None: the input)."""
        start = -1 if source is None else len(source)
        inputs = self._input() if source is None else self._store.get(source).outputs
        units = range(start + 1, max(depths) + 1)
        built = {d: NodeOutputs([], []) for d in depths}
        bounds = [start, *sorted(depths)]
        with torch.inference_mode():
            with recalibrating(self._unit_batchnorms(prefix, units), reset=True):
                for x in inputs.calib:
                    self._run_segments(prefix, bounds, x, built, train=True)
            for x in inputs.val:
                self._run_segments(prefix, bounds, x, built, train=False)
        images = self.data.calib_images + self._set.size
        self.work.add_units(phase, self.net, prefix, units, images)
        self.work.add_pass(phase, images)
        return built

    def _run_segments(self, prefix: Arch, bounds: list[int], x: torch.Tensor, built: dict[int, NodeOutputs], *, train: bool) -> None:
        x = x.to(self.device, non_blocking=True)
        for low, high in zip(bounds, bounds[1:]):
            x = self._units.run(x, prefix, range(low + 1, high + 1))
            outputs = built[high]
            (outputs.calib if train else outputs.val).append(self._park(x))

    # --- internals: importance sampling -----------------------------------------------

    def _draw_subset(self, reference: Arch, rate: float, frozen: Arch) -> None:
        losses = self._per_sample_loss(reference)
        draw = importance_sample(losses, rate, self.protocol.importance_alpha, self._subset_rng)
        subset = ImportanceSubset(
            tuple(int(i) for i in draw.indices),
            tuple(float(p) for p in draw.inclusion),
            tuple(float(w) for w in draw.weights),
            float(rate),
            self.data.full_set.size,
            reference,
            frozen,
        )
        self._apply_subset(subset)
        dropped = self._store.drop_where(lambda p: True)
        self._hinted = self._frozen = None
        if dropped:
            self._event(f"a new importance subset ({subset.size} images) invalidated {dropped} stored prefix node(s)")

    def _apply_subset(self, subset: ImportanceSubset) -> None:
        self.subset = subset
        self._set = self.data.subset(subset.indices, subset.weights)

    def _per_sample_loss(self, arch: Arch) -> np.ndarray:
        """Cross-entropy of every full-set validation image under ``arch`` (the importance f(x))."""
        units = range(head_unit(self.net) + 1)
        with torch.inference_mode():
            self._recalibrate(arch, units, self.data.calib, WorkPhase.IMPORTANCE)
            logits = self._forward_eval(arch, units, self.data.full_set.chunks, WorkPhase.IMPORTANCE)
            losses = [F.cross_entropy(out.float(), y, reduction="none") for out, y in zip(logits, self.data.full_set.labels)]
        self.work.add_reference(WorkPhase.IMPORTANCE, self.net, arch, self.data.calib_images + self.data.full_set.size)
        return torch.cat(losses).cpu().double().numpy()


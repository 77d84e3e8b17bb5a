"""Candidate scoring: BN recalibration + top-1, an exact frozen-prefix cache, importance-sampled
validation subsets, and exact work accounting (MACs and images, per phase and per block).

Exactness: the cache stores exactly the tensors an uncached forward pass computes at the
prefix boundary (train-mode outputs per calibration batch, eval-mode outputs per validation
chunk, in the same batches and memory format), so the remaining blocks see bit-identical
inputs and every score equals the uncached one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import CacheConfig, EvalProtocol
from harness.data import DatasetSplits, calibration_batches
from searchers.base import Hints
from supernets.base import Arch, Supernet

log = logging.getLogger(__name__)

# Phases of the work counter.
WORK_PHASES = ("calibration", "validation", "cache_build", "importance", "final")


class EvaluationError(RuntimeError):
    """A candidate could not be scored (e.g. non-finite outputs)."""


@dataclass(frozen=True)
class CandidateResult:
    """Score of one arch and what it cost."""

    arch: Arch
    score: float
    arch_macs: int  # per image, whole sub-network
    executed_macs: int  # MACs run to score it (0 for a memo hit)
    cached_depth: int  # blocks served from the prefix cache
    sample_size: int  # validation images it was scored on
    memo_hit: bool = False


@dataclass
class WorkCounter:
    """Exact MACs and images executed, per phase; MACs also per block (stem, blocks..., head)."""

    num_blocks: int
    macs: dict[str, int] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    block_macs: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for phase in WORK_PHASES:
            self.macs.setdefault(phase, 0)
            self.images.setdefault(phase, 0)
            self.block_macs.setdefault(phase, [0] * (self.num_blocks + 2))

    def add(self, phase: str, net: Supernet, arch: Sequence[int], start: int, stop: int | None, images: int) -> int:
        """Record ``images`` forwarded through blocks [start, stop) (+stem/head); returns MACs."""
        end = net.num_blocks if stop is None else stop
        per_block = self.block_macs[phase]
        if start == 0:
            per_block[0] += net.stem_macs * images
        for i in range(start, end):
            per_block[i + 1] += net.blocks[i].op_macs[arch[i]] * images
        if stop is None:
            per_block[-1] += net.head_macs * images
        macs = net.macs(arch, start, stop) * images
        self.macs[phase] += macs
        self.images[phase] += images
        return macs

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    @property
    def total_images(self) -> int:
        return sum(self.images.values())

    def state_dict(self) -> dict[str, Any]:
        return {"macs": dict(self.macs), "images": dict(self.images), "block_macs": {k: list(v) for k, v in self.block_macs.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.macs = {k: int(v) for k, v in state["macs"].items()}
        self.images = {k: int(v) for k, v in state["images"].items()}
        self.block_macs = {k: [int(x) for x in v] for k, v in state["block_macs"].items()}


@dataclass(frozen=True)
class ImportanceSubset:
    """Validation images drawn with probability q, their draw counts and self-normalising weights."""

    indices: tuple[int, ...]  # unique validation indices, ascending
    counts: tuple[int, ...]  # times each was drawn
    weights: tuple[float, ...]  # count / (N q_i)
    rate: float
    draws: int
    reference_arch: Arch
    frozen: Arch  # the frozen prefix at which it was drawn

    def to_dict(self) -> dict[str, Any]:
        return {
            "indices": list(self.indices),
            "counts": list(self.counts),
            "weights": list(self.weights),
            "rate": self.rate,
            "draws": self.draws,
            "reference_arch": list(self.reference_arch),
            "frozen": list(self.frozen),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportanceSubset:
        return cls(
            tuple(data["indices"]),
            tuple(data["counts"]),
            tuple(float(w) for w in data["weights"]),
            float(data["rate"]),
            int(data["draws"]),
            tuple(data["reference_arch"]),
            tuple(data["frozen"]),
        )


@dataclass
class _ScoringSet:
    """The validation images candidates are scored on, split in fixed chunks, plus weights."""

    chunks: list[torch.Tensor]
    labels: list[torch.Tensor]
    weights: list[torch.Tensor] | None  # float64 per image, None = plain accuracy
    size: int


@dataclass
class _PrefixCache:
    prefix: Arch
    calib_out: list[torch.Tensor]
    val_out: list[torch.Tensor]

    @property
    def depth(self) -> int:
        return len(self.prefix)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.calib_out, *self.val_out))


def importance_draw(
    losses: np.ndarray, rate: float, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``round(rate*N)`` images from q ∝ (1-α)·loss/Σloss + α/N; return (indices, counts, weights)."""
    n = len(losses)
    if not 0 < rate <= 1:
        raise ValueError(f"importance rate must be in (0, 1], got {rate}")
    total = float(losses.sum())
    base = losses / total if total > 0 else np.full(n, 1.0 / n)
    q = (1.0 - alpha) * base + alpha / n
    q = q / q.sum()
    draws = max(1, int(round(rate * n)))
    picked = rng.choice(n, size=draws, replace=True, p=q)
    indices, counts = np.unique(picked, return_counts=True)
    weights = counts / (n * q[indices])
    return indices, counts, weights


class Evaluator:
    """Scores archs of one supernet under one protocol; memoised, cached, work-counted."""

    def __init__(
        self,
        net: Supernet,
        splits: DatasetSplits,
        protocol: EvalProtocol,
        cache: CacheConfig | None = None,
    ):
        self.net = net
        self.protocol = protocol
        self.cache_config = cache or CacheConfig()
        self.device = torch.device(protocol.device)
        self.dtype = getattr(torch, protocol.dtype)
        self._memory_format = torch.channels_last if protocol.channels_last else torch.contiguous_format
        if tuple(splits.input_shape) != tuple(net.input_shape):
            raise ValueError(
                f"dataset {splits.name} has input shape {tuple(splits.input_shape)} but supernet "
                f"{net.display_name} expects {tuple(net.input_shape)}; pass input_size/in_channels overrides"
            )
        net.to(device=self.device, dtype=self.dtype, memory_format=self._memory_format).eval()
        net.requires_grad_(False)
        self._bns = {id(m): _batchnorms(m) for m in self._all_path_modules()}
        momentum = None if protocol.bn_mode == "exact" else protocol.bn_momentum
        for bn_list in self._bns.values():
            for bn in bn_list:
                bn.momentum = momentum

        self.calib = [self._to_device(b) for b in calibration_batches(
            splits.train_x, protocol.calib_batches, protocol.calib_batch_size, protocol.seed, augment=protocol.augment
        )]
        n_val = protocol.val_size or len(splits.val_x)
        if n_val > len(splits.val_x):
            raise ValueError(f"val_size {n_val} exceeds the {len(splits.val_x)} validation images of {splits.name}")
        self.val_x = self._to_device(splits.val_x[:n_val])
        self.val_y = splits.val_y[:n_val].to(self.device)
        self._test = (splits.test_x, splits.test_y)
        self._full_set = self._scoring_set(self.val_x, self.val_y, None)

        self.reset()

    def reset(self, cache: CacheConfig | None = None) -> None:
        """Forget memo, cache, subset and work: a new run on the same materialised tensors.

        ``cache`` replaces the cache settings (they never change a score, so runs of one
        comparison may differ in them while sharing the tensors).
        """
        if cache is not None:
            self.cache_config = cache
        self.work = WorkCounter(self.net.num_blocks)
        self.memo: dict[Arch, float] = {}
        self.subset: ImportanceSubset | None = None
        self._set = self._full_set
        self._subset_rng = np.random.default_rng(np.random.SeedSequence([self.protocol.seed, 0x15]))
        self._cache: _PrefixCache | None = None
        self.cache_peak_bytes = 0
        self.cache_events: list[str] = []  # fallbacks, for the run record

    # --- public API -------------------------------------------------------------------

    @property
    def cache_bytes(self) -> int:
        return self._cache.nbytes if self._cache else 0

    @property
    def cache_depth(self) -> int:
        return self._cache.depth if self._cache else 0

    @property
    def sample_size(self) -> int:
        return self._set.size

    def score(self, archs: Sequence[Sequence[int]]) -> list[float]:
        """Top-1 accuracy (importance-weighted under sampling) of each arch; memoised."""
        return [r.score for r in self.evaluate(archs)]

    def evaluate(self, archs: Sequence[Sequence[int]]) -> list[CandidateResult]:
        """Score each arch (memo hits cost nothing) and say what each cost."""
        checked = [self.net.check_arch(a) for a in archs]
        return [self._evaluate_one(a) for a in checked]

    def prepare(self, hints: Hints, reference_archs: Sequence[Sequence[int]] = ()) -> None:
        """Set up the scoring subset and the prefix cache for the searcher's frozen prefix."""
        frozen = tuple(int(c) for c in hints.frozen)
        self._check_prefix(frozen)
        if frozen and hints.importance_rate is not None:
            refresh = self.protocol.importance_refresh and self.subset is not None and self.subset.frozen != frozen
            if self.subset is None or refresh:
                if not reference_archs:
                    raise ValueError("importance sampling needs a reference arch (the current best)")
                self._draw_subset(self.net.check_arch(reference_archs[0]), hints.importance_rate, frozen)
        if not self.cache_config.enabled or not frozen:
            return
        self._build_cache(frozen)

    def score_full(self, arch: Sequence[int], split: str = "val") -> float:
        """Re-score under the full protocol: no cache, no sampling, no memo ('val' or 'test')."""
        arch = self.net.check_arch(arch)
        if split == "val":
            target = self._full_set
        elif split == "test":
            x, y = self._test
            if x is None:
                raise ValueError("this dataset has no test split")
            target = self._scoring_set(self._to_device(x), y.to(self.device), None)
        else:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self._run_candidate(arch, 0, self.calib, None, target, phase="final")[0]

    def state_dict(self) -> dict[str, Any]:
        """Memo, importance subset and work counters (the cache is rebuilt on demand)."""
        return {
            "memo": [[list(a), s] for a, s in self.memo.items()],
            "subset": self.subset.to_dict() if self.subset else None,
            "subset_rng": self._subset_rng.bit_generator.state,
            "work": self.work.state_dict(),
            "cache_peak_bytes": self.cache_peak_bytes,
            "cache_events": list(self.cache_events),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memo = {tuple(a): float(s) for a, s in state["memo"]}
        self._subset_rng.bit_generator.state = state["subset_rng"]
        self.work.load_state_dict(state["work"])
        self.cache_peak_bytes = int(state["cache_peak_bytes"])
        self.cache_events = list(state["cache_events"])
        self._cache = None
        self.subset = None
        self._set = self._full_set
        if state["subset"]:
            self._apply_subset(ImportanceSubset.from_dict(state["subset"]))

    # --- internals --------------------------------------------------------------------

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self._memory_format)

    def _scoring_set(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> _ScoringSet:
        size = self.protocol.eval_batch_size
        chunks = list(torch.split(x, size))
        labels = list(torch.split(y, size))
        split_w = list(torch.split(weights, size)) if weights is not None else None
        return _ScoringSet(chunks, labels, split_w, len(x))

    def _all_path_modules(self) -> list[nn.Module]:
        ops = [op for block in self.net.blocks for op in block.ops]
        return [self.net.stem, *ops, self.net.head]

    def _check_prefix(self, frozen: Arch) -> None:
        if len(frozen) > self.net.num_blocks:
            raise ValueError(f"frozen prefix {frozen} is longer than the {self.net.num_blocks} blocks")
        for i, c in enumerate(frozen):
            if not 0 <= c < self.net.choices[i]:
                raise ValueError(f"frozen prefix {frozen}: choice {c} at block {i} is out of range")

    def _evaluate_one(self, arch: Arch) -> CandidateResult:
        arch_macs = self.net.macs(arch)
        if arch in self.memo:
            return CandidateResult(arch, self.memo[arch], arch_macs, 0, 0, self._set.size, memo_hit=True)
        cache = self._cache
        if cache is not None and arch[: cache.depth] == cache.prefix:
            score, executed = self._run_candidate(arch, cache.depth, cache.calib_out, cache.val_out, self._set)
            depth = cache.depth
        else:
            score, executed = self._run_candidate(arch, 0, self.calib, None, self._set)
            depth = 0
        self.memo[arch] = score
        return CandidateResult(arch, score, arch_macs, executed, depth, self._set.size)

    def _reset_bns(self, arch: Sequence[int], start: int, stop: int | None) -> list[nn.modules.batchnorm._BatchNorm]:
        bns = [bn for m in self.net.path_modules(arch, start, stop) for bn in self._bns[id(m)]]
        for bn in bns:
            bn.reset_running_stats()
        return bns

    def _recalibrate(
        self, arch: Sequence[int], start: int, stop: int | None, inputs: Sequence[torch.Tensor], phase: str
    ) -> list[torch.Tensor]:
        """Reset the BN stats of blocks [start, stop) and re-estimate them in train mode.

        Returns the train-mode outputs (the prefix cache keeps them; a candidate drops them).
        Only BN layers switch to train mode, so nothing else (e.g. dropout) draws random numbers.
        """
        bns = self._reset_bns(arch, start, stop)
        for bn in bns:
            bn.train()
        try:
            outputs = [self.net(x.to(self.device, non_blocking=True), arch, start, stop) for x in inputs]
        finally:
            for bn in bns:
                bn.eval()
        self.work.add(phase, self.net, arch, start, stop, sum(len(x) for x in inputs))
        return outputs

    def _forward_eval(
        self, arch: Sequence[int], start: int, stop: int | None, inputs: Sequence[torch.Tensor], phase: str
    ) -> list[torch.Tensor]:
        outputs = [self.net(x.to(self.device, non_blocking=True), arch, start, stop) for x in inputs]
        self.work.add(phase, self.net, arch, start, stop, sum(len(x) for x in inputs))
        return outputs

    def _run_candidate(
        self,
        arch: Arch,
        start: int,
        calib_inputs: Sequence[torch.Tensor],
        val_inputs: Sequence[torch.Tensor] | None,
        target: _ScoringSet,
        phase: str = "",
    ) -> tuple[float, int]:
        """Recalibrate BN on blocks [start:] + head, then score on ``target``; returns (score, MACs)."""
        before = self.work.total_macs
        with torch.inference_mode():
            self._recalibrate(arch, start, None, calib_inputs, phase or "calibration")
            inputs = val_inputs if val_inputs is not None else target.chunks
            logits = self._forward_eval(arch, start, None, inputs, phase or "validation")
            hits = torch.cat([out.argmax(dim=1) == y for out, y in zip(logits, target.labels)])
            finite = all(bool(torch.isfinite(out).all()) for out in logits)
        if not finite:
            raise EvaluationError(
                f"arch {arch} produced non-finite logits (dtype {self.protocol.dtype}); "
                "check the checkpoint or evaluate in float32"
            )
        executed = self.work.total_macs - before
        hits = hits.to("cpu", torch.float64)
        if target.weights is None:
            return float(hits.mean()), executed
        w = torch.cat(target.weights)
        return float((w * hits).sum() / w.sum()), executed

    def _draw_subset(self, reference: Arch, rate: float, frozen: Arch) -> None:
        losses = self._per_sample_loss(reference)
        idx, counts, weights = importance_draw(losses, rate, self.protocol.importance_alpha, self._subset_rng)
        subset = ImportanceSubset(
            tuple(int(i) for i in idx),
            tuple(int(c) for c in counts),
            tuple(float(w) for w in weights),
            float(rate),
            int(counts.sum()),
            reference,
            frozen,
        )
        self._apply_subset(subset)

    def _apply_subset(self, subset: ImportanceSubset) -> None:
        idx = torch.tensor(subset.indices, dtype=torch.long, device=self.device)
        weights = torch.tensor(subset.weights, dtype=torch.float64)
        self.subset = subset
        self._set = self._scoring_set(
            self.val_x.index_select(0, idx).contiguous(memory_format=self._memory_format),
            self.val_y.index_select(0, idx),
            weights,
        )
        self._cache = None  # cached validation features belong to the previous scoring set

    def _per_sample_loss(self, arch: Arch) -> np.ndarray:
        """Cross-entropy of every full-set validation image under ``arch`` (the importance f(x))."""
        with torch.inference_mode():
            self._recalibrate(arch, 0, None, self.calib, "importance")
            logits = self._forward_eval(arch, 0, None, self._full_set.chunks, "importance")
            losses = [F.cross_entropy(out.float(), y, reduction="none") for out, y in zip(logits, self._full_set.labels)]
        return torch.cat(losses).cpu().double().numpy()

    def _build_cache(self, frozen: Arch) -> None:
        old = self._cache
        if old is not None and old.prefix == frozen:
            return
        if old is not None and frozen[: old.depth] == old.prefix:
            start, calib_in, val_in = old.depth, old.calib_out, old.val_out
        else:
            start, calib_in, val_in = 0, self.calib, self._set.chunks
        needed = self._estimate_cache_bytes(frozen, start, calib_in)
        if needed > self.cache_config.budget_bytes:
            self._cache = None
            self.cache_events.append(
                f"prefix depth {len(frozen)} needs {needed} bytes > budget {self.cache_config.budget_bytes}: "
                "scoring uncached"
            )
            log.warning(self.cache_events[-1])
            return
        self._cache = None  # free the old tensors before building the new ones
        depth = len(frozen)
        with torch.inference_mode():
            calib_out = [self._park(t) for t in self._recalibrate(frozen, start, depth, calib_in, "cache_build")]
            val_out = [self._park(t) for t in self._forward_eval(frozen, start, depth, val_in, "cache_build")]
        self._cache = _PrefixCache(frozen, calib_out, val_out)
        self.cache_peak_bytes = max(self.cache_peak_bytes, self._cache.nbytes)

    def _park(self, t: torch.Tensor) -> torch.Tensor:
        if self.cache_config.location == "host" and t.device.type != "cpu":
            return t.to("cpu").pin_memory()
        return t

    def _estimate_cache_bytes(self, frozen: Arch, start: int, calib_in: Sequence[torch.Tensor]) -> int:
        """Bytes of the cache at depth len(frozen), from the feature shape of one image."""
        with torch.inference_mode():
            probe = self._forward_eval(frozen, start, len(frozen), [calib_in[0][:1]], "cache_build")[0]
        images = sum(len(x) for x in self.calib) + self._set.size
        return probe.numel() * probe.element_size() * images


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

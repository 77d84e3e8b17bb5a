"""What candidates are scored on and what a score is: the protocol's tensors on its device, and top-1 accuracy.

The tensors are materialised once per evaluator, in the protocol's dtype and memory format:
the calibration batches as the protocol draws them, the validation set (and the test split)
in fixed ``eval_batch_size`` chunks. Every path scores on these same chunks, never re-chunked,
since kernels may pick other algorithms for other batch sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.config import EvalProtocol
from harness.datasets import DatasetSplits
from supernets.base import Arch


class EvaluationError(RuntimeError):
    """A candidate could not be scored (e.g. non-finite outputs)."""


@dataclass(frozen=True)
class CandidateResult:
    """Score of one arch and what it cost."""

    arch: Arch
    score: float
    arch_macs: int  # per image, whole sub-network
    executed_macs: int  # MACs this candidate paid for (shared tree nodes: the first arch through them)
    reused_depth: int  # blocks whose outputs it took from a stored node or an earlier candidate
    sample_size: int  # validation images it was scored on
    memo_hit: bool = False


@dataclass(frozen=True)
class ScoringSet:
    """Images candidates are scored on, split in fixed chunks, plus importance weights."""

    chunks: list[torch.Tensor]
    labels: list[torch.Tensor]
    weights: list[torch.Tensor] | None  # float64 per image, None = plain accuracy
    size: int

    @classmethod
    def split(cls, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None, chunk: int) -> ScoringSet:
        """``x``, ``y`` (and ``weights``) in chunks of ``chunk`` images."""
        split_w = list(torch.split(weights, chunk)) if weights is not None else None
        return cls(list(torch.split(x, chunk)), list(torch.split(y, chunk)), split_w, len(x))


class ProtocolData:
    """The protocol's calibration batches, validation set and test split on its device."""

    def __init__(self, splits: DatasetSplits, protocol: EvalProtocol):
        self.protocol = protocol
        self.device = torch.device(protocol.device)
        self.dtype = getattr(torch, protocol.dtype)
        self.memory_format = torch.channels_last if protocol.channels_last else torch.contiguous_format
        self.calib = [self.to_device(b) for b in protocol.calibration_batches(splits.train_x)]
        self.calib_images = sum(len(x) for x in self.calib)
        n_val = protocol.val_size or len(splits.val_x)
        if n_val > len(splits.val_x):
            raise ValueError(f"val_size {n_val} exceeds the {len(splits.val_x)} validation images of {splits.name}")
        self.val_x = self.to_device(splits.val_x[:n_val])
        self.val_y = splits.val_y[:n_val].to(self.device)
        self.full_set = ScoringSet.split(self.val_x, self.val_y, None, protocol.eval_batch_size)
        self._test = (splits.test_x, splits.test_y)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the protocol's device, dtype and memory format."""
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.memory_format)

    def subset(self, indices: Sequence[int], weights: Sequence[float]) -> ScoringSet:
        """The validation images at ``indices`` (sorted), weighted by ``weights`` (importance sampling)."""
        idx = torch.tensor(indices, dtype=torch.long, device=self.device)
        return ScoringSet.split(
            self.val_x.index_select(0, idx).contiguous(memory_format=self.memory_format),
            self.val_y.index_select(0, idx),
            torch.tensor(weights, dtype=torch.float64),
            self.protocol.eval_batch_size,
        )

    def test_set(self) -> ScoringSet:
        """The dataset's test split, materialised on each call (it is scored once, for the answer)."""
        x, y = self._test
        if x is None:
            raise ValueError("this dataset has no test split")
        return ScoringSet.split(self.to_device(x), y.to(self.device), None, self.protocol.eval_batch_size)


def accuracy(hits: Sequence[torch.Tensor], target: ScoringSet) -> float:
    """Top-1 accuracy, or the Hajek estimate sum(w y) / sum(w) under importance sampling."""
    correct = torch.cat(list(hits)).to("cpu", torch.float64)
    if target.weights is None:
        return float(correct.mean())
    w = torch.cat(target.weights)
    return float((w * correct).sum() / w.sum())


def non_finite(arch: Arch, dtype: str) -> EvaluationError:
    """The error of an arch whose logits are not all finite."""
    return EvaluationError(
        f"arch {arch} produced non-finite logits (dtype {dtype}); check the checkpoint or evaluate in float32"
    )

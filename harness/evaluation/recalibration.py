"""Batch-norm recalibration: re-estimating BN running statistics on calibration batches.

Every scoring path recalibrates the same way: the BN layers of the units it runs (and only
they, so nothing else, e.g. dropout, draws random numbers) go to train mode, optionally from
the reset state, for the calibration batches, and back to eval mode afterwards, even when a
forward pass raises. The prefix-tree walk instead points each BN at a node's own statistics,
so it keeps the layers' own statistics aside and puts them back when it is done.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from harness.config import EvalProtocol
from supernets.base import Supernet

BatchNorm = nn.modules.batchnorm._BatchNorm
BnStatistics = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # running mean, running var, batches tracked


def batchnorms(module: nn.Module) -> list[BatchNorm]:
    """The BN layers inside ``module``, in module order."""
    return [m for m in module.modules() if isinstance(m, BatchNorm)]


def use_protocol_momentum(bns: Sequence[BatchNorm], protocol: EvalProtocol) -> None:
    """Set the momentum the protocol's ``bn_mode`` asks for ("exact": a cumulative average)."""
    momentum = None if protocol.bn_mode == "exact" else protocol.bn_momentum
    for bn in bns:
        bn.momentum = momentum


@contextmanager
def recalibrating(bns: Sequence[BatchNorm], *, reset: bool) -> Iterator[None]:
    """``bns`` in train mode inside the block (statistics reset first if ``reset``), in eval mode after."""
    for bn in bns:
        if reset:
            bn.reset_running_stats()
        bn.train()
    try:
        yield
    finally:
        for bn in bns:
            bn.eval()


@contextmanager
def statistics_kept(bns: Sequence[BatchNorm]) -> Iterator[None]:
    """Put back the statistics tensors ``bns`` hold now when the block ends (the block may rebind them)."""
    kept = [(bn.running_mean, bn.running_var, bn.num_batches_tracked) for bn in bns]
    try:
        yield
    finally:
        for bn, state in zip(bns, kept):
            load_statistics(bn, state)


def load_statistics(bn: BatchNorm, state: BnStatistics) -> None:
    """Point ``bn`` at the statistics tensors ``state`` (not a copy: ``bn`` updates them in train mode)."""
    # Into the buffer table itself: Module.__setattr__ re-registers a buffer on every assignment,
    # and a tree walk points every BN of a node at the node's statistics per batch.
    buffers = bn._buffers
    buffers["running_mean"], buffers["running_var"], buffers["num_batches_tracked"] = state


def reset_statistics(bn: BatchNorm) -> BnStatistics:
    """New statistics tensors in the reset state of ``bn`` (what ``reset_running_stats`` leaves)."""
    return torch.zeros_like(bn.running_mean), torch.ones_like(bn.running_var), torch.zeros_like(bn.num_batches_tracked)


def check_batchnorm_ownership(net: Supernet) -> None:
    """Every BN belongs to one unit (ops of one block may share), as per-node BN states require."""
    owner: dict[int, str] = {}
    units = [("the stem", [net.stem]), ("the head", [net.head])]
    units += [(f"block {i}", list(block.ops)) for i, block in enumerate(net.blocks)]
    for name, modules in units:
        for bn in {id(b): b for m in modules for b in batchnorms(m)}:
            if owner.setdefault(bn, name) != name:
                raise ValueError(
                    f"supernet {net.display_name}: a batch norm is shared by {owner[bn]} and {name}; exact prefix "
                    "reuse needs every BN inside one block (ops of one block may share modules)"
                )

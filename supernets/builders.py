"""Shared builders: layer stacks with analytic MACs, residual ops, and the staged supernet.

Every family is ``stem -> stages of choice blocks -> head``; a family only supplies the
candidate ops of one block. MACs are counted analytically from shapes while building:
Conv2d ``Cout * Cin/groups * kh * kw * Hout * Wout`` and Linear ``in * out`` per image;
BN, activations, pooling, additions and channel shuffles count 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from supernets.base import ChoiceBlock, Supernet

Activation = Callable[[], nn.Module] | None
# (op name, in channels, out channels, stride, input size) -> (op module, MACs per image)
OpBuilder = Callable[[str, int, int, int, int], tuple[nn.Module, int]]
# (op names, in channels, out channels, stride, input size) -> one (op, MACs) per name
BlockBuilder = Callable[[Sequence[str], int, int, int, int], list[tuple[nn.Module, int]]]


def relu() -> nn.Module:
    return nn.ReLU(inplace=True)


def relu6() -> nn.Module:
    return nn.ReLU6(inplace=True)


def out_size(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel conv with ``kernel // 2`` padding."""
    return (size - 1) // stride + 1


class LayerStack:
    """Appends conv(+BN)(+activation) layers, tracking channels, spatial size and MACs."""

    def __init__(self, channels: int, size: int, *, affine: bool = True):
        self.channels = channels
        self.size = size
        self.macs = 0
        self.affine = affine
        self.layers: list[nn.Module] = []

    def conv(
        self,
        out: int,
        kernel: int,
        stride: int = 1,
        *,
        depthwise: bool = False,
        act: Activation = relu,
        bn: bool = True,
    ) -> LayerStack:
        """Add a bias-free conv (depthwise keeps the channel count), BN and activation."""
        if depthwise and out != self.channels:
            raise ValueError(f"a depthwise conv keeps {self.channels} channels, not {out}")
        groups = self.channels if depthwise else 1
        self.layers.append(nn.Conv2d(self.channels, out, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.size = out_size(self.size, stride)
        self.macs += out * (self.channels // groups) * kernel * kernel * self.size * self.size
        self.channels = out
        if bn:
            self.layers.append(nn.BatchNorm2d(out, affine=self.affine))
        if act is not None:
            self.layers.append(act())
        return self

    def build(self) -> nn.Sequential:
        return nn.Sequential(*self.layers)


def projection(cin: int, cout: int, stride: int, size: int, *, affine: bool = True) -> tuple[nn.Module, int]:
    """The 'skip' op: identity when shapes allow, else a cheap 1x1 conv (with stride) + BN."""
    if stride == 1 and cin == cout:
        return nn.Identity(), 0
    stack = LayerStack(cin, size, affine=affine).conv(cout, 1, stride, act=None)
    return stack.build(), stack.macs


class Residual(nn.Module):
    """``body(x) + shortcut(x)``, or just ``body(x)`` without a shortcut."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y if self.shortcut is None else y + self.shortcut(x)


class GatedResidual(nn.Module):
    """``shortcut(x) + gate * body(x)``, ``gate`` a learned scalar that starts at 0 (ReZero).

    At initialisation every op of a block that shares the shortcut computes the same function,
    so single-path training of a deep supernet starts from path-independent features.
    """

    def __init__(self, body: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.gate = nn.Parameter(torch.zeros(()))

    def reset_gate(self) -> None:
        """Close the gate: the op starts as its shortcut."""
        with torch.no_grad():
            self.gate.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shortcut(x), self.body(x), self.gate)  # one pass instead of mul + add


class StagedSupernet(Supernet):
    """A supernet assembled from a stem, choice blocks and a head built by a family module."""

    def __init__(
        self,
        *,
        stem: nn.Module,
        stem_macs: int,
        blocks: Sequence[ChoiceBlock],
        head: nn.Module,
        head_macs: int,
        input_shape: tuple[int, int, int],
        num_classes: int,
    ):
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        self.stem = stem
        self.stem_macs = int(stem_macs)
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.head_macs = int(head_macs)


def _check_stages(widths: Sequence[int], depths: Sequence[int], strides: Sequence[int]) -> None:
    if not (len(widths) == len(depths) == len(strides)) or not widths:
        raise ValueError(
            f"widths, depths and strides need one entry per stage; got {len(widths)}, "
            f"{len(depths)} and {len(strides)}"
        )
    if min(widths) < 1 or min(depths) < 1 or any(s not in (1, 2) for s in strides):
        raise ValueError(
            f"widths and depths must be >= 1 and strides 1 or 2; got widths={list(widths)}, "
            f"depths={list(depths)}, strides={list(strides)}"
        )


def each_op(make_op: OpBuilder) -> BlockBuilder:
    """A block builder that builds every op independently with ``make_op``."""

    def make_ops(ops: Sequence[str], cin: int, cout: int, stride: int, size: int) -> list[tuple[nn.Module, int]]:
        return [make_op(name, cin, cout, stride, size) for name in ops]

    return make_ops


def shortcut_ops(make_body: OpBuilder, *, gated: bool) -> BlockBuilder:
    """A block builder whose ops add one shortcut shared by the block to their ``make_body`` body.

    The shortcut is the identity, or where the block changes shape a 1x1 conv (with stride) + BN,
    which alone is the ``skip`` op. Ops are ``body(x) + shortcut(x)``, or with ``gated``
    ``shortcut(x) + gate * body(x)`` (``GatedResidual``).
    """

    def make_ops(ops: Sequence[str], cin: int, cout: int, stride: int, size: int) -> list[tuple[nn.Module, int]]:
        shortcut, shortcut_macs = projection(cin, cout, stride, size)
        built: list[tuple[nn.Module, int]] = []
        for name in ops:
            if name == "skip":
                built.append((shortcut, shortcut_macs))
                continue
            body, macs = make_body(name, cin, cout, stride, size)
            op = GatedResidual(body, shortcut) if gated else Residual(body, shortcut)
            built.append((op, macs + shortcut_macs))
        return built

    return make_ops


def build_staged(
    *,
    ops: Sequence[str],
    make_ops: BlockBuilder,
    in_channels: int,
    input_size: int,
    num_classes: int,
    stem_width: int,
    stem_stride: int,
    widths: Sequence[int],
    depths: Sequence[int],
    strides: Sequence[int],
    last_width: int | None,
    act: Activation = relu,
    stem_extra: Callable[[LayerStack], Any] | None = None,
) -> StagedSupernet:
    """Build ``stem -> stages -> head``; each block's choices are ``make_ops(ops, ...)``.

    The first block of a stage changes width and applies the stage stride. The head is an
    optional 1x1 conv to ``last_width`` (+BN, act), global average pooling and a linear
    classifier. ``stem_extra`` may append fixed layers to the stem's ``LayerStack``.
    """
    _check_stages(widths, depths, strides)
    if not ops:
        raise ValueError("a supernet needs at least one op per block")
    stem = LayerStack(in_channels, input_size).conv(stem_width, 3, stem_stride, act=act)
    if stem_extra is not None:
        stem_extra(stem)
    channels, size = stem.channels, stem.size
    blocks = []
    for width, depth, stride in zip(widths, depths, strides):
        for i in range(depth):
            block_stride = stride if i == 0 else 1
            built = make_ops(ops, channels, width, block_stride, size)
            blocks.append(ChoiceBlock([op for op, _ in built], [macs for _, macs in built]))
            channels, size = width, out_size(size, block_stride)
    head = LayerStack(channels, size)
    if last_width:
        head.conv(last_width, 1, act=act)
    classifier = nn.Linear(head.channels, num_classes)
    head_module = nn.Sequential(*head.layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), classifier)
    return StagedSupernet(
        stem=stem.build(),
        stem_macs=stem.macs,
        blocks=blocks,
        head=head_module,
        head_macs=head.macs + head.channels * num_classes,
        input_shape=(in_channels, input_size, input_size),
        num_classes=num_classes,
    )

"""MobileNetV2-block search spaces: FairNAS (19 x 6), GreedyNAS (21 x 7) and CPU variants.

Ops are named ``kKeE`` (inverted residual: 1x1 expand by E, KxK depthwise, linear 1x1
project, identity shortcut when stride 1 and width unchanged; ReLU6) or ``skip``. A skip
cannot be an identity in the first block of a stage (stride 2 or a width change), so there
it is a cheap projection, a 1x1 conv with the block's stride + BN, and the block still
counts 7 choices as in GreedyNAS. The real-size spaces follow ProxylessNAS/FairNAS: a 3x3
stride-2 stem to 32 channels and a fixed separable conv to 16, then the searched stages,
then 1x1 conv to 1280, pooling and the classifier.

``fairnas-cpu`` and ``greedynas-cpu`` keep the real stage depths and choices on 16x16 images,
with gated residuals (``gated_residual``): every op is ``shortcut + gate * body`` around a
shortcut shared by the block, so the first block of a stage gets a projection shortcut that the
real spaces do not have, and ``skip`` is that shortcut. The ``*-tiny`` spaces have 12 blocks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from supernets.builders import (
    LayerStack,
    Residual,
    StagedSupernet,
    build_staged,
    each_op,
    projection,
    relu6,
    shortcut_ops,
)

_MBCONV = re.compile(r"k(\d*[13579])e([1-9]\d*)")


def inverted_residual(name: str, cin: int, cout: int, stride: int, size: int) -> tuple[nn.Module, int]:
    """The body of a ``kKeE`` op: 1x1 expand by E, KxK depthwise (with stride), linear 1x1 project."""
    match = _MBCONV.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown MobileNet op {name!r}; use kKeE (odd K, E >= 1, e.g. k3e6) or skip")
    kernel, expansion = int(match[1]), int(match[2])
    stack = LayerStack(cin, size)
    if expansion != 1:
        stack.conv(cin * expansion, 1, act=relu6)
    stack.conv(stack.channels, kernel, stride, depthwise=True, act=relu6).conv(cout, 1, act=None)
    return stack.build(), stack.macs


def mobile_op(name: str, cin: int, cout: int, stride: int, size: int) -> tuple[nn.Module, int]:
    """One choice: ``kKeE`` inverted residual or ``skip`` (identity, or a 1x1 projection)."""
    if name == "skip":
        return projection(cin, cout, stride, size)
    body, macs = inverted_residual(name, cin, cout, stride, size)
    return Residual(body, nn.Identity() if stride == 1 and cin == cout else None), macs


def mobilenet_supernet(
    *, ops: Sequence[str], stem_sep_width: int | None, gated_residual: bool = False, **config: Any
) -> StagedSupernet:
    """MobileNetV2-style supernet; ``stem_sep_width`` adds the fixed separable conv after the stem.

    ``gated_residual`` makes every op ``shortcut + gate * body`` around a shortcut shared by the
    block (``shortcut_ops``), which also gives the first block of a stage a projection shortcut.
    """

    def separable(stem: LayerStack) -> None:
        stem.conv(stem.channels, 3, depthwise=True, act=relu6).conv(stem_sep_width, 1, act=None)

    make_ops = shortcut_ops(inverted_residual, gated=True) if gated_residual else each_op(mobile_op)
    return build_staged(
        ops=ops, make_ops=make_ops, act=relu6, stem_extra=separable if stem_sep_width else None, **config
    )

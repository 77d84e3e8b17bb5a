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

from supernets.registry import PAPER_MAC_LIMIT, MacLimit, register_supernet
from supernets.builders import (
    LayerStack,
    Residual,
    StagedSupernet,
    build_staged,
    each_op,
    projection,
    relu6,
    shortcut_ops,
    tiny_config,
)

FAIRNAS_OPS = ["k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6"]
GREEDYNAS_OPS = [*FAIRNAS_OPS, "skip"]
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


# Search limits: the paper searched FairNAS and GreedyNAS under SPOS's PAPER_MAC_LIMIT too (every arch
# in its Table 1 has 316-329 M); each CPU-scale limit excludes the same share of uniformly random
# archs as that does in its real-size space (scripts/mac_limits.py: 1,000,000 archs per space from
# numpy.random.default_rng(0); the share is that sample's share above the limit).
# train_epochs where TrainConfig's default (30, sized for conv-tiny) does not fit the CPU budget
# (scripts/cpu_space_budget.py train).
_REAL = {"in_channels": 3, "input_size": 224, "num_classes": 1000, "stem_width": 32, "stem_stride": 2}

register_supernet(
    "fairnas",
    mobilenet_supernet,
    {
        **_REAL,
        "stem_sep_width": 16,
        "widths": [32, 40, 80, 96, 192, 320],
        "depths": [2, 4, 4, 4, 4, 1],
        "strides": [2, 2, 2, 1, 2, 1],
        "last_width": 1280,
        "ops": list(FAIRNAS_OPS),
    },
    "FairNAS space: 19 blocks x 6 (k3/5/7 x e3/6 inverted residuals), 224x224, 1000 classes",
    family="fairnas",
    scale="real",
    mac_limit=MacLimit(PAPER_MAC_LIMIT, 0.9733),
)
register_supernet(
    "greedynas",
    mobilenet_supernet,
    {
        **_REAL,
        "stem_sep_width": 16,
        "widths": [24, 40, 80, 96, 192, 320],
        "depths": [4, 4, 4, 4, 4, 1],
        "strides": [2, 2, 2, 1, 2, 1],
        "last_width": 1280,
        "ops": list(GREEDYNAS_OPS),
    },
    "GreedyNAS space: 21 blocks x 7 (FairNAS ops + skip), 224x224, 1000 classes",
    family="greedynas",
    scale="real",
    mac_limit=MacLimit(PAPER_MAC_LIMIT, 0.7743),
)
# Half the width of the other tiny nets: expanded depthwise blocks cost ~2x more per MAC on CPU.
_TINY = {"stem_sep_width": None, "stem_width": 8, "widths": [8, 16, 32]}

register_supernet(
    "fairnas-tiny",
    mobilenet_supernet,
    tiny_config(**_TINY, ops=list(FAIRNAS_OPS)),
    "CPU-scale FairNAS-like space: 12 blocks x 6, 16x16 grey input, 10 classes",
    family="fairnas",
    scale="tiny",
    mac_limit=MacLimit(630_656, 0.9733, matches="fairnas"),
)
register_supernet(
    "greedynas-tiny",
    mobilenet_supernet,
    tiny_config(**_TINY, ops=list(GREEDYNAS_OPS)),
    "CPU-scale GreedyNAS-like space: 12 blocks x 7 (with skip), 16x16 grey input, 10 classes",
    family="greedynas",
    scale="tiny",
    mac_limit=MacLimit(618_816, 0.7744, matches="greedynas"),
)
register_supernet(
    "mbv2-tiny",
    mobilenet_supernet,
    tiny_config(**_TINY, ops=["k3e3", "k5e3", "k7e3", "skip"]),
    "CPU-scale MobileNetV2 space: 12 blocks x 4 (k3e3, k5e3, k7e3, skip), 16x16 grey input",
    scale="tiny",
)

# The real stage depths and choices on 16x16 images, with the real strides while the map is larger
# than 2x2 (stride-2 stem and first two stages; maps 4, 2, 2, 2, 2, 2 where the real spaces have
# 56, 28, 14, 14, 7, 7), the fixed separable stem conv kept, at 1/3 to 1/7 of the real widths.
# Gated residuals as in spos-cpu: the plain 19- and 21-block supernets stayed near chance under
# single-path uniform training.
_CPU = {
    "stem_width": 8,
    "stem_sep_width": 8,
    "widths": [8, 12, 16, 24, 32, 48],
    "strides": [2, 2, 1, 1, 1, 1],
    "gated_residual": True,
}

register_supernet(
    "fairnas-cpu",
    mobilenet_supernet,
    tiny_config(**_CPU, depths=[2, 4, 4, 4, 4, 1], ops=list(FAIRNAS_OPS)),
    "CPU-scale full-depth FairNAS space: 19 blocks x 6, stage depths 2-4-4-4-4-1, 16x16 grey input",
    family="fairnas",
    scale="cpu",
    mac_limit=MacLimit(465_632, 0.9733, matches="fairnas"),
    train_epochs=10,
)
register_supernet(
    "greedynas-cpu",
    mobilenet_supernet,
    tiny_config(**_CPU, depths=[4, 4, 4, 4, 4, 1], ops=list(GREEDYNAS_OPS)),
    "CPU-scale full-depth GreedyNAS space: 21 blocks x 7 (with skip), stage depths 4-4-4-4-4-1, 16x16 grey input",
    family="greedynas",
    scale="cpu",
    mac_limit=MacLimit(479_840, 0.7744, matches="greedynas"),
    train_epochs=10,
)

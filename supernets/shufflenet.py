"""SPOS ShuffleNetV2 search space (Guo et al., ECCV 2020): 20 blocks x 4 choices, and CPU variants.

Choices per block: ShuffleNetV2 units with a 3x3, 5x5 or 7x7 depthwise conv and the
Xception-style unit (three 3x3 depthwise convs). As in SPOS, BN inside choice blocks has no
affine parameters (``affine=False``); stem and head BNs are affine. The first unit of a stage
has a projection branch (depthwise + 1x1 on the full input) and outputs
``proj(x) ++ main(x)``; the other units split the input channels (SPOS channel shuffle: even
channels pass through, odd channels go through the main branch). SPOS's head dropout is
left out so that training draws random numbers only from its explicit generator.

``spos-cpu`` keeps the 20 blocks and the 4-4-8-4 stages on 16x16 images; ``spos-tiny`` has
12 blocks. In ``spos-cpu`` every unit sits in a ``GatedResidual`` (see the registration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from supernets.registry import PAPER_MAC_LIMIT, MacLimit, register_supernet
from supernets.builders import LayerStack, StagedSupernet, build_staged, each_op, shortcut_ops, tiny_config

OPS = ["shuffle3", "shuffle5", "shuffle7", "xception"]


class ShuffleUnit(nn.Module):
    """``proj(x) ++ main(x)`` with a projection branch, else ``even(x) ++ main(odd(x))``."""

    def __init__(self, proj: nn.Module | None, main: nn.Module):
        super().__init__()
        self.proj = proj
        self.main = main

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return torch.cat((x[:, 0::2], self.main(x[:, 1::2])), dim=1)
        return torch.cat((self.proj(x), self.main(x)), dim=1)


def shuffle_op(name: str, cin: int, cout: int, stride: int, size: int) -> tuple[nn.Module, int]:
    """One SPOS choice: ``shuffle3`` / ``shuffle5`` / ``shuffle7`` or ``xception``."""
    if name not in OPS:
        raise ValueError(f"unknown ShuffleNet op {name!r}; use one of {', '.join(OPS)}")
    split = stride == 1 and cin == cout
    if split:
        if cin % 2:
            raise ValueError(f"ShuffleNet units split channels in half; width {cin} is odd")
        main_in, proj, proj_macs = cin // 2, None, 0
    else:
        if cout <= cin:
            raise ValueError(
                f"a ShuffleNet stage must widen its input ({cin} -> {cout} channels): the first "
                "unit concatenates the projected input with the main branch; raise the width"
            )
        kernel = 3 if name == "xception" else int(name[-1])
        p = LayerStack(cin, size, affine=False).conv(cin, kernel, stride, depthwise=True, act=None).conv(cin, 1)
        main_in, proj, proj_macs = cin, p.build(), p.macs
    main_out, mid = cout - (cout // 2 if split else cin), cout // 2
    m = LayerStack(main_in, size, affine=False)
    if name == "xception":
        m.conv(main_in, 3, stride, depthwise=True, act=None).conv(mid, 1)
        m.conv(mid, 3, depthwise=True, act=None).conv(mid, 1)
        m.conv(mid, 3, depthwise=True, act=None).conv(main_out, 1)
    else:
        m.conv(mid, 1).conv(mid, int(name[-1]), stride, depthwise=True, act=None).conv(main_out, 1)
    return ShuffleUnit(proj, m.build()), proj_macs + m.macs


def shufflenet_supernet(*, ops: Sequence[str], gated_residual: bool = False, **config: Any) -> StagedSupernet:
    """SPOS-style supernet whose blocks choose among ``ops`` (see ``shuffle_op``).

    ``gated_residual`` makes every unit ``shortcut + gate * unit`` around a shortcut shared by the
    block (``shortcut_ops``): the identity, or in the first block of a stage a 1x1 projection.
    """
    make_ops = shortcut_ops(shuffle_op, gated=True) if gated_residual else each_op(shuffle_op)
    return build_staged(ops=ops, make_ops=make_ops, **config)


# Search limits: SPOS searches under PAPER_MAC_LIMIT; each CPU-scale limit excludes the same share
# of uniformly random archs as that does in `spos` (scripts/mac_limits.py: 1,000,000 archs per space
# from numpy.random.default_rng(0); the share is that sample's share above the limit).
# train_epochs where TrainConfig's default (30, sized for conv-tiny) does not fit the CPU budget
# (scripts/cpu_space_budget.py train).
register_supernet(
    "spos",
    shufflenet_supernet,
    {
        "in_channels": 3,
        "input_size": 224,
        "num_classes": 1000,
        "stem_width": 16,
        "stem_stride": 2,
        "widths": [64, 160, 320, 640],
        "depths": [4, 4, 8, 4],
        "strides": [2, 2, 2, 2],
        "last_width": 1024,
        "ops": list(OPS),
    },
    "SPOS ShuffleNetV2 1.0x space: 20 blocks x 4 (shuffle3/5/7, xception), 224x224, 1000 classes",
    family="spos",
    scale="real",
    mac_limit=MacLimit(PAPER_MAC_LIMIT, 0.4108),
)
register_supernet(
    "spos-tiny",
    shufflenet_supernet,
    tiny_config(stem_width=8, ops=list(OPS)),
    "CPU-scale SPOS space: 12 blocks x 4 (shuffle3/5/7, xception), 16x16 grey input, 10 classes",
    family="spos",
    scale="tiny",
    mac_limit=MacLimit(270_336, 0.4122, matches="spos"),
)
# SPOS's stage layout (repeats 4, 4, 8, 4, every stage wider than the last) on 16x16 images, with
# SPOS's strides while the map is larger than 2x2 (stride-2 stem and first two stages; maps 4, 2,
# 2, 2 where SPOS has 56, 28, 14, 7), at 1/4 to 1/5 of its width. Gated residuals (``GatedResidual``):
# under single-path uniform training the plain 20-unit supernet stayed at chance (10% training
# accuracy after 2,000 steps), whatever the learning rate, warm-up or init.
register_supernet(
    "spos-cpu",
    shufflenet_supernet,
    tiny_config(
        stem_width=8, widths=[16, 32, 64, 128], depths=[4, 4, 8, 4], strides=[2, 2, 1, 1], gated_residual=True,
        ops=list(OPS),
    ),
    "CPU-scale full-depth SPOS space: 20 blocks x 4 (shuffle3/5/7, xception), stages 4-4-8-4, 16x16 grey input",
    family="spos",
    scale="cpu",
    mac_limit=MacLimit(412_352, 0.4121, matches="spos"),
    train_epochs=10,
)

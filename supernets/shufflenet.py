"""SPOS ShuffleNetV2 search space (Guo et al., ECCV 2020): 20 blocks x 4 choices, and CPU variants.

Choices per block: ShuffleNetV2 units with a 3x3, 5x5 or 7x7 depthwise conv and the
Xception-style unit (three 3x3 depthwise convs). As in SPOS, BN inside choice blocks has no
affine parameters (``affine=False``); stem and head BNs are affine. The first unit of a stage
has a projection branch (depthwise + 1x1 on the full input) and outputs
``proj(x) ++ main(x)``; the other units split the input channels (SPOS channel shuffle: even
channels pass through, odd channels go through the main branch). SPOS's head dropout is
left out so that training draws random numbers only from its explicit generator.

``spos-cpu`` keeps the 20 blocks and the 4-4-8-4 stages on 16x16 images; ``spos-tiny`` has
12 blocks. In ``spos-cpu`` every unit sits in a ``GatedResidual`` (see its registration in ``supernets.spaces``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from supernets.builders import LayerStack, StagedSupernet, build_staged, each_op, shortcut_ops
from supernets.spaces import SHUFFLENET_OPS as OPS


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

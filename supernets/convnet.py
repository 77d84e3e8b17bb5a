"""The plain-conv family: ``conv-tiny`` (conv3, conv5, sep5, skip).

It exists because plain convolutions are several times faster than depthwise-heavy blocks on
small CPUs, so it is the cheapest space to search.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from supernets.builders import LayerStack, StagedSupernet, build_staged, shortcut_ops

_CONV_OP = re.compile(r"(conv|sep)(\d*[13579])")


def conv_body(name: str, cin: int, cout: int, stride: int, size: int) -> tuple[nn.Module, int]:
    """``convK`` (KxK conv-BN-ReLU) or ``sepK`` (depthwise KxK-BN, 1x1-BN-ReLU), without shortcut."""
    match = _CONV_OP.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown conv op {name!r}; use convK, sepK (K odd, e.g. conv3, sep5) or skip")
    stack = LayerStack(cin, size)
    if match[1] == "conv":
        stack.conv(cout, int(match[2]), stride)
    else:
        stack.conv(cin, int(match[2]), stride, depthwise=True, act=None).conv(cout, 1)
    return stack.build(), stack.macs


# Ops convK, sepK and skip. Every op is residual with one shortcut shared by the block's ops:
# without a common shortcut the channels that different ops of a block produce have nothing in
# common, and a plain-conv supernet trains far worse under path sampling.
conv_ops = shortcut_ops(conv_body, gated=False)


def conv_supernet(*, ops: Sequence[str], **config: Any) -> StagedSupernet:
    """Plain-conv supernet: every block chooses among ``ops`` (see ``conv_ops``)."""
    return build_staged(ops=ops, make_ops=conv_ops, **config)

"""A supernet as a chain of units: the stem (0), the blocks (1..N) and the head (N+1).

A prefix node of depth d is the output of units 0..d (the stem and blocks 0..d-1). Running a
range of units calls the same modules in the same order as ``Supernet.forward``, so a forward
split at any unit boundary gives the same bits; unlike ``forward(x, arch, start, stop)`` it can
also continue from the stem's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from supernets.base import Supernet


def head_unit(net: Supernet) -> int:
    """The head's unit index, N + 1."""
    return net.num_blocks + 1


def unit_module(net: Supernet, arch: Sequence[int], unit: int) -> nn.Module:
    """The module a unit of ``arch`` runs: the stem, the chosen op of block ``unit - 1``, or the head."""
    if unit == 0:
        return net.stem
    if unit == head_unit(net):
        return net.head
    return net.blocks[unit - 1].ops[arch[unit - 1]]


def unit_macs(net: Supernet, arch: Sequence[int], unit: int) -> int:
    """MACs per image of one unit of ``arch``."""
    if unit == 0:
        return net.stem_macs
    if unit == head_unit(net):
        return net.head_macs
    return net.blocks[unit - 1].op_macs[arch[unit - 1]]


def run_units(net: Supernet, x: torch.Tensor, arch: Sequence[int], units: range) -> torch.Tensor:
    """Run ``units`` (consecutive) of ``arch`` on ``x``."""
    for unit in units:
        if unit == 0:
            x = net.stem(x)
        elif unit == head_unit(net):
            x = net.head(x)
        else:
            x = net.blocks[unit - 1](x, arch[unit - 1])
    return x

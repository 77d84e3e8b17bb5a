"""A supernet as a chain of units: the stem (0), the blocks (1..N) and the head (N+1).

A prefix node of depth d is the output of units 0..d (the stem and blocks 0..d-1). Running a
range of units (``UnitRunner``) makes the same calls in the same order as ``Supernet.forward``,
so a forward split at any unit boundary gives the same bits; unlike ``forward(x, arch, start,
stop)`` it can also continue from the stem's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from harness.evaluation.direct import Step, compile_module
from supernets.base import ChoiceBlock, Supernet


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


class UnitRunner:
    """Runs ranges of units of one supernet through direct calls (``harness.evaluation.direct``).

    The same ATen calls in the same order as the modules, and so as ``Supernet.forward``, with
    the fixed per-module cost of a call paid once, when the runner is built. Parameters and
    buffers are read at each call; a module put in place of another later needs a new runner.
    """

    def __init__(self, net: Supernet):
        self.head = head_unit(net)
        ops = [[_choice_step(block, c) for c in range(len(block.ops))] for block in net.blocks]
        # Per unit, one step per choice (the stem and the head have one).
        self._steps: list[list[Step]] = [[compile_module(net.stem)], *ops, [compile_module(net.head)]]

    def run(self, x: torch.Tensor, arch: Sequence[int], units: range) -> torch.Tensor:
        """Run ``units`` (consecutive) of ``arch`` on ``x``."""
        head, steps = self.head, self._steps
        for unit in units:
            x = steps[unit][arch[unit - 1] if 0 < unit < head else 0](x)
        return x


def _choice_step(block: nn.Module, choice: int) -> Step:
    if type(block).forward is ChoiceBlock.forward:
        return compile_module(block.ops[choice])
    return lambda x: block(x, choice)  # a block with its own forward: called as a module

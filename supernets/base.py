"""Supernet base class and choice blocks (the registry is in ``supernets.registry``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from supernets.registry import SupernetSpec

Arch = tuple[int, ...]


class ChoiceBlock(nn.Module):
    """One searchable block: a list of candidate ops of which an arch picks exactly one.

    ``op_macs[i]`` is the analytic multiply-accumulate count per image of ``ops[i]``
    (Conv2d and Linear layers only), computed by the builder from the op's shapes.
    """

    def __init__(self, ops: Sequence[nn.Module], op_macs: Sequence[int]):
        super().__init__()
        if len(ops) != len(op_macs) or not ops:
            raise ValueError("ChoiceBlock needs one MAC count per op and at least one op")
        self.ops = nn.ModuleList(ops)
        self.op_macs = tuple(int(m) for m in op_macs)

    def forward(self, x: torch.Tensor, choice: int) -> torch.Tensor:
        return self.ops[choice](x)


class Supernet(nn.Module):
    """A weight-sharing network: ``stem`` -> ``blocks`` (one choice each) -> ``head``.

    Subclasses build ``stem``, ``blocks`` (an ``nn.ModuleList`` of ``ChoiceBlock``) and
    ``head`` and set ``stem_macs`` / ``head_macs`` (per image). ``forward`` runs the stem only
    when ``start == 0`` and the head only when ``stop is None``, so a forward pass can be
    split at any block boundary: ``forward(forward(x, a, 0, k), a, k) == forward(x, a)``.
    The rest of the contract: every op of a block gives the same output shape, no op modifies its input in place (the prefix
    reuse feeds one tensor to many children), and the network builds on the ``meta`` device.
    """

    stem: nn.Module
    blocks: nn.ModuleList
    head: nn.Module
    stem_macs: int
    head_macs: int

    def __init__(self, *, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        # Set by the registry so that a checkpoint can rebuild the same network.
        self.spec: SupernetSpec | None = None

    @property
    def choices(self) -> tuple[int, ...]:
        """Number of choices per block."""
        return tuple(len(block.ops) for block in self.blocks)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def check_arch(self, arch: Sequence[int]) -> Arch:
        """Return ``arch`` as a tuple, or raise ``ValueError`` saying what is wrong with it."""
        arch = tuple(int(c) for c in arch)
        if len(arch) != self.num_blocks:
            raise ValueError(
                f"arch has {len(arch)} choices but supernet {self.display_name} has "
                f"{self.num_blocks} blocks"
            )
        for i, (c, n) in enumerate(zip(arch, self.choices)):
            if not 0 <= c < n:
                raise ValueError(f"arch {arch}: choice {c} at block {i} is outside 0..{n - 1}")
        return arch

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        end = self.num_blocks if stop is None else stop
        if not 0 <= start <= end <= self.num_blocks:
            raise ValueError(f"block range [{start}, {stop}) is outside 0..{self.num_blocks}")
        return start, end

    def forward(
        self, x: torch.Tensor, arch: Sequence[int], start: int = 0, stop: int | None = None
    ) -> torch.Tensor:
        first, end = self._range(start, stop)
        if first == 0:
            x = self.stem(x)
        for i in range(first, end):
            x = self.blocks[i](x, arch[i])
        if stop is None:
            x = self.head(x)
        return x

    def macs(self, arch: Sequence[int], start: int = 0, stop: int | None = None) -> int:
        """Exact multiply-accumulates per image of the given part of the sub-network."""
        first, end = self._range(start, stop)
        total = sum(self.blocks[i].op_macs[arch[i]] for i in range(first, end))
        if first == 0:
            total += self.stem_macs
        if stop is None:
            total += self.head_macs
        return int(total)

    def mac_range(self) -> tuple[int, int]:
        """Exact (min, max) MACs per image over all archs: blocks are independent, so per-block extremes."""
        fixed = self.stem_macs + self.head_macs
        return (
            int(fixed + sum(min(block.op_macs) for block in self.blocks)),
            int(fixed + sum(max(block.op_macs) for block in self.blocks)),
        )

    def sample_macs(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """MACs per image of ``size`` uniformly random archs (one draw per block per arch from ``rng``)."""
        total = np.full(size, self.stem_macs + self.head_macs, dtype=np.int64)
        for block in self.blocks:
            total += np.asarray(block.op_macs, dtype=np.int64)[rng.integers(len(block.ops), size=size)]
        return total

    def path_modules(self, arch: Sequence[int], start: int = 0, stop: int | None = None) -> list[nn.Module]:
        """The modules that ``forward(x, arch, start, stop)`` runs, in order."""
        first, end = self._range(start, stop)
        modules: list[nn.Module] = [self.stem] if first == 0 else []
        modules += [self.blocks[i].ops[arch[i]] for i in range(first, end)]
        if stop is None:
            modules.append(self.head)
        return modules

    @property
    def display_name(self) -> str:
        return self.spec.name if self.spec else type(self).__name__

"""Direct calls: the evaluator's compiled units give the modules' bits and BN statistics, in train and eval mode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from harness.config import EvalProtocol
from harness.evaluation.direct import compile_module
from harness.evaluation.recalibration import batchnorms, load_statistics, use_protocol_momentum
from harness.evaluation.units import UnitRunner, head_unit
from supernets import get_supernet
from supernets.train import init_weights

CPU_SCALE = ["conv-tiny", "fairnas-tiny", "greedynas-tiny", "mbv2-tiny", "spos-tiny", "fairnas-cpu", "greedynas-cpu", "spos-cpu"]
REAL = ["fairnas", "greedynas", "spos"]


def _pair(name: str, bn_mode: str) -> tuple[nn.Module, nn.Module]:
    """Two identical seeded networks (gates opened, so every branch counts) with the protocol's BN momentum."""
    net = get_supernet(name)
    init_weights(net, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name_, p in net.named_parameters():
            if name_.endswith("gate"):
                p.fill_(0.5)
    net.requires_grad_(False).to(memory_format=torch.channels_last)
    use_protocol_momentum(batchnorms(net), EvalProtocol(bn_mode=bn_mode))
    return net, copy.deepcopy(net)


def _archs(net: nn.Module, n: int) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(4)
    return [tuple(int(rng.integers(c)) for c in net.choices) for _ in range(n)]


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), key


@pytest.mark.parametrize("name", [*CPU_SCALE, *(pytest.param(n, marks=pytest.mark.slow) for n in REAL)])
@pytest.mark.parametrize("bn_mode", ["exact", "ema"])
def test_direct_units_give_the_modules_bits_and_statistics(name, bn_mode):
    modules, direct = _pair(name, bn_mode)
    runner = UnitRunner(direct)
    batch = 2 if name in REAL else 8
    x = torch.randn(batch, *modules.input_shape, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=torch.channels_last)
    every = range(head_unit(direct) + 1)
    with torch.inference_mode():
        for arch in _archs(modules, 3):
            modules.train(), direct.train()
            for scale in (1.0, 0.5):  # two calibration batches: the cumulative average's second step
                assert torch.equal(modules(x * scale, arch), runner.run(x * scale, arch, every)), arch
            _assert_same_state(modules, direct)
            modules.eval(), direct.eval()
            assert torch.equal(modules(x, arch), runner.run(x, arch, every)), arch
            k = modules.num_blocks // 2  # and split at a block, as the prefix reuse runs it
            middle = runner.run(x, arch, range(k + 1))
            assert torch.equal(modules(x, arch, 0, k), middle)
            assert torch.equal(modules(x, arch), runner.run(middle, arch, range(k + 1, head_unit(direct) + 1)))


def test_compiled_calls_read_the_modules_state_at_each_call():
    net, _ = _pair("spos-tiny", "exact")
    net.eval()
    runner = UnitRunner(net)
    arch = _archs(net, 1)[0]
    x = torch.randn(4, *net.input_shape, generator=torch.Generator().manual_seed(2))
    every = range(head_unit(net) + 1)
    with torch.inference_mode():
        before = runner.run(x, arch, every)
    other = get_supernet("spos-tiny")
    init_weights(other, torch.Generator().manual_seed(5))
    net.load_state_dict(other.state_dict(), assign=True)  # other tensors, not only other values
    with torch.inference_mode():
        loaded = runner.run(x, arch, every)
        assert torch.equal(loaded, net(x, arch)) and not torch.equal(loaded, before)
        for bn in batchnorms(net):  # statistics pointed elsewhere, as the tree walk does per node
            load_statistics(bn, (torch.full_like(bn.running_mean, 0.1), torch.full_like(bn.running_var, 2.0), bn.num_batches_tracked))
        moved = runner.run(x, arch, every)
        assert torch.equal(moved, net(x, arch)) and not torch.equal(moved, loaded)


def test_unknown_and_hooked_modules_are_called_as_modules():
    calls = []
    hooked = nn.Conv2d(3, 3, 1)
    hooked.register_forward_hook(lambda module, inputs, out: calls.append(module))
    stack = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(), hooked, nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"))
    x = torch.randn(2, 3, 5, 5)
    with torch.inference_mode():
        assert torch.equal(compile_module(stack)(x), stack(x))
    assert calls == [hooked, hooked]

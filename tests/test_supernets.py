"""Supernet families: split forward is exact, analytic MACs equal hook counts, registry behaviour."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from torch import nn

from supernets import available, default_config, get_supernet
from supernets.base import Supernet
from supernets.train import init_weights

TINY = ["conv-tiny", "fairnas-tiny", "greedynas-tiny", "mbv2-tiny", "spos-tiny"]
REAL = ["fairnas", "greedynas", "spos"]
FORMATS = [torch.contiguous_format, torch.channels_last]


@functools.cache
def built(name: str) -> Supernet:
    net = get_supernet(name)
    init_weights(net, torch.Generator().manual_seed(0))
    return net.eval()


def random_archs(net: Supernet, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [tuple(int(rng.integers(c)) for c in net.choices) for _ in range(n)]


def images(net: Supernet, batch: int, memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    x = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(1))
    return x.contiguous(memory_format=memory_format)


def hook_macs(net: Supernet, x: torch.Tensor, arch, start: int = 0, stop: int | None = None) -> int:
    """MACs per image of ``net(x, arch, start, stop)`` counted from the shapes seen by forward hooks."""
    total = 0

    def count(module: nn.Module, _inputs, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += module.out_channels * module.in_channels // module.groups * kh * kw * out.shape[2] * out.shape[3]
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            net(x, arch, start, stop)
    finally:
        for h in handles:
            h.remove()
    return total


@pytest.mark.parametrize(
    "name, blocks, choices",
    [
        ("spos", 20, 4),
        ("fairnas", 19, 6),
        ("greedynas", 21, 7),
        ("spos-tiny", 12, 4),
        ("fairnas-tiny", 12, 6),
        ("greedynas-tiny", 12, 7),
        ("mbv2-tiny", 12, 4),
        ("conv-tiny", 12, 4),
    ],
)
def test_search_space_sizes(name, blocks, choices):
    net = built(name)
    assert net.choices == (choices,) * blocks
    assert net.spec.name == name


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("memory_format", FORMATS, ids=["contiguous", "channels_last"])
def test_split_forward_is_exact(name, memory_format):
    net = built(name).to(memory_format=memory_format)
    x = images(net, 4, memory_format)
    with torch.inference_mode():
        for arch in random_archs(net, 3):
            full = net(x, arch)
            # k >= 1: start == 0 always means "from the image" (the stem runs), so k = 0 has no split.
            for k in range(1, net.num_blocks + 1):
                assert torch.equal(net(net(x, arch, 0, k), arch, k), full), (arch, k)
    net.to(memory_format=torch.contiguous_format)


@pytest.mark.parametrize("name", TINY)
def test_macs_match_hook_count(name):
    net = built(name)
    x = images(net, 2)
    n = net.num_blocks
    for arch in random_archs(net, 4, seed=2):
        for start, stop in [(0, None), (0, 0), (0, 5), (3, None), (4, 9), (n, None), (n - 1, n)]:
            with torch.inference_mode():
                inputs = net(x, arch, 0, start) if start else x
            assert net.macs(arch, start, stop) == hook_macs(net, inputs, arch, start, stop), (arch, start, stop)


@pytest.mark.parametrize("name", REAL)
def test_real_size_macs_match_hook_count(name):
    net = built(name)
    x = images(net, 1)
    for arch in random_archs(net, 1) + [tuple(c - 1 for c in net.choices)]:
        assert net.macs(arch) == hook_macs(net, x, arch)


def test_real_size_macs_are_in_the_papers_range():
    # SPOS 1.0x paths span ~300-360M MACs around its 330M limit; FairNAS-A (388M) lies inside its space.
    spos, fairnas = built("spos"), built("fairnas")
    spos_uniform = [spos.macs((c,) * 20) for c in range(4)]
    assert 280e6 < min(spos_uniform) < 330e6 < max(spos_uniform) < 370e6
    assert fairnas.macs((0,) * 19) < 388e6 < fairnas.macs((5,) * 19)


@pytest.mark.parametrize("name", available())
def test_every_registered_supernet_runs_a_batch(name):
    net = built(name)
    json.dumps(default_config(name))  # defaults go into checkpoints as JSON
    batch = 1 if net.input_shape[1] > 64 else 8
    with torch.inference_mode():
        out = net(images(net, batch, torch.channels_last), random_archs(net, 1)[0])
    assert out.shape == (batch, net.num_classes)
    assert torch.isfinite(out).all()


def test_spos_choice_blocks_have_no_affine_bn():
    net = built("spos-tiny")
    inside = [m for b in net.blocks for m in b.modules() if isinstance(m, nn.BatchNorm2d)]
    outside = [m for part in (net.stem, net.head) for m in part.modules() if isinstance(m, nn.BatchNorm2d)]
    assert inside and not any(m.affine for m in inside)
    assert outside and all(m.affine for m in outside)


def test_skip_is_identity_except_where_shapes_change():
    net = built("greedynas-tiny")
    assert [b.op_macs[6] == 0 for b in net.blocks] == [True] * 4 + [False, True, True, True] * 2
    assert isinstance(net.blocks[1].ops[6], nn.Identity)
    assert isinstance(net.blocks[4].ops[6], nn.Sequential)


def test_conv_ops_share_the_block_shortcut():
    block = built("conv-tiny").blocks[4]  # first block of stage 2: stride 2, 16 -> 32 channels
    conv3, skip = block.ops[0], block.ops[3]
    assert conv3.shortcut is skip
    assert block.op_macs[3] > 0 and block.op_macs[0] > block.op_macs[3]


def test_unknown_supernet_name():
    with pytest.raises(ValueError, match="unknown supernet 'nope'; available: conv-tiny"):
        get_supernet("nope")


def test_unknown_override_names_the_key_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) width for supernet 'spos-tiny'; valid: .*widths"):
        get_supernet("spos-tiny", width=[8])


def test_overrides_take_effect():
    net = get_supernet("conv-tiny", widths=[8, 16, 24], depths=[1, 2, 3], input_size=32, num_classes=7)
    assert net.input_shape == (1, 32, 32) and net.num_blocks == 6
    arch = (0,) * 6
    x = images(net, 2)
    with torch.inference_mode():
        assert net(x, arch, 0, 1).shape == (2, 8, 16, 16)
        assert net(x, arch, 0, 6).shape == (2, 24, 4, 4)
        assert net(x, arch).shape == (2, 7)
    assert net.spec.config["widths"] == [8, 16, 24]


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("spos-tiny", {"stem_width": 32}, "must widen its input"),
        ("mbv2-tiny", {"ops": ["k4e3"]}, "unknown MobileNet op 'k4e3'"),
        ("spos-tiny", {"ops": ["shuffle9"]}, "unknown ShuffleNet op 'shuffle9'"),
        ("conv-tiny", {"ops": ["pool3"]}, "unknown conv op 'pool3'"),
        ("conv-tiny", {"depths": [4, 4]}, "one entry per stage"),
    ],
)
def test_invalid_configs_say_what_is_wrong(name, overrides, message):
    with pytest.raises(ValueError, match=message):
        get_supernet(name, **overrides)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", TINY)
def test_cuda_channels_last_split_forward(name):
    net = get_supernet(name).cuda().eval().to(memory_format=torch.channels_last)
    x = images(net, 8, torch.channels_last).cuda()
    arch = random_archs(net, 1)[0]
    with torch.inference_mode():
        full = net(x, arch)
        for k in range(1, net.num_blocks + 1):
            assert torch.equal(net(net(x, arch, 0, k), arch, k), full)

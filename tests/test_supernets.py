"""Supernet families: split forward is exact, analytic MACs equal hook counts, MAC limits, registry behaviour."""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from supernets import PAPER_MAC_LIMIT, available, default_config, get_supernet, registered_supernets, supernet_entry
from supernets.base import Supernet
from supernets.builders import GatedResidual
from supernets.spaces import FAIRNAS_OPS
from supernets.train import init_weights

TINY = ["conv-tiny", "fairnas-tiny", "greedynas-tiny", "mbv2-tiny", "spos-tiny"]
FULL_DEPTH_CPU = ["fairnas-cpu", "greedynas-cpu", "spos-cpu"]
CPU_SCALE = TINY + FULL_DEPTH_CPU
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
        ("spos-cpu", 20, 4),
        ("fairnas-cpu", 19, 6),
        ("greedynas-cpu", 21, 7),
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


@pytest.mark.parametrize("name", CPU_SCALE)
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


@pytest.mark.parametrize("name", CPU_SCALE)
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


# FairNAS-B and -C (Chu et al., ICCV 2021) as (expansion, kernel) per block; published: 345 M and 321 M MACs.
FAIRNAS_B = [(3, 5), (3, 3), (3, 5), (3, 3), (6, 3), (3, 5), (3, 7), (3, 3), (6, 3), (3, 5),
             (3, 3), (6, 3), (3, 7), (3, 3), (6, 7), (6, 5), (6, 7), (6, 3), (6, 5)]
FAIRNAS_C = [(3, 5), (3, 3), (3, 7), (3, 3), (3, 3), (3, 3), (3, 3), (3, 3), (3, 3), (6, 3),
             (3, 3), (3, 3), (3, 3), (3, 3), (6, 7), (6, 7), (6, 3), (6, 3), (6, 5)]


@pytest.mark.parametrize("blocks, published", [(FAIRNAS_B, 345e6), (FAIRNAS_C, 321e6)], ids=["FairNAS-B", "FairNAS-C"])
def test_fairnas_models_have_their_published_macs(blocks, published):
    arch = tuple(FAIRNAS_OPS.index(f"k{k}e{e}") for e, k in blocks)
    assert abs(built("fairnas").macs(arch) - published) < 0.5e6


def test_shufflenet_v2_units_have_the_published_macs():
    # ShuffleNetV2 1.0x (146 M MACs): stages 4-8-4 of widths 116-232-464 after a stride-2 stem to 24
    # channels and a stride-2 max-pool, modelled here by a 112x112 input and the real stem's MACs.
    net = get_supernet("spos", stem_width=24, widths=[116, 232, 464], depths=[4, 8, 4], strides=[2, 2, 2], input_size=112)
    real_stem = 24 * 3 * 3 * 3 * 112 * 112
    assert abs(net.macs((0,) * 16) - net.stem_macs + real_stem - 146e6) < 0.5e6


@pytest.mark.parametrize(
    "name, real, maps",
    [
        ("spos-cpu", "spos", [4] * 4 + [2] * 16),
        ("fairnas-cpu", "fairnas", [4] * 2 + [2] * 17),
        ("greedynas-cpu", "greedynas", [4] * 4 + [2] * 17),
    ],
)
def test_full_depth_cpu_spaces_keep_the_real_stage_layout(name, real, maps):
    cpu, full = default_config(name), default_config(real)
    assert cpu["depths"] == full["depths"] and cpu["ops"] == full["ops"]
    net = built(name)
    assert net.input_shape == (1, 16, 16) and net.num_classes == 10
    widths = [width for width, depth in zip(cpu["widths"], cpu["depths"]) for _ in range(depth)]
    x = images(net, 1)
    arch = random_archs(net, 1)[0]
    with torch.inference_mode():
        shapes = [tuple(net(x, arch, 0, k).shape[1:]) for k in range(1, net.num_blocks + 1)]
    assert shapes == [(width, size, size) for width, size in zip(widths, maps)]


def test_sample_macs_are_the_macs_of_the_same_draws():
    net = built("greedynas-cpu")
    macs = net.sample_macs(np.random.default_rng(3), 50)
    rng = np.random.default_rng(3)
    columns = [rng.integers(n, size=50) for n in net.choices]
    assert macs.tolist() == [net.macs(arch) for arch in zip(*columns)]


@pytest.mark.parametrize("name", ["spos-tiny", "greedynas-tiny"])
def test_mac_range_is_exact(name):
    net = get_supernet(name, depths=[1, 2, 1])
    every = [net.macs(arch) for arch in itertools.product(*(range(n) for n in net.choices))]
    assert net.mac_range() == (min(every), max(every))


@pytest.mark.parametrize(
    "name, low, high",
    [("spos-cpu", 322_240, 500_544), ("fairnas-cpu", 299_072, 963_104), ("greedynas-cpu", 26_720, 1_062_944)],
)
def test_full_depth_cpu_mac_ranges(name, low, high):
    assert built(name).mac_range() == (low, high)


# The default search limit of each space that has one, from its registry entry.
MAC_LIMITS = {name: e.mac_limit for name, e in registered_supernets().items() if e.mac_limit is not None}


@pytest.mark.parametrize("name", sorted(MAC_LIMITS))
def test_mac_limits_reproduce_their_share(name):
    limit = MAC_LIMITS[name]
    macs = built(name).sample_macs(np.random.default_rng(0), 20_000)
    assert abs(float((macs > limit.macs).mean()) - limit.excluded_share) < 0.01
    if limit.matches is None:
        assert limit.macs == PAPER_MAC_LIMIT
    else:
        assert abs(limit.excluded_share - MAC_LIMITS[limit.matches].excluded_share) < 0.005


def test_every_paper_family_space_has_a_mac_limit():
    families = {name.split("-")[0] for name in MAC_LIMITS}
    assert families == {"spos", "fairnas", "greedynas"}
    assert sorted(MAC_LIMITS) == sorted(n for n in available() if n.split("-")[0] in families)
    assert sorted(MAC_LIMITS) == sorted(n for n, e in registered_supernets().items() if e.family is not None)


def test_entries_carry_family_scale_and_limit():
    expected = {
        "spos": ("spos", "real", 330_000_000), "spos-cpu": ("spos", "cpu", 412_352), "spos-tiny": ("spos", "tiny", 270_336),
        "fairnas": ("fairnas", "real", 330_000_000), "fairnas-cpu": ("fairnas", "cpu", 465_632),
        "fairnas-tiny": ("fairnas", "tiny", 630_656), "greedynas": ("greedynas", "real", 330_000_000),
        "greedynas-cpu": ("greedynas", "cpu", 479_840), "greedynas-tiny": ("greedynas", "tiny", 618_816),
        "conv-tiny": (None, "tiny", None), "mbv2-tiny": (None, "tiny", None),
    }
    entries = registered_supernets()
    got = {n: (e.family, e.scale, e.mac_limit and e.mac_limit.macs) for n, e in entries.items() if n in expected}
    assert got == expected
    assert entries["fairnas-cpu"].mac_limit.matches == "fairnas" and entries["fairnas"].mac_limit.matches is None


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


@pytest.mark.parametrize("name", FULL_DEPTH_CPU)
def test_gated_supernets_start_path_independent(name):
    net = get_supernet(name)
    init_weights(net, torch.Generator().manual_seed(0))
    gates = [m for m in net.modules() if isinstance(m, GatedResidual)]
    assert gates and all(g.gate.item() == 0.0 for g in gates)
    first, second = random_archs(net, 2, seed=5)
    x = images(net, 4)
    with torch.inference_mode():
        assert torch.equal(net(x, first), net(x, second))
    with torch.no_grad():
        gates[0].gate.fill_(0.5)
    init_weights(net, torch.Generator().manual_seed(0))  # re-initialising closes the gates again
    assert gates[0].gate.item() == 0.0


def test_gated_ops_share_the_block_shortcut_and_skip_is_it():
    block = built("greedynas-cpu").blocks[4]  # first block of stage 2: stride 2, 8 -> 12 channels
    k3e3, skip = block.ops[0], block.ops[6]
    assert isinstance(k3e3, GatedResidual) and k3e3.shortcut is skip
    assert isinstance(skip, nn.Sequential) and block.op_macs[6] > 0
    assert all(op.shortcut is skip for op in block.ops[:6])


def test_full_depth_cpu_spaces_have_training_epochs():
    epochs = {n: e.train_epochs for n, e in registered_supernets().items() if e.train_epochs is not None}
    assert epochs == dict.fromkeys(FULL_DEPTH_CPU, 10)


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
@pytest.mark.parametrize("name", CPU_SCALE)
def test_cuda_channels_last_split_forward(name):
    net = get_supernet(name).cuda().eval().to(memory_format=torch.channels_last)
    x = images(net, 8, torch.channels_last).cuda()
    arch = random_archs(net, 1)[0]
    with torch.inference_mode():
        full = net(x, arch)
        for k in range(1, net.num_blocks + 1):
            assert torch.equal(net(net(x, arch, 0, k), arch, k), full)


def test_duplicate_supernet_names_are_errors_naming_the_origin():
    from supernets.registry import register_supernet

    with pytest.raises(ValueError, match=r"supernet 'spos-tiny' is already registered, by supernets\.shufflenet; pick another name"):
        register_supernet("spos-tiny", lambda **config: None, {})
    with pytest.raises(ValueError, match="supernet 'x': family must be one of spos, fairnas, greedynas or None, got 'darts'"):
        register_supernet("x", lambda **config: None, {}, family="darts")
    assert supernet_entry("spos-cpu").train_epochs == 10 and supernet_entry("spos-cpu").builtin


def test_a_factory_named_by_module_path_is_imported_when_first_built(monkeypatch):
    import supernets.registry as registry
    from supernets import register_supernet

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_supernet("by-path", "supernets.convnet:conv_supernet", default_config("conv-tiny"), "conv-tiny by path")
    entry = supernet_entry("by-path")
    assert (entry.origin, entry.description, entry.builtin) == ("supernets.convnet", "conv-tiny by path", True)
    net = get_supernet("by-path")
    assert net.spec.name == "by-path" and net.choices == get_supernet("conv-tiny").choices
    with pytest.raises(ValueError, match="must be 'module:function', got 'supernets.convnet.conv_supernet'"):
        register_supernet("bad-path", "supernets.convnet.conv_supernet", {}, "no colon")
    with pytest.raises(TypeError, match="named by a string needs a description"):
        register_supernet("no-description", "supernets.convnet:conv_supernet", {})
    assert "bad-path" not in available() and "no-description" not in available()


def test_the_built_in_spaces_name_their_factories_by_module():
    """Registration imports no torch; each entry's origin is the module that builds it (the checkpoint fingerprint's)."""
    origins = {name: entry.origin for name, entry in registered_supernets().items() if entry.builtin}
    assert set(origins.values()) == {"supernets.convnet", "supernets.mobilenet", "supernets.shufflenet"}
    assert all(isinstance(entry.maker, str) for entry in registered_supernets().values() if entry.builtin)

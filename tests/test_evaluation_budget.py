"""The reuse budget: "auto" follows the memory where the store lives; what each prefix depth needs, and whether it fits."""

from __future__ import annotations

import pytest
import torch

import supernets
from harness.config import EvalProtocol, ReuseConfig
from harness.evaluation import budget
from harness.evaluation.budget import AUTO_DEVICE_SHARE, AUTO_HOST_SHARE, format_reuse_plan, resolve_budget, reuse_plan


def test_an_integer_budget_is_used_as_given():
    assert resolve_budget(ReuseConfig(budget_bytes=12345), torch.device("cpu")) == 12345


def test_auto_takes_a_share_of_available_host_memory(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       8000000 kB\nMemFree:         100000 kB\nMemAvailable:    4000000 kB\n")
    monkeypatch.setattr(budget, "MEMINFO", meminfo)
    assert resolve_budget(ReuseConfig(), torch.device("cpu")) == int(4000000 * 1024 * AUTO_HOST_SHARE)
    # a host store of a CUDA evaluator also lives in host memory
    assert resolve_budget(ReuseConfig(location="host"), torch.device("cuda")) == int(4000000 * 1024 * AUTO_HOST_SHARE)


def test_auto_without_meminfo_falls_back_to_sysconf(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "MEMINFO", tmp_path / "missing")
    monkeypatch.setattr(budget.os, "sysconf", lambda name: {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}[name])
    assert budget.available_host_bytes() == 4096000


def test_auto_takes_a_share_of_free_device_memory(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 80 * 2**30))
    assert resolve_budget(ReuseConfig(), torch.device("cuda:0")) == int(10 * 2**30 * AUTO_DEVICE_SHARE)


def test_plan_gives_each_depths_bytes_and_whether_it_fits_a_small_budget():
    net = supernets.get_supernet("spos-tiny")
    protocol = EvalProtocol(calib_batches=2, calib_batch_size=64, val_size=1000)
    stem_bytes = 8 * 8 * 8 * 4  # stem: 8 channels at 8x8 (stride 2 on 16x16), float32
    needs = reuse_plan(net, protocol, budget_bytes=stem_bytes * 1128 - 1)
    assert [n.depth for n in needs] == list(range(net.num_blocks + 1))
    assert needs[0].bytes_per_image == stem_bytes and needs[0].images == 128 + 1000
    assert needs[1].bytes_per_image == 16 * 8 * 8 * 4 and needs[5].bytes_per_image == 32 * 4 * 4 * 4
    assert [n.fits for n in needs] == [n.nbytes <= stem_bytes * 1128 - 1 for n in needs]
    assert not needs[0].fits and needs[-1].fits
    sampled = reuse_plan(net, protocol, stem_bytes * 1128, importance_rate=0.4)
    assert sampled[0].images == 128 + 400 and sampled[0].fits
    text = format_reuse_plan(needs, 2**20)
    assert "depth  0:" in text and "does not fit: streamed" in text and text.count("\n") == net.num_blocks + 1


def test_plan_at_real_scale_spos_imagenet():
    """The issue's numbers: 0.8 MB per image in SPOS's first stage, 25,600 + 50,000 images, ~61 GB."""
    net = supernets.get_supernet("spos")
    protocol = EvalProtocol(calib_batches=200, calib_batch_size=128, val_size=0, device="cpu", bn_mode="ema")
    with pytest.raises(ValueError, match="pass val_images"):
        reuse_plan(net, protocol, 2**34)
    needs = reuse_plan(net, protocol, 16 * 2**30, val_images=50_000)
    assert {needs[d].bytes_per_image for d in (1, 2, 3, 4)} == {64 * 56 * 56 * 4}
    assert needs[3].nbytes == 802_816 * 75_600 and not needs[3].fits
    assert needs[-1].fits  # the last stage: 640 channels at 7x7

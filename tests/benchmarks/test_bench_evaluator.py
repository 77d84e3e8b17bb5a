"""Benchmark: frozen-prefix reuse vs none at frozen-prefix depths 0, N/4, N/2, 3N/4; the prefix-tree
walk vs none on a batch with no shared prefix (target: at most 5% slower); and the evaluator
against a plain forward pass of the same sub-network as a standalone module.

Measurements, not pass/fail timers: compare the times with the MAC ratios (`extra_info`) in the
pytest-benchmark table, e.g. `pytest tests/benchmarks --benchmark-only`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import supernets
from harness.config import EvalProtocol, ReuseConfig
from harness.datasets import load_dataset
from harness.evaluation import Evaluator
from searchers.base import Hints

# Smoke runs of the benchmarks (measure with --benchmark-enable): with the slow tests.
pytestmark = pytest.mark.slow

PROTOCOL = EvalProtocol()  # the default protocol: 4 x 128 calibration images, 2,000 validation images
CANDIDATES = 4


@pytest.fixture(scope="module")
def setup():
    net = supernets.get_supernet(supernets.DEFAULT_SUPERNET)  # untrained weights cost the same
    return net, load_dataset(PROTOCOL.dataset)


def _archs(net, prefix_len, seed=0):
    rng = np.random.default_rng(seed)
    prefix = tuple(int(c) for c in rng.integers(net.choices))[:prefix_len]
    return prefix, [prefix + tuple(int(c) for c in rng.integers(net.choices[prefix_len:])) for _ in range(CANDIDATES)]


@pytest.mark.parametrize("quarter", [0, 1, 2, 3])
@pytest.mark.parametrize("cached", [True, False])
def test_score_with_frozen_prefix(benchmark, setup, quarter, cached):
    net, splits = setup
    k = net.num_blocks * quarter // 4
    evaluator = Evaluator(net, splits, PROTOCOL, ReuseConfig("frozen" if cached else "none", 2**31))
    prefix, archs = _archs(net, k)
    evaluator.prepare(Hints(frozen=prefix))

    def score():
        evaluator.memo.clear()
        return evaluator.score(archs)

    benchmark.pedantic(score, rounds=3, warmup_rounds=1)
    full = sum(net.macs(a) for a in archs)
    benchmark.extra_info["prefix_blocks"] = k
    benchmark.extra_info["mac_ratio_vs_uncached"] = sum(net.macs(a, k if cached else 0) for a in archs) / full


def _unshared(net) -> list[tuple[int, ...]]:
    """One arch per first choice: no two share a block, only the stem."""
    rng = np.random.default_rng(1)
    return [(c,) + tuple(int(x) for x in rng.integers(net.choices[1:])) for c in range(net.choices[0])]


@pytest.mark.parametrize("level", ["prefix", "none"])
def test_tree_walk_on_a_batch_without_shared_prefix(benchmark, setup, level):
    """The walk's overhead: per-node BN states and one call per unit, with only the stem to share."""
    net, splits = setup
    evaluator = Evaluator(net, splits, PROTOCOL, ReuseConfig(level, 0))  # budget 0: streaming only
    archs = _unshared(net)

    def score():
        evaluator.memo.clear()
        return evaluator.score(archs)

    scores = benchmark.pedantic(score, rounds=3, warmup_rounds=1)
    assert len(scores) == len(archs)
    full = sum(net.macs(a) for a in archs)
    shared = full - (len(archs) - 1) * net.stem_macs if level == "prefix" else full
    benchmark.extra_info["mac_ratio_vs_none"] = shared / full


class Standalone(nn.Module):
    """The sub-network as a plain nn.Sequential: the reference for the evaluator's overhead."""

    def __init__(self, net, arch):
        super().__init__()
        self.body = nn.Sequential(net.stem, *(b.ops[c] for b, c in zip(net.blocks, arch)), net.head)

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("path", ["evaluator", "standalone"])
def test_uncached_candidate_vs_standalone_forward(benchmark, setup, path):
    net, splits = setup
    evaluator = Evaluator(net, splits, PROTOCOL, ReuseConfig("none"))
    _, archs = _archs(net, 0)
    arch = archs[0]
    module = Standalone(net, arch)
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def standalone():
        with torch.inference_mode():
            for bn in bns:
                bn.reset_running_stats()
                bn.train()
            for x in evaluator.data.calib:
                module(x)
            for bn in bns:
                bn.eval()
            return [module(x).argmax(1) for x in evaluator.data.full_set.chunks]

    def through_evaluator():
        evaluator.memo.clear()
        return evaluator.score([arch])

    benchmark.pedantic(through_evaluator if path == "evaluator" else standalone, rounds=5, warmup_rounds=1)
    images = PROTOCOL.calib_batches * PROTOCOL.calib_batch_size + PROTOCOL.val_size
    benchmark.extra_info["images_per_candidate"] = images

"""Evaluator: cached scores equal uncached ones to the last bit; work is counted exactly."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

import supernets
from harness.config import CacheConfig, EvalProtocol
from harness.data import DatasetSplits, load_dataset
from harness.evaluator import EvaluationError, Evaluator, importance_draw
from searchers.base import Hints
from supernets.train import TrainConfig, train_supernet

SMALL = dict(calib_batches=2, calib_batch_size=32, val_size=120, eval_batch_size=50, dataset="fashion16")


NARROW = {"widths": [8, 16, 32], "stem_width": 8, "last_width": 64}


@functools.cache
def _trained(name: str) -> tuple[dict, DatasetSplits]:
    """A narrow tiny supernet trained briefly on fashion16: candidates' accuracies really differ."""
    splits = load_dataset("fashion16")
    net = supernets.get_supernet(name, **NARROW)
    train_supernet(net, splits.train_x[:4000], splits.train_y[:4000],
                   TrainConfig(epochs=4, batch_size=64, device="cpu"), progress=False)
    return copy.deepcopy(net.state_dict()), splits


def _random_archs(net: supernets.Supernet, n: int, seed: int, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [prefix + tuple(int(rng.integers(c)) for c in net.choices[len(prefix):]) for _ in range(n)]


def _pair(name: str, protocol: EvalProtocol, **cache_kwargs):
    state, splits = _trained(name)
    net = supernets.get_supernet(name, **NARROW)
    net.load_state_dict(state)
    cached = Evaluator(net, splits, protocol, CacheConfig(**cache_kwargs))
    plain = Evaluator(net, splits, protocol, CacheConfig(enabled=False))
    return net, cached, plain


@pytest.mark.parametrize("name", ["conv-tiny", "spos-tiny", "mbv2-tiny"])
@pytest.mark.parametrize("bn_mode", ["ema", "exact"])
def test_cached_scores_equal_uncached_to_the_last_bit(name, bn_mode):
    protocol = EvalProtocol(**SMALL, bn_mode=bn_mode)
    net, cached, plain = _pair(name, protocol)
    n = net.num_blocks
    prefix_arch = _random_archs(net, 1, seed=1)[0]
    scores_seen = set()
    for depth in (1, n // 4, n // 2, 3 * n // 4, n):  # growing prefix: the cache is extended
        hints = Hints(frozen=prefix_arch[:depth])
        cached.prepare(hints)
        plain.prepare(hints)
        archs = [a for a in dict.fromkeys(_random_archs(net, 4, seed=depth, prefix=prefix_arch[:depth])) if a not in cached.memo]
        results = cached.evaluate(archs)
        assert archs and all(r.cached_depth == depth for r in results)
        expected = plain.score(archs)
        assert [r.score for r in results] == expected
        scores_seen.update(expected)
    assert len(scores_seen) >= 5, "candidates should differ, or the equality above proves little"


@pytest.mark.parametrize("channels_last", [True, False])
def test_cached_features_equal_an_uncached_forward(channels_last):
    protocol = EvalProtocol(**SMALL, channels_last=channels_last)
    net, cached, _ = _pair("spos-tiny", protocol)
    frozen = _random_archs(net, 1, seed=2)[0][:5]
    cached.prepare(Hints(frozen=frozen[:2]))
    cached.prepare(Hints(frozen=frozen))
    cache = cached._cache
    with torch.inference_mode():
        for chunk, features in zip(cached._set.chunks, cache.val_out):
            assert torch.equal(net(chunk, frozen, 0, 5), features)


def test_arch_off_the_frozen_prefix_is_scored_uncached_and_correctly():
    net, cached, plain = _pair("conv-tiny", EvalProtocol(**SMALL))
    frozen = (0, 1, 2)
    cached.prepare(Hints(frozen=frozen))
    other = (1, 1, 2) + _random_archs(net, 1, seed=3)[0][3:]
    [result] = cached.evaluate([other])
    assert result.cached_depth == 0
    assert result.score == plain.score([other])[0]


def test_work_is_counted_exactly_and_the_cache_saves_prefix_work():
    protocol = EvalProtocol(**SMALL)
    net, cached, plain = _pair("conv-tiny", protocol)
    images = protocol.calib_batches * protocol.calib_batch_size + protocol.val_size
    frozen = (2, 0, 1, 3)
    for ev in (cached, plain):
        ev.prepare(Hints(frozen=frozen))
    archs = _random_archs(net, 5, seed=4, prefix=frozen)
    cached.evaluate(archs)
    plain.evaluate(archs)
    k = len(frozen)
    assert plain.work.macs["calibration"] + plain.work.macs["validation"] == sum(net.macs(a) for a in archs) * images
    assert cached.work.macs["calibration"] + cached.work.macs["validation"] == sum(net.macs(a, k) for a in archs) * images
    # cache build = the prefix once over every image, plus the one-image size probe
    assert cached.work.macs["cache_build"] == net.macs(frozen, 0, k) * (images + 1)
    assert cached.work.block_macs["validation"][0] == 0  # the stem never runs for cached candidates
    # memo: scoring again costs nothing
    before = cached.work.total_macs
    again = cached.evaluate(archs)
    assert all(r.memo_hit and r.executed_macs == 0 for r in again)
    assert cached.work.total_macs == before


def test_work_counts_are_deterministic():
    counts = []
    for _ in range(2):
        net, cached, _ = _pair("mbv2-tiny", EvalProtocol(**SMALL))
        cached.prepare(Hints(frozen=(1, 2)))
        cached.evaluate(_random_archs(net, 3, seed=5, prefix=(1, 2)))
        counts.append(cached.work.state_dict())
    assert counts[0] == counts[1]


def test_too_small_cache_budget_falls_back_to_uncached_and_records_it():
    net, cached, plain = _pair("conv-tiny", EvalProtocol(**SMALL), budget_bytes=1000)
    cached.prepare(Hints(frozen=(0, 1)))
    archs = _random_archs(net, 3, seed=6, prefix=(0, 1))
    results = cached.evaluate(archs)
    assert all(r.cached_depth == 0 for r in results)
    assert [r.score for r in results] == plain.score(archs)
    assert "budget" in cached.cache_events[0]
    assert cached.cache_bytes == 0


def test_host_cache_gives_the_same_scores():
    net, cached, plain = _pair("conv-tiny", EvalProtocol(**SMALL), location="host")
    cached.prepare(Hints(frozen=(3, 3)))
    archs = _random_archs(net, 3, seed=7, prefix=(3, 3))
    assert cached.score(archs) == plain.score(archs)


def test_bad_archs_and_prefixes_are_clear_errors():
    net, cached, _ = _pair("conv-tiny", EvalProtocol(**SMALL))
    with pytest.raises(ValueError, match="has 12 blocks"):
        cached.score([(0, 1)])
    with pytest.raises(ValueError, match="outside 0..3"):
        cached.score([(9,) * net.num_blocks])
    with pytest.raises(ValueError, match="out of range"):
        cached.prepare(Hints(frozen=(7,)))


def test_non_finite_outputs_are_a_clear_error():
    net, cached, _ = _pair("conv-tiny", EvalProtocol(**SMALL))
    with torch.no_grad():
        for param in net.head.parameters():
            param.fill_(float("nan"))
    with pytest.raises(EvaluationError, match="non-finite"):
        cached.score([_random_archs(net, 1, seed=8)[0]])


def test_importance_sampling_is_exact_with_and_without_cache_and_recorded():
    protocol = EvalProtocol(**SMALL)
    net, cached, plain = _pair("spos-tiny", protocol)
    reference = _random_archs(net, 1, seed=9)[0]
    frozen = reference[:3]
    for ev in (cached, plain):
        ev.prepare(Hints(frozen=frozen, importance_rate=0.4), [reference])
    assert cached.subset == plain.subset
    subset = cached.subset
    assert subset.draws == round(0.4 * protocol.val_size)
    assert sum(subset.counts) == subset.draws
    assert cached.sample_size == len(subset.indices) < protocol.val_size
    archs = _random_archs(net, 4, seed=10, prefix=frozen)
    assert cached.score(archs) == plain.score(archs)
    # growing the prefix keeps the subset unless refresh is asked for
    cached.prepare(Hints(frozen=reference[:5], importance_rate=0.4), [reference])
    assert cached.subset is subset


def test_importance_refresh_redraws_at_each_further_freeze():
    protocol = EvalProtocol(**SMALL, importance_refresh=True)
    net, cached, _ = _pair("conv-tiny", protocol)
    reference = _random_archs(net, 1, seed=11)[0]
    cached.prepare(Hints(frozen=reference[:2], importance_rate=0.5), [reference])
    first = cached.subset
    cached.prepare(Hints(frozen=reference[:4], importance_rate=0.5), [reference])
    assert cached.subset is not first and cached.subset.frozen == reference[:4]


def test_importance_weighted_accuracy_is_unbiased_over_many_draws():
    """Self-normalised IS estimate of accuracy: its mean over draws matches the full-set accuracy."""
    rng = np.random.default_rng(1234)
    n = 2000
    losses = rng.gamma(0.5, 1.0, size=n)
    correct = (rng.random(n) > np.clip(losses / losses.max() * 1.5, 0, 0.95)).astype(float)
    truth = correct.mean()
    estimates = []
    for _ in range(3000):
        idx, counts, weights = importance_draw(losses, 0.4, 0.1, rng)
        estimates.append(float((weights * correct[idx]).sum() / weights.sum()))
    estimates = np.array(estimates)
    stderr = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - truth) < 4 * stderr + 1e-3  # SNIS bias is O(1/m), far below this
    assert estimates.std() < 0.02


def test_importance_sampled_scores_rank_a_population_like_full_scores():
    """Kendall tau between sampled and full-set scores of 50 candidates of graded difficulty."""
    from scipy.stats import kendalltau

    rng = np.random.default_rng(7)
    n, pop = 2000, 50
    difficulty = rng.gamma(0.5, 1.0, size=n)
    skill = np.linspace(0.5, 2.0, pop)
    correct = rng.random((pop, n)) < 1 / (1 + np.exp(-(skill[:, None] * 3 - difficulty[None, :] * 2)))
    losses = difficulty  # a reference candidate's loss tracks difficulty
    idx, counts, weights = importance_draw(losses, 0.4, 0.1, rng)
    sampled = (correct[:, idx] * weights).sum(1) / weights.sum()
    tau, _ = kendalltau(sampled, correct.mean(1))
    assert tau > 0.8

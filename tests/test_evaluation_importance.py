"""Importance sampling: exactly k distinct images, known inclusion probabilities, an unbiased-ish Hajek estimate."""

from __future__ import annotations

import numpy as np
import pytest

from harness.evaluation.importance import (
    GRID,
    check_rate,
    importance_sample,
    inclusion_grid,
    sample_size,
    sampling_probabilities,
    systematic_pps,
)


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    losses = rng.gamma(0.5, 1.0, size=n)
    correct = (rng.random(n) > np.clip(losses / losses.max() * 1.5, 0, 0.95)).astype(float)
    return losses, correct


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.4, 0.999, 1.0])
def test_exactly_k_distinct_images_whatever_the_losses(rate):
    rng = np.random.default_rng(0)
    for losses in (np.zeros(1000), np.r_[np.full(999, 1e-12), 1e12], rng.gamma(0.1, 1.0, 1000)):
        draw = importance_sample(losses, rate, 0.1, rng)
        k = sample_size(rate, 1000)
        assert len(draw.indices) == len(np.unique(draw.indices)) == k
        assert list(draw.indices) == sorted(draw.indices)
        assert np.all(draw.inclusion > 0) and np.all(draw.inclusion <= 1)
        assert np.array_equal(draw.weights, 1.0 / draw.inclusion)


def test_inclusion_probabilities_are_capped_and_sum_to_k_exactly():
    q = sampling_probabilities(np.r_[np.full(9, 1.0), 1000.0], alpha=0.1)
    grid = inclusion_grid(q, 4)
    assert int(grid.sum()) == 4 * GRID
    assert grid[-1] == GRID  # the heavy image is certain; the others share the remaining 3
    light = grid[:-1]
    assert light.max() - light.min() == 1 and abs(light.mean() / GRID - 3 / 9) < 1e-12  # 3/9 on the 2**-40 grid
    assert sample_size(0.3, 10) == 3  # 0.3 * 10 is 2.9999999999999996 in floating point


def test_each_image_is_included_with_its_inclusion_probability():
    q = sampling_probabilities(np.array([0.1, 0.2, 0.5, 1.0, 2.0, 4.0]), alpha=0.1)
    grid = inclusion_grid(q, 3)
    pi = grid / GRID
    rng = np.random.default_rng(1)
    draws = 40_000
    counts = np.zeros(len(q))
    for _ in range(draws):
        counts[systematic_pps(grid, 3, rng)] += 1
    stderr = np.sqrt(pi * (1 - pi) / draws)
    assert np.all(np.abs(counts / draws - pi) <= 4 * stderr + 1e-12)


def test_hajek_estimate_of_accuracy_is_unbiased_over_many_draws():
    """Hajek (self-normalised HT) is consistent with O(1/k) bias: its mean over draws matches the truth."""
    losses, correct = _population(2000, 1234)
    rng = np.random.default_rng(99)
    estimates, totals = [], []
    for _ in range(3000):
        draw = importance_sample(losses, 0.4, 0.1, rng)
        estimates.append(float((draw.weights * correct[draw.indices]).sum() / draw.weights.sum()))
        totals.append(float((draw.weights * correct[draw.indices]).sum()))  # Horvitz-Thompson: exactly unbiased
    estimates, totals = np.array(estimates), np.array(totals)
    for values, truth in ((estimates, correct.mean()), (totals, correct.sum())):
        stderr = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - truth) < 4 * stderr + 1e-3 * abs(truth)
    assert estimates.std() < 0.02


def test_importance_sampled_scores_rank_a_population_like_full_scores():
    """Kendall tau between sampled and full-set scores of 50 candidates of graded difficulty."""
    from scipy.stats import kendalltau

    rng = np.random.default_rng(7)
    n, pop = 2000, 50
    difficulty = rng.gamma(0.5, 1.0, size=n)
    skill = np.linspace(0.5, 2.0, pop)
    correct = rng.random((pop, n)) < 1 / (1 + np.exp(-(skill[:, None] * 3 - difficulty[None, :] * 2)))
    draw = importance_sample(difficulty, 0.4, 0.1, rng)  # a reference candidate's loss tracks difficulty
    sampled = (correct[:, draw.indices] * draw.weights).sum(1) / draw.weights.sum()
    tau, _ = kendalltau(sampled, correct.mean(1))
    assert tau > 0.8


def test_a_rate_below_one_image_is_rejected_naming_the_smallest_valid_rate():
    with pytest.raises(ValueError, match=r"scores floor\(0.0004 x 2000\) = 0 .* smallest valid rate is 1/2000 = 0.0005"):
        check_rate(0.0004, 2000)
    assert check_rate(0.0005, 2000) == 1
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        check_rate(1.5, 2000)

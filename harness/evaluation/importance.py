"""Importance sampling of the validation set (PCF-ES-IS): which images are scored, with what weights.

Design: a fixed-size sample of k = floor(rate * N) **distinct** images drawn without
replacement with inclusion probabilities pi_i proportional to q_i = (1 - a) loss_i / sum(loss)
+ a / N (a > 0 keeps every image drawable), capped at 1 iteratively so that sum(pi) = k:
randomized systematic PPS sampling (Madow 1949; Hartley & Rao 1962): the images in a random
order, their cumulative pi laid on a line, and k points u, u + 1, ..., u + k - 1 from one
uniform start u pick the images whose intervals they fall in. Each image is included with
probability exactly pi_i, and exactly k distinct images are picked.

The pi are put on an integer grid (multiples of 1 / 2**40, summing to exactly k) before the
draw, so the number of scored images is k whatever the losses or the floating point, and the
recorded pi are the design's exact inclusion probabilities.

Estimator: Hajek's (1971) self-normalised Horvitz-Thompson (1952) estimator of accuracy,
sum_s w_i y_i / sum_s w_i with weights w_i = 1 / pi_i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from supernets.base import Arch

DESIGN = "randomized systematic PPS without replacement (Madow 1949; Hartley & Rao 1962)"
ESTIMATOR = "Hajek (1971) self-normalised Horvitz-Thompson (1952), weights 1/pi"
GRID = 2**40  # inclusion probabilities are multiples of 1 / GRID: k * GRID < 2**63 for N < 8e6
_RATE_SLACK = 1e-9  # floor(rate * N + slack): 0.3 * 10 is 3, not 2.9999999999999996


def sample_size(rate: float, population: int) -> int:
    """k = floor(rate * N): the number of distinct images a sampling rate scores."""
    return math.floor(rate * population + _RATE_SLACK)


def check_rate(rate: float, population: int) -> int:
    """Return the sample size of ``rate``, or raise naming the smallest rate that scores one image."""
    if not 0 < rate <= 1:
        raise ValueError(f"importance rate must be in (0, 1], got {rate}")
    k = sample_size(rate, population)
    if k < 1:
        raise ValueError(
            f"importance rate {rate} scores floor({rate} x {population}) = 0 of the {population} validation "
            f"images; the smallest valid rate is 1/{population} = {1 / population:.6g}"
        )
    return k


@dataclass(frozen=True)
class ImportanceDraw:
    """One sample: image indices (ascending), their inclusion probabilities and Hajek weights."""

    indices: np.ndarray  # int64
    inclusion: np.ndarray  # float64 pi_i (exact: multiples of 1 / GRID)
    weights: np.ndarray  # float64 1 / pi_i


def sampling_probabilities(losses: np.ndarray, alpha: float) -> np.ndarray:
    """q_i = (1 - alpha) loss_i / sum(loss) + alpha / N (uniform when every loss is 0)."""
    n = len(losses)
    total = float(losses.sum())
    base = losses / total if total > 0 else np.full(n, 1.0 / n)
    q = (1.0 - alpha) * base + alpha / n
    return q / q.sum()


def inclusion_grid(q: np.ndarray, k: int) -> np.ndarray:
    """Inclusion probabilities k q_i capped at 1 (iteratively), as int64 multiples of 1 / GRID summing to k * GRID."""
    n = len(q)
    if not 1 <= k <= n:
        raise ValueError(f"sample size must be in 1..{n}, got {k}")
    capped = np.zeros(n, dtype=bool)
    pi = np.empty(n)
    while True:
        free = ~capped
        pi[capped] = 1.0
        pi[free] = (k - capped.sum()) * q[free] / q[free].sum()
        over = free & (pi >= 1.0)
        if not over.any():
            break
        capped |= over
    grid = np.minimum(np.floor(pi * GRID).astype(np.int64), GRID)
    # The floors lose < 1 grid unit each (rounding may also add one): largest remainders get the
    # missing units, smallest remainders give up surplus ones; ties go to the lower index.
    remainder = pi * GRID - grid
    short = k * GRID - int(grid.sum())
    if short > 0:
        room = np.flatnonzero(grid < GRID)
        grid[room[np.argsort(-remainder[room], kind="stable")][:short]] += 1
    elif short < 0:
        room = np.flatnonzero(grid > 1)
        grid[room[np.argsort(remainder[room], kind="stable")][:-short]] -= 1
    if int(grid.sum()) != k * GRID or (grid <= 0).any():
        raise ValueError(
            f"cannot give all {n} images a positive inclusion probability for a sample of {k}; "
            "raise importance_alpha"
        )
    return grid


def systematic_pps(grid: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Randomized systematic PPS: k distinct indices (ascending), index i included with prob grid[i] / GRID."""
    order = rng.permutation(len(grid))
    ends = np.cumsum(grid[order])  # exact integers; ends[-1] == k * GRID
    start = int(rng.integers(GRID))
    points = start + GRID * np.arange(k, dtype=np.int64)
    # Interval j is [ends[j-1], ends[j]); it is at most GRID long, so no two points share one.
    picked = order[np.searchsorted(ends, points, side="right")]
    return np.sort(picked)


def importance_sample(losses: np.ndarray, rate: float, alpha: float, rng: np.random.Generator) -> ImportanceDraw:
    """Draw k = floor(rate * N) distinct images with pi proportional to the loss-based q; Hajek weights."""
    k = check_rate(rate, len(losses))
    grid = inclusion_grid(sampling_probabilities(losses, alpha), k)
    indices = systematic_pps(grid, k, rng)
    inclusion = grid[indices] / GRID
    return ImportanceDraw(indices, inclusion, 1.0 / inclusion)


@dataclass(frozen=True)
class ImportanceSubset:
    """The scored validation subset of a run, as recorded in run.json."""

    indices: tuple[int, ...]  # distinct validation indices, ascending
    inclusion: tuple[float, ...]  # pi_i
    weights: tuple[float, ...]  # 1 / pi_i
    rate: float
    population: int  # N: validation images it was drawn from
    reference_arch: Arch  # the arch whose per-image losses gave q (carries the frozen prefix)
    frozen: Arch  # the frozen prefix at which it was drawn

    @property
    def size(self) -> int:
        """k: the number of scored images."""
        return len(self.indices)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, with the design and estimator named."""
        return {
            "design": DESIGN,
            "estimator": ESTIMATOR,
            "indices": list(self.indices),
            "inclusion": list(self.inclusion),
            "weights": list(self.weights),
            "rate": self.rate,
            "population": self.population,
            "size": self.size,
            "reference_arch": list(self.reference_arch),
            "frozen": list(self.frozen),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportanceSubset:
        """Inverse of ``to_dict``."""
        return cls(
            tuple(int(i) for i in data["indices"]),
            tuple(float(p) for p in data["inclusion"]),
            tuple(float(w) for w in data["weights"]),
            float(data["rate"]),
            int(data["population"]),
            tuple(int(c) for c in data["reference_arch"]),
            tuple(int(c) for c in data["frozen"]),
        )

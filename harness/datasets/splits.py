"""What every dataset loader returns: fixed, normalised train / val / test tensors, and the seeded splits behind them.

A :class:`DatasetSplits` holds float32 NCHW tensors normalised per channel, in a fixed order that
depends only on the dataset, its options and the seed. The helpers make the splits of integer
pixel arrays exactly (stratified indices from the bit generator's raw stream, histogram-exact
channel statistics), so they do not depend on NumPy version, summation order or CPU.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

# torch is imported inside the functions that make tensors: the registry (pcfes list, name checks)
# then answers without it.
if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DatasetSplits:
    """Train / validation / optional test tensors of one dataset, normalised, in a fixed order."""

    name: str
    train_x: torch.Tensor  # float32 NCHW, normalised
    train_y: torch.Tensor  # int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    num_classes: int
    input_shape: tuple[int, int, int]  # C, H, W
    source: str  # where the data came from

    def __post_init__(self) -> None:
        import torch

        if (self.test_x is None) != (self.test_y is None):
            raise ValueError(f"{self.name}: test_x and test_y must both be given or both be None")
        splits = [("train", self.train_x, self.train_y), ("val", self.val_x, self.val_y)]
        if self.test_x is not None and self.test_y is not None:
            splits.append(("test", self.test_x, self.test_y))
        for split, x, y in splits:
            if x.dtype != torch.float32 or y.dtype != torch.int64:
                raise ValueError(f"{self.name} {split}: want float32 images and int64 labels, got {x.dtype} / {y.dtype}")
            if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.input_shape) or y.shape != (x.shape[0],):
                raise ValueError(
                    f"{self.name} {split}: images {tuple(x.shape)} and labels {tuple(y.shape)} do not match "
                    f"input shape {tuple(self.input_shape)}"
                )
            if x.shape[0] == 0:
                # An empty split scores every arch NaN (a mean over no images), which no result file can hold.
                fix = "give it at least one image" if split != "test" else "give it images or pass no test split (None)"
                raise ValueError(f"{self.name}: the {split} split is empty; {fix}")


@dataclass(frozen=True)
class RawSplit:
    """One split as stored: integer pixels NCHW and integer labels."""

    x: np.ndarray
    y: np.ndarray


def stratified_split(labels: np.ndarray, sizes: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes, each split across classes in proportion; the rest last.

    Each returned array is in a seeded random order (so any prefix is a mixed sample). The order
    comes from the bit generator's raw stream, which NumPy keeps stable across versions, unlike
    ``Generator.permutation``; a rebuild of the embedded data therefore gives the same indices.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"cannot take splits of sizes {list(sizes)} from {n} items")
    keys = rng.bit_generator.random_raw(n)
    # A second, independent draw orders each split: ordering by ``keys`` would cluster classes,
    # because each split holds a band of every class's key ranks.
    order = rng.bit_generator.random_raw(n)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.stack([_apportion(size, counts) for size in sizes]) if sizes else np.zeros((0, len(classes)), int)
    short = quotas.sum(axis=0) > counts
    if short.any():
        raise ValueError(f"classes {classes[short].tolist()} have too few items for splits of sizes {list(sizes)}")
    parts: list[list[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    for c, cls in enumerate(classes):
        members = np.flatnonzero(labels == cls)
        members = members[np.argsort(keys[members], kind="stable")]
        bounds = np.concatenate([[0], np.cumsum(quotas[:, c]), [len(members)]])
        for s in range(len(sizes) + 1):
            parts[s].append(members[bounds[s] : bounds[s + 1]])
    out = []
    for chunks in parts:
        idx = np.concatenate(chunks)
        out.append(idx[np.argsort(order[idx], kind="stable")])
    return out


def _apportion(total: int, counts: np.ndarray) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainders, ties to lower class)."""
    exact = counts * total
    quota = exact // counts.sum()
    remainder = exact - quota * counts.sum()
    extra = total - quota.sum()
    quota[np.argsort(-remainder, kind="stable")[:extra]] += 1
    return quota


def channel_stats(x: np.ndarray, max_value: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std of integer NCHW pixels scaled by ``1/max_value`` (float64)."""
    means, stds = [], []
    values = np.arange(max_value + 1, dtype=np.int64)
    for c in range(x.shape[1]):
        # A histogram gives exact integer sums, so the result does not depend on summation order.
        counts = np.bincount(x[:, c].ravel(), minlength=max_value + 1).astype(np.int64)
        n, s, ss = int(counts.sum()), int(counts @ values), int(counts @ values**2)
        means.append(s / (n * max_value))
        stds.append(math.sqrt(n * ss - s * s) / (n * max_value))
    return np.array(means), np.array(stds)


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes of arrays: a content hash independent of the file format."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def normalised_splits(
    name: str,
    train: RawSplit,
    val: RawSplit,
    test: RawSplit | None,
    *,
    num_classes: int,
    max_value: int,
    mean: Sequence[float],
    std: Sequence[float],
    source: str,
) -> DatasetSplits:
    import torch

    def images(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x.astype(np.float32)).div_(max_value)  # a writable copy, even of read-only input
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        return t.sub_(m).div_(s)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64).copy())

    return DatasetSplits(
        name=name,
        train_x=images(train.x),
        train_y=labels(train.y),
        val_x=images(val.x),
        val_y=labels(val.y),
        test_x=None if test is None else images(test.x),
        test_y=None if test is None else labels(test.y),
        num_classes=num_classes,
        input_shape=tuple(int(d) for d in train.x.shape[1:]),  # type: ignore[arg-type]
        source=source,
    )


def split_by_train_stats(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    test: RawSplit | None,
    *,
    val_size: int,
    seed: int,
    max_value: int,
    source: str,
) -> DatasetSplits:
    """Carve a stratified validation split from (x, y) and normalise everything with train statistics."""
    positive_option("val_size", val_size)
    val_idx, train_idx = stratified_split(y, [val_size], np.random.default_rng(seed))
    train = RawSplit(x[train_idx], y[train_idx])
    mean, std = channel_stats(train.x, max_value)
    return normalised_splits(
        name, train, RawSplit(x[val_idx], y[val_idx]), test,
        num_classes=int(y.max()) + 1, max_value=max_value, mean=mean, std=std, source=source,
    )


def positive_option(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option {option} must be a positive int, got {value!r}")
    return value

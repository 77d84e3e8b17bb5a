"""Named datasets as fixed, normalised tensors, and the seeded calibration batches drawn from them.

Every dataset comes back as a :class:`DatasetSplits` of float32 NCHW tensors normalised per
channel, in a fixed order that depends only on the dataset, its options and ``seed``. The
default, ``fashion16``, ships inside the package; the others read standard files from disk.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# torch is imported inside the functions that make tensors: the registry below (pcfes list, name
# checks) then answers without it.
if TYPE_CHECKING:
    import torch

# available_datasets and dataset_options are re-exported: callers find them beside load_dataset.
from harness.dataset_registry import available_datasets, dataset_entry, dataset_options, register_dataset  # noqa: F401

log = logging.getLogger(__name__)

DEFAULT_DATASET = "fashion16"
DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
FASHION16_FILE = DATASETS_DIR / "fashion16.npz"
FASHION16_KEYS = tuple(f"{s}_{k}" for s in ("train", "val", "test") for k in ("x", "y", "idx")) + ("mean", "std")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
# Every global the official CIFAR-10 python batches name (NumPy 1.x wrote them; NumPy 2.x re-pickles
# under numpy._core): reading a batch admits these and nothing else, so a data file cannot run code.
CIFAR10_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"})
# Standard ImageNet statistics: a subset's own statistics would shift with max_train.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_FASHION_MNIST_FIX = (
    "install the Debian package (`apt-get install dataset-fashion-mnist`) or pass root=DIR "
    "(`--data-root DIR`), a folder holding the four Fashion-MNIST IDX files"
)
_CIFAR10_FIX = (
    "download and unpack https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and pass root=DIR "
    f"(`--data-root DIR`), the {CIFAR10_FOLDER} folder or its parent"
)


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
class _RawSplit:
    """One split as stored: integer pixels NCHW and integer labels."""

    x: np.ndarray
    y: np.ndarray


def load_dataset(name: str, *, root: str | Path | None = None, seed: int = 0, **options: Any) -> DatasetSplits:
    """Load a named dataset; ``seed`` fixes the splits made at load time (fashion16's split is fixed at build)."""
    spec = dataset_entry(name)
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        valid = ", ".join(sorted(spec.defaults)) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; valid options: {valid}")
    if root is not None and str(root) != "" and not spec.takes_root:
        raise ValueError(f"dataset {name!r} is built in and takes no root; got root={str(root)!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    root_path = Path(root).expanduser() if root is not None and str(root) != "" else None
    splits = spec.loader(root_path, seed, **{**spec.defaults, **options})
    log.info(
        "dataset %s: %d train / %d val / %s test images of shape %s from %s",
        name, len(splits.train_x), len(splits.val_x),
        "no" if splits.test_x is None else len(splits.test_x), splits.input_shape, splits.source,
    )
    return splits


def calibration_batches(
    train_x: torch.Tensor, count: int, size: int, seed: int, *, augment: bool = True
) -> list[torch.Tensor]:
    """Draw ``count`` batches of ``size`` training images in a fixed order from ``torch.Generator(seed)``.

    Images are drawn without replacement; when ``count * size`` exceeds the split, further passes
    over fresh permutations follow (a batch straddling two passes may repeat an image). ``augment``
    applies a seeded random horizontal flip and a shift of up to 1/8 of the image side
    (edge-replicated), a cheap stand-in for SPOS's training crops.
    """
    if train_x.dim() != 4 or train_x.shape[0] == 0:
        raise ValueError(f"train_x must be a non-empty NCHW tensor, got shape {tuple(train_x.shape)}")
    for label, value in (("count", count), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"calibration batch {label} must be a positive int, got {value!r}")
    n = train_x.shape[0]
    if size > n:
        raise ValueError(f"calibration batch size {size} exceeds the {n} training images")
    import torch

    gen = torch.Generator().manual_seed(seed)
    passes = -(-count * size // n)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(passes)])[: count * size]
    batches = []
    for idx in order.view(count, size):
        batch = train_x.index_select(0, idx.to(train_x.device))
        batches.append(_augment(batch, gen) if augment else batch)
    return batches


def _augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    import torch

    b, c, h, w = batch.shape
    pad = max(1, min(h, w) // 8)
    # Draw on the CPU generator so the batches do not depend on the device.
    flip = (torch.rand(b, generator=gen) < 0.5).to(batch.device)
    shift = torch.randint(-pad, pad + 1, (b, 2), generator=gen).to(batch.device)
    # Clamped source indices are an edge-replicating shift; one gather applies flip and shift together
    # (F.pad(mode="replicate") is ~100x slower on single-channel CPU batches).
    rows = (shift[:, :1] + torch.arange(h, device=batch.device)).clamp_(0, h - 1)
    cols = (shift[:, 1:] + torch.arange(w, device=batch.device)).clamp_(0, w - 1)
    cols = torch.where(flip[:, None], w - 1 - cols, cols)
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return batch.flatten(2).gather(2, flat).view(b, c, h, w)


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


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != math.prod(shape):
        raise ValueError(f"{path}: header says shape {shape} but holds {len(data) - offset} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _splits(
    name: str,
    train: _RawSplit,
    val: _RawSplit,
    test: _RawSplit | None,
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


def _split_by_train_stats(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    test: _RawSplit | None,
    *,
    val_size: int,
    seed: int,
    max_value: int,
    source: str,
) -> DatasetSplits:
    """Carve a stratified validation split from (x, y) and normalise everything with train statistics."""
    _positive("val_size", val_size)
    val_idx, train_idx = stratified_split(y, [val_size], np.random.default_rng(seed))
    train = _RawSplit(x[train_idx], y[train_idx])
    mean, std = channel_stats(train.x, max_value)
    return _splits(
        name, train, _RawSplit(x[val_idx], y[val_idx]), test,
        num_classes=int(y.max()) + 1, max_value=max_value, mean=mean, std=std, source=source,
    )


def _positive(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option {option} must be a positive int, got {value!r}")
    return value


def _load_fashion16(root: Path | None, seed: int) -> DatasetSplits:
    if not FASHION16_FILE.is_file():
        raise FileNotFoundError(
            f"embedded dataset file {FASHION16_FILE} is missing; reinstall pcfes-bench or rebuild it with "
            "`python scripts/build_fashion16.py` (needs `apt-get install dataset-fashion-mnist`)"
        )
    with np.load(FASHION16_FILE, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    missing = sorted(set(FASHION16_KEYS) - set(arrays))
    if missing:
        raise ValueError(f"{FASHION16_FILE} lacks arrays {missing}; rebuild it with `python scripts/build_fashion16.py`")
    raw = {s: _RawSplit(arrays[f"{s}_x"][:, None], arrays[f"{s}_y"]) for s in ("train", "val", "test")}
    return _splits(
        "fashion16", raw["train"], raw["val"], raw["test"],
        num_classes=10, max_value=255, mean=arrays["mean"], std=arrays["std"],
        source=f"embedded fashion16.npz (sha256 {arrays_sha256(arrays)})",
    )


def _load_digits(root: Path | None, seed: int, *, val_size: int, test_size: int) -> DatasetSplits:
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[:, None]  # pixel values 0..16
    y = bunch.target.astype(np.int64)
    _positive("test_size", test_size)
    test_idx, rest = stratified_split(y, [test_size], np.random.default_rng([seed, 1]))
    return _split_by_train_stats(
        "digits", x[rest], y[rest], _RawSplit(x[test_idx], y[test_idx]),
        val_size=val_size, seed=seed, max_value=16,
        source=f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})",
    )


def _load_fashion_mnist(root: Path | None, seed: int, *, val_size: int) -> DatasetSplits:
    folder = root or FASHION_MNIST_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {folder} does not exist; {_FASHION_MNIST_FIX}")
    paths: dict[str, Path] = {}
    for key, stem in FASHION_MNIST_FILES.items():
        found = [p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()]
        if found:
            paths[key] = found[0]
    missing = [f"{stem}.gz" for key, stem in FASHION_MNIST_FILES.items() if key not in paths]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST folder {folder} lacks {', '.join(missing)}; {_FASHION_MNIST_FIX}")
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"Fashion-MNIST {split} files in {folder} disagree: images {x.shape}, labels {y.shape}")
    return _split_by_train_stats(
        "fashion-mnist", arrays["train_x"][:, None], arrays["train_y"].astype(np.int64),
        _RawSplit(arrays["test_x"][:, None], arrays["test_y"].astype(np.int64)),
        val_size=val_size, seed=seed, max_value=255, source=str(folder),
    )


def _load_cifar10(root: Path | None, seed: int, *, val_size: int) -> DatasetSplits:
    if root is None:
        raise ValueError(f"dataset 'cifar10' needs its files: {_CIFAR10_FIX}")
    folder = root / CIFAR10_FOLDER if (root / CIFAR10_FOLDER).is_dir() else root
    if not folder.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder {folder} does not exist; {_CIFAR10_FIX}")
    missing = [name for name in CIFAR10_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 folder {folder} lacks {', '.join(missing)}; {_CIFAR10_FIX}")
    batches = {name: _read_cifar_batch(folder / name) for name in CIFAR10_FILES}
    train = [batches[name] for name in CIFAR10_FILES[:-1]]
    return _split_by_train_stats(
        "cifar10", np.concatenate([b.x for b in train]), np.concatenate([b.y for b in train]), batches["test_batch"],
        val_size=val_size, seed=seed, max_value=255, source=str(folder),
    )


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`CIFAR10_PICKLE_GLOBALS`, so loading a batch never runs its code."""

    def find_class(self, module: str, name: str, /) -> Any:
        if (module, name) not in CIFAR10_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}, which no CIFAR-10 batch holds")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> _RawSplit:
    with open(path, "rb") as f:
        try:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        # Allowed globals called with bad arguments (a bogus dtype, say) fail with TypeError and the like.
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
            raise ValueError(f"{path} is not a CIFAR-10 python batch file: {err}; {_CIFAR10_FIX}") from err
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 python batch: want a dict with b'data' and b'labels'")
    x = np.asarray(batch[b"data"])
    y = np.asarray(batch[b"labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(x) != len(y):
        raise ValueError(f"{path}: want uint8 data of shape (N, 3072) and N labels, got {x.dtype} {x.shape} and {y.shape}")
    return _RawSplit(x.reshape(-1, 3, 32, 32), y)


def _load_imagefolder(
    root: Path | None, seed: int, *, image_size: int, max_train: int | None, max_val: int | None
) -> DatasetSplits:
    fix = "pass root=DIR (`--data-root DIR`) holding train/<class>/*.jpg and val/<class>/*.jpg"
    if root is None:
        raise ValueError(f"dataset 'imagefolder' needs a folder: {fix}")
    _positive("image_size", image_size)
    for option, value in (("max_train", max_train), ("max_val", max_val)):
        if value is not None:
            _positive(option, value)
    missing = [str(root / split) for split in ("train", "val") if not (root / split).is_dir()]
    if missing:
        raise FileNotFoundError(f"image folder(s) {', '.join(missing)} do not exist; {fix}")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"{root / 'train'} has no class folders; {fix}")
    unknown = sorted(p.name for p in (root / "val").iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise ValueError(f"{root / 'val'} has classes not in train: {', '.join(unknown[:5])}")
    rng = np.random.default_rng(seed)
    files = {split: _list_images(root / split, classes) for split in ("train", "val")}
    chosen = {
        split: _subset(paths, labels, limit, rng)
        for (split, (paths, labels)), limit in zip(files.items(), (max_train, max_val))
    }
    transforms = _torchvision_transforms()
    raw = {split: _decode_images(paths, labels, image_size, transforms, split) for split, (paths, labels) in chosen.items()}
    return _splits(
        "imagefolder", raw["train"], raw["val"], None,
        num_classes=len(classes), max_value=255, mean=IMAGENET_MEAN, std=IMAGENET_STD, source=str(root),
    )


def _list_images(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for label, cls in enumerate(classes):
        if (folder / cls).is_dir():
            found = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += found
            labels += [label] * len(found)
    if not paths:
        raise FileNotFoundError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class folders")
    return paths, np.array(labels, dtype=np.int64)


def _subset(
    paths: list[Path], labels: np.ndarray, limit: int | None, rng: np.random.Generator
) -> tuple[list[Path], np.ndarray]:
    """A stratified subset of at most ``limit`` images, in seeded random order (so val prefixes mix classes)."""
    idx = stratified_split(labels, [min(limit or len(paths), len(paths))], rng)[0]
    return [paths[i] for i in idx], labels[idx]


def _torchvision_transforms() -> Any:
    import torch

    try:
        import torchvision.transforms.functional as tf
    except (ImportError, OSError, RuntimeError) as err:
        raise ImportError(
            f"dataset 'imagefolder' needs torchvision ({type(err).__name__}: {err}); install the build matching "
            f"torch {torch.__version__} with `pip install torchvision` (or `pip install pcfes-bench[imagefolder]`)"
        ) from err
    return tf


def _decode_images(paths: list[Path], labels: np.ndarray, image_size: int, tf: Any, split: str) -> _RawSplit:
    from PIL import Image
    from tqdm import tqdm

    # Evaluation-style preprocessing (resize the short side to size/0.875, centre crop), as in SPOS.
    resize = round(image_size / 0.875)
    x = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=f"decode {split}", unit="img", leave=False)):
        with Image.open(path) as img:
            img = tf.center_crop(tf.resize(img.convert("RGB"), [resize]), [image_size, image_size])
            x[i] = tf.pil_to_tensor(img).numpy()
    return _RawSplit(x, labels)


def _load_synthetic(
    root: Path | None, seed: int, *, input_shape: Sequence[int], num_classes: int, n_train: int, n_val: int, n_test: int
) -> DatasetSplits:
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"option input_shape must be three positive ints (C, H, W), got {input_shape!r}")
    for option, value in (("num_classes", num_classes), ("n_train", n_train), ("n_val", n_val)):
        _positive(option, value)
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 0:
        raise ValueError(f"option n_test must be a non-negative int (0 = no test split), got {n_test!r}")
    import torch

    gen = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn((n, *shape), generator=gen), torch.randint(0, num_classes, (n,), generator=gen)

    (train_x, train_y), (val_x, val_y) = draw(n_train), draw(n_val)
    test_x, test_y = draw(n_test) if n_test else (None, None)
    return DatasetSplits(
        "synthetic", train_x, train_y, val_x, val_y, test_x, test_y,
        num_classes=num_classes, input_shape=shape,  # type: ignore[arg-type]
        source=f"synthetic standard-normal images (seed {seed})",
    )


# Registration order is the order of available_datasets(): the embedded default first.
register_dataset("fashion16", _load_fashion16, takes_root=False)
register_dataset("digits", _load_digits, defaults={"val_size": 300, "test_size": 300}, takes_root=False)
register_dataset("fashion-mnist", _load_fashion_mnist, defaults={"val_size": 5000}, takes_root=True)
register_dataset("cifar10", _load_cifar10, defaults={"val_size": 5000}, takes_root=True)
register_dataset(
    "imagefolder", _load_imagefolder, defaults={"image_size": 224, "max_train": None, "max_val": None}, takes_root=True
)
register_dataset(
    "synthetic",
    _load_synthetic,
    defaults={"input_shape": (3, 32, 32), "num_classes": 10, "n_train": 512, "n_val": 256, "n_test": 256},
    takes_root=False,
)

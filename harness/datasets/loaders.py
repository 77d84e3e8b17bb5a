"""The built-in datasets: the embedded ``fashion16`` default, and loaders of standard files from disk.

Each loader is registered here (``harness.datasets.registry``); registration order is the order of
``available_datasets()``, the embedded default first.
"""

from __future__ import annotations

import gzip
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.datasets.registry import register_dataset
from harness.datasets.splits import (
    DatasetSplits,
    RawSplit,
    arrays_sha256,
    normalised_splits,
    positive_option,
    split_by_train_stats,
    stratified_split,
)

if TYPE_CHECKING:
    import torch

DATASETS_DIR = Path(__file__).resolve().parent  # the package folder holds the embedded data
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
    raw = {s: RawSplit(arrays[f"{s}_x"][:, None], arrays[f"{s}_y"]) for s in ("train", "val", "test")}
    return normalised_splits(
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
    positive_option("test_size", test_size)
    test_idx, rest = stratified_split(y, [test_size], np.random.default_rng([seed, 1]))
    return split_by_train_stats(
        "digits", x[rest], y[rest], RawSplit(x[test_idx], y[test_idx]),
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
    return split_by_train_stats(
        "fashion-mnist", arrays["train_x"][:, None], arrays["train_y"].astype(np.int64),
        RawSplit(arrays["test_x"][:, None], arrays["test_y"].astype(np.int64)),
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
    return split_by_train_stats(
        "cifar10", np.concatenate([b.x for b in train]), np.concatenate([b.y for b in train]), batches["test_batch"],
        val_size=val_size, seed=seed, max_value=255, source=str(folder),
    )


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`CIFAR10_PICKLE_GLOBALS`, so loading a batch never runs its code."""

    def find_class(self, module: str, name: str, /) -> Any:
        if (module, name) not in CIFAR10_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}, which no CIFAR-10 batch holds")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> RawSplit:
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
    return RawSplit(x.reshape(-1, 3, 32, 32), y)


def _load_imagefolder(
    root: Path | None, seed: int, *, image_size: int, max_train: int | None, max_val: int | None
) -> DatasetSplits:
    fix = "pass root=DIR (`--data-root DIR`) holding train/<class>/*.jpg and val/<class>/*.jpg"
    if root is None:
        raise ValueError(f"dataset 'imagefolder' needs a folder: {fix}")
    positive_option("image_size", image_size)
    for option, value in (("max_train", max_train), ("max_val", max_val)):
        if value is not None:
            positive_option(option, value)
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
    return normalised_splits(
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


def _decode_images(paths: list[Path], labels: np.ndarray, image_size: int, tf: Any, split: str) -> RawSplit:
    from PIL import Image
    from tqdm import tqdm

    # Evaluation-style preprocessing (resize the short side to size/0.875, centre crop), as in SPOS.
    resize = round(image_size / 0.875)
    x = np.empty((len(paths), 3, image_size, image_size), dtype=np.uint8)
    for i, path in enumerate(tqdm(paths, desc=f"decode {split}", unit="img", leave=False)):
        with Image.open(path) as img:
            img = tf.center_crop(tf.resize(img.convert("RGB"), [resize]), [image_size, image_size])
            x[i] = tf.pil_to_tensor(img).numpy()
    return RawSplit(x, labels)


def _load_synthetic(
    root: Path | None, seed: int, *, input_shape: Sequence[int], num_classes: int, n_train: int, n_val: int, n_test: int,
    name: str = "synthetic",
) -> DatasetSplits:
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"option input_shape must be three positive ints (C, H, W), got {input_shape!r}")
    for option, value in (("num_classes", num_classes), ("n_train", n_train), ("n_val", n_val)):
        positive_option(option, value)
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 0:
        raise ValueError(f"option n_test must be a non-negative int (0 = no test split), got {n_test!r}")
    import torch

    gen = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn((n, *shape), generator=gen), torch.randint(0, num_classes, (n,), generator=gen)

    (train_x, train_y), (val_x, val_y) = draw(n_train), draw(n_val)
    test_x, test_y = draw(n_test) if n_test else (None, None)
    return DatasetSplits(
        name, train_x, train_y, val_x, val_y, test_x, test_y,
        num_classes=num_classes, input_shape=shape,  # type: ignore[arg-type]
        source=f"synthetic standard-normal images (seed {seed})",
    )


def _load_synthetic_224(root: Path | None, seed: int, **options: Any) -> DatasetSplits:
    """Seeded standard-normal 3x224x224 images in 1000 classes: the real-size spaces' shape (their cost bench)."""
    # Its own name, because a run config names a dataset but passes it no options.
    return _load_synthetic(root, seed, **options, name="synthetic-224")


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
register_dataset(
    "synthetic-224",
    _load_synthetic_224,
    defaults={"input_shape": (3, 224, 224), "num_classes": 1000, "n_train": 256, "n_val": 256, "n_test": 64},
    takes_root=False,
)

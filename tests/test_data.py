"""Named datasets, the embedded fashion16 file and its build script, calibration batches."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import os
import pickle
import pickletools
import re
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import harness.datasets.loaders
from harness import cli
from harness.config import EvalProtocol
from harness.datasets import (
    DatasetSplits,
    arrays_sha256,
    available_datasets,
    channel_stats,
    dataset_options,
    load_dataset,
    stratified_split,
)
from harness.datasets.loaders import FASHION16_FILE, FASHION16_KEYS, FASHION_MNIST_DIR, read_idx
from supernets.checkpoint import data_hash

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_fashion16.py"


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_fashion16", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fashion16() -> DatasetSplits:
    return load_dataset("fashion16")


@pytest.fixture(scope="module")
def fashion16_arrays() -> dict[str, np.ndarray]:
    with np.load(FASHION16_FILE) as npz:
        return {key: npz[key] for key in npz.files}


def test_registry_names_every_dataset_default_first() -> None:
    assert available_datasets() == ["fashion16", "digits", "fashion-mnist", "cifar10", "imagefolder", "synthetic", "synthetic-224"]
    assert dataset_options("cifar10") == {"val_size": 5000}
    assert dataset_options("fashion16") == {}


def test_a_registered_dataset_loads_with_its_defaults(monkeypatch) -> None:
    from harness.datasets import registry as dataset_registry

    monkeypatch.setattr(dataset_registry, "_REGISTRY", dict(dataset_registry._REGISTRY))
    seen = []

    @dataset_registry.register_dataset("user-tiny", defaults={"n": 3}, takes_root=True)
    def tiny(root, seed, *, n):
        """Three synthetic images."""
        seen.append((root, seed, n))
        return load_dataset("synthetic", seed=seed, n_train=n, n_val=n, n_test=n, input_shape=(1, 4, 4))

    entry = dataset_registry.dataset_entry("user-tiny")
    assert (entry.description, entry.origin, entry.takes_root, entry.builtin) == ("Three synthetic images.", __name__, True, False)
    assert dataset_registry.dataset_entry("cifar10").builtin
    assert len(load_dataset("user-tiny", root="/data", seed=2, n=4).train_x) == 4
    assert seen == [(Path("/data"), 2, 4)]
    assert available_datasets()[-1] == "user-tiny"
    with pytest.raises(ValueError, match=r"dataset 'user-tiny' is already registered, by .*test_data; pick another name"):
        dataset_registry.register_dataset("user-tiny", tiny, takes_root=False)
    with pytest.raises(ValueError, match="unknown dataset 'nope'; available: fashion16, digits"):
        load_dataset("nope")


# --- fashion16 -------------------------------------------------------------------------------


def test_fashion16_shapes_dtypes_and_balanced_classes(fashion16: DatasetSplits) -> None:
    s = fashion16
    assert (s.name, s.num_classes, s.input_shape) == ("fashion16", 10, (1, 16, 16))
    assert s.test_x is not None and s.test_y is not None
    for x, y, n in ((s.train_x, s.train_y, 20_000), (s.val_x, s.val_y, 2_000), (s.test_x, s.test_y, 10_000)):
        assert x.shape == (n, 1, 16, 16) and x.dtype == torch.float32 and x.is_contiguous()
        assert y.shape == (n,) and y.dtype == torch.int64
        assert torch.bincount(y, minlength=10).tolist() == [n // 10] * 10
    # Normalised with the train split's own statistics.
    assert abs(s.train_x.mean().item()) < 1e-4
    assert abs(s.train_x.std(unbiased=False).item() - 1) < 1e-4


def test_fashion16_loads_identically_and_names_its_content_hash(
    fashion16: DatasetSplits, fashion16_arrays: dict[str, np.ndarray]
) -> None:
    again = load_dataset("fashion16", seed=7)  # the split is fixed at build time: seed changes nothing
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(fashion16, field), getattr(again, field)), field
    assert fashion16.source == f"embedded fashion16.npz (sha256 {arrays_sha256(fashion16_arrays)})"
    # The stored pixels are what was loaded, after normalisation.
    raw = torch.from_numpy(fashion16_arrays["val_x"].astype(np.float32))[:, None] / 255
    mean, std = fashion16_arrays["mean"][0], fashion16_arrays["std"][0]
    assert torch.allclose(fashion16.val_x, (raw - mean) / std, atol=1e-6)
    assert torch.equal(fashion16.val_y, torch.from_numpy(fashion16_arrays["val_y"].astype(np.int64)))


def test_fashion16_file_is_small_complete_and_splits_do_not_overlap(fashion16_arrays: dict[str, np.ndarray]) -> None:
    assert FASHION16_FILE.stat().st_size < 5_000_000
    assert sorted(fashion16_arrays) == sorted(FASHION16_KEYS)
    a = fashion16_arrays
    train, val, test = (set(a[k].tolist()) for k in ("train_idx", "val_idx", "test_idx"))
    assert (len(train), len(val), len(test)) == (20_000, 2_000, 10_000)  # no index used twice within a split
    assert not train & val  # train and val come from the same 60k file
    assert max(train | val) < 60_000 and max(test) < 10_000
    assert (FASHION16_FILE.parent / "LICENSE-fashion-mnist.txt").read_text().count("Zalando SE") == 1


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason=f"{FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_fashion16_train_val_and_the_first_release_test_split_are_unchanged(fashion16_arrays: dict[str, np.ndarray]) -> None:
    # Hashes of the first release (2,000 test images): its checkpoints and search-split scores stay valid.
    first_release = {
        "train_x": "fd6c7fdf62d562fb", "train_y": "f043b4e1f71c42d7", "train_idx": "c1eafa6e87f4b6a9",
        "val_x": "820afd9b38525557", "val_y": "d31854c3f87d0966", "val_idx": "62b69ba89eb99a55",
        "mean": "76697fc8053b3d9d", "std": "360f5069732ea084",
    }
    for key, digest in first_release.items():
        assert arrays_sha256({key: fashion16_arrays[key]})[:16] == digest, key
    prefix = {key: fashion16_arrays[key][:2_000] for key in ("test_x", "test_y", "test_idx")}
    assert [arrays_sha256({k: v})[:16] for k, v in prefix.items()] == ["d81b6fa2a49c11c8", "9ea2addc5d06084a", "5d695d0051d01a9d"]


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason=f"{FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_shipped_fashion16_equals_a_fresh_rebuild(fashion16_arrays: dict[str, np.ndarray]) -> None:
    rebuilt = _build_script().build(FASHION_MNIST_DIR)
    assert sorted(rebuilt) == sorted(fashion16_arrays)
    for key, value in rebuilt.items():
        assert value.dtype == fashion16_arrays[key].dtype, key
        np.testing.assert_array_equal(value, fashion16_arrays[key], err_msg=key)


def test_downsample_is_exact_area_average_rounding_half_up() -> None:
    script = _build_script()
    windows = [np.flatnonzero(row).tolist() for row in script.area_matrix(28, 16)]
    # torch's adaptive windows [floor(28i/16), ceil(28(i+1)/16)): overlapping where 28/16 is fractional.
    assert windows[:4] == [[0, 1], [1, 2, 3], [3, 4, 5], [5, 6]] and windows[-1] == [26, 27]
    img = np.zeros((1, 28, 28), dtype=np.uint8)
    img[0, 0, 0] = 2  # top-left 2x2 window sums to 2: 0.5 rounds up to 1
    img[0, 0, 2] = 1  # next window (2x3) sums to 1: 1/6 rounds down to 0
    out = script.downsample(img)
    assert out.dtype == np.uint8 and out.shape == (1, 16, 16)
    assert (out[0, 0, 0], out[0, 0, 1], int(out.sum())) == (1, 0, 1)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    area = F.interpolate(torch.from_numpy(imgs).float()[:, None], size=(16, 16), mode="area")[:, 0].numpy()
    assert np.abs(script.downsample(imgs) - area).max() <= 0.5 + 1e-4  # same windows as torch's area mode


# --- splitting and statistics ------------------------------------------------------------------


def test_stratified_split_is_disjoint_proportional_seeded_and_shuffled() -> None:
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    a, b, rest = stratified_split(labels, [50, 10], np.random.default_rng(3))
    assert (len(a), len(b), len(rest)) == (50, 10, 40)
    assert sorted(np.concatenate([a, b, rest]).tolist()) == list(range(100))
    assert np.bincount(labels[a]).tolist() == [20, 15, 10, 5]
    assert np.bincount(labels[b], minlength=4).tolist() == [4, 3, 2, 1]
    assert not np.array_equal(a, np.sort(a))  # a random order, so prefixes mix classes
    again = stratified_split(labels, [50, 10], np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip((a, b, rest), again))
    assert not np.array_equal(a, stratified_split(labels, [50, 10], np.random.default_rng(4))[0])
    with pytest.raises(ValueError, match="sizes \\[90, 20\\] from 100"):
        stratified_split(labels, [90, 20], np.random.default_rng(0))


def test_channel_stats_are_exact_per_channel() -> None:
    x = np.zeros((2, 2, 1, 2), dtype=np.uint8)
    x[:, 0] = [[0, 255]]  # channel 0: half 0, half 1
    x[:, 1] = 51  # channel 1: constant 0.2
    mean, std = channel_stats(x, 255)
    assert mean.tolist() == [0.5, 0.2] and std.tolist() == [0.5, 0.0]


# --- calibration batches -----------------------------------------------------------------------


def _indexed_images(n: int, side: int = 8) -> torch.Tensor:
    """Image i is constant i, so a batch shows which images it drew (flips and shifts keep constants)."""
    return torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 2, side, side).contiguous()


def calibration_batches(x: torch.Tensor, count: int, size: int, *, seed: int, augment: bool = True) -> list[torch.Tensor]:
    return EvalProtocol(calib_batches=count, calib_batch_size=size, seed=seed, augment=augment).calibration_batches(x)


def test_calibration_batches_are_seeded_and_shaped() -> None:
    x = torch.randn(50, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = calibration_batches(x, 4, 8, seed=1)
    b = calibration_batches(x, 4, 8, seed=1)
    c = calibration_batches(x, 4, 8, seed=2)
    assert [t.shape for t in a] == [torch.Size([8, 3, 16, 16])] * 4 and a[0].dtype == torch.float32
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(torch.cat(a), torch.cat(c))


def test_calibration_batches_draw_without_replacement_per_pass() -> None:
    x = _indexed_images(10)
    batches = calibration_batches(x, 3, 4, seed=0)  # 12 draws from 10 images: a full pass, then 2 more
    drawn = torch.cat(batches)[:, 0, 0, 0].long()
    assert sorted(drawn[:10].tolist()) == list(range(10))
    assert len(set(drawn[10:].tolist())) == 2
    # Augmentation draws after the order, so the same images come out with or without it.
    plain = calibration_batches(x, 3, 4, seed=0, augment=False)
    assert all(torch.equal(p, q) for p, q in zip(batches, plain))


def test_augmentation_is_a_flip_and_bounded_shift_of_the_drawn_image() -> None:
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = calibration_batches(x, 1, 6, seed=5, augment=False)[0]
    augmented = calibration_batches(x, 1, 6, seed=5)[0]
    assert not torch.equal(plain, augmented)
    pad = 1  # 8 // 8
    for orig, aug in zip(plain, augmented):
        variants = []
        for img in (orig, orig.flip(-1)):
            padded = F.pad(img[None], (pad,) * 4, mode="replicate")[0]
            variants += [padded[:, dy : dy + 8, dx : dx + 8] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
        assert any(torch.equal(aug, v) for v in variants)


def test_calibration_batches_reject_impossible_requests() -> None:
    x = torch.zeros(10, 1, 4, 4)
    with pytest.raises(ValueError, match="batch size 11 exceeds the 10 training images"):
        calibration_batches(x, 1, 11, seed=0)
    with pytest.raises(ValueError, match="protocol.calib_batches must be >= 1, got 0"):
        calibration_batches(x, 0, 2, seed=0)
    with pytest.raises(ValueError, match="non-empty NCHW"):
        calibration_batches(torch.zeros(10, 16), 1, 2, seed=0)


# --- digits and synthetic ----------------------------------------------------------------------


def test_digits_split_shapes_and_seeding() -> None:
    a = load_dataset("digits", seed=0)
    assert (a.num_classes, a.input_shape) == (10, (1, 8, 8))
    assert a.test_x is not None and a.test_y is not None
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (1197, 300, 300)
    assert torch.bincount(a.val_y, minlength=10).min() >= 29
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1, val_size=100)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.val_y, b.val_y)
    assert len(c.val_x) == 100 and not torch.equal(a.test_y, c.test_y)
    assert a.source.startswith("sklearn.datasets.load_digits")


def test_synthetic_shapes_and_seeding() -> None:
    opts = {"input_shape": [1, 12, 10], "num_classes": 3, "n_train": 20, "n_val": 5, "n_test": 0}
    a = load_dataset("synthetic", seed=4, **opts)
    assert a.train_x.shape == (20, 1, 12, 10) and a.val_x.shape == (5, 1, 12, 10)
    assert a.test_x is None and a.test_y is None and a.input_shape == (1, 12, 10)
    assert int(a.train_y.max()) < 3
    assert torch.equal(a.train_x, load_dataset("synthetic", seed=4, **opts).train_x)
    assert not torch.equal(a.train_x, load_dataset("synthetic", seed=5, **opts).train_x)
    with pytest.raises(ValueError, match="input_shape must be three positive ints"):
        load_dataset("synthetic", input_shape=(3, 32))


# --- cifar10 from fake pickles -----------------------------------------------------------------


class _Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` opcodes, as cPickle wrote the official CIFAR-10 batches."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_python2_str


def _official_pickle(batch: dict[bytes, Any], numpy_module: str = "numpy.core.multiarray") -> bytes:
    """``batch`` as the official files hold it: protocol 2, Python 2 strings, ``numpy_module._reconstruct``.

    The downloaded files name NumPy 1.x's ``numpy.core.multiarray``; NumPy 2.x writes ``numpy._core.multiarray``.
    """
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(batch)
    ours = f"c{np.zeros(1).__reduce__()[0].__module__}\n_reconstruct\n".encode()
    assert buf.getvalue().count(ours) == 1
    return buf.getvalue().replace(ours, f"c{numpy_module}\n_reconstruct\n".encode())


def _global_pickle(module: str, name: str) -> bytes:
    return pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.STOP


def _pickled_globals(stream: bytes) -> set[str]:
    return {str(arg) for op, arg, _ in pickletools.genops(stream) if op.name == "GLOBAL"}


def _write_cifar(
    folder: Path, n: int = 20, dump: Callable[[dict[bytes, Any]], bytes] = _official_pickle
) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(n)]
        filenames = [f"{name}_{i:05d}.png".encode() for i in range(n)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": filenames}
        (folder / name).write_bytes(dump(batch))
        written[name] = (data, labels)
    return written


class _RunsShell:
    """Unpickles to a shell command that writes ``marker``: the payload of a crafted batch file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f'echo pwned > "{self.marker}"',)


def _affine_fit_error(normalised: torch.Tensor, raw: np.ndarray) -> float:
    """Largest residual of a per-channel affine map raw -> normalised (0 if the layout is right)."""
    worst = 0.0
    for c in range(raw.shape[1]):
        r, t = raw[:, c].ravel().astype(np.float64), normalised[:, c].ravel().double().numpy()
        slope, offset = np.polyfit(r, t, 1)
        worst = max(worst, float(np.abs(slope * r + offset - t).max()))
    return worst


def test_cifar10_from_folder_or_parent(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / "cifar-10-batches-py")
    a = load_dataset("cifar10", root=tmp_path, val_size=10)
    b = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", val_size=10)
    assert (a.num_classes, a.input_shape) == (10, (3, 32, 32))
    assert a.test_x is not None and a.test_y is not None
    assert (len(a.train_x), len(a.val_x), len(a.test_x)) == (90, 10, 20)
    assert torch.bincount(a.val_y, minlength=10).tolist() == [1] * 10
    assert torch.equal(a.train_x, b.train_x) and a.source == str(tmp_path / "cifar-10-batches-py")
    data, labels = written["test_batch"]
    assert a.test_y.tolist() == labels
    assert _affine_fit_error(a.test_x, data.reshape(-1, 3, 32, 32)) < 1e-4  # rows are CHW planes
    assert abs(a.train_x[:, 1].mean().item()) < 1e-4 and abs(a.train_x[:, 1].std(unbiased=False).item() - 1) < 1e-4


def test_cifar10_missing_or_broken_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks data_batch_3; download .*cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", root=tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"images": []}))
    with pytest.raises(ValueError, match=r"data_batch_3 is not a CIFAR-10 python batch"):
        load_dataset("cifar10", root=folder)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'} does not exist.*--data-root DIR"):
        load_dataset("cifar10", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="'cifar10' needs its files"):
        load_dataset("cifar10")


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_cifar10_official_batches_load_as_plain_pickle_loads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, numpy_module: str
) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder, dump=functools.partial(_official_pickle, numpy_module=numpy_module))
    stream = (folder / "data_batch_1").read_bytes()
    assert _pickled_globals(stream) == {f"{numpy_module} _reconstruct", "numpy ndarray", "numpy dtype"}
    opcodes = {op.name for op, _, _ in pickletools.genops(stream)}
    assert opcodes >= {"SHORT_BINSTRING", "BINSTRING"} and not opcodes & {"SHORT_BINBYTES", "BINBYTES", "BINUNICODE"}
    restricted = load_dataset("cifar10", root=folder, val_size=10)
    monkeypatch.setattr(harness.datasets.loaders, "_CifarUnpickler", pickle.Unpickler)  # the unrestricted reader it replaced
    unrestricted = load_dataset("cifar10", root=folder, val_size=10)
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(restricted, field), getattr(unrestricted, field)), field
    assert data_hash(restricted.train_x, restricted.train_y) == data_hash(unrestricted.train_x, unrestricted.train_y)


@pytest.mark.parametrize("protocol", [3, 4])
def test_cifar10_loads_batches_pickled_by_plain_numpy(tmp_path: Path, protocol: int) -> None:
    written = _write_cifar(tmp_path / "plain", dump=functools.partial(pickle.dumps, protocol=protocol))
    _write_cifar(tmp_path / "official")
    plain = load_dataset("cifar10", root=tmp_path / "plain", val_size=10)
    official = load_dataset("cifar10", root=tmp_path / "official", val_size=10)
    assert plain.test_y is not None and plain.test_x is not None and official.test_x is not None
    assert plain.test_y.tolist() == written["test_batch"][1]
    assert torch.equal(plain.train_x, official.train_x) and torch.equal(plain.test_x, official.test_x)


def test_cifar10_batch_that_runs_code_is_refused_before_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pickle.loads(pickle.dumps(_RunsShell(tmp_path / "proof")))
    assert (tmp_path / "proof").is_file()  # the payload is live: an unrestricted unpickler runs it
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    marker = tmp_path / "marker"
    crafted = {b"batch_label": b"training batch 1 of 5", b"labels": [0] * 20, b"data": _RunsShell(marker)}
    (folder / "data_batch_1").write_bytes(pickle.dumps(crafted))
    batch_file = re.escape(str(folder / "data_batch_1"))
    refused = rf"{batch_file} is not a CIFAR-10 python batch file: refused global {os.system.__module__}\.system,"
    with pytest.raises(ValueError, match=f"^{refused}"):
        load_dataset("cifar10", root=folder)
    capsys.readouterr()
    runs = str(tmp_path / "runs")
    assert cli.main(["search", "--dataset", "cifar10", "--data-root", str(folder), "--results-dir", runs, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"pcfes search: error: {refused}[^\n]*\n", err), err
    assert not marker.exists()


_ONE_IMAGE = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # what NumPy's protocol-5 pickles call instead of _reconstruct


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (_global_pickle("builtins", "eval"), "builtins.eval"),
        (_global_pickle("numpy", "load"), "numpy.load"),
        (_global_pickle("numpy.core.multiarray", "scalar"), "numpy.core.multiarray.scalar"),
        (pickle.dumps(_ONE_IMAGE, protocol=2), "_codecs.encode"),  # how Python 3 writes bytes at protocol 2
        (pickle.dumps(_ONE_IMAGE, protocol=5), f"{_FROMBUFFER.__module__}.{_FROMBUFFER.__name__}"),
    ],
    ids=["eval", "numpy-load", "numpy-scalar", "python3-protocol-2", "protocol-5"],
)
def test_cifar10_refuses_globals_outside_the_allow_list(tmp_path: Path, payload: bytes, refused: str) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    (folder / "test_batch").write_bytes(payload)
    message = rf"test_batch is not a CIFAR-10 python batch file: refused global {re.escape(refused)}, .*cifar-10-python\.tar\.gz"
    with pytest.raises(ValueError, match=message):
        load_dataset("cifar10", root=folder)


# --- fashion-mnist from fake IDX files ---------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def _write_fashion(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(50) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(20) % 10).astype(np.uint8),
    }
    for stem, array in arrays.items():
        _write_idx(folder / f"{stem}.gz", array)
    return arrays


def test_fashion_mnist_from_idx_files(tmp_path: Path) -> None:
    arrays = _write_fashion(tmp_path)
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), arrays["t10k-images-idx3-ubyte"])
    s = load_dataset("fashion-mnist", root=tmp_path, val_size=10, seed=2)
    assert (s.num_classes, s.input_shape) == (10, (1, 28, 28))
    assert s.test_x is not None and s.test_y is not None
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (40, 10, 20)
    assert s.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert _affine_fit_error(s.test_x, arrays["t10k-images-idx3-ubyte"][:, None]) < 1e-4
    assert sorted(torch.cat([s.train_y, s.val_y]).tolist()) == sorted(arrays["train-labels-idx1-ubyte"].tolist())


def test_fashion_mnist_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'absent'} does not exist; .*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path / "absent")
    _write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="lacks t10k-labels-idx1-ubyte.gz; .*--data-root DIR"):
        load_dataset("fashion-mnist", root=tmp_path)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([20], dtype=">u4").tobytes() + bytes(5))  # 5 of 20 labels
    with pytest.raises(ValueError, match=r"header says shape \(20,\) but holds 5 bytes"):
        load_dataset("fashion-mnist", root=tmp_path)


# --- imagefolder and argument errors -----------------------------------------------------------


def test_imagefolder_without_torchvision_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
        (tmp_path / split / "cat" / "a.jpg").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import fails here even where it is installed
    with pytest.raises(ImportError, match="pip install torchvision"):
        load_dataset("imagefolder", root=tmp_path, max_train=1)


def test_imagefolder_missing_folders_and_bad_options(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'val'} do not exist; pass root=DIR"):
        load_dataset("imagefolder", root=tmp_path)
    with pytest.raises(ValueError, match="image_size must be a positive int, got 0"):
        load_dataset("imagefolder", root=tmp_path, image_size=0)
    with pytest.raises(ValueError, match="'imagefolder' needs a folder"):
        load_dataset("imagefolder")


def test_unknown_names_options_and_roots_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; available: fashion16, digits, fashion-mnist"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown option\\(s\\) image_size for dataset 'digits'; valid options: test_size, val_size"):
        load_dataset("digits", image_size=8)
    with pytest.raises(ValueError, match="valid options: none"):
        load_dataset("fashion16", val_size=10)
    with pytest.raises(ValueError, match="'fashion16' is built in and takes no root"):
        load_dataset("fashion16", root="/data")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        load_dataset("digits", seed=-1)


def test_dataset_splits_reject_inconsistent_tensors() -> None:
    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match="do not match input shape \\(1, 3, 3\\)"):
        DatasetSplits("t", x, y, x, y, None, None, num_classes=2, input_shape=(1, 3, 3), source="test")
    with pytest.raises(ValueError, match="want float32 images and int64 labels"):
        DatasetSplits("t", x, y.int(), x, y, None, None, num_classes=2, input_shape=(1, 2, 2), source="test")


def test_dataset_splits_refuse_empty_splits() -> None:
    """An empty split would score every arch NaN (the evaluator's mean over no images) and leak into run.json."""
    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64)
    none_x, none_y = torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64)
    with pytest.raises(ValueError, match="^t: the val split is empty; give it at least one image$"):
        DatasetSplits("t", x, y, none_x, none_y, None, None, num_classes=2, input_shape=(1, 2, 2), source="test")
    with pytest.raises(ValueError, match=r"^t: the test split is empty; give it images or pass no test split \(None\)$"):
        DatasetSplits("t", x, y, x, y, none_x, none_y, num_classes=2, input_shape=(1, 2, 2), source="test")
    with pytest.raises(ValueError, match="the train split is empty"):
        DatasetSplits("t", none_x, none_y, x, y, None, None, num_classes=2, input_shape=(1, 2, 2), source="test")


def test_fashion16_split_prefixes_are_class_mixes():
    """The evaluator scores on the first val_size images, so every prefix must mix the classes."""
    splits = load_dataset("fashion16")
    for labels in (splits.train_y, splits.val_y, splits.test_y):
        counts = torch.bincount(labels[:200], minlength=10)
        assert counts.min() >= 8, counts.tolist()


def test_cifar10_allowed_global_with_bad_arguments_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    (folder / "test_batch").write_bytes(b"cnumpy\ndtype\n(S'no-such-type'\ntR.")  # numpy.dtype('no-such-type')
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 python batch file: .*no-such-type"):
        load_dataset("cifar10", root=folder)


def test_the_dataset_modules_import_one_another_without_a_cycle() -> None:
    import ast

    package = Path(harness.datasets.loaders.__file__).parent
    imports = {}
    for path in package.glob("*.py"):
        module = f"harness.datasets.{path.stem}" if path.stem != "__init__" else "harness.datasets"
        tree = ast.parse(path.read_text())
        imports[module] = {
            node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness.datasets") and node.module != module
        }
    assert set(imports) == {"harness.datasets", *(f"harness.datasets.{m}" for m in ("calibration", "loaders", "registry", "splits"))}
    done: set[str] = set()
    while len(done) < len(imports):  # peel off modules whose imports are all done: a cycle would stall
        ready = {m for m, needs in imports.items() if m not in done and needs - {"harness.datasets"} <= done}
        assert ready, f"import cycle among {sorted(set(imports) - done)}"
        done |= ready
    assert all("harness.datasets" not in needs for m, needs in imports.items() if m != "harness.datasets")

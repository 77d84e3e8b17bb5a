"""Shared fixtures: one small supernet trained once per test session on real data."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.config import EvalProtocol, ReuseConfig, RunConfig

# One intra-op thread: on a shared 2-core machine OpenMP's second thread can make small
# kernels (e.g. batch norm on 16x16 maps) 100x slower while another process is busy.
torch.set_num_threads(1)

SMALL_NET = "conv-tiny"
SMALL_OVERRIDES = {"widths": [8, 16, 32], "last_width": 64, "stem_width": 8}
SMALL_PROTOCOL = EvalProtocol(calib_batches=2, calib_batch_size=32, val_size=200, eval_batch_size=100)
# A fixed budget (not "auto"): the tests' counts must not depend on the machine's free memory.
SMALL_REUSE = ReuseConfig(level="prefix", budget_bytes=256 * 2**20)
SMALL_EVOLUTION = {"population": 10, "top_k": 3, "mutation_num": 4, "crossover_num": 4, "generations": 4}
# Freezing forced by construction, whatever the trained weights score on this CPU: every share > 1e-6
# passes, so the initial freeze takes its cap (3 of 12 blocks) and each generation 3 more (monitor).
FORCED_FREEZE = {"threshold": 1e-6, "max_initial_freeze": 0.25}


# The session's supernet is trained just enough that candidates score apart (a few seconds): no
# test asserts what it scores, only what follows exactly from its scores (freezing is FORCED_FREEZE).
SMALL_TRAIN_IMAGES = 640
SMALL_TRAIN = {"epochs": 2, "batch_size": 64}


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """conv-tiny at half its width, trained briefly (20 steps) on 640 fashion16 images."""
    import supernets
    from harness.datasets import load_dataset
    from supernets.train import TrainConfig, train_supernet

    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    splits = load_dataset("fashion16")
    net = supernets.get_supernet(SMALL_NET, **SMALL_OVERRIDES)
    train_supernet(
        net,
        splits.train_x[:SMALL_TRAIN_IMAGES],
        splits.train_y[:SMALL_TRAIN_IMAGES],
        TrainConfig(**SMALL_TRAIN, device="cpu"),
        checkpoint_path=path,
        metadata={"dataset": "fashion16", "input_shape": [1, 16, 16]},
        progress=False,
    )
    return path


@pytest.fixture
def small_config(small_checkpoint, tmp_path) -> RunConfig:
    """A run config that searches the small supernet in seconds."""
    return RunConfig(
        supernet=SMALL_NET,
        supernet_overrides=SMALL_OVERRIDES,
        checkpoint=str(small_checkpoint),
        searcher="pcf-es",
        searcher_params={**SMALL_EVOLUTION, **FORCED_FREEZE},
        results_dir=str(tmp_path / "results"),
        protocol=SMALL_PROTOCOL,
        reuse=SMALL_REUSE,
    )


def with_searcher(config: RunConfig, name: str, **params) -> RunConfig:
    keep = {k: v for k, v in config.searcher_params.items() if k in SMALL_EVOLUTION or name != "random"}
    if name == "random":
        keep = {"budget": 40, "batch_size": 10}
    elif name in ("evolution",):
        keep = dict(SMALL_EVOLUTION)
    return dataclasses.replace(config, searcher=name, searcher_params={**keep, **params})


REPO = Path(__file__).resolve().parents[1]
_HOLD_LOCK = (
    "import sys; from harness import store\n"
    "with store.folder_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"
)


@pytest.fixture
def lock_holder():
    """Starts another process that holds the lock of a folder until it is killed (tagged 'holder-tag')."""
    procs: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(folder), "holder-tag"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


class _FullDisk:
    """A file that takes half of what it is given, then fails as a full disk does."""

    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, text):
        self.fh.write(text[: len(text) // 2])
        self.fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.fh, name)


def fill_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every atomic write (``os.fdopen`` + write) hit a full disk half-way."""
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *args, **kwargs: _FullDisk(real(fd, *args, **kwargs)))

"""Shared fixtures: one small supernet trained once per test session on real data."""

from __future__ import annotations

import dataclasses
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


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """conv-tiny at half its width, trained briefly (250 steps) on 4,000 fashion16 images."""
    import supernets
    from harness.data import load_dataset
    from supernets.train import TrainConfig, train_supernet

    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    splits = load_dataset("fashion16")
    net = supernets.get_supernet(SMALL_NET, **SMALL_OVERRIDES)
    train_supernet(
        net,
        splits.train_x[:4000],
        splits.train_y[:4000],
        TrainConfig(epochs=4, batch_size=64, device="cpu"),
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
        searcher_params={**SMALL_EVOLUTION, "threshold": 0.4},
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

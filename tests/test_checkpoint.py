"""Checkpoints say which code built them: an edited supernet's old checkpoint is stale, never loaded silently."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path

import pytest

import supernets
from harness import checkpoints
from harness.config import EvalProtocol, RunConfig
from harness.datasets import load_dataset
from supernets.checkpoint import StaleCheckpointError, code_fingerprint, load_checkpoint, read_checkpoint, save_checkpoint
from supernets.train import TrainConfig, train_supernet

FAMILY = '''
"""A user's 4-block supernet family (test fixture)."""

from supernets.registry import register_supernet
from supernets.builders import relu6
from supernets.spaces import tiny_config
from supernets.convnet import conv_supernet


def probe_supernet(**config):
    """Plain convs; WIDTH is what an edit changes."""
    return conv_supernet(**config)  # WIDTH_MARK


register_supernet("probe-net", probe_supernet, tiny_config(widths=[8, 8, 8], depths=[1, 1, 2], ops=["conv3", "skip"]))
'''


@pytest.fixture
def family(tmp_path, monkeypatch):
    """A supernet family in its own module file that the test can edit and reload."""
    path = tmp_path / "probe_family.py"
    path.write_text(textwrap.dedent(FAMILY))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("probe_family")
    yield path, module
    supernets.registry._REGISTRY.pop("probe-net", None)
    sys.modules.pop("probe_family", None)


def _reload(path: Path, source: str):
    supernets.registry._REGISTRY.pop("probe-net", None)
    path.write_text(source)
    return importlib.reload(sys.modules["probe_family"])


def _trained(tmp_path) -> Path:
    splits = load_dataset("fashion16")
    net = supernets.get_supernet("probe-net")
    ckpt = tmp_path / "probe.pt"
    train_supernet(net, splits.train_x[:256], splits.train_y[:256], TrainConfig(epochs=1, batch_size=128, device="cpu"),
                   checkpoint_path=ckpt, metadata={"dataset": "fashion16", "input_shape": [1, 16, 16]}, progress=False)
    return ckpt


def test_an_edit_of_the_supernet_code_makes_its_checkpoint_stale(family, tmp_path):
    path, _ = family
    ckpt = _trained(tmp_path)
    _, info = load_checkpoint(ckpt)
    assert info.code_fingerprint == code_fingerprint(info.spec)
    # Comments and docstrings are not code: the checkpoint still loads.
    _reload(path, textwrap.dedent(FAMILY).replace('"""Plain convs; WIDTH is what an edit changes."""', '"""Reworded."""') + "# note\n")
    load_checkpoint(ckpt)
    # Same name, same config, same weight shapes (ReLU6 for ReLU), other code: refused, naming the way out.
    _reload(path, textwrap.dedent(FAMILY).replace("return conv_supernet(**config)  # WIDTH_MARK", "return conv_supernet(**config, act=relu6)"))
    with pytest.raises(StaleCheckpointError, match=r"was trained by other code of supernet probe-net .*pcfes train --checkpoint .*--overwrite"):
        load_checkpoint(ckpt)
    assert read_checkpoint(ckpt)[0].spec.name == "probe-net"  # still readable as a record


def test_a_stale_default_checkpoint_is_retrained_out_loud_and_a_named_one_is_an_error(family, tmp_path, monkeypatch, caplog):
    path, _ = family
    monkeypatch.chdir(tmp_path)
    config = RunConfig(supernet="probe-net", protocol=EvalProtocol(calib_batches=1, calib_batch_size=32, val_size=64))
    default = checkpoints.checkpoint_path(config)
    splits = load_dataset("fashion16")
    net = supernets.get_supernet("probe-net")
    save_checkpoint(default, net, metadata={"dataset": "fashion16", "input_shape": [1, 16, 16]})
    old = read_checkpoint(default)[0]
    _reload(path, textwrap.dedent(FAMILY).replace("return conv_supernet(**config)  # WIDTH_MARK", "return conv_supernet(**config, act=relu6)"))
    named = RunConfig(supernet="probe-net", checkpoint=str(default), protocol=config.protocol)
    with pytest.raises(StaleCheckpointError, match="trained by other code"):
        checkpoints.ensure_checkpoint(named, splits, progress=False)
    with caplog.at_level(logging.WARNING):
        _, info = checkpoints.ensure_checkpoint(config, splits, train_config=TrainConfig(epochs=1, device="cpu"), progress=False)
    assert "retraining the default checkpoint" in caplog.text
    assert info.code_fingerprint == code_fingerprint(info.spec) != old.code_fingerprint

"""Supernet training: it learns, resumes bit for bit, and its checkpoints are verified on load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import supernets.train as train_module
from supernets import get_supernet
from supernets.checkpoint import load_checkpoint, save_checkpoint
from supernets.train import TrainConfig, train_supernet

SMALL = {"widths": [8, 8, 16], "depths": [1, 2, 1], "stem_width": 8, "last_width": None, "input_size": 8}
CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=3, device="cpu")
META = {"dataset": "synthetic", "input_shape": [1, 8, 8]}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """Ten classes, each a fixed random 8x8 pattern plus noise: learnable in a few steps."""
    g = torch.Generator().manual_seed(0)
    prototypes = torch.randn(10, 1, 8, 8, generator=g)
    y = torch.randint(10, (256,), generator=g)
    return prototypes[y] + 0.8 * torch.randn(256, 1, 8, 8, generator=g), y


def small_net(**overrides):
    return get_supernet("conv-tiny", **{**SMALL, **overrides})


def weights(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_loss_decreases(data):
    result = train_supernet(small_net(), *data, dataclasses.replace(CONFIG, epochs=4, lr=0.1), progress=False)
    losses = [m.loss for m in result.epochs]
    assert [m.epoch for m in result.epochs] == [1, 2, 3, 4]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.75 * losses[0]
    assert result.epochs[-1].accuracy > 0.5  # chance is 0.1


def test_training_is_a_function_of_spec_data_and_config(data):
    a, b = small_net(), small_net()
    ra = train_supernet(a, *data, CONFIG, progress=False)
    rb = train_supernet(b, *data, CONFIG, progress=False)
    assert ra.content_hash == rb.content_hash
    assert_same_weights(weights(a), weights(b))
    rc = train_supernet(small_net(), *data, dataclasses.replace(CONFIG, seed=4), progress=False)
    assert rc.content_hash != ra.content_hash


def test_interrupted_training_resumes_to_identical_weights(data, tmp_path, monkeypatch):
    full = small_net()
    reference = train_supernet(full, *data, CONFIG, checkpoint_path=tmp_path / "full.pt", progress=False)

    real_save = train_module.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        if len(kwargs["epochs"]) == 1:
            raise KeyboardInterrupt

    path = tmp_path / "interrupted.pt"
    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(small_net(), *data, CONFIG, checkpoint_path=path, progress=False)
    monkeypatch.undo()
    partial, info = load_checkpoint(path)
    assert (info.epochs_done, info.complete) == (1, False)

    resumed = small_net()
    result = train_supernet(resumed, *data, CONFIG, checkpoint_path=path, progress=False)
    assert result.resumed_from_epoch == 1
    assert result.content_hash == reference.content_hash
    assert_same_weights(weights(resumed), weights(full))
    assert [m.loss for m in result.epochs] == [m.loss for m in reference.epochs]
    _, final = load_checkpoint(path)
    assert final.complete and final.resume_state is None and final.content_hash == reference.content_hash


def test_complete_checkpoint_is_reused_not_retrained(data, tmp_path):
    path = tmp_path / "net.pt"
    first = train_supernet(small_net(), *data, CONFIG, checkpoint_path=path, progress=False)
    again = small_net()
    result = train_supernet(again, *data, CONFIG, checkpoint_path=path, progress=False)
    assert result.resumed_from_epoch == CONFIG.epochs
    assert result.content_hash == first.content_hash
    assert result.epochs == first.epochs


def test_checkpoint_of_a_different_training_is_refused_unless_overwritten(data, tmp_path):
    path = tmp_path / "net.pt"
    train_supernet(small_net(), *data, CONFIG, checkpoint_path=path, progress=False)
    other = dataclasses.replace(CONFIG, lr=0.01)
    with pytest.raises(ValueError, match="holds a different training .*training config differs"):
        train_supernet(small_net(), *data, other, checkpoint_path=path, progress=False)
    x, y = data
    with pytest.raises(ValueError, match="training data differs"):
        train_supernet(small_net(), x + 1, y, CONFIG, checkpoint_path=path, progress=False)
    result = train_supernet(small_net(), *data, other, checkpoint_path=path, progress=False, resume=False)
    assert load_checkpoint(path)[1].content_hash == result.content_hash


def test_checkpoint_round_trip(data, tmp_path):
    path = tmp_path / "sub" / "net.pt"
    net = small_net()
    result = train_supernet(net, *data, CONFIG, checkpoint_path=path, metadata=META, progress=False)
    loaded, info = load_checkpoint(path, expected_spec=net.spec)
    assert_same_weights(weights(loaded), weights(net))
    assert loaded.spec == net.spec and not loaded.training
    assert info.content_hash == result.content_hash == train_module.content_hash(loaded)
    assert (info.dataset, info.input_shape) == ("synthetic", (1, 8, 8))
    assert info.train_config == CONFIG and info.seed == 3
    assert info.epochs == result.epochs and info.epochs_done == 3 and info.complete
    assert info.data_hash == train_module.data_hash(*data)
    assert info.train_time_s == pytest.approx(result.train_time_s)
    assert list(path.parent.iterdir()) == [path]  # no temp files left behind
    # Plain types and tensors only: loadable without unpickling arbitrary objects.
    assert isinstance(torch.load(path, weights_only=True)["spec"], str)


def test_wrong_spec_names_both(data, tmp_path):
    path = tmp_path / "net.pt"
    save_checkpoint(path, small_net())
    expected = small_net(widths=[8, 8, 24]).spec
    with pytest.raises(ValueError, match=r"holds supernet .*\[8, 8, 16\].* but .*\[8, 8, 24\].* was expected"):
        load_checkpoint(path, expected_spec=expected)


def test_truncated_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "net.pt"
    save_checkpoint(path, small_net())
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=f"checkpoint {path} is corrupt or truncated: "):
        load_checkpoint(path)


def _flip_byte_inside(path, tensor: torch.Tensor) -> None:
    blob = bytearray(path.read_bytes())
    raw = torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage()).numpy().tobytes()
    at = blob.find(raw)
    assert at >= 0, "tensor bytes not found in the checkpoint"
    blob[at + len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_corrupted_weights_are_rejected(tmp_path):
    path = tmp_path / "net.pt"
    net = small_net()
    save_checkpoint(path, net)
    _flip_byte_inside(path, net.head[-1].weight.detach())
    with pytest.raises(ValueError, match=f"checkpoint {path} is corrupt or truncated: .*hash mismatch"):
        load_checkpoint(path)


def test_corrupted_optimizer_state_is_rejected(data, tmp_path, monkeypatch):
    path = tmp_path / "net.pt"
    real_save = train_module.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(small_net(), *data, CONFIG, checkpoint_path=path, progress=False)
    state = load_checkpoint(path)[1].resume_state
    buffer = max((s["momentum_buffer"] for s in state["optimizer"]["state"].values()), key=torch.Tensor.numel)
    _flip_byte_inside(path, buffer)
    with pytest.raises(ValueError, match="corrupt or truncated: .*hash mismatch"):
        load_checkpoint(path)


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "net.pt"
    save_checkpoint(path, small_net())
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(train_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, small_net())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_net_without_spec_and_bad_inputs_are_refused(data):
    net = small_net()
    x, y = data
    with pytest.raises(ValueError, match="expects \\(1, 8, 8\\)"):
        train_supernet(net, x[:, :, :4], y, CONFIG, progress=False)
    with pytest.raises(ValueError, match="as many labels as images"):
        train_supernet(net, x, y[:10], CONFIG, progress=False)
    net.spec = None
    with pytest.raises(ValueError, match="build it with supernets.get_supernet"):
        train_supernet(net, x, y, CONFIG, progress=False)


def test_train_config_validation_and_round_trip():
    assert TrainConfig.from_dict(CONFIG.to_dict()) == CONFIG
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0; lr must be > 0"):
        TrainConfig(epochs=0, lr=0)
    with pytest.raises(ValueError, match="unknown TrainConfig key\\(s\\) epoch; valid: batch_size"):
        TrainConfig.from_dict({"epoch": 3})

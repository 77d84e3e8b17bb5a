"""Stand-alone retraining: validation before any work, exact stand-alone network, cache, resume, CLI errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import supernets
from conftest import SMALL_NET, SMALL_OVERRIDES
from harness import retrain
from harness.cli import main
from harness.config import RunConfig
from harness.datasets import DatasetSplits, load_dataset, register_dataset
from harness.datasets import registry as dataset_registry

MINI = "fashion16-retrain-mini"
CONFIG = RunConfig(supernet=SMALL_NET, supernet_overrides=SMALL_OVERRIDES, mac_limit="none")
ONE_EPOCH = retrain.RetrainRecipe(epochs=1, batch_size=64)


def _mini(root: Path | None, seed: int) -> DatasetSplits:
    """1,024 / 200 / 300 fashion16 images: a stand-alone epoch in well under a second."""
    full = load_dataset("fashion16")
    return dataclasses.replace(
        full, name=MINI, train_x=full.train_x[:1024], train_y=full.train_y[:1024], val_x=full.val_x[:200],
        val_y=full.val_y[:200], test_x=full.test_x[:300], test_y=full.test_y[:300],
    )


@pytest.fixture(autouse=True)
def mini_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mini dataset, registered for this module's tests only (a copy of the registry)."""
    monkeypatch.setattr(dataset_registry, "_REGISTRY", dict(dataset_registry._REGISTRY))
    register_dataset(MINI, _mini, takes_root=False)


MINI_CONFIG = dataclasses.replace(CONFIG, protocol=dataclasses.replace(CONFIG.protocol, dataset=MINI))
ARCH = (0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)


def _job(arch=ARCH, recipe=ONE_EPOCH, config=MINI_CONFIG) -> retrain.RetrainJob:
    return retrain.RetrainJob(config, tuple(arch), recipe)


def test_the_standalone_network_computes_the_supernet_path_and_holds_only_its_ops() -> None:
    model, macs = retrain.build_standalone(_job())
    net = supernets.get_supernet(SMALL_NET, **SMALL_OVERRIDES)
    assert macs == net.macs(ARCH)
    # Copy the stand-alone weights into the supernet's path: both must compute the same function.
    path_params = {id(p) for m in net.path_modules(ARCH) for p in m.parameters()}
    net.load_state_dict({**net.state_dict(), **_path_state(net, model)})
    x = load_dataset(MINI).val_x[:16]
    net.eval(), model.eval()
    assert torch.equal(net(x, ARCH), model(x))
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters() if id(p) in path_params)


def _path_state(net: supernets.Supernet, model: retrain.StandaloneNet) -> dict[str, torch.Tensor]:
    names = {id(m): name for name, m in net.named_modules()}
    state = {}
    for index, module in enumerate(net.path_modules(ARCH)):
        for key, value in model.path[index].state_dict().items():
            state[f"{names[id(module)]}.{key}"] = value
    return state


def test_retrain_is_cached_by_arch_and_recipe(tmp_path: Path) -> None:
    first = retrain.retrain(_job(), tmp_path)
    assert first.test_images == 300 and first.train_images == 1024 and 0 <= first.test_accuracy <= 1
    assert first.cpu_s > 0 and len(first.epochs) == 1 and first.resumes == 0
    assert retrain.retrain(_job(), tmp_path) == first  # read back, not trained again
    other_seed = retrain.retrain(_job(recipe=dataclasses.replace(ONE_EPOCH, seed=1)), tmp_path)
    assert other_seed.key != first.key
    # Two runs with the same answer need one training: retrain_all trains each distinct job once.
    results = retrain.retrain_all([_job(), _job(), _job(arch=(1,) * 12)], tmp_path, progress=False)
    assert results[0] == results[1] == first and results[2].arch == "-".join(["1"] * 12)
    frame = retrain.results_frame(tmp_path)
    assert len(frame) == 3 and set(frame["arch"]) == {first.arch, "-".join(["1"] * 12)}


def test_an_interrupted_retrain_resumes_to_the_same_result_and_is_never_final_before(tmp_path: Path) -> None:
    recipe = dataclasses.replace(ONE_EPOCH, epochs=2)
    whole = retrain.retrain(_job(recipe=recipe), tmp_path / "whole")

    class Killed(Exception):
        pass

    def kill_after_first(epoch: int) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        retrain.retrain(_job(recipe=recipe), tmp_path / "cut", on_epoch=kill_after_first)
    folder = tmp_path / "cut" / whole.key
    assert (folder / retrain.PARTIAL).is_file() and retrain.read_result(folder) is None
    assert retrain.results_frame(tmp_path / "cut").empty  # a partial result is never reported
    resumed = retrain.retrain(_job(recipe=recipe), tmp_path / "cut")
    assert resumed.resumes == 1 and not (folder / retrain.PARTIAL).exists()
    assert resumed.test_accuracy == whole.test_accuracy and resumed.val_accuracy == whole.val_accuracy
    assert [e["loss"] for e in resumed.epochs] == [e["loss"] for e in whole.epochs]


def test_a_damaged_partial_state_restarts_cleanly(tmp_path: Path) -> None:
    job = _job()
    key = retrain.job_key(job, load_dataset(MINI))
    (tmp_path / key).mkdir()
    (tmp_path / key / retrain.PARTIAL).write_bytes(b"not a torch file")
    assert retrain.retrain(job, tmp_path).resumes == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arch", "0-1"], "cannot retrain 0-1: arch has 2 choices but supernet conv-tiny has 12 blocks"),
        (["--arch", "9-0-0-0-0-0-0-0-0-0-0-0"], "choice 9 at block 0 is outside 0..3"),
        (["--arch", "0-x"], "--arch '0-x' is not an arch"),
        (["--arch", "-".join("0" * 12), "--set", "epochs=-1"], "recipe.epochs must be >= 1, got -1"),
        (["--arch", "-".join("0" * 12), "--set", "epoch=2"], "unknown key(s) epoch in retrain recipe; valid: batch_size, epochs"),
        (["--arch", "-".join("0" * 12), "--mac-limit", "1000"], "over the MAC limit 1,000 of conv-tiny"),
        (["--arch", "-".join("0" * 12), "--dataset", "synthetic"], "takes (1, 16, 16) images"),
    ],
)
def test_bad_retrain_requests_are_one_line_errors_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["retrain", "--supernet", SMALL_NET, "--cache", str(tmp_path / "cache"), "--quiet", *argv]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "cache").exists()  # nothing trained, nothing written


def test_over_the_mac_limit_names_the_limit(tmp_path: Path) -> None:
    net = supernets.get_supernet("spos-cpu")
    dearest = tuple(max(range(len(b.ops)), key=lambda i: b.op_macs[i]) for b in net.blocks)
    with pytest.raises(ValueError, match=r"over the MAC limit 412,352 of spos-cpu"):
        retrain.retrain(retrain.RetrainJob(RunConfig(supernet="spos-cpu"), dearest, ONE_EPOCH), tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_dataset_without_test_split_is_refused() -> None:
    job = _job()
    no_test = dataclasses.replace(load_dataset(MINI), test_x=None, test_y=None)
    with pytest.raises(ValueError, match=f"dataset {MINI} has no test split: a stand-alone accuracy needs held-out images"):
        retrain.validate_data(job, retrain.validate_arch(job), no_test)


def test_the_example_recipe_spells_every_key_at_its_default() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "retrain.toml"
    from harness.config import load_toml

    assert sorted(load_toml(example)) == sorted(f.name for f in dataclasses.fields(retrain.RetrainRecipe))
    assert retrain.load_recipe(example) == retrain.RetrainRecipe()
    assert retrain.load_recipe(example, {"epochs": 3}).epochs == 3


@pytest.mark.slow
def test_parallel_retrains_give_the_results_of_serial_ones(tmp_path: Path) -> None:
    recipe = dataclasses.replace(ONE_EPOCH, batch_size=256)
    jobs = [_job(arch=arch, recipe=recipe, config=CONFIG) for arch in (ARCH, (1,) * 12, ARCH)]
    parallel = retrain.retrain_all(jobs, tmp_path / "parallel", workers=2, progress=False)
    serial = retrain.retrain_all(jobs[:2], tmp_path / "serial", workers=1, progress=False)
    assert parallel[0] == parallel[2] and len(list((tmp_path / "parallel").iterdir())) == 2
    for a, b in zip(parallel, serial):
        assert (a.key, a.test_accuracy, a.val_accuracy, [e["loss"] for e in a.epochs]) == (b.key, b.test_accuracy, b.val_accuracy, [e["loss"] for e in b.epochs])

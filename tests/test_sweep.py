"""`pcfes sweep`: matrix expansion, idempotent local runs, kill + resume, failures, Ray = local."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness import cli, schema, store, sweep, workflow
from harness.resolution import ResolvedRun, resolve
from conftest import SMALL_EVOLUTION, SMALL_NET, SMALL_OVERRIDES, SMALL_PROTOCOL

PROTOCOL = {"calib_batches": 2, "calib_batch_size": 32, "val_size": 200, "eval_batch_size": 100}
assert all(getattr(SMALL_PROTOCOL, k) == v for k, v in PROTOCOL.items())


def sweep_data(checkpoint: Path, seeds: list[int] | int = 2) -> dict:
    """Six small runs per two seeds: evolution once, pcf-es at two thresholds."""
    return {
        "name": "t",
        "matrix": {"supernets": [SMALL_NET], "searchers": ["evolution", "pcf-es"], "seeds": seeds,
                   "grid": {"threshold": [0.4, 0.6]}},
        "base": {"checkpoint": str(checkpoint), "supernet_overrides": SMALL_OVERRIDES,
                 "searcher_params": SMALL_EVOLUTION, "protocol": PROTOCOL},
    }


def to_toml(data: dict, prefix: str = "") -> str:
    """Enough TOML for sweep_data: scalars and lists of scalars are valid JSON and TOML alike."""
    plain = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    text = (f"[{prefix}]\n" if prefix and plain else "") + "".join(line + "\n" for line in plain)
    for key, value in data.items():
        if isinstance(value, dict):
            text += "\n" + to_toml(value, f"{prefix}.{key}" if prefix else key)
    return text


def run_ids(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir())


def mtimes(out: Path) -> dict[str, int]:
    return {name: (out / name / schema.RUN_JSON).stat().st_mtime_ns for name in run_ids(out)}


@pytest.fixture(scope="module")
def local_sweep(small_checkpoint, tmp_path_factory) -> tuple[Path, list[sweep.Outcome]]:
    """The six runs, one after another in this process: the reference for the other backends."""
    out = tmp_path_factory.mktemp("sweep") / "local"
    return sweep.run_sweep(sweep.sweep_from_dict(sweep_data(small_checkpoint)), out, progress=False)


# --- matrix expansion ------------------------------------------------------------------


def test_expand_applies_each_grid_parameter_only_to_searchers_that_take_it():
    config = sweep.sweep_from_dict({
        "matrix": {"supernets": ["spos-tiny", "fairnas-tiny"], "searchers": ["random", "evolution", "pcf-es", "pcf-es-is"],
                   "seeds": [3, 5], "grid": {"threshold": [0.5, 0.7], "rate": [0.2, 0.4]}},
        "base": {"searcher_params": {"generations": 3}},
    })
    runs = sweep.expand(config)
    # per supernet and seed: random 1, evolution 1, pcf-es 2 thresholds, pcf-es-is 2 x 2
    assert len(runs) == 2 * 2 * (1 + 1 + 2 + 4)
    assert len({r.run_id for r in runs}) == len(runs)
    configs = [r.config for r in runs]
    by = lambda name: [dict(c.searcher_params) for c in configs if c.searcher == name and c.seed == 3 and c.supernet == "spos-tiny"]
    assert by("evolution") == [{"generations": 3}]
    assert by("random") == [{"budget": 50 * 3, "batch_size": 50}]  # the evolution budget
    assert sorted(p["threshold"] for p in by("pcf-es")) == [0.5, 0.7] and all("rate" not in p for p in by("pcf-es"))
    assert sorted((p["threshold"], p["rate"]) for p in by("pcf-es-is")) == [(0.5, 0.2), (0.5, 0.4), (0.7, 0.2), (0.7, 0.4)]
    assert {c.seed for c in configs} == {3, 5} and {c.supernet for c in configs} == {"spos-tiny", "fairnas-tiny"}


def test_seed_count_and_defaults_from_base():
    config = sweep.sweep_from_dict({"matrix": {"seeds": 3}, "base": {"searcher": "evolution", "protocol": {"device": "cuda"}}})
    assert config.matrix.seeds == (0, 1, 2) and config.matrix.searchers == ("evolution",) and config.matrix.supernets == ()
    assert config.resources == sweep.Resources(num_gpus=1, num_cpus=1, threads=1)  # cuda: one GPU per run
    assert [r.config.seed for r in sweep.expand(config)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"matrix": {"searcher": ["evolution"]}}, r"unknown key\(s\) searcher in \[matrix\]; valid: grid, reuse, searchers, seeds, supernets"),
        ({"base": {"protocl": {}}}, r"unknown key\(s\) protocl in run config"),
        ({"base": {"protocol": {"val_sz": 1}}}, r"unknown key\(s\) val_sz in \[protocol\]"),
        ({"resources": {"gpus": 1}}, r"unknown key\(s\) gpus in \[resources\]"),
        ({"resources": {"threads": 0}}, r"threads >= 1"),
        ({"resources": {"threads": "two"}}, r"resources.threads must be an integer, got 'two'"),
        ({"resources": {"num_gpus": "one"}}, r"resources.num_gpus must be a finite number, got 'one'"),
        ({"runs": 3}, r"unknown key\(s\) runs in sweep config"),
        ({"matrix": {"seeds": 0}}, r"seeds must be a count >= 1"),
        ({"matrix": {"grid": {"threshold": 0.5}}}, r"threshold must be a non-empty list"),
        ({"matrix": {"reuse": {"evolution": "none"}}}, r"\[matrix.reuse\] evolution must be a non-empty list"),
        ({"matrix": {"searchers": ["evolution"], "reuse": {"evolution": ["all"]}}}, r"reuse levels of evolution must be"),
        ({"matrix": {"searchers": ["evolution"], "reuse": {"random": ["none"]}}}, r"given for 'random', which is not among"),
    ],
)
def test_bad_sweep_configs_say_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        sweep.sweep_from_dict(data)


def test_a_grid_parameter_no_searcher_takes_is_an_error():
    config = sweep.sweep_from_dict({"matrix": {"searchers": ["evolution", "random"], "grid": {"rate": [0.2]}}})
    with pytest.raises(ValueError, match=r"no searcher of evolution, random takes parameter\(s\) rate"):
        sweep.expand(config)


def test_load_sweep_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[matrix]\nsearchers = 'evolution'\n")
    with pytest.raises(ValueError, match=r"bad.toml: \[matrix\] searchers must be a non-empty list"):
        sweep.load_sweep(path)


def test_example_sweep_expands_to_six_runs():
    config = sweep.load_sweep(Path(__file__).resolve().parents[1] / "examples" / "sweep.toml")
    runs = sweep.expand(config)
    assert len(runs) == 6 and sweep.default_out_dir(config, runs) == Path("results/sweep-example")


# --- running ---------------------------------------------------------------------------


def test_local_sweep_completes_every_run_and_a_second_submission_skips_them(local_sweep, small_checkpoint):
    out, outcomes = local_sweep
    assert [o.status for o in outcomes] == ["ok"] * 6
    assert sorted(o.run_id for o in outcomes) == run_ids(out)
    for name in run_ids(out):
        record = store.load_run(out / name)
        assert record.run.setup.run_id == name and name.endswith(record.run.setup.config_hash[:8])
    before = mtimes(out)
    _, again = sweep.run_sweep(sweep.sweep_from_dict(sweep_data(small_checkpoint)), out, progress=False)
    assert again == [sweep.Outcome(o.run_id, "skipped") for o in outcomes]
    assert mtimes(out) == before


def test_a_failed_run_is_reported_and_does_not_stop_the_others(small_checkpoint, tmp_path, monkeypatch, capsys):
    real = workflow.run_search

    def flaky(run: ResolvedRun, *args, **kwargs):
        if run.config.searcher_params.get("threshold") == 0.6:
            raise RuntimeError("simulated device fault")
        return real(run, *args, **kwargs)

    monkeypatch.setattr(workflow, "run_search", flaky)
    path = tmp_path / "sweep.toml"
    path.write_text(to_toml(sweep_data(small_checkpoint, seeds=[0])))
    out = tmp_path / "out"
    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 1
    printed = capsys.readouterr().out
    failed = [line for line in printed.splitlines() if " failed " in line]
    assert len(failed) == 1 and "RuntimeError: simulated device fault" in failed[0]
    assert "(2 ok, 0 skipped, 1 failed)" in printed
    complete = [name for name in run_ids(out) if workflow.complete_run(out / name) is not None]
    assert len(complete) == 2 and not any(name in failed[0] for name in complete)


@pytest.mark.slow
def test_killed_sweep_reruns_only_the_missing_runs(local_sweep, small_checkpoint, tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(to_toml(sweep_data(small_checkpoint)))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(path), "--out", str(out), "--quiet"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and any(workflow.complete_run(d) is not None for d in out.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "sweep ended before its first run completed"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = {n: t for n, t in mtimes(out).items() if workflow.complete_run(out / n) is not None}
    assert 1 <= len(done_before) < 6
    _, outcomes = sweep.run_sweep(sweep.load_sweep(path), out, progress=False)
    status = {o.run_id: o.status for o in outcomes}
    assert {n for n, s in status.items() if s == "skipped"} == set(done_before)
    assert sum(s == "ok" for s in status.values()) == 6 - len(done_before)
    assert {n: t for n, t in mtimes(out).items() if n in done_before} == done_before
    reference = local_sweep[0]
    for name in run_ids(reference):  # a resumed or restarted run equals an uninterrupted one
        assert (out / name / schema.CANDIDATES_CSV).read_bytes() == (reference / name / schema.CANDIDATES_CSV).read_bytes()


def test_ray_backend_without_ray_says_how_to_install(monkeypatch, small_checkpoint, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
        sweep.run_sweep(sweep.sweep_from_dict(sweep_data(small_checkpoint)), tmp_path / "out", backend="ray")
    assert not (tmp_path / "out").exists()  # failed before doing anything


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_writes_the_same_candidates_as_local(local_sweep, small_checkpoint, ray_instance, tmp_path):
    reference, local_outcomes = local_sweep
    out, outcomes = sweep.run_sweep(sweep.sweep_from_dict(sweep_data(small_checkpoint)), tmp_path / "ray",
                                    backend="ray", progress=False)
    assert sorted(outcomes, key=str) == sorted(local_outcomes, key=str)
    assert run_ids(out) == run_ids(reference)
    for name in run_ids(reference):
        assert (out / name / schema.CANDIDATES_CSV).read_bytes() == (reference / name / schema.CANDIDATES_CSV).read_bytes()


@pytest.mark.slow
def test_local_processes_write_the_same_candidates_as_one_process(local_sweep, small_checkpoint, tmp_path):
    reference = local_sweep[0]
    out, outcomes = sweep.run_sweep(sweep.sweep_from_dict(sweep_data(small_checkpoint, seeds=[1])), tmp_path / "jobs",
                                    jobs=2, progress=False)
    assert [o.status for o in outcomes] == ["ok"] * 3  # the driver's sweep-folder lock does not block the workers
    assert not (out / schema.LOCK_FILE).exists() and not any((out / n / schema.LOCK_FILE).exists() for n in run_ids(out))
    for name in run_ids(out):
        assert (out / name / schema.CANDIDATES_CSV).read_bytes() == (reference / name / schema.CANDIDATES_CSV).read_bytes()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_check_without_cuda_exits_2_and_says_why():
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    proc = subprocess.run([str(script)], capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 2 and "sees no GPU; run on a GPU machine or pass --cpu" in proc.stderr


def _retrained(small_checkpoint: Path, path: Path) -> str:
    """A checkpoint of the same space at ``path`` with other weights (another seed); its content hash."""
    import supernets
    from harness.datasets import load_dataset
    from supernets.checkpoint import read_checkpoint
    from supernets.train import TrainConfig, train_supernet

    splits = load_dataset("fashion16")
    path.unlink()
    train_supernet(supernets.get_supernet(SMALL_NET, **SMALL_OVERRIDES), splits.train_x[:64], splits.train_y[:64],
                   TrainConfig(epochs=1, batch_size=64, seed=1, device="cpu"), checkpoint_path=path,
                   metadata={"dataset": "fashion16", "input_shape": [1, 16, 16]}, progress=False)
    new_hash = read_checkpoint(path)[0].content_hash
    assert new_hash != read_checkpoint(small_checkpoint)[0].content_hash
    return new_hash


def test_sweep_refuses_to_add_runs_beside_runs_on_other_weights(small_checkpoint, tmp_path):
    checkpoint = tmp_path / "net.pt"
    checkpoint.write_bytes(small_checkpoint.read_bytes())
    data = sweep_data(checkpoint, seeds=[0])
    one_seed = {**data, "matrix": {"supernets": [SMALL_NET], "searchers": ["random"], "seeds": [0]},
                "base": {**data["base"], "searcher_params": {"budget": 20, "batch_size": 10}}}
    out = tmp_path / "out"
    _, outcomes = sweep.run_sweep(sweep.sweep_from_dict(one_seed), out, progress=False)
    assert [o.status for o in outcomes] == ["ok"]
    kept = run_ids(out)
    new_hash = _retrained(small_checkpoint, checkpoint)
    two_seeds = {**one_seed, "matrix": {**one_seed["matrix"], "seeds": [0, 1]}}
    with pytest.raises(ValueError, match=rf"{kept[0]} was made on supernet checkpoint \w{{16}}, but {checkpoint} now holds "
                                         rf"{new_hash[:16]}; new runs would mix two supernets") as caught:
        sweep.run_sweep(sweep.sweep_from_dict(two_seeds), out, progress=False)
    assert "\n" not in str(caught.value)
    assert run_ids(out) == kept  # nothing was started
    # a sweep whose runs are all complete adds nothing, so it still renders what it holds
    assert [o.status for o in sweep.run_sweep(sweep.sweep_from_dict(one_seed), out, progress=False)[1]] == ["skipped"]


def test_compare_refuses_to_keep_a_run_made_on_other_weights(small_config, small_checkpoint, tmp_path):
    checkpoint = tmp_path / "net.pt"
    checkpoint.write_bytes(small_checkpoint.read_bytes())
    config = dataclasses.replace(small_config, checkpoint=str(checkpoint), searcher="random",
                                 searcher_params={"budget": 20, "batch_size": 10})
    out = tmp_path / "out"
    (kept,) = workflow.run_matrix([resolve(config)], out, progress=False)
    _retrained(small_checkpoint, checkpoint)
    second = dataclasses.replace(config, seed=config.seed + 1)
    with pytest.raises(ValueError, match="was made on supernet checkpoint"):
        workflow.run_matrix([resolve(second), resolve(config)], out, progress=False)  # the new run comes first: refused before it
    assert run_ids(out) == [kept.name]
    assert workflow.run_matrix([resolve(second), resolve(config)], out, overwrite=True, progress=False)[1] == kept  # --overwrite redoes both


def test_reproduce_sweep_runs_its_plan_and_writes_the_sweep_report_without_rank_checks(small_checkpoint, tmp_path, monkeypatch):
    from harness import reproduce

    plans = tmp_path / "plans"
    plans.mkdir()
    data = sweep_data(small_checkpoint, seeds=[0])
    (plans / "reproduce-cpu.toml").write_text(to_toml({"name": "main", "base": data["base"]}))
    (plans / "reproduce-cpu-threshold.toml").write_text(to_toml({**data, "name": "tiny-threshold", "base": {}}))
    monkeypatch.setattr(reproduce, "PLANS_DIR", plans)
    out, report = tmp_path / "runs", tmp_path / "report"
    assert cli.main(["reproduce", "--sweep", "threshold", "--out", str(out), "--report", str(report), "--quiet"]) == 0
    assert len(run_ids(out)) == 3  # evolution once, pcf-es at both thresholds
    assert not list(out.glob("rank_check*"))  # split halves belong to the main plan only
    assert (report / "sweep_threshold.md").is_file()

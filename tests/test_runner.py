"""Runner, store and workflow: reproducible runs, exact reuse at every level, resume, clear errors on bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pandas as pd
import pytest
import torch

from conftest import with_searcher
from harness import cli, schema, store, workflow
from harness.resolution import resolve
from harness.run_record import RUN_KEYS, TOTAL_KEYS, RunRecord, RunStatus
from harness.runner import Runner, SearcherContractError


class Interrupt(Exception):
    pass


def _run(config, run_dir=None, **kwargs):
    run = resolve(config)
    workspace = workflow.open_workspace(run, progress=False)
    return workflow.run_search(run, workspace, run_dir=run_dir, progress=False, **kwargs).path


def _candidates(path):
    return pd.read_csv(path / schema.CANDIDATES_CSV)


def test_same_seed_and_config_give_identical_candidates(small_config, tmp_path):
    first = _run(small_config, tmp_path / "a")
    second = _run(small_config, tmp_path / "b")
    a, b = _candidates(first), _candidates(second)
    pd.testing.assert_frame_equal(a[["arch", "score", "executed_macs"]], b[["arch", "score", "executed_macs"]])
    assert a["score"].nunique() > 3
    gens = pd.read_csv(first / schema.GENERATIONS_CSV)
    assert list(gens["frozen_depth"]) == [0, 3, 6, 9]  # forced by the fixture's threshold, on any CPU


COST_COLUMNS = ["executed_macs", "reused_depth"]
LEVELS = ("none", "frozen", "prefix")
COUNT_TOTALS = (
    "macs", "images", "macs_avoided", "cache_peak_bytes", "store_peak_bytes", "store_evictions", "store_captured",
    "store_read_again", "candidates_evaluated",
)


def _at(config, level, **changes):
    return dataclasses.replace(config, reuse=dataclasses.replace(config.reuse, level=level, **changes))


@pytest.mark.parametrize("searcher", ["random", "evolution", "cf-es", "pcf-es", "pcf-es-is"])
def test_candidates_are_identical_at_every_reuse_level_except_cost_columns(small_config, tmp_path, searcher):
    config = with_searcher(small_config, searcher)
    paths = {level: _run(_at(config, level), tmp_path / level) for level in LEVELS}
    frames = {level: _candidates(path) for level, path in paths.items()}
    for level, frame in frames.items():
        pd.testing.assert_frame_equal(frame.drop(columns=COST_COLUMNS), frames["none"].drop(columns=COST_COLUMNS), obj=level)
    assert frames["none"]["score"].nunique() > 3
    runs = {level: store.load_run(path).run for level, path in paths.items()}
    totals = {level: run.totals for level, run in runs.items()}
    assert totals["prefix"].macs < totals["none"].macs and totals["none"].macs_avoided == 0
    for level in LEVELS:
        assert totals[level].macs + totals[level].macs_avoided == totals["none"].macs, level
        assert runs[level].result == runs["none"].result
        assert runs[level].config.reuse.level == level and "reuse" not in json.loads((paths[level] / schema.RUN_JSON).read_text())
        scored = {p: runs[level].evaluation["work_images_by_phase"][p] for p in ("calibration", "validation")}
        assert scored == {p: runs["none"].evaluation["work_images_by_phase"][p] for p in scored}, level
    assert (frames["none"]["reused_depth"] == 0).all() and (frames["prefix"]["reused_depth"] > 0).any()
    assert totals["prefix"].store_peak_bytes > 0 == totals["none"].store_peak_bytes
    if searcher in ("random", "evolution"):
        assert totals["frozen"].macs == totals["none"].macs  # nothing frozen, nothing reused
    if searcher == "pcf-es-is":
        subsets = [run.evaluation["importance_subset"] for run in runs.values()]
        assert subsets[0] is not None and all(s == subsets[0] for s in subsets)
        frozen = subsets[0]["frozen"]
        assert frozen and subsets[0]["reference_arch"][: len(frozen)] == frozen  # the best arch, rewritten by the freeze
        assert subsets[0]["size"] == len(set(subsets[0]["indices"])) == int(0.4 * 200)


def test_the_run_record_names_the_level_and_the_resolved_budget(small_config, tmp_path):
    path = _run(_at(small_config, "prefix", budget_bytes="auto"), tmp_path / "auto")
    run = store.load_run(path).run
    assert run.config.reuse.level == "prefix" and run.config.reuse.budget_bytes == "auto"
    assert isinstance(run.reuse_budget_bytes, int) and run.reuse_budget_bytes > 0


def test_a_rate_that_scores_no_image_is_rejected_before_any_search(small_config, tmp_path):
    configs = [with_searcher(small_config, "evolution"), with_searcher(small_config, "pcf-es-is", rate=0.001)]
    with pytest.raises(ValueError, match=r"pcf-es-is: importance rate 0.001 .* smallest valid rate is 1/200 = 0.005"):
        workflow.run_matrix([resolve(c) for c in configs], tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("searcher", ["pcf-es-is", "random"])
def test_interrupted_run_resumes_to_the_same_result_and_counts(small_config, tmp_path, searcher, level):
    # A budget that holds a few nodes: the resumed store must also evict exactly as the whole run did.
    config = _at(with_searcher(small_config, searcher), level, budget_bytes=6 * 10**6)
    whole = _run(config, tmp_path / "whole")
    gens = pd.read_csv(whole / schema.GENERATIONS_CSV)
    frozen = gens.index[gens["frozen_depth"] > 0]
    cut = int(frozen[0]) + 1 if len(frozen) else 2  # kill right after the first generation with a freeze

    def stop(generation):
        if generation == cut:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(config, tmp_path / "cut", on_generation=stop)
    assert (tmp_path / "cut" / schema.CHECKPOINT_JSON).exists()
    with pytest.raises(store.RunLoadError, match="incomplete"):
        store.load_run(tmp_path / "cut")
    resumed = _run(config, tmp_path / "cut", resume=True)
    pd.testing.assert_frame_equal(_candidates(whole), _candidates(resumed))
    run, before = store.load_run(resumed).run, store.load_run(whole).run
    assert run.resumes == 1 and run.totals.wall_s_before_resume > 0
    assert run.result == before.result
    assert {k: getattr(run.totals, k) for k in COUNT_TOTALS} == {k: getattr(before.totals, k) for k in COUNT_TOTALS}
    assert before.totals.rebuild_macs == before.totals.rebuild_images == 0
    stored = level != "none" and (searcher != "random" or level == "prefix")
    assert (run.totals.rebuild_macs > 0) == stored and (run.totals.rebuild_images > 0) == stored
    assert not (resumed / schema.CHECKPOINT_JSON).exists()


def test_run_files_follow_the_schema(small_config, tmp_path):
    path = _run(small_config, tmp_path / "run")
    record = store.load_run(path)
    run = record.run
    written = json.loads((path / schema.RUN_JSON).read_text())
    assert list(written) == list(RUN_KEYS) and list(written["totals"]) == list(TOTAL_KEYS)
    assert written["schema_version"] == schema.SCHEMA_VERSION and run.status is RunStatus.COMPLETE
    assert run.environment.meter_sources["wall_s"] == "perf_counter_ns"
    assert run.environment.meter_sources["gpu_energy_j"].startswith("unavailable: ")
    assert run.totals.gpu_energy_j is None  # never a silent zero
    assert run.totals.candidates_evaluated == len(record.candidates)
    assert list(record.candidates.columns) == list(schema.CAND_COLUMNS)
    assert list(record.generations.columns[: len(schema.GEN_COLUMNS)]) == list(schema.GEN_COLUMNS)
    assert "share_b0" in record.generations.columns
    assert record.generations["cum_macs"].iloc[-1] == run.totals.macs
    for column in ("macs_avoided", "store_evictions", "rebuild_macs"):
        assert record.generations[column].sum() == getattr(run.totals, column)
    assert run.totals.store_peak_bytes <= run.reuse_budget_bytes
    assert 0 <= run.result.final_score <= 1 and run.result.test_accuracy is not None
    assert run.result.test_images == 10_000  # fashion16's whole test split
    emissions = record.emissions
    assert emissions["co2_g"] == pytest.approx(emissions["energy_kwh"] * emissions["grid_intensity_g_per_kwh"], rel=1e-6)
    assert emissions["tracking_mode"] == "process" and emissions["attribution"].startswith("process: ")
    # CodeCarbon's own fields per window; the run's energy is the sum over its search phases.
    windows = pd.read_csv(path / schema.EMISSIONS_CSV)
    assert set(windows["phase"]) == {*schema.PHASES, "final"}
    search = windows[windows["phase"].isin(schema.PHASES)]
    assert search["energy_consumed"].sum() == pytest.approx(emissions["energy_kwh"], rel=1e-9)
    assert {"cpu_energy", "ram_energy", "gpu_energy", "cpu_power", "cpu_model", "pue", "duration"} <= set(windows.columns)
    frame = store.load_runs([path])
    assert frame.loc[0, "searcher"] == "pcf-es" and frame.loc[0, "protocol_hash"] == run.setup.protocol_hash


def test_unknown_schema_version_and_incomplete_runs_are_clear_errors(small_config, tmp_path):
    path = _run(small_config, tmp_path / "run")
    run = json.loads((path / schema.RUN_JSON).read_text())
    run["schema_version"] = 99
    (path / schema.RUN_JSON).write_text(json.dumps(run))
    with pytest.raises(store.RunLoadError, match="schema version 99"):
        store.load_run(path)
    (path / schema.CANDIDATES_CSV).unlink()
    with pytest.raises(store.RunLoadError, match="missing candidates.csv"):
        store.load_run(path)


def test_existing_results_directory_is_refused_unless_overwrite(small_config, tmp_path):
    path = _run(small_config, tmp_path / "run")
    with pytest.raises(FileExistsError, match="holds a complete run; pass --overwrite to replace it"):
        store.prepare_run_dir(path)
    store.prepare_run_dir(path, overwrite=True)
    assert not any(path.iterdir())
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        store.prepare_run_dir(path, resume=True)


def test_unwritable_results_directory_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="cannot write results"):
        store.prepare_run_dir(blocker / "run")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"supernet": "nope"}, "unknown supernet 'nope'"),
        ({"searcher": "nope"}, "unknown searcher 'nope'"),
        ({"searcher_params": {"treshold": 0.7}}, "no parameter 'treshold'"),
        ({"country_iso_code": "XXX"}, "XXX"),
    ],
)
def test_bad_names_fail_before_any_work(small_config, change, message):
    with pytest.raises(ValueError, match=message):
        workflow.validate(resolve(dataclasses.replace(small_config, **change)))


def test_unknown_dataset_fails_fast(small_config):
    bad = dataclasses.replace(small_config, protocol=dataclasses.replace(small_config.protocol, dataset="mnist9"))
    with pytest.raises(ValueError, match="unknown dataset 'mnist9'"):
        workflow.validate(resolve(bad))


def test_checkpoint_of_another_supernet_is_refused(small_config):
    other = dataclasses.replace(small_config, supernet="mbv2-tiny")
    with pytest.raises(ValueError, match="conv-tiny"):
        workflow.open_workspace(resolve(other), progress=False)


def _cut_after(generation):
    def stop(done):
        if done == generation:
            raise Interrupt

    return stop


def _perturbed_copy(source, target):
    """A checkpoint of the same supernet spec with other weights."""
    from supernets.checkpoint import load_checkpoint, save_checkpoint

    net, info = load_checkpoint(source)
    with torch.no_grad():
        next(net.parameters()).mul_(-1.0)
    save_checkpoint(target, net, config=info.train_config, metadata=info.metadata, epochs=info.epochs)


def test_empty_ask_while_not_done_is_a_contract_error_naming_the_searcher(small_config, tmp_path, monkeypatch):
    real = workflow.make_searcher

    def silent(config, net):
        searcher = real(config, net)
        searcher.ask = lambda: []
        return searcher

    monkeypatch.setattr(workflow, "make_searcher", silent)
    with pytest.raises(SearcherContractError, match="searcher 'pcf-es' returned no candidates from ask\\(\\) while done\\(\\) is False"):
        _run(small_config, tmp_path / "run")


def test_resume_refuses_a_swapped_checkpoint(small_config, small_checkpoint, tmp_path):
    own = tmp_path / "own.pt"
    shutil.copyfile(small_checkpoint, own)
    config = dataclasses.replace(small_config, checkpoint=str(own))
    with pytest.raises(Interrupt):
        _run(config, tmp_path / "cut", on_generation=_cut_after(2))
    started_on = RunRecord.from_json(store.read_json(tmp_path / "cut" / schema.RUN_JSON)).setup.checkpoint_hash
    _perturbed_copy(small_checkpoint, own)  # what a `kill -9` and a replaced file leave behind
    with pytest.raises(ValueError, match=f"checkpoint {own} holds weights .* but the run started on {started_on[:16]}"):
        workflow.resume_search(tmp_path / "cut", progress=False)
    with pytest.raises(ValueError, match=f"it was started on supernet checkpoint {started_on}, but {own} now holds"):
        _run(config, tmp_path / "cut", resume=True)  # the runner checks too, whoever opened the workspace
    assert (tmp_path / "cut" / schema.CHECKPOINT_JSON).exists()


def test_resume_from_another_directory_uses_the_recorded_checkpoint_and_cleans_stale_files(
    small_config, small_checkpoint, tmp_path, monkeypatch
):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    shutil.copyfile(small_checkpoint, start / "ck.pt")
    monkeypatch.chdir(start)
    config = dataclasses.replace(small_config, checkpoint="ck.pt", results_dir="results")
    with pytest.raises(Interrupt):
        _run(config, on_generation=_cut_after(2))
    (run_dir,) = (start / "results").iterdir()
    (run_dir / ".checkpoint.json.k1ll3d.tmp").write_text('{"half": ')  # a kill during a checkpoint write
    monkeypatch.chdir(elsewhere)
    record = workflow.resume_search(run_dir, progress=False)
    run = record.run
    assert run == store.load_run(record.path).run  # the returned record is what was written
    assert run.resumes == 1 and run.setup.checkpoint_path == str(start / "ck.pt")
    assert run.config.checkpoint == "ck.pt"  # the config (and its hash) as started
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*schema.RUN_FILES, schema.EMISSIONS_CSV])  # no temp, lock or checkpoint.json
    assert list(elsewhere.iterdir()) == []  # nothing trained or written here


def test_run_stopped_before_its_first_checkpoint_is_restarted_by_resume(small_config, tmp_path, monkeypatch, capsys):
    config = with_searcher(small_config, "random", budget=20, batch_size=10)
    with monkeypatch.context() as patch:
        patch.setattr(Runner, "_checkpoint", lambda self: (_ for _ in ()).throw(Interrupt()))
        with pytest.raises(Interrupt):
            _run(config, tmp_path / "run")
    assert RunRecord.from_json(store.read_json(tmp_path / "run" / schema.RUN_JSON)).status is RunStatus.RUNNING
    assert not (tmp_path / "run" / schema.CHECKPOINT_JSON).exists()
    assert cli.main(["search", "--resume", str(tmp_path / "run"), "--quiet"]) == 0
    assert "run is complete" not in capsys.readouterr().err
    record = store.load_run(tmp_path / "run")
    assert record.run.status is RunStatus.COMPLETE and record.run.resumes == 0 and len(record.candidates) == 20


def test_val_size_zero_is_recorded_as_the_split_size_and_too_large_fails_before_training(
    small_config, tmp_path, monkeypatch
):
    whole = dataclasses.replace(small_config, protocol=dataclasses.replace(small_config.protocol, val_size=0))
    config = with_searcher(whole, "random", budget=10, batch_size=10)
    setup = store.load_run(_run(config, tmp_path / "run")).run.setup
    named = dataclasses.replace(small_config.protocol, val_size=2000)
    assert setup.protocol["val_size"] == 2000 and setup.protocol_hash == named.hash()
    assert setup.config_hash == resolve(dataclasses.replace(config, protocol=named)).config.hash()
    monkeypatch.chdir(tmp_path)  # the default checkpoint path, which would be trained on first use
    too_many = dataclasses.replace(small_config, checkpoint="", protocol=dataclasses.replace(named, val_size=2001))
    with pytest.raises(ValueError, match="protocol.val_size 2001 exceeds the 2000 validation images"):
        workflow.open_workspace(resolve(too_many), progress=False)
    assert not (tmp_path / "checkpoints").exists()


def test_a_resumed_run_keeps_one_emissions_row_per_window_its_totals_hold(small_config, tmp_path):
    """Windows redone after the interruption are not counted twice in emissions.csv (nor in the totals)."""
    with pytest.raises(Interrupt):
        _run(small_config, tmp_path / "run", on_generation=_cut_after(2))
    record = store.load_run(_run(small_config, tmp_path / "run", resume=True))
    rows = pd.read_csv(tmp_path / "run" / schema.EMISSIONS_CSV)
    assert rows["task_name"].tolist() == [f"window-{i}" for i in range(1, len(rows) + 1)]
    search = rows[rows["phase"].isin(schema.PHASES)]
    assert search["energy_consumed"].sum() == pytest.approx(record.emissions["energy_kwh"], rel=1e-9)

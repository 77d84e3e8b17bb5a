"""Runner, store and workflow: reproducible runs, exact cache, resume, clear errors on bad input."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from conftest import with_searcher
from harness import schema, store, workflow


class Interrupt(Exception):
    pass


def _run(config, run_dir=None, **kwargs):
    workspace = workflow.open_workspace(workflow.resolve(config), progress=False)
    return workflow.run_search(config, workspace, run_dir=run_dir, progress=False, **kwargs)


def _candidates(path):
    return pd.read_csv(path / schema.CANDIDATES_CSV)


def test_same_seed_and_config_give_identical_candidates(small_config, tmp_path):
    first = _run(small_config, tmp_path / "a")
    second = _run(small_config, tmp_path / "b")
    a, b = _candidates(first), _candidates(second)
    pd.testing.assert_frame_equal(a[["arch", "score", "executed_macs"]], b[["arch", "score", "executed_macs"]])
    assert a["score"].nunique() > 3
    gens = pd.read_csv(first / schema.GENERATIONS_CSV)
    assert gens["frozen_depth"].max() > 0, "the small search should freeze, or the cache is not exercised"


def test_no_cache_gives_identical_scores_with_more_macs(small_config, tmp_path):
    cached = _run(small_config, tmp_path / "cached")
    plain = _run(dataclasses.replace(small_config, cache=dataclasses.replace(small_config.cache, enabled=False)), tmp_path / "plain")
    a, b = _candidates(cached), _candidates(plain)
    pd.testing.assert_frame_equal(a[["arch", "score"]], b[["arch", "score"]])
    assert (a["cached_depth"] > 0).any() and (b["cached_depth"] == 0).all()
    run_a, run_b = (store.load_run(p).run for p in (cached, plain))
    assert run_a["totals"]["macs"] < run_b["totals"]["macs"]
    assert run_a["result"] == run_b["result"]


@pytest.mark.parametrize("searcher", ["pcf-es-is", "random"])
def test_interrupted_run_resumes_to_the_same_result(small_config, tmp_path, searcher):
    config = with_searcher(small_config, searcher)
    whole = _run(config, tmp_path / "whole")

    def stop_after_two(generation):
        if generation == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(config, tmp_path / "cut", on_generation=stop_after_two)
    assert (tmp_path / "cut" / schema.CHECKPOINT_JSON).exists()
    with pytest.raises(store.RunLoadError, match="incomplete"):
        store.load_run(tmp_path / "cut")
    resumed = _run(config, tmp_path / "cut", resume=True)
    pd.testing.assert_frame_equal(_candidates(whole), _candidates(resumed))
    run = store.load_run(resumed).run
    assert run["resumes"] == 1 and run["totals"]["wall_s_before_resume"] > 0
    assert run["result"] == store.load_run(whole).run["result"]
    assert not (resumed / schema.CHECKPOINT_JSON).exists()


def test_run_files_follow_the_schema(small_config, tmp_path):
    path = _run(small_config, tmp_path / "run")
    record = store.load_run(path)
    run = record.run
    assert set(schema.RUN_KEYS) <= set(run)
    assert set(schema.TOTAL_KEYS) == set(run["totals"])
    assert run["schema_version"] == schema.SCHEMA_VERSION and run["status"] == "complete"
    assert run["meter_sources"]["wall_s"] == "perf_counter_ns"
    assert run["meter_sources"]["gpu_energy_j"].startswith("unavailable: ")
    assert run["totals"]["gpu_energy_j"] is None  # never a silent zero
    assert run["totals"]["candidates_evaluated"] == len(record.candidates)
    assert list(record.candidates.columns) == list(schema.CAND_COLUMNS)
    assert list(record.generations.columns[: len(schema.GEN_COLUMNS)]) == list(schema.GEN_COLUMNS)
    assert "share_b0" in record.generations.columns
    assert record.generations["cum_macs"].iloc[-1] == run["totals"]["macs"]
    assert 0 <= run["result"]["final_score"] <= 1 and run["result"]["test_accuracy"] is not None
    emissions = record.emissions
    assert emissions["co2_g"] == pytest.approx(emissions["energy_kwh"] * emissions["grid_intensity_g_per_kwh"], rel=1e-6)
    frame = store.load_runs([path])
    assert frame.loc[0, "searcher"] == "pcf-es" and frame.loc[0, "protocol_hash"] == run["protocol_hash"]


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
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
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
        workflow.validate(dataclasses.replace(small_config, **change))


def test_unknown_dataset_fails_fast(small_config):
    bad = dataclasses.replace(small_config, protocol=dataclasses.replace(small_config.protocol, dataset="mnist9"))
    with pytest.raises(ValueError, match="unknown dataset 'mnist9'"):
        workflow.validate(bad)


def test_checkpoint_of_another_supernet_is_refused(small_config):
    other = dataclasses.replace(small_config, supernet="mbv2-tiny")
    with pytest.raises(ValueError, match="conv-tiny"):
        workflow.open_workspace(workflow.resolve(other), progress=False)


def test_compare_matrix_gives_random_the_evolution_budget(small_config):
    configs = workflow.compare_configs(small_config, ["random", "evolution", "pcf-es"], [0, 1])
    assert [(c.searcher, c.seed) for c in configs] == [
        ("random", 0), ("evolution", 0), ("pcf-es", 0), ("random", 1), ("evolution", 1), ("pcf-es", 1)
    ]
    random_params = configs[0].searcher_params
    assert random_params["budget"] == 10 * 4 and "threshold" not in configs[1].searcher_params
    assert configs[2].searcher_params["threshold"] == 0.4

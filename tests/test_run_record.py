"""run.json through RunRecord: an exact JSON round trip, the one migration from version 2, and clear refusals."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from harness import schema, store, workflow
from harness.run_record import RUN_KEYS, SUPPORTED_VERSIONS, RunRecord, RunStatus, migrate_v2
from harness.resolution import resolve
from fixtures_runs import FixtureRun, as_version_2, record_for, write_run

REFERENCE_RUNS = Path(__file__).resolve().parents[1] / "reports" / "reference-cpu" / "runs.tar.xz"


def through_json(record: RunRecord) -> RunRecord:
    return RunRecord.from_json(json.loads(json.dumps(record.to_json())))


@pytest.mark.parametrize("status", list(RunStatus))
def test_a_record_comes_back_from_its_json_exactly(status):
    record = record_for(FixtureRun("pcf-es-is", 3, status=status.value, test_split=False))
    record = dataclasses.replace(record, searcher_notes=("a note",), evaluation={"work_macs_by_phase": {"validation": 5}})
    assert through_json(record) == record
    written = record.to_json()
    assert list(written) == list(RUN_KEYS) and written["schema_version"] == schema.SCHEMA_VERSION == 3
    assert written["status"] == status.value and type(written["status"]) is str  # plain JSON, not the enum
    assert (written["result"] is None) == (status is RunStatus.RUNNING)


def test_the_status_is_an_enum_of_the_two_values_run_json_holds():
    assert [s.value for s in RunStatus] == ["running", "complete"]
    assert RunStatus("complete") is RunStatus.COMPLETE
    with pytest.raises(ValueError, match="'done' is not a valid RunStatus"):
        RunStatus("done")


def test_a_version_2_run_json_loads_through_its_migration_to_the_same_record(tmp_path):
    record = record_for(FixtureRun("pcf-es", 11))
    old = as_version_2(record.to_json())
    assert RunRecord.from_json(old) == record
    assert migrate_v2(old) == record.to_json()
    # Version 2 runs from before the searcher's notes and the test split's size were recorded.
    older = {key: value for key, value in old.items() if key != "searcher_notes"}
    older["result"] = {key: value for key, value in old["result"].items() if key != "test_images"}
    migrated = RunRecord.from_json(older)
    assert migrated.searcher_notes == () and migrated.result.test_images is None
    # The store, and so the report, reads it as it was.
    path = write_run(tmp_path, FixtureRun("pcf-es", 11))
    store.write_json(path / schema.RUN_JSON, old)
    assert store.load_run(path).run == record


@pytest.mark.skipif(not REFERENCE_RUNS.is_file(), reason="the committed reference runs are not in this checkout")
def test_a_recorded_version_2_run_of_the_reference_loads_with_its_numbers():
    with tarfile.open(REFERENCE_RUNS) as archive:
        member = next(m for m in archive if m.name.endswith(f"/{schema.RUN_JSON}"))
        old = json.load(archive.extractfile(member))
    assert old["schema_version"] == 2
    record = RunRecord.from_json(old)
    assert record.config.reuse.level == old["reuse"]["level"] and record.reuse_budget_bytes == old["reuse"]["budget_bytes"]
    assert record.setup.config_hash == record.config.hash() == old["config_hash"]
    assert as_version_2(record.to_json()) == old  # nothing else changed, nothing lost


@pytest.mark.parametrize("version", [1, 4, None, "3"])
def test_any_other_version_is_a_one_line_error_naming_it_and_the_versions_read(version):
    data = {**record_for(FixtureRun("evolution", 3)).to_json(), "schema_version": version}
    with pytest.raises(ValueError) as caught:
        RunRecord.from_json(data)
    message = str(caught.value)
    assert "\n" not in message and f"schema version {version!r}" in message
    assert message.endswith(f"reads versions {', '.join(map(str, SUPPORTED_VERSIONS))}") and SUPPORTED_VERSIONS == (2, 3)


def test_a_run_json_with_missing_or_unknown_keys_is_refused_naming_them():
    data = record_for(FixtureRun("evolution", 3)).to_json()
    del data["totals"]
    data["extra"] = 1
    with pytest.raises(ValueError, match="lacks totals and has unknown extra"):
        RunRecord.from_json(data)


class Interrupt(Exception):
    pass


def test_a_run_started_under_version_2_resumes_to_the_answer_of_an_uninterrupted_run(small_config, tmp_path):
    def search(run_dir, **kwargs):
        run = resolve(small_config)
        workspace = workflow.open_workspace(run, progress=False)
        return workflow.run_search(run, workspace, run_dir=run_dir, progress=False, **kwargs)

    def stop(generation):
        if generation == 2:
            raise Interrupt

    whole = search(tmp_path / "whole")
    cut = tmp_path / "cut"
    with pytest.raises(Interrupt):
        search(cut, on_generation=stop)
    # What the version 2 runner left behind: its run.json, and a checkpoint.json of the same layout as now.
    store.write_json(cut / schema.RUN_JSON, as_version_2(store.read_json(cut / schema.RUN_JSON)))
    store.write_json(cut / schema.CHECKPOINT_JSON, {**store.read_json(cut / schema.CHECKPOINT_JSON), "schema_version": 2})
    resumed = workflow.resume_search(cut, progress=False)
    pd.testing.assert_frame_equal(
        pd.read_csv(cut / schema.CANDIDATES_CSV), pd.read_csv(whole.path / schema.CANDIDATES_CSV)
    )
    assert resumed.run.resumes == 1 and resumed.run.result == whole.run.result
    assert store.read_json(cut / schema.RUN_JSON)["schema_version"] == 3 and not (cut / schema.CHECKPOINT_JSON).exists()

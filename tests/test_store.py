"""Results on disk: folder locks, safe --overwrite, atomic writes under faults, truncated files, duplicate runs."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from conftest import fill_disk
from harness import schema, store
from harness.run_record import RunStatus
from fixtures_runs import FixtureRun, record_for, write_run


def _our_run_json(folder: Path) -> None:
    store.write_json(folder / schema.RUN_JSON, record_for(FixtureRun("evolution", 0)).to_json())


# --- locks ------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_blocks_nothing(tmp_path, lock_holder):
    folder = tmp_path / "run"
    holder = lock_holder(folder)
    with pytest.raises(store.FolderLockedError) as caught:
        with store.folder_lock(folder):
            pass
    message = str(caught.value)
    assert f"{folder} is being written by pid {holder.pid} on {socket.gethostname()}" in message
    assert "holder-tag" in message and "since 20" in message  # its command line and start time
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (folder / schema.LOCK_FILE).exists()  # a kill -9 leaves the file, but not the lock
    with store.folder_lock(folder):
        assert json.loads((folder / schema.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (folder / schema.LOCK_FILE).exists()


def test_folder_lock_is_reentrant_in_one_process_and_removes_a_folder_it_created_empty(tmp_path):
    folder = tmp_path / "new"
    with store.folder_lock(folder), store.folder_lock(folder):
        assert folder.is_dir()
    assert not folder.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file; a run, compare or sweep output needs a folder"):
        with store.folder_lock(tmp_path / "file"):
            pass


# --- run folders --------------------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_one_run_of_ours(tmp_path):
    results = tmp_path / "results"
    for name in ("run-a", "run-b"):
        _our_run_json(results / name)
    with pytest.raises(FileExistsError, match=r"refusing to delete .*results: it is not a pcfes run folder.*run-a, run-b"):
        store.prepare_run_dir(results, overwrite=True)  # what `--run-id . --overwrite` pointed at
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(FileExistsError, match="not a pcfes run folder.*thesis.txt"):
        store.prepare_run_dir(precious, overwrite=True)
    _our_run_json(precious)
    with pytest.raises(FileExistsError, match="besides the run it holds thesis.txt, which pcfes did not write"):
        store.prepare_run_dir(precious, overwrite=True)
    assert (precious / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in results.iterdir()) == ["run-a", "run-b"]
    (precious / "thesis.txt").unlink()
    (precious / ".checkpoint.json.x1.tmp").write_text("{")
    assert store.prepare_run_dir(precious, overwrite=True) is False
    assert list(precious.iterdir()) == []


def test_prepare_run_dir_says_what_a_folder_holds(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="run folder .*file is a file"):
        store.prepare_run_dir(tmp_path / "file")
    started = tmp_path / "started"
    store.write_json(started / schema.RUN_JSON, record_for(FixtureRun("evolution", 0, status="running")).to_json())
    with pytest.raises(FileExistsError, match=f"holds an interrupted run; pass --resume {started} to continue"):
        store.prepare_run_dir(started)
    assert store.resumable_run(started).status is RunStatus.RUNNING
    assert store.prepare_run_dir(started, resume=True) is False  # stopped before its first checkpoint: restart
    assert list(started.iterdir()) == []
    with pytest.raises(FileNotFoundError, match=r"cannot resume .*: it has no checkpoint.json \(run is missing\)"):
        store.prepare_run_dir(started, resume=True)


# --- writes ---------------------------------------------------------------------------------


def test_a_full_disk_leaves_the_old_file_and_no_half_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    store.write_json(path, {"old": 1})
    fill_disk(monkeypatch)
    with pytest.raises(OSError, match=f"cannot write {path}: No space left on device") as caught:
        store.write_json(path, {"new": list(range(100))})
    assert caught.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_nan_is_refused_naming_its_key_and_nothing_is_written(tmp_path):
    path = tmp_path / "run.json"
    with pytest.raises(ValueError, match=r"refusing to write .*run.json: totals.energy_j is not a finite number"):
        store.write_json(path, {"totals": {"wall_s": 1.0, "energy_j": float("nan")}})
    with pytest.raises(ValueError, match=r"result.scores\[1\] is not a finite number"):
        store.write_json(path, {"result": {"scores": [0.5, float("-inf")]}})
    assert list(tmp_path.iterdir()) == []


# --- loading --------------------------------------------------------------------------------


def test_truncated_csv_files_are_refused_with_both_row_counts(tmp_path):
    run = write_run(tmp_path, FixtureRun("evolution", 3))
    store.load_run(run)
    candidates = run / schema.CANDIDATES_CSV
    lines = candidates.read_text().splitlines(keepends=True)
    candidates.write_text("".join(lines[:-3]))
    with pytest.raises(store.RunLoadError, match=f"{candidates} has {len(lines) - 4} rows but run.json records {len(lines) - 1}"):
        store.load_run(run)
    candidates.write_text("".join(lines)[:-10])  # cut inside the last line
    with pytest.raises(store.RunLoadError, match="candidates.csv is truncated: its last line is incomplete"):
        store.load_run(run)
    candidates.write_text("".join(lines))
    generations = run / schema.GENERATIONS_CSV
    generations.write_text("".join(generations.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(store.RunLoadError, match="generations.csv has 4 rows but run.json records 5"):
        store.load_run(run)


def test_a_run_given_twice_or_copied_counts_once_and_names_the_copies(tmp_path, caplog):
    root = tmp_path / "runs"
    run = write_run(root, FixtureRun("evolution", 3))
    other_seed = write_run(root, FixtureRun("evolution", 11))
    copies = [root / "copy-1", root / "copy-2"]
    for copy in copies:
        shutil.copytree(run, copy)
    with caplog.at_level(logging.WARNING, logger="harness.store"):
        records = store.load_records([root])
    first = min([run, *copies])  # folders of a folder are taken in name order; the first is kept
    assert sorted(r.path for r in records) == sorted([first, other_seed])
    kept = next(r for r in records if r.run.setup.seed == 3)
    assert kept.path == first and set(kept.duplicates) == {run, *copies} - {first}
    assert sum("not another seed" in m for m in caplog.messages) == 2
    assert store.find_runs([root, run]) == sorted([first, other_seed])
    twice = store.load_records([run, run])
    assert [r.path for r in twice] == [run] and twice[0].duplicates == (run,)
    assert len(store.load_runs([run, run])) == 1

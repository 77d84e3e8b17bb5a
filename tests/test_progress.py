"""Progress off a terminal: one log line per step with its count and ETA, never a bar's refreshes."""

from __future__ import annotations

import logging

from pathlib import Path

from harness.progress import LineProgress, progress_bar


def test_off_a_terminal_each_step_is_one_line_with_count_and_eta(caplog):
    with caplog.at_level(logging.INFO, logger="pcfes.progress"):
        with progress_bar(3, "runs", "run") as bar:  # pytest captures stderr: not a terminal
            assert isinstance(bar, LineProgress)
            for name in ("evolution", "pcf-es", "random"):
                bar.set_postfix(next=name)
                bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("runs: 1/3 run (next=evolution), ") and "ETA" in lines[0]
    assert lines[-1].startswith("runs: 3/3 run (next=random), ") and "ETA" not in lines[-1]


def test_a_disabled_bar_says_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="pcfes.progress"):
        with progress_bar(2, "runs", "run", enabled=False) as bar:
            bar.update(1)
    assert not caplog.records


def test_the_compare_counter_names_the_run_it_counts(monkeypatch, caplog):
    """`runs: 1/3 run (done=random s0)` after random finished, never `next=` the run that just ended."""
    from harness import workflow
    from harness.config import RunConfig
    from harness.resolution import resolve

    runs = [resolve(RunConfig(searcher=name, seed=0)) for name in ("random", "evolution", "pcf-es")]
    monkeypatch.setattr(workflow, "validate", lambda run: None)
    monkeypatch.setattr(workflow, "open_workspace", lambda run, progress: None)
    monkeypatch.setattr(workflow, "check_importance_rate", lambda run, workspace: None)
    finished = []
    monkeypatch.setattr(workflow, "_matrix_run", lambda run, ws, run_dir, overwrite, progress: finished.append(run.config.searcher) or run_dir)
    with caplog.at_level(logging.INFO, logger="pcfes.progress"):
        workflow.run_matrix(runs, Path("unused"), progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "pcfes.progress"]
    assert [line.split(",")[0] for line in lines] == [
        "runs: 1/3 run (done=random s0)", "runs: 2/3 run (done=evolution s0)", "runs: 3/3 run (done=pcf-es s0)",
    ]
    assert finished == ["random", "evolution", "pcf-es"]

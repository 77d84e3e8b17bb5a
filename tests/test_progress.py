"""Progress off a terminal: one log line per step with its count and ETA, never a bar's refreshes."""

from __future__ import annotations

import logging

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

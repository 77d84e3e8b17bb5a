"""The summary ``pcfes search`` and ``pcfes compare`` print: one row per run, savings paired by seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness import schema
from harness.report.runs import BASELINE, CONTENTION_RATIO, runs_frame
from harness.report.statistics import SAVINGS, SCORE_DIFFERENCE, SEARCH_SCORE_DIFFERENCE, pair_with_baseline, summarise
from harness.report.tables import CONTENDED_MARK, configuration_name, estimate_cell
from harness.store import StoredRun


@dataclass(frozen=True)
class ConsoleSummary:
    """The per-run table, and the lines printed under it."""

    table: pd.DataFrame
    notes: tuple[str, ...]

    def format(self) -> str:
        """The table, then the notes."""
        return "\n".join([self.table.to_string(index=False), *self.notes])


def _rounded(value: Any, digits: int) -> Any:
    return "n/a" if value is None or value != value else round(float(value), digits)


def console_summary(records: Sequence[StoredRun]) -> ConsoleSummary:
    """Runs with wall and CPU time, work, energy, scores and their savings vs the same seed's evolution run.

    Without any evolution run (a single ``pcfes search``) there is nothing to pair with: the table
    shows the runs' own costs and scores, and a note says how to get savings.
    """
    runs = runs_frame(records)
    with_baseline = bool((runs["searcher"] == BASELINE).any())
    runs = pair_with_baseline(runs) if with_baseline else runs.assign(paired=False)
    rows = []
    for _, run in runs.iterrows():
        row = {
            "searcher": configuration_name(run),
            "seed": run["seed"],
            "reuse": run["reuse"],
            "wall_s": f"{run['wall_s']:.1f}{' ' + CONTENDED_MARK if run['contended'] else ''}",
            "cpu_s": _rounded(run["cpu_s"], 1),
            "macs": f"{run['macs']:.3e}",
            "macs_without_reuse": f"{run['macs_no_reuse']:.3e}",
            "energy_j": _rounded(run["energy_j"], 1),
            "energy_source": run[schema.source_column("energy_j")],
            "co2_g": _rounded(run["co2_g"], 4),
            "candidates": run["candidates_evaluated"],
            "search_split_score": _rounded(run["final_score"], 4),
            "test_acc": _rounded(run["test_accuracy"], 4),
        }
        for quantity, label in SAVINGS if with_baseline else ():
            if quantity in ("wall_s", "cpu_s", "macs"):
                column = label.replace(" (%)", "_%").replace(" ", "_")
                if run["searcher"] == BASELINE:
                    row[column] = "baseline"
                elif not run["paired"]:
                    row[column] = f"n/a (no {BASELINE} s{run['seed']})"
                else:
                    row[column] = _rounded(run[f"{quantity}_reduction_pct"], 1)
        rows.append(row)
    notes: list[str] = [
        "macs_without_reuse: what reuse level none would have executed for the same candidates "
        "(the work counter's executed + avoided MACs; no second run).",
        "test_acc: the answer's accuracy on held-out test images, the quality measure; search_split_score re-scores "
        "it on the validation images it was selected on (biased upward by selection)"
        + ("." if runs["test_accuracy"].notna().all() else "; test_acc n/a: the dataset has no test split."),
    ]
    if runs["contended"].any():
        notes.append(
            f"{CONTENDED_MARK} contended: wall time > {CONTENTION_RATIO:.2f}x CPU time in a single-threaded run "
            "(the process waited for the CPU); compare CPU times instead."
        )
    if not with_baseline:
        notes.append(
            f"Savings need a {BASELINE} run with the same seed and settings: `pcfes compare` runs both "
            f"(or add `pcfes search --searcher {BASELINE}` runs and report them together)."
        )
        return ConsoleSummary(pd.DataFrame(rows), tuple(notes))
    summary = summarise(runs)
    multi = summary[(summary["searcher"] != BASELINE) & (summary["paired_seeds"] >= 2)]
    if not multi.empty:
        notes.append(f"Savings vs {BASELINE}, mean [95% CI] over paired seeds:")
        for _, r in multi.iterrows():
            cells = "; ".join(f"{label.removesuffix(' (%)')} {estimate_cell(r, f'{q}_reduction_pct')}%" for q, label in SAVINGS)
            scores = "; ".join(
                f"{label.split(' (')[0]} {estimate_cell(r, f'{q}_diff_pts', '.2f')} points"
                for q, label in (SCORE_DIFFERENCE, SEARCH_SCORE_DIFFERENCE)
            )
            notes.append(f"  {configuration_name(r)} ({r['paired_seeds']} seeds): {cells}; {scores}")
    elif (runs["searcher"] != BASELINE).any() and runs["paired"].any():
        notes.append("1 seed: the savings above have no confidence interval; run --seeds 2 or more to get one.")
    return ConsoleSummary(pd.DataFrame(rows), tuple(notes))

"""The paper's Table 1 measure in a report: each searcher's answer trained stand-alone, tested on held-out images.

Stand-alone results come from ``harness.retrain`` (``pcfes retrain --runs``); a run's answer is
looked up by its space, dataset and arch. Where answers were retrained under several recipes the
report uses the recipe that covers most of them, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness import retrain
from harness.report.runs import BASELINE
from harness.report.statistics import CONFIDENCE, SCORE_DIFFERENCE, STANDALONE_DIFFERENCE, STANDALONE_REASON
from harness.report.tables import configuration_name, estimate_cell, md_table, summary_cell
from harness.store import StoredRun

NOT_RETRAINED = "answer not retrained: pcfes retrain --runs <runs folder>"
NO_RESULTS = "no stand-alone results given: pcfes retrain --runs <runs folder>, then pcfes report --standalone <cache>"


@dataclass(frozen=True)
class StandaloneSource:
    """Which stand-alone results a report used: the folder, the recipe, how many answers it covers."""

    folder: str
    recipe_hash: str
    recipe: str
    covered: int
    answers: int
    distinct_archs: int
    cpu_s: float
    other_recipes: int


def attach_standalone(
    runs: pd.DataFrame, records: Sequence[StoredRun], folder: str | Path | None
) -> tuple[pd.DataFrame, StandaloneSource | None]:
    """Add ``standalone_accuracy`` and its per-run reason to ``runs`` from the results in ``folder``
    (None: none given); None as source when nothing matched."""
    if folder is None:
        return runs.assign(**{STANDALONE_DIFFERENCE[0]: float("nan"), STANDALONE_REASON: NO_RESULTS}), None
    results = retrain.results_frame(Path(folder))
    answers = {
        r.run.setup.run_id: retrain.answer_key(r.run.setup.supernet, r.run.setup.supernet_config, r.run.setup.dataset, r.run.result.best_arch)
        for r in records
    }
    keys = runs["run_id"].map(answers)
    matched = results[results["answer"].isin(set(keys))]
    if matched.empty:
        return runs.assign(**{STANDALONE_DIFFERENCE[0]: float("nan"), STANDALONE_REASON: NOT_RETRAINED}), None
    coverage = matched.groupby("recipe_hash")["answer"].nunique().sort_values(ascending=False, kind="stable")
    recipe_hash = str(coverage.index[0])
    chosen = matched[matched["recipe_hash"] == recipe_hash].drop_duplicates("answer").set_index("answer")
    accuracy = keys.map(chosen["test_accuracy"])
    out = runs.assign(**{
        STANDALONE_DIFFERENCE[0]: pd.to_numeric(accuracy),
        STANDALONE_REASON: accuracy.isna().map({True: NOT_RETRAINED, False: ""}),
    })
    recipe = chosen["recipe"].iloc[0]
    source = StandaloneSource(
        folder=str(folder), recipe_hash=recipe_hash, recipe=", ".join(f"{k}={v}" for k, v in recipe.items()),
        covered=int(accuracy.notna().sum()), answers=len(runs), distinct_archs=len(chosen),
        cpu_s=float(chosen["cpu_s"].sum()), other_recipes=len(coverage) - 1,
    )
    return out, source


def standalone_md(summary: pd.DataFrame, source: StandaloneSource | None) -> str:
    """Stand-alone test accuracy of each configuration's answers and its paired difference vs evolution."""
    if source is None:
        reason = summary[f"{STANDALONE_DIFFERENCE[0]}_missing_reason"].iloc[0] if len(summary) else NOT_RETRAINED
        return f"Stand-alone columns missing: {reason}.\n"
    header = [
        "supernet", "searcher", "answers retrained", "stand-alone test accuracy", STANDALONE_DIFFERENCE[1],
        f"one-shot {SCORE_DIFFERENCE[1]}",
    ]
    rows = []
    for _, r in summary.iterrows():
        baseline = r["searcher"] == BASELINE
        rows.append([
            r["supernet"], configuration_name(r), f"{r['standalone_answers']} of {r['runs']}",
            summary_cell(r, STANDALONE_DIFFERENCE[0], ".4f"),
            "baseline" if baseline else estimate_cell(r, f"{STANDALONE_DIFFERENCE[0]}_diff_pts", ".2f"),
            "baseline" if baseline else estimate_cell(r, f"{SCORE_DIFFERENCE[0]}_diff_pts", ".2f"),
        ])
    others = f"; {source.other_recipes} other recipe(s) in the folder were not used" if source.other_recipes else ""
    note = (
        f"Each answer trained from scratch as a stand-alone network (recipe `{source.recipe_hash}`: {source.recipe}) and "
        f"tested on the held-out test split; mean ± std over seeds, and the paired difference against the same seed's "
        f"{BASELINE} answer with its {CONFIDENCE:.0%} interval. {source.covered} of {source.answers} answers covered by "
        f"{source.distinct_archs} distinct archs ({source.cpu_s:,.0f} s of CPU time to train them) from `{source.folder}`{others}. "
        "The last column repeats the one-shot (supernet-weights) held-out difference for comparison."
    )
    return md_table(header, rows) + "\n" + note + "\n"

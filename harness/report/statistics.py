"""Savings against evolution, paired by seed, with 95% confidence intervals: the one place they are computed.

A run is paired with the ``evolution`` run of the same group, supernet and seed whose reuse level
is comparable: ``none`` and ``frozen`` are the same computation for evolution (it never freezes),
so the paper's pairing (PCF-ES with its frozen-prefix cache against evolution from the input) and
the fair one (both with prefix reuse) both find their baseline. Per configuration, the mean
per-seed saving gets a Student-t interval over the paired seeds (n >= 2); with one seed there is
no interval, and the tables say so instead of showing ± 0.

Quality is compared on held-out images: the paired difference in test accuracy of the answers
(``SCORE_DIFFERENCE``). The answer's re-score on the validation images the search selected on
(``final_score``) is kept as ``SEARCH_SCORE_DIFFERENCE``, but it is biased upward by selection (the
winner's curse: the more near-optimal candidates a searcher looks at, the more of its answer's
score is luck on those images); ``SELECTION_GAP`` measures that bias per run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness import schema
from harness.report.runs import BASELINE, GROUP_KEYS, METRICS, ROW_KEYS, SOURCE_LABELS, UNMEASURED_REASONS, searcher_rank

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
# Quantities whose saving vs evolution is reported: (column, label).
SAVINGS: tuple[tuple[str, str], ...] = (
    ("wall_s", "time saved (%)"),
    ("cpu_s", "CPU time saved (%)"),
    ("energy_j", "energy saved (%)"),
    ("co2_g", "CO2 saved (%)"),
    ("macs", "MACs saved (%)"),
)
SCORE_DIFFERENCE = ("test_accuracy", "held-out test accuracy − evolution (points)")
SEARCH_SCORE_DIFFERENCE = ("final_score", "search-split score − evolution (points; biased upward by selection)")
SELECTION_GAP = ("selection_gap", "search-split score − held-out accuracy (points; winner's curse)")
NO_TEST_SPLIT = UNMEASURED_REASONS["test_accuracy"]
# The answer trained from scratch and tested on held-out images (harness.retrain): the paper's Table 1 measure.
STANDALONE_DIFFERENCE = ("standalone_accuracy", "stand-alone test accuracy − evolution (points)")
# Per-run reason a stand-alone accuracy is missing, in column STANDALONE_REASON of the runs frame.
STANDALONE_REASON = "standalone_accuracy_reason"
NO_BASELINE = f"no {BASELINE} run with the same seed"
PAIR_KEYS = (*GROUP_KEYS, "supernet", "seed", "baseline_level")


@dataclass(frozen=True)
class Estimate:
    """A mean over paired seeds with its confidence interval (None for a single seed)."""

    mean: float
    std: float
    n: int
    low: float | None
    high: float | None

    @property
    def significant(self) -> bool | None:
        """Whether the interval excludes 0 (None without an interval)."""
        if self.low is None or self.high is None:
            return None
        return not self.low <= 0.0 <= self.high


def estimate(values: pd.Series, confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sample std and Student-t interval of per-seed values (no interval for fewer than 2)."""
    n = int(values.count())
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return Estimate(mean, math.nan, n, None, None)
    std = float(values.std())
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Estimate(mean, std, n, mean - half, mean + half)


def baseline_level(level: str) -> str:
    """The evolution reuse level a run at ``level`` is paired with (``frozen`` means no reuse for evolution)."""
    return "none" if level in ("none", "frozen") else level


def pair_with_baseline(runs: pd.DataFrame) -> pd.DataFrame:
    """Add per run ``<q>_reduction_pct``, ``test_accuracy_diff_pts`` and ``final_score_diff_pts`` vs its same-seed
    evolution run, and ``selection_gap_pts`` (its own search-split score minus its held-out accuracy), with reasons."""
    runs = runs.assign(baseline_level=runs["reuse"].map(baseline_level))
    quantities = [q for q, _ in SAVINGS]
    base = runs[runs["searcher"] == BASELINE]
    for key, mates in base.groupby(list(PAIR_KEYS)):
        if mates["params"].nunique() > 1 or mates["reuse"].nunique() > 1:
            log.warning("several %s configurations for %s; pairing with their mean: %s", BASELINE, key, list(mates["run_id"]))
    scores = [q for q in (SCORE_DIFFERENCE[0], SEARCH_SCORE_DIFFERENCE[0], STANDALONE_DIFFERENCE[0]) if q in runs]
    aggregations: dict[str, Any] = {q: lambda s: s.mean() if s.notna().all() else np.nan for q in (*quantities, *scores)}
    aggregations |= {schema.source_column(q): lambda s: "; ".join(sorted(set(s))) for q in quantities if q in SOURCE_LABELS}
    aggregations["contended"] = "any"
    aggregations["run_id"] = lambda s: ", ".join(s)
    if STANDALONE_REASON in runs:
        aggregations[STANDALONE_REASON] = lambda s: "; ".join(sorted(set(s) - {""}))
    baseline = base.groupby(list(PAIR_KEYS)).agg(aggregations).add_suffix("_base").reset_index()
    out = runs.merge(baseline, on=list(PAIR_KEYS), how="left", indicator=True)
    out["paired"] = out.pop("_merge") == "both"
    for _, run in out[~out["paired"]].iterrows():
        log.warning("run %s has %s; it is left out of the savings", run["run_id"], NO_BASELINE)
    for q in quantities:
        value, reference = out[q], out[f"{q}_base"]
        out[f"{q}_reduction_pct"] = 100.0 * (1.0 - value / reference.where(reference > 0))
        if q in SOURCE_LABELS:
            reason = np.where(value.isna(), out[schema.source_column(q)], f"{BASELINE}: " + out[f"{schema.source_column(q)}_base"].fillna(""))
        else:
            reason = np.full(len(out), "not recorded")
        out[f"{q}_reduction_reason"] = np.where(out["paired"], reason, NO_BASELINE)
    for q in scores:
        out[f"{q}_diff_pts"] = 100.0 * (out[q] - out[f"{q}_base"])
        if q == STANDALONE_DIFFERENCE[0]:
            reason = np.where(out[q].isna(), out[STANDALONE_REASON], f"{BASELINE}: " + out[f"{STANDALONE_REASON}_base"].fillna(""))
        else:
            reason = np.full(len(out), NO_TEST_SPLIT if q == SCORE_DIFFERENCE[0] else "not recorded")
        unmeasured = out[q].isna() | out[f"{q}_base"].isna()
        out[f"{q}_diff_reason"] = np.where(out["paired"], np.where(unmeasured, reason, ""), NO_BASELINE)
    out["selection_gap_pts"] = 100.0 * (out["final_score"] - out["test_accuracy"])
    out["selection_gap_reason"] = np.where(out["test_accuracy"].isna(), NO_TEST_SPLIT, "")
    out["baseline_contended"] = out["contended_base"].fillna(False).astype(bool)
    out["baseline_run"] = out["run_id_base"]
    return out.drop(columns=[c for c in out if c.endswith("_base")])


def _test_images(runs: pd.DataFrame) -> str:
    """The test split size(s) the runs' held-out accuracies were measured on ("" where not recorded)."""
    sizes = sorted({int(n) for n in runs.get("test_images", pd.Series(dtype=float)).dropna()})
    return ", ".join(f"{n:,}" for n in sizes)


def binomial_se_pts(accuracy: float, images: int) -> float:
    """Standard error, in points, of an accuracy near ``accuracy`` measured on ``images`` independent images."""
    return 100.0 * math.sqrt(accuracy * (1.0 - accuracy) / images)


def _cell(values: pd.Series, reasons: pd.Series) -> tuple[Estimate, str]:
    """The estimate over seeds and "", or a NaN estimate and the reason when any value is unavailable."""
    missing = values.isna()
    if missing.any() or values.empty:
        return estimate(values.iloc[0:0]), "; ".join(sorted(set(reasons[missing]))) or NO_BASELINE
    return estimate(values), ""


def _put(row: dict[str, Any], column: str, cell: tuple[Estimate, str], *, interval: bool) -> None:
    est, reason = cell
    row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_missing_reason"] = est.mean, est.std, reason
    if interval:
        row[f"{column}_ci_low"], row[f"{column}_ci_high"] = est.low, est.high
        row[f"{column}_significant"] = est.significant


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: mean ± std of each metric; mean saving with a 95% interval, paired by seed."""
    rows = []
    for key, cell in runs.groupby(list(ROW_KEYS), sort=False):
        row: dict[str, Any] = dict(zip(ROW_KEYS, key))
        row["searcher_params"] = row.pop("params")
        row["variant"] = cell["variant"].iloc[0]
        row["dataset"] = ", ".join(sorted(set(cell["dataset"].astype(str))))
        row["runs"] = len(cell)
        row["seeds"] = " ".join(str(s) for s in sorted(cell["seed"]))
        for metric, _, _ in METRICS:
            reasons = cell.get(schema.source_column(metric), pd.Series(UNMEASURED_REASONS.get(metric, "not recorded"), cell.index))
            _put(row, metric, _cell(cell[metric], reasons), interval=False)
            if metric in SOURCE_LABELS:
                row[f"{metric}_source"] = "; ".join(sorted(set(cell[schema.source_column(metric)])))
        paired = cell[cell["paired"]]
        row["paired_seeds"] = len(paired)
        for q, _ in SAVINGS:
            column = f"{q}_reduction_pct"
            _put(row, column, _cell(paired[column], paired[f"{q}_reduction_reason"]), interval=True)
        for q in (SCORE_DIFFERENCE[0], SEARCH_SCORE_DIFFERENCE[0], STANDALONE_DIFFERENCE[0]):
            if f"{q}_diff_pts" in paired:
                _put(row, f"{q}_diff_pts", _cell(paired[f"{q}_diff_pts"], paired[f"{q}_diff_reason"]), interval=True)
        if STANDALONE_DIFFERENCE[0] in cell:
            _put(row, STANDALONE_DIFFERENCE[0], _cell(cell[STANDALONE_DIFFERENCE[0]], cell[STANDALONE_REASON]), interval=False)
            row["standalone_answers"] = int(cell[STANDALONE_DIFFERENCE[0]].notna().sum())
        _put(row, "selection_gap_pts", _cell(cell["selection_gap_pts"], cell["selection_gap_reason"]), interval=True)
        row["test_images"] = _test_images(cell)
        contended = sorted(set(cell.loc[cell["contended"], "run_id"]) | set(paired.loc[paired["baseline_contended"], "baseline_run"]))
        row["contended_runs"] = ", ".join(contended)
        rows.append(row)
    summary = pd.DataFrame(rows)
    return (
        summary.assign(_rank=searcher_rank(summary["searcher"]))
        .sort_values([*GROUP_KEYS, "supernet", "_rank", "searcher", "variant"])
        .drop(columns="_rank")
        .reset_index(drop=True)
    )

"""Markdown tables of a report: summary, savings with intervals, measurement sources, runs."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from harness import schema
from harness.report.runs import BASELINE, CONTENTION_RATIO, METRICS, SOURCE_LABELS
from harness.report.statistics import (
    CONFIDENCE,
    NO_TEST_SPLIT,
    SAVINGS,
    SCORE_DIFFERENCE,
    SEARCH_SCORE_DIFFERENCE,
    SELECTION_GAP,
    binomial_se_pts,
)

TABLE_SOURCES = ("wall_s", "cpu_s", "gpu_s", "gpu_energy_j", "cpu_energy_j", "energy_j", "co2_g")
CONTENDED_MARK = "†"
ONE_SEED = "1 seed: no interval"


def fmt(mean: float, std: float, spec: str) -> str:
    """``mean ± std`` with one shared format; spec "" = 4 significant digits of the mean; no ± for one value."""
    if not spec:
        magnitude = math.floor(math.log10(abs(mean))) if mean else 0
        spec = f".{max(0, 3 - magnitude)}f" if -3 <= magnitude < 6 else ".3e"
    text = format(mean, spec)
    return text if math.isnan(std) else f"{text} ± {format(std, spec)}"


def summary_cell(row: pd.Series, column: str, spec: str) -> str:
    """A metric's ``mean ± std`` over seeds, or ``n/a (reason)``."""
    reason = row[f"{column}_missing_reason"]
    if reason:
        return f"n/a ({reason})"
    return fmt(row[f"{column}_mean"], row[f"{column}_std"], spec)


def estimate_cell(row: pd.Series, column: str, spec: str = ".1f") -> str:
    """A paired mean with its 95% interval (``n.s.`` when it includes 0), or the one-seed note, or n/a."""
    reason = row[f"{column}_missing_reason"]
    if reason:
        return f"n/a ({reason})"
    mean, low, high = row[f"{column}_mean"], row[f"{column}_ci_low"], row[f"{column}_ci_high"]
    if low is None or pd.isna(low):
        return f"{format(mean, spec)} ({ONE_SEED})"
    text = f"{format(mean, spec)} [{format(low, spec)}, {format(high, spec)}]"
    return text if row[f"{column}_significant"] else f"{text} not significant"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)]) + "\n"


def configuration_name(row: pd.Series) -> str:
    """``searcher`` or ``searcher (variant)``."""
    return row["searcher"] if not row["variant"] else f"{row['searcher']} ({row['variant']})"


def summary_md(summary: pd.DataFrame) -> str:
    """Mean ± std over seeds of every metric, one row per configuration."""
    header = ["supernet", "searcher", "seeds", *(label for _, label, _ in METRICS)]
    rows = [
        [r["supernet"], configuration_name(r), r["seeds"], *(summary_cell(r, m, spec) for m, _, spec in METRICS)]
        for _, r in summary.iterrows()
    ]
    return md_table(header, rows)


QUALITY_COLUMNS = (
    (f"{SCORE_DIFFERENCE[0]}_diff_pts", SCORE_DIFFERENCE[1]),
    (f"{SEARCH_SCORE_DIFFERENCE[0]}_diff_pts", SEARCH_SCORE_DIFFERENCE[1]),
)


def savings_md(summary: pd.DataFrame) -> str:
    """Savings vs evolution (mean [95% CI] over paired seeds), the held-out and search-split score differences, the
    selection gap of every configuration (evolution's too), contention marks and notes."""
    header = ["supernet", "searcher", "paired seeds", *(label for _, label in SAVINGS), *(label for _, label in QUALITY_COLUMNS), SELECTION_GAP[1]]
    rows, contended = [], []
    for _, r in summary.iterrows():
        if r["searcher"] == BASELINE:
            cells = ["baseline"] * (len(SAVINGS) + len(QUALITY_COLUMNS))
        else:
            cells = [estimate_cell(r, f"{q}_reduction_pct") for q, _ in SAVINGS]
            cells += [estimate_cell(r, column, ".2f") for column, _ in QUALITY_COLUMNS]
            if r["contended_runs"]:
                cells[0] += f" {CONTENDED_MARK}"
                contended.append(r["contended_runs"])
        cells.append(estimate_cell(r, "selection_gap_pts", ".2f"))
        rows.append([r["supernet"], configuration_name(r), str(r["paired_seeds"]), *cells])
    notes = [
        f"Mean over seeds of the per-seed saving against the same seed's {BASELINE} run, with its "
        f"{CONFIDENCE:.0%} Student-t confidence interval in brackets; `not significant` marks an interval that "
        f"includes 0; with one paired seed there is no interval (`{ONE_SEED}`).",
        quality_note(summary),
    ]
    if contended:
        runs = ", ".join(sorted({run for group in contended for run in group.split(", ")}))
        notes.append(
            f"{CONTENDED_MARK} contended: a single-threaded run (or its {BASELINE} pair) spent more than "
            f"{CONTENTION_RATIO:.2f}x its CPU time on the wall clock, i.e. waited for the CPU; its wall-time saving "
            f"reflects other load on the machine, so rely on the CPU-time saving ({runs})."
        )
    return md_table(header, rows) + "\n" + "\n\n".join(notes) + "\n"


def quality_note(summary: pd.DataFrame) -> str:
    """What the score columns measure, the test split size and the noise of a held-out accuracy at that size."""
    text = (
        "Quality is the held-out column: the answer's accuracy on test images no searcher ever saw, paired by seed. "
        "The search-split score re-scores the answer on the validation images it was selected on, so it is biased "
        "upward by selection; the last column is that bias per configuration (it also holds any validation/test "
        "shift common to all searchers: compare it between searchers)."
    )
    if summary["test_accuracy_missing_reason"].astype(bool).all():
        return text + f" Held-out column missing: {NO_TEST_SPLIT} (datasets {', '.join(sorted(set(summary['dataset'])))})."
    sizes = sorted({int(size.replace(",", "")) for sizes in summary["test_images"] for size in sizes.split(", ") if size})
    if not sizes:
        return text + " The runs do not record their test split size (recorded since the runs' schema gained test_images)."
    accuracy = float(summary["test_accuracy_mean"].mean())
    se = binomial_se_pts(accuracy, sizes[0])  # the smallest split: the noisiest
    return text + (
        f" Test split: {' / '.join(f'{n:,}' for n in sizes)} images; at accuracy {accuracy:.3f} one held-out accuracy has a binomial "
        f"standard error of {se:.2f} points, a paired difference of two answers at most {math.sqrt(2) * se:.2f} points "
        "(less when they err on the same images); the seeds' intervals above include this noise."
    )


def sources_md(runs: pd.DataFrame, quantities: Iterable[str]) -> str:
    """Which meter produced each quantity (all sources when runs disagree), so estimates are never mistaken."""
    lines = [f"Measurement sources ({len(runs)} runs):"]
    for q in quantities:
        counts = runs[schema.source_column(q)].value_counts()
        parts = [
            f"{src}{' (estimate, not a measurement)' if 'estimate' in src.lower() else ''}"
            + (f" [{n} run{'' if n == 1 else 's'}]" if len(counts) > 1 else "")
            for src, n in counts.sort_index().items()
        ]
        lines.append(f"- {SOURCE_LABELS[q]}: {'; '.join(parts)}")
    if "co2_g" in quantities:
        lines.append(f"- grid intensity for CO2: {'; '.join(sorted(set(runs['grid'])))}")
    return "\n".join(lines) + "\n"


def runs_md(runs: pd.DataFrame) -> str:
    """Every run with its group, configuration, seed and folder."""
    return md_table(
        ["run_id", "protocol", "checkpoint", "supernet", "searcher", "seed", "reuse", "contended", "path"],
        [
            [r["run_id"], r["protocol_hash"], r["checkpoint_hash"], r["supernet"], configuration_name(r), str(r["seed"]),
             r["reuse"], "yes" if r["contended"] else "no", r["path"]]
            for _, r in runs.sort_values(["protocol_hash", "checkpoint_hash", "supernet", "searcher", "seed"]).iterrows()
        ],
    )

"""Sensitivity sweeps over one searcher parameter (paper Figs. 9-11): table and time-saved-vs-score figure."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

import searchers
from harness.report.document import dropped_lines, load, report_dir
from harness.report.style import AXES_HEIGHT_IN, COLUMN_WIDTH_IN, RC_PARAMS, figure_dir, legend, new_figure, save, searcher_colour
from harness.report.runs import BASELINE, GROUP_KEYS, runs_frame, searcher_rank
from harness.report.statistics import SAVINGS, SCORE_DIFFERENCE, SELECTION_GAP, pair_with_baseline, summarise
from harness.report.tables import TABLE_SOURCES, estimate_cell, md_table, quality_note, sources_md, summary_cell
from harness.store import write_csv, write_text

def _sweep_figure(points: pd.DataFrame, parameter: str, supernet: str, path: Path, formats: Sequence[str]) -> Path:
    """CPU time saved vs held-out test accuracy, one point per parameter value with error bars (paper Figs 9-11).

    Without a test split the x axis is the search-split score, and its label says so.
    """
    figure = new_figure(COLUMN_WIDTH_IN, AXES_HEIGHT_IN + 0.5)
    axes = figure.add_subplot()
    held_out = points["test_accuracy_missing_reason"].eq("").all()
    score = "test_accuracy" if held_out else "final_score"
    labelled: list[tuple[str, list[tuple[float, float, str]]]] = []
    for searcher, mine in points.groupby("searcher", sort=False):
        colour = searcher_colour(searcher)
        mine = mine.sort_values("value")
        time = mine["cpu_s_reduction_pct_mean"]  # evolution is paired with itself: 0 %
        axes.errorbar(
            mine[f"{score}_mean"], time,
            xerr=mine[f"{score}_std"].fillna(0.0), yerr=mine["cpu_s_reduction_pct_std"].fillna(0.0),
            color=colour, marker="o" if searcher != BASELINE else "s", markersize=4, capsize=2, linewidth=0.8,
            linestyle=":" if searcher != BASELINE else "none", label=searcher,
        )
        labelled.append((colour, list(zip(mine[f"{score}_mean"], time, mine["point_label"]))))
    # Values that end at (nearly) the same point, e.g. every monitor size when no window ever
    # passes, get one joint label instead of labels drawn over each other.
    axes.autoscale_view()
    for colour, spots in labelled:
        for x, y, labels in _label_clusters(spots, axes.transData.transform, figure.dpi):
            axes.annotate(_joint_label(labels), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, color=colour)
    quality = "held-out test accuracy" if held_out else "search-split score"
    axes.set_title(f"{supernet}: CPU time saved vs {quality}\nper {searchers.sweep_parameters()[parameter]}")
    axes.set_xlabel("held-out test accuracy" if held_out else "search-split score (no test split;\nbiased upward by selection)")
    axes.xaxis.set_major_locator(MaxNLocator(nbins=4))  # accuracy ticks are wide: more would overlap
    axes.set_ylabel(f"CPU time saved vs {BASELINE} (%)")
    legend(figure, axes)
    return save(figure, path, formats)


def _label_clusters(
    spots: Sequence[tuple[float, float, str]], to_pixels: Callable[[tuple[float, float]], np.ndarray], dpi: float
) -> list[tuple[float, float, list[str]]]:
    """Group points whose labels would overlap on the figure (closer than one label, in pixels)."""
    width, height = 0.45 * dpi, 0.1 * dpi  # a label like "rate=0.4" at 8 pt, in inches
    clusters: list[tuple[float, float, list[str], float, float]] = []
    for x, y, label in spots:
        px, py = to_pixels((x, y))
        home = next((c for c in clusters if abs(c[3] - px) < width and abs(c[4] - py) < height), None)
        if home is None:
            clusters.append((x, y, [label], px, py))
        else:
            home[2].append(label)
    return [(x, y, labels) for x, y, labels, _, _ in clusters]


def _joint_label(labels: Sequence[str]) -> str:
    """``["f=1", "f=2"]`` -> ``"f=1, 2"``: one symbol, the values listed."""
    symbol, _, _ = labels[0].partition("=")
    if len(labels) > 1 and all(label.startswith(f"{symbol}=") for label in labels):
        return f"{symbol}=" + ", ".join(label.partition("=")[2] for label in labels)
    return ", ".join(labels)


def sweep_report(
    paths: Iterable[str | Path], out_dir: str | Path, parameter: str, *, formats: Sequence[str] = ("png",)
) -> Path:
    """Sensitivity sweep over a searcher parameter (threshold, monitor or rate); returns the markdown path."""
    labels = searchers.sweep_parameters()
    if parameter not in labels:
        raise ValueError(f"unknown sweep parameter {parameter!r}; choose one of {', '.join(labels)}")
    out_dir = report_dir(out_dir)
    records, skipped = load(paths)
    swept = [r for r in records if r.run.setup.searcher != BASELINE and parameter in r.run.setup.searcher_params]
    if not swept:
        raise ValueError(f"no runs with searcher parameter {parameter!r} among the {len(records)} loaded runs; nothing to sweep")
    baselines = [r for r in records if r.run.setup.searcher == BASELINE]
    runs = pair_with_baseline(runs_frame(swept + baselines, unlabelled=(parameter,)))
    summary = summarise(runs)
    summary["value"] = pd.to_numeric(summary["searcher_params"].map(lambda p: json.loads(p).get(parameter)))
    symbol = labels[parameter].split()[-1]  # "H", "f", "rate"
    summary["point_label"] = [
        BASELINE if searcher == BASELINE else f"{symbol}={value:g}" + (f" ({variant})" if variant else "")
        for searcher, value, variant in zip(summary["searcher"], summary["value"], summary["variant"])
    ]
    write_csv(out_dir / f"sweep_{parameter}.csv", summary.drop(columns="point_label"))

    md = [f"# Sweep of {labels[parameter]} (`{parameter}`)\n"]
    md.append(
        f"Each point is one `{parameter}` value: mean ± sample std over seeds; CPU time saved (process CPU time, "
        f"not wall time) and the held-out accuracy difference are paired per seed with the {BASELINE} run of the "
        "same seed, group and supernet.\n"
    )
    md += dropped_lines(records, skipped)
    saved = [q for q in ("cpu_s", "energy_j", "macs")]
    header = [
        "searcher", parameter, "other params", "paired seeds", *(dict(SAVINGS)[q] for q in saved),
        "held-out test accuracy", SCORE_DIFFERENCE[1], "search-split score (biased upward by selection)", SELECTION_GAP[1],
    ]
    with mpl.rc_context(RC_PARAMS):
        groups = sorted(set(zip(summary["protocol_hash"], summary["checkpoint_hash"])))
        for (protocol_hash, checkpoint_hash, supernet), points in summary.groupby([*GROUP_KEYS, "supernet"], sort=True):
            if not (points["searcher"] != BASELINE).any():
                continue
            points = points.assign(_rank=searcher_rank(points["searcher"])).sort_values(["_rank", "searcher", "value"])
            group = groups.index((protocol_hash, checkpoint_hash)) + 1
            md.append(f"## {supernet}, group {group}: protocol `{protocol_hash}`, checkpoint `{checkpoint_hash}`\n")
            rows = [
                [
                    r["searcher"], "–" if r["searcher"] == BASELINE else f"{r['value']:g}", r["variant"] or "–",
                    str(r["paired_seeds"]),
                    *(
                        "baseline" if r["searcher"] == BASELINE else estimate_cell(r, f"{q}_reduction_pct")
                        for q in saved
                    ),
                    summary_cell(r, "test_accuracy", ".4f"),
                    "baseline" if r["searcher"] == BASELINE else estimate_cell(r, "test_accuracy_diff_pts", ".2f"),
                    summary_cell(r, "final_score", ".4f"),
                    estimate_cell(r, "selection_gap_pts", ".2f"),
                ]
                for _, r in points.iterrows()
            ]
            md.append(md_table(header, rows))
            md.append(quality_note(points) + "\n")
            cell_runs = runs[(runs["protocol_hash"] == protocol_hash) & (runs["checkpoint_hash"] == checkpoint_hash) & (runs["supernet"] == supernet)]
            md.append(sources_md(cell_runs, TABLE_SOURCES))
            path = figure_dir(out_dir, supernet, group, len(groups)) / f"sweep_{parameter}.png"
            _sweep_figure(points, parameter, supernet, path, formats)
            name = path.relative_to(out_dir).as_posix()
            caption = f"CPU time saved vs held-out test accuracy for each {labels[parameter]} (cf. paper Figs 9-11)"
            md.append(f"![{caption}]({name})\n\n*{caption}.*\n")
    report = out_dir / f"sweep_{parameter}.md"
    write_text(report, "\n".join(md))
    return report

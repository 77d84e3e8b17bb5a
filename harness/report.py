"""Comparative reports over recorded runs: summary tables, paper comparison, figures, parameter sweeps.

Runs are only ever averaged within one (protocol_hash, checkpoint_hash) group, one supernet and one
searcher configuration (``searcher_params``). Reductions vs ``evolution`` are paired per seed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness import schema
from harness.store import RunRecord, find_runs, generations_frame, load_records, run_summary_row, write_csv

log = logging.getLogger(__name__)

BASELINE = "evolution"
SEARCHER_ORDER = ("evolution", "random", "cf-es", "pcf-es", "pcf-es-is")
# Okabe-Ito colours (colour-blind safe); one colour per searcher in every figure.
SEARCHER_COLOURS: Mapping[str, str] = MappingProxyType(
    {
        "evolution": "#000000",
        "random": "#999999",
        "cf-es": "#E69F00",
        "pcf-es": "#0072B2",
        "pcf-es-is": "#D55E00",
    }
)
_FALLBACK_COLOURS = ("#009E73", "#CC79A7", "#56B4E9", "#F0E442")
_VARIANT_LINESTYLES = ("-", "--", ":", "-.")

GROUP_KEYS = ("protocol_hash", "checkpoint_hash")
ROW_KEYS = (*GROUP_KEYS, "supernet", "searcher", "params")  # one row per searcher configuration


@dataclass(frozen=True)
class PaperResult:
    """A saving vs SPOS evolutionary search reported by the paper, in percent (None: not reported)."""

    family: str | None  # None: stated over all supernets (see ``qualifier``)
    searcher: str
    settings: str
    time_saved_pct: float | None
    energy_saved_pct: float | None
    co2_saved_pct: float | None
    qualifier: str  # "" for a table row, else e.g. "up to" or "average"
    source: str


_ICLR = "ICLR 2023 submission (OpenReview XZRmNjUMj0c), ImageNet, Tesla P100, GPU h / GPU energy"
_JOURNAL = "Neurocomputing 598 (2024) 127702, abstract"
# Zhang et al., "Efficient one-shot NAS with progressive choice freezing evolutionary search" (PAPER.md).
PAPER_RESULTS: tuple[PaperResult, ...] = (
    PaperResult("SPOS", "cf-es", "H=0.7", 16.8, 15.6, None, "", f"{_ICLR}: 16.7→13.9 GPU h, 4.5→3.8 MJ"),
    PaperResult("SPOS", "pcf-es", "H=0.7, f=3", 55.0, 51.0, None, "", f"{_ICLR}: 16.7→7.5 GPU h, 4.5→2.2 MJ"),
    PaperResult("FairNAS", "pcf-es", "H=0.4, f=2", 45.0, 40.0, None, "", f"{_ICLR}: 15.2→8.4 GPU h, 4.2→2.5 MJ"),
    PaperResult("GreedyNAS", "pcf-es", "H=0.4, f=3", 38.0, 37.5, None, "", f"{_ICLR}: 17.9→11.1 GPU h, 4.8→3.0 MJ"),
    PaperResult(None, "cf-es", "H=0.7/0.4", 19.0, None, None, "average", f"{_ICLR}, text"),
    PaperResult(None, "pcf-es-is", "rate ≥ 0.4", 76.0, None, 71.0, "up to", _JOURNAL),
)
SUPERNET_FAMILIES = (("spos", "SPOS"), ("fairnas", "FairNAS"), ("greedynas", "GreedyNAS"))

# (column in run totals / result, table label, number format; "" = 4 significant digits)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("wall_s", "wall time (s)", ""),
    ("gpu_s", "GPU time (s)", ""),
    ("energy_j", "energy (J)", ""),
    ("co2_g", "CO2 (g)", ""),
    ("macs", "MACs", ".3e"),
    ("candidates_evaluated", "candidates", ".1f"),
    ("generations", "generations", ".1f"),
    ("final_score", "final score", ".4f"),
    ("test_accuracy", "test accuracy", ".4f"),
)
# Quantities whose saving vs evolution is reported: (column, label).
REDUCTIONS: tuple[tuple[str, str], ...] = (
    ("wall_s", "time saved (%)"),
    ("energy_j", "energy saved (%)"),
    ("co2_g", "CO2 saved (%)"),
    ("macs", "MACs saved (%)"),
)
SOURCE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "wall_s": "wall time",
        "cpu_s": "CPU time",
        "gpu_s": "GPU time",
        "gpu_energy_j": "GPU energy",
        "cpu_energy_j": "CPU energy",
        "energy_j": "energy (total)",
        "co2_g": "CO2",
    }
)
_UNMEASURED_REASONS = {"test_accuracy": "dataset has no test split"}
_NO_BASELINE = f"no {BASELINE} run with the same seed"

SWEEP_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {"threshold": "threshold H", "monitor": "monitor size f", "rate": "sample rate"}
)

COLUMN_WIDTH_IN = 3.5
PAGE_WIDTH_IN = 7.0
_DPI = 200
_STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def searcher_colour(searcher: str) -> str:
    """The fixed colour of ``searcher`` in every figure (an unknown name gets a stable fallback)."""
    if searcher in SEARCHER_COLOURS:
        return SEARCHER_COLOURS[searcher]
    return _FALLBACK_COLOURS[zlib.crc32(searcher.encode()) % len(_FALLBACK_COLOURS)]


def supernet_family(supernet: str) -> str | None:
    """Paper family of a supernet name by prefix (``spos-tiny`` -> ``SPOS``); None when the paper has none."""
    for prefix, family in SUPERNET_FAMILIES:
        if supernet.lower().startswith(prefix):
            return family
    return None


# ---------------------------------------------------------------- tables


def meter_source(meter_sources: Mapping[str, str], quantity: str) -> str:
    """Source string of ``quantity`` (keys may carry the unit, ``gpu_energy_j``, or not, ``gpu_energy``)."""
    unitless = quantity.rsplit("_", 1)[0]
    return str(meter_sources.get(quantity) or meter_sources.get(unitless) or "no source recorded")


def _grid_text(emissions: Mapping[str, Any]) -> str:
    intensity = emissions.get("grid_intensity_g_per_kwh")
    where = emissions.get("country_iso_code") or "unknown country"
    source = emissions.get("intensity_source") or "source not recorded"
    return f"{'unknown' if intensity is None else intensity} g/kWh for {where} ({source})"


def runs_frame(records: Sequence[RunRecord], *, unlabelled: Iterable[str] = ()) -> pd.DataFrame:
    """One row per run: ``store.run_summary_row`` plus params, variant label and per-quantity sources."""
    rows = []
    for record in records:
        row = run_summary_row(record)
        row["params"] = json.dumps(record.run["searcher_params"], sort_keys=True)
        for quantity in SOURCE_LABELS:
            row[f"src_{quantity}"] = meter_source(record.run["meter_sources"], quantity)
        row["grid"] = _grid_text(record.emissions)
        rows.append(row)
    frame = pd.DataFrame(rows)
    numeric = list(dict.fromkeys([*(m for m, _, _ in METRICS), *(q for q in SOURCE_LABELS if q in frame)]))
    frame[numeric] = frame[numeric].apply(pd.to_numeric)  # JSON null -> NaN, never 0
    frame["variant"] = _variant_labels(frame, tuple(unlabelled))
    return frame


def _variant_labels(frame: pd.DataFrame, unlabelled: tuple[str, ...]) -> pd.Series:
    """Name each searcher configuration by the params that differ among its runs (except ``unlabelled``)."""
    labels = pd.Series("", index=frame.index, dtype=object)
    for _, group in frame.groupby([*GROUP_KEYS, "supernet", "searcher"]):
        params = [json.loads(p) for p in group["params"]]
        keys = sorted(set().union(*params))
        varying = [k for k in keys if k not in unlabelled and len({json.dumps(p.get(k)) for p in params}) > 1]
        labels[group.index] = [", ".join(f"{k}={p[k]}" for k in varying if k in p) for p in params]
    return labels


def _with_reductions(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``<q>_reduction_pct`` per run vs the mean of same-group, same-supernet, same-seed evolution runs."""
    pair_keys = [*GROUP_KEYS, "supernet", "seed"]
    quantities = [q for q, _ in REDUCTIONS]
    base = runs[runs["searcher"] == BASELINE]
    for key, mates in base.groupby(pair_keys):
        if mates["params"].nunique() > 1:
            log.warning("several %s configurations for %s; pairing with their mean: %s", BASELINE, key, list(mates["run_id"]))
    aggregations = {q: lambda s: s.mean() if s.notna().all() else np.nan for q in quantities}
    aggregations |= {f"src_{q}": lambda s: "; ".join(sorted(set(s))) for q in quantities if q in SOURCE_LABELS}
    baseline = base.groupby(pair_keys).agg(aggregations).add_suffix("_base").reset_index()
    out = runs.merge(baseline, on=pair_keys, how="left", indicator=True)
    out["paired"] = out.pop("_merge") == "both"
    for _, run in out[~out["paired"]].iterrows():
        log.warning("run %s has %s; it is left out of the reductions", run["run_id"], _NO_BASELINE)
    for q in quantities:
        value, reference = out[q], out[f"{q}_base"]
        out[f"{q}_reduction_pct"] = 100.0 * (1.0 - value / reference.where(reference > 0))
        if q in SOURCE_LABELS:
            reason = np.where(value.isna(), out[f"src_{q}"], f"{BASELINE}: " + out[f"src_{q}_base"].fillna(""))
        else:
            reason = np.full(len(out), "not recorded")
        out[f"{q}_reduction_reason"] = np.where(out["paired"], reason, _NO_BASELINE)
    return out.drop(columns=[c for c in out if c.endswith("_base")])


def _cell(values: pd.Series, reasons: pd.Series) -> tuple[float, float, str]:
    """(mean, sample std, "") over seeds, or (nan, nan, reason) when any value is unavailable."""
    missing = values.isna()
    if missing.any() or values.empty:
        return math.nan, math.nan, "; ".join(sorted(set(reasons[missing]))) or _NO_BASELINE
    return float(values.mean()), float(values.std()), ""


def _summarise(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, cell in runs.groupby(list(ROW_KEYS), sort=False):
        row: dict[str, Any] = dict(zip(ROW_KEYS, key))
        row["searcher_params"] = row.pop("params")
        row["variant"] = cell["variant"].iloc[0]
        row["runs"] = len(cell)
        row["seeds"] = " ".join(str(s) for s in sorted(cell["seed"]))
        for metric, _, _ in METRICS:
            reasons = cell.get(f"src_{metric}", pd.Series(_UNMEASURED_REASONS.get(metric, "not recorded"), cell.index))
            row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_missing_reason"] = _cell(cell[metric], reasons)
            if metric in SOURCE_LABELS:
                row[f"{metric}_source"] = "; ".join(sorted(set(cell[f"src_{metric}"])))
        paired = cell[cell["paired"]]
        row["paired_seeds"] = len(paired)
        for q, _ in REDUCTIONS:
            column = f"{q}_reduction_pct"
            row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_missing_reason"] = _cell(
                paired[column], paired[f"{q}_reduction_reason"]
            )
        rows.append(row)
    summary = pd.DataFrame(rows)
    return (
        summary.assign(_rank=_searcher_rank(summary["searcher"]))
        .sort_values([*GROUP_KEYS, "supernet", "_rank", "searcher", "variant"])
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def _searcher_rank(searchers: pd.Series) -> pd.Series:
    """Position in SEARCHER_ORDER (unknown searchers last), for stable table and legend order."""
    return searchers.map(lambda s: SEARCHER_ORDER.index(s) if s in SEARCHER_ORDER else len(SEARCHER_ORDER))


def summary_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Mean ± std over seeds per (protocol, checkpoint, supernet, searcher, variant), with paired reductions."""
    return _summarise(_with_reductions(runs_frame(records)))


# ---------------------------------------------------------------- markdown


def _fmt(mean: float, std: float, spec: str) -> str:
    """``mean ± std`` with one shared format; spec "" = 4 significant digits of the mean."""
    if not spec:
        magnitude = math.floor(math.log10(abs(mean))) if mean else 0
        spec = f".{max(0, 3 - magnitude)}f" if -3 <= magnitude < 6 else ".3e"
    text = format(mean, spec)
    return text if math.isnan(std) else f"{text} ± {format(std, spec)}"


def _summary_cell(row: pd.Series, column: str, spec: str) -> str:
    reason = row[f"{column}_missing_reason"]
    if reason:
        return f"n/a ({reason})"
    return _fmt(row[f"{column}_mean"], row[f"{column}_std"], spec)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)]) + "\n"


def _name(row: pd.Series) -> str:
    return row["searcher"] if not row["variant"] else f"{row['searcher']} ({row['variant']})"


def _summary_md(summary: pd.DataFrame) -> str:
    header = ["supernet", "searcher", "seeds", *(label for _, label, _ in METRICS)]
    rows = [
        [r["supernet"], _name(r), r["seeds"], *(_summary_cell(r, m, spec) for m, _, spec in METRICS)]
        for _, r in summary.iterrows()
    ]
    return _md_table(header, rows)


def _reductions_md(summary: pd.DataFrame) -> str:
    header = ["supernet", "searcher", "paired seeds", *(label for _, label in REDUCTIONS)]
    rows = []
    for _, r in summary.iterrows():
        if r["searcher"] == BASELINE:
            cells = ["baseline"] * len(REDUCTIONS)
        else:
            cells = [_summary_cell(r, f"{q}_reduction_pct", ".1f") for q, _ in REDUCTIONS]
        rows.append([r["supernet"], _name(r), str(r["paired_seeds"]), *cells])
    return _md_table(header, rows)


def _sources_md(runs: pd.DataFrame, quantities: Iterable[str]) -> str:
    """Which meter produced each quantity (all sources when runs disagree), so estimates are never mistaken."""
    lines = [f"Measurement sources ({len(runs)} runs):"]
    for q in quantities:
        counts = runs[f"src_{q}"].value_counts()
        parts = [
            f"{src}{' (estimate, not a measurement)' if 'estimate' in src.lower() else ''}"
            + (f" [{n} run{'' if n == 1 else 's'}]" if len(counts) > 1 else "")
            for src, n in counts.sort_index().items()
        ]
        lines.append(f"- {SOURCE_LABELS[q]}: {'; '.join(parts)}")
    if "co2_g" in quantities:
        lines.append(f"- grid intensity for CO2: {'; '.join(sorted(set(runs['grid'])))}")
    return "\n".join(lines) + "\n"


_TABLE_SOURCES = ("wall_s", "gpu_s", "gpu_energy_j", "cpu_energy_j", "energy_j", "co2_g")


def _paper_md(summary: pd.DataFrame) -> str | None:
    rows = []
    for supernet in sorted(summary["supernet"].unique()):
        family = supernet_family(supernet)
        if family is None:
            continue
        ours = summary[summary["supernet"] == supernet]
        for paper in (p for p in PAPER_RESULTS if p.family in (family, None)):
            mine = ours[ours["searcher"] == paper.searcher]
            cells_list = (
                [[_name(r), *(_summary_cell(r, f"{q}_reduction_pct", ".1f") for q, _ in REDUCTIONS)] for _, r in mine.iterrows()]
                or [[f"{paper.searcher} (not run)", *(["–"] * len(REDUCTIONS))]]
            )
            for name, time, energy, co2, macs in cells_list:
                rows.append(
                    [
                        f"{family} ({supernet})",
                        name,
                        f"{paper.settings}" + (f" ({paper.qualifier})" if paper.qualifier else ""),
                        _pct(paper.time_saved_pct),
                        time,
                        _pct(paper.energy_saved_pct),
                        energy,
                        _pct(paper.co2_saved_pct),
                        co2,
                        macs,
                        paper.source,
                    ]
                )
    if not rows:
        return None
    header = [
        "family (ours)",
        "searcher (ours)",
        "paper settings",
        "paper time saved (%)",
        "ours time saved (%)",
        "paper energy saved (%)",
        "ours energy saved (%)",
        "paper CO2 saved (%)",
        "ours CO2 saved (%)",
        "ours MACs saved (%)",
        "paper source",
    ]
    return _md_table(header, rows)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


# ---------------------------------------------------------------- figures


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # headless: no pyplot state, no GUI backend
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=_DPI)
    return path


@dataclass(frozen=True)
class _Style:
    label: str
    colour: str
    linestyle: str
    linewidth: float


def _styles(frame: pd.DataFrame) -> dict[tuple[str, str], _Style]:
    """Colour by searcher, line style by configuration; later lines thinner so coinciding lines stay visible."""
    styles: dict[tuple[str, str], _Style] = {}
    pairs = frame[["searcher", "variant"]].drop_duplicates()
    pairs = pairs.assign(_rank=_searcher_rank(pairs["searcher"])).sort_values(["_rank", "searcher", "variant"])
    for searcher, group in pairs.groupby("searcher", sort=False):
        for i, variant in enumerate(group["variant"]):
            label = searcher if not variant else f"{searcher} ({variant})"
            width = max(0.8, 2.4 - 0.4 * len(styles))
            styles[(searcher, variant)] = _Style(label, searcher_colour(searcher), _VARIANT_LINESTYLES[i % 4], width)
    return styles


def _legend(figure: Figure, axes: Axes, order: Sequence[str] = ()) -> None:
    """One entry per label below the axes, in ``order`` (searcher order) where given."""
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ranked = sorted(unique, key=lambda label: order.index(label) if label in order else len(order))
    figure.legend([unique[k] for k in ranked], ranked, loc="outside lower center", ncols=min(3, len(ranked)), frameon=False)


def _mean_lines(gens: pd.DataFrame, column: str, title: str, ylabel: str, path: Path, *, steps: bool = False) -> Path:
    """One line per searcher configuration: mean of ``column`` over seeds at each generation."""
    figure = _figure(COLUMN_WIDTH_IN, 2.9)
    axes = figure.add_subplot()
    styles = _styles(gens)
    for (searcher, variant), style in styles.items():
        mine = gens[(gens["searcher"] == searcher) & (gens["variant"] == variant)]
        mean = mine.groupby("generation")[column].mean()
        axes.plot(
            mean.index, mean.values, drawstyle="steps-post" if steps else "default", marker="o", markersize=3,
            color=style.colour, linestyle=style.linestyle, linewidth=style.linewidth, label=style.label,
        )
    axes.set_title(title)
    axes.set_xlabel("generation")
    axes.set_ylabel(ylabel)
    axes.xaxis.get_major_locator().set_params(integer=True)
    _legend(figure, axes, [style.label for style in styles.values()])
    return _save(figure, path)


def _hold_after_end(gens: pd.DataFrame, column: str, final: float | None = None) -> pd.DataFrame:
    """Extend runs that stopped before other seeds of their configuration (searcher + variant), so
    means over seeds do not jump when one ends: added rows hold ``final``, or the last value."""
    last_of = gens.groupby(["searcher", "variant"])["generation"].transform("max")
    rows = []
    for _, run in gens.groupby("run_id", sort=False):
        end, last = int(run["generation"].max()), int(last_of[run.index].max())
        if end < last:
            tail = run.iloc[[-1] * (last - end)].copy()
            tail["generation"] = range(end + 1, last + 1)
            if final is not None:
                tail[column] = final
            rows.append(tail)
    return pd.concat([gens, *rows], ignore_index=True) if rows else gens


def _per_run_lines(gens: pd.DataFrame, x: str, title: str, xlabel: str, path: Path) -> Path:
    """Best score against a cumulative cost, one line per run (runs reach different costs)."""
    figure = _figure(COLUMN_WIDTH_IN, 2.9)
    axes = figure.add_subplot()
    styles = _styles(gens)
    for run_id, run in gens.groupby("run_id"):
        style = styles[(run["searcher"].iloc[0], run["variant"].iloc[0])]
        axes.plot(
            run[x], run["best_score"], color=style.colour, linestyle=style.linestyle, linewidth=style.linewidth,
            marker="o", markersize=2.5, label=style.label,
        )
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("best search score (accuracy)")
    _legend(figure, axes, [style.label for style in styles.values()])
    return _save(figure, path)


def _share_columns(gens: pd.DataFrame) -> list[str]:
    found = [c for c in gens.columns if re.fullmatch(r"share_b\d+", c) and gens[c].notna().any()]
    return sorted(found, key=lambda c: int(c[len("share_b") :]))


def _heatmap(gens: pd.DataFrame, supernet: str, path: Path) -> Path | None:
    """Majority-choice share per block over generations for evolution and pcf-es of one seed (paper Fig. 2)."""
    wanted = [s for s in (BASELINE, "pcf-es") if s in set(gens["searcher"])]
    if not wanted:
        return None
    seeds_per = [set(gens.loc[gens["searcher"] == s, "seed"]) for s in wanted]
    common = set.intersection(*seeds_per)
    seed = min(common) if common else min(set.union(*seeds_per))
    panels = []
    for searcher in wanted:
        mine = gens[(gens["searcher"] == searcher) & (gens["seed"] == seed)]
        if not mine.empty:  # the first configuration of the searcher, by name
            panels.append((searcher, mine[mine["variant"] == sorted(mine["variant"].unique())[0]]))
    figure = _figure(PAGE_WIDTH_IN if len(panels) > 1 else COLUMN_WIDTH_IN, 2.8)
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    image = None
    for axes, (searcher, run) in zip(axes_list, panels):
        columns = _share_columns(run)
        generations = run["generation"].to_numpy()
        image = axes.imshow(
            run[columns].to_numpy().T,
            aspect="auto",
            origin="upper",
            vmin=0.0,
            vmax=1.0,
            cmap="viridis",
            interpolation="nearest",
            extent=(generations[0] - 0.5, generations[-1] + 0.5, len(columns) - 0.5, -0.5),
        )
        title = searcher
        if run["frozen_depth"].max() > 0:
            edges = np.append(generations - 0.5, generations[-1] + 0.5)
            depth = np.append(run["frozen_depth"].to_numpy(), run["frozen_depth"].iloc[-1]) - 0.5
            axes.step(edges, depth, where="post", color="white", linestyle="--", linewidth=1.2)
            title += " (dashed: frozen prefix)"
        axes.set_title(title)
        axes.set_xlabel("generation")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.grid(False)
    axes_list[0].set_ylabel("block index")
    figure.colorbar(image, ax=list(axes_list), label="majority-choice share")
    figure.suptitle(f"{supernet}: majority-choice share per block, seed {seed}")
    return _save(figure, path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _group_slug(protocol_hash: str, checkpoint_hash: str) -> str:
    return _slug(f"p{protocol_hash[:8]}_c{checkpoint_hash[:8]}")


def _supernet_figures(gens: pd.DataFrame, supernet: str, out_dir: Path, prefix: str) -> Iterator[tuple[str, str]]:
    """Draw one supernet's figures; yields (markdown caption, file name) or (note, "") for figures not drawn."""
    gens = gens.assign(gen_wall_s=gens[[f"{p}_wall_s" for p in schema.PHASES]].sum(axis=1, min_count=1))
    base = f"{prefix}_{_slug(supernet)}"
    path = _mean_lines(
        _hold_after_end(gens, "gen_wall_s", final=0.0), "gen_wall_s", f"{supernet}: wall time per generation",
        "wall time per generation (s)\n(mean over seeds)", out_dir / f"{base}_generation_cost.png",
    )
    yield "Wall time per generation, mean over seeds (cf. paper Fig. 7); a search that ended early costs 0 s afterwards", path.name
    path = _mean_lines(
        _hold_after_end(gens, "best_score"), "best_score", f"{supernet}: best score per generation",
        "best search score (accuracy)\n(mean over seeds)",
        out_dir / f"{base}_best_score.png",
    )
    sampled = sorted(set(gens.loc[gens.groupby("run_id")["sample_size"].transform("nunique") > 1, "searcher"]))
    is_note = (
        f". {', '.join(sampled)}: once importance sampling starts, search scores are estimates on a subset of the "
        "validation images, so the best of them runs optimistic; the summary's final score re-scores every "
        "winner on the full validation set"
        if sampled else ""
    )
    yield (
        f"Best search score per generation, mean over seeds (cf. paper Fig. 8); a search that ended early "
        f"keeps its best score{is_note}",
        path.name,
    )
    path = _heatmap(gens, supernet, out_dir / f"{base}_majority_share.png")
    if path is None:
        yield f"Majority-share heatmap not drawn: no {BASELINE} or pcf-es runs", ""
    else:
        yield "Majority-choice share per block over generations, evolution vs pcf-es (cf. paper Fig. 2)", path.name
    # A freezing search ends early only once every block is frozen (then its last arch is scored).
    path = _mean_lines(
        _hold_after_end(gens, "frozen_depth", final=len(_share_columns(gens)) or None), "frozen_depth",
        f"{supernet}: frozen prefix depth", "frozen blocks\n(mean over seeds)",
        out_dir / f"{base}_frozen_depth.png", steps=True,
    )
    yield (
        "Frozen prefix depth per generation, mean over seeds; a search that ended early (every block frozen) "
        "counts as fully frozen afterwards",
        path.name,
    )
    path = _per_run_lines(
        gens, "cum_wall_s", f"{supernet}: best score vs wall time", "cumulative wall time (s)",
        out_dir / f"{base}_score_vs_time.png",
    )
    yield f"Best search score against cumulative wall time, one line per run{is_note}", path.name
    with_energy = gens.groupby("run_id")["cum_energy_j"].transform(lambda s: s.notna().all())
    without = sorted(set(gens.loc[~with_energy, "run_id"]))
    if with_energy.any():
        path = _per_run_lines(
            gens[with_energy], "cum_energy_j", f"{supernet}: best score vs energy", "cumulative energy (J)",
            out_dir / f"{base}_score_vs_energy.png",
        )
        note = f" (left out, energy unavailable: {', '.join(without)})" if without else ""
        yield (
            f"Best search score against cumulative energy, one line per run{note}; the energy source of each "
            f"run is listed under the tables above (an estimate where so labelled){is_note}",
            path.name,
        )
    else:
        yield "Best score against cumulative energy not drawn: energy unavailable for every run", ""


# ---------------------------------------------------------------- reports


def _load(paths: Iterable[str | Path]) -> tuple[list[RunRecord], list[Path]]:
    paths = list(paths)
    records = load_records(paths, skip_bad=True)  # warns naming each skipped run
    if not records:
        raise ValueError(f"no complete runs found in {', '.join(map(str, paths))}; nothing to report")
    loaded = {r.path for r in records}
    return records, [p for p in find_runs(paths) if p not in loaded]


def _group_heading(index: int, protocol_hash: str, checkpoint_hash: str, runs: pd.DataFrame) -> str:
    devices = ", ".join(sorted(set(runs["device"].astype(str))))
    datasets = ", ".join(sorted(set(runs["dataset"].astype(str))))
    return (
        f"## Group {index}: protocol `{protocol_hash}`, checkpoint `{checkpoint_hash}`\n\n"
        f"{len(runs)} runs; dataset {datasets}; device {devices}.\n"
    )


def write_report(paths: Iterable[str | Path], out_dir: str | Path, *, title: str | None = None) -> Path:
    """Write report.md, summary.csv and PNG figures for the runs under ``paths``; returns report.md's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, skipped = _load(paths)
    runs = _with_reductions(runs_frame(records))
    summary = _summarise(runs)
    write_csv(out_dir / "summary.csv", summary)
    gens = generations_frame(records).merge(runs[["run_id", "variant"]], on="run_id")

    groups = list(runs.groupby(list(GROUP_KEYS), sort=True))
    md = [f"# {title or 'pcfes-bench report'}\n"]
    md.append(
        f"{len(records)} runs in {len(groups)} group(s). Runs with different evaluation protocols "
        "(`protocol_hash`) or supernet checkpoints (`checkpoint_hash`) are never averaged together: "
        "each group has its own section. Values are mean ± sample std over seeds; runs of one searcher "
        "with different `searcher_params` are separate rows. Savings vs `evolution` are computed per seed "
        "against the evolution run with the same seed (same group and supernet), then averaged. "
        "`n/a (reason)` marks a quantity that was not measured.\n"
    )
    if skipped:
        md.append("Skipped (incomplete or unknown schema; the log says why): " + ", ".join(f"`{p}`" for p in skipped) + "\n")
    md += [f"Dropped as duplicates of a kept run (same config hash and seed, so not another seed): {', '.join(f'`{d}`' for r in records for d in r.duplicates)}\n"] if any(r.duplicates for r in records) else []
    with mpl.rc_context(_STYLE):
        for index, ((protocol_hash, checkpoint_hash), group_runs) in enumerate(groups, start=1):
            mask = (summary["protocol_hash"] == protocol_hash) & (summary["checkpoint_hash"] == checkpoint_hash)
            group_summary = summary[mask]
            md.append(_group_heading(index, protocol_hash, checkpoint_hash, group_runs))
            md += ["### Summary\n", _summary_md(group_summary), _sources_md(group_runs, _TABLE_SOURCES)]
            md += [f"### Savings vs {BASELINE} (paired by seed)\n", _reductions_md(group_summary), _sources_md(group_runs, _TABLE_SOURCES)]
            paper = _paper_md(group_summary)
            if paper:
                md += [
                    "### Comparison with the paper\n",
                    "Paper: ImageNet on Tesla P100, time = GPU hours, energy = GPU energy. "
                    "Ours: wall time and total energy of this group's runs.\n",
                    paper,
                    _sources_md(group_runs, _TABLE_SOURCES),
                ]
            prefix = _group_slug(protocol_hash, checkpoint_hash)
            group_gens = gens[(gens["protocol_hash"] == protocol_hash) & (gens["checkpoint_hash"] == checkpoint_hash)]
            for supernet, supernet_gens in group_gens.groupby("supernet"):
                md.append(f"### Figures: {supernet}\n")
                for caption, name in _supernet_figures(supernet_gens, supernet, out_dir, prefix):
                    md.append(f"![{caption}]({name})\n\n*{caption}.*\n" if name else f"*{caption}.*\n")
    md.append("## Runs\n")
    md.append(
        _md_table(
            ["run_id", "protocol", "checkpoint", "supernet", "searcher", "seed", "path"],
            [
                [r["run_id"], r["protocol_hash"], r["checkpoint_hash"], r["supernet"], _name(r), str(r["seed"]), r["path"]]
                for _, r in runs.sort_values(["protocol_hash", "checkpoint_hash", "supernet", "searcher", "seed"]).iterrows()
            ],
        )
    )
    report = out_dir / "report.md"
    report.write_text("\n".join(md), encoding="utf-8")
    log.info("wrote %s (%d runs, %d skipped)", report, len(records), len(skipped))
    return report


def _sweep_figure(points: pd.DataFrame, parameter: str, supernet: str, path: Path) -> Path:
    """Saved time vs final score, one point per parameter value with error bars (paper Figs 9-11)."""
    figure = _figure(COLUMN_WIDTH_IN, 3.0)
    axes = figure.add_subplot()
    labelled: list[tuple[str, list[tuple[float, float, str]]]] = []
    for searcher, mine in points.groupby("searcher", sort=False):
        colour = searcher_colour(searcher)
        mine = mine.sort_values("value")
        time = mine["wall_s_reduction_pct_mean"]  # evolution is paired with itself: 0 %
        axes.errorbar(
            mine["final_score_mean"], time,
            xerr=mine["final_score_std"].fillna(0.0), yerr=mine["wall_s_reduction_pct_std"].fillna(0.0),
            color=colour, marker="o" if searcher != BASELINE else "s", markersize=4, capsize=2, linewidth=0.8,
            linestyle=":" if searcher != BASELINE else "none", label=searcher,
        )
        labelled.append((colour, list(zip(mine["final_score_mean"], time, mine["point_label"]))))
    # Values that end at (nearly) the same point, e.g. every monitor size when no window ever
    # passes, get one joint label instead of labels drawn over each other.
    axes.autoscale_view()
    for colour, spots in labelled:
        for x, y, labels in _label_clusters(spots, axes.transData.transform, figure.dpi):
            axes.annotate(_joint_label(labels), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, color=colour)
    axes.set_title(f"{supernet}: time saved vs final score\nper {SWEEP_PARAMETERS[parameter]}")
    axes.set_xlabel("final score (full protocol, accuracy)")
    axes.xaxis.set_major_locator(MaxNLocator(nbins=4))  # accuracy ticks are wide: more would overlap
    axes.set_ylabel(f"time saved vs {BASELINE} (%)")
    _legend(figure, axes)
    return _save(figure, path)


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


def sweep_report(paths: Iterable[str | Path], out_dir: str | Path, parameter: str) -> Path:
    """Sensitivity sweep over a searcher parameter (threshold, monitor or rate); returns the markdown path."""
    if parameter not in SWEEP_PARAMETERS:
        raise ValueError(f"unknown sweep parameter {parameter!r}; choose one of {', '.join(SWEEP_PARAMETERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, skipped = _load(paths)
    swept = [r for r in records if r.run["searcher"] != BASELINE and parameter in r.run["searcher_params"]]
    if not swept:
        raise ValueError(f"no runs with searcher parameter {parameter!r} among the {len(records)} loaded runs; nothing to sweep")
    baselines = [r for r in records if r.run["searcher"] == BASELINE]
    runs = _with_reductions(runs_frame(swept + baselines, unlabelled=(parameter,)))
    summary = _summarise(runs)
    summary["value"] = pd.to_numeric(summary["searcher_params"].map(lambda p: json.loads(p).get(parameter)))
    symbol = SWEEP_PARAMETERS[parameter].split()[-1]  # "H", "f", "rate"
    summary["point_label"] = [
        BASELINE if searcher == BASELINE else f"{symbol}={value:g}" + (f" ({variant})" if variant else "")
        for searcher, value, variant in zip(summary["searcher"], summary["value"], summary["variant"])
    ]
    write_csv(out_dir / f"sweep_{parameter}.csv", summary.drop(columns="point_label"))

    md = [f"# Sweep of {SWEEP_PARAMETERS[parameter]} (`{parameter}`)\n"]
    md.append(
        f"Each point is one `{parameter}` value: mean ± sample std over seeds; time saved is paired per seed "
        f"with the {BASELINE} run of the same seed, group and supernet.\n"
    )
    if skipped:
        md.append("Skipped (incomplete or unknown schema; the log says why): " + ", ".join(f"`{p}`" for p in skipped) + "\n")
    header = ["searcher", parameter, "other params", "paired seeds", "time saved (%)", "energy saved (%)", "MACs saved (%)", "final score", "test accuracy"]
    with mpl.rc_context(_STYLE):
        for (protocol_hash, checkpoint_hash, supernet), points in summary.groupby([*GROUP_KEYS, "supernet"], sort=True):
            if not (points["searcher"] != BASELINE).any():
                continue
            points = points.assign(_rank=_searcher_rank(points["searcher"])).sort_values(["_rank", "searcher", "value"])
            md.append(f"## {supernet}: protocol `{protocol_hash}`, checkpoint `{checkpoint_hash}`\n")
            rows = [
                [
                    r["searcher"], "–" if r["searcher"] == BASELINE else f"{r['value']:g}", r["variant"] or "–",
                    str(r["paired_seeds"]),
                    *(
                        "baseline" if r["searcher"] == BASELINE else _summary_cell(r, f"{q}_reduction_pct", ".1f")
                        for q in ("wall_s", "energy_j", "macs")
                    ),
                    _summary_cell(r, "final_score", ".4f"), _summary_cell(r, "test_accuracy", ".4f"),
                ]
                for _, r in points.iterrows()
            ]
            md.append(_md_table(header, rows))
            cell_runs = runs[(runs["protocol_hash"] == protocol_hash) & (runs["checkpoint_hash"] == checkpoint_hash) & (runs["supernet"] == supernet)]
            md.append(_sources_md(cell_runs, _TABLE_SOURCES))
            name = f"sweep_{parameter}_{_group_slug(protocol_hash, checkpoint_hash)}_{_slug(supernet)}.png"
            _sweep_figure(points, parameter, supernet, out_dir / name)
            caption = f"Time saved vs final score for each {SWEEP_PARAMETERS[parameter]} (cf. paper Figs 9-11)"
            md.append(f"![{caption}]({name})\n\n*{caption}.*\n")
    report = out_dir / f"sweep_{parameter}.md"
    report.write_text("\n".join(md), encoding="utf-8")
    return report

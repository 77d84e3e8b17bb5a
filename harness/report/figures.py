"""Figures of a report: per-generation cost, score, frozen depth and majority share; headless matplotlib."""

from __future__ import annotations

import re
import textwrap
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import searchers
from harness import schema
from harness.report.runs import BASELINE, searcher_rank


COLUMN_WIDTH_IN = 3.5
PAGE_WIDTH_IN = 7.0
_DPI = 200
STYLE = {
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


def searcher_style(searcher: str) -> tuple[str, str]:
    """The fixed (colour, line style) of ``searcher`` in every figure: its registry entry's.

    A searcher that is not registered (found only in old run folders) gets a stable fallback by
    the hash of its name: a palette colour no registered searcher has, solid, while one is free.
    """
    entries = searchers.registered_searchers()
    if searcher in entries:
        return entries[searcher].colour, entries[searcher].linestyle
    taken = {entry.colour.upper() for entry in entries.values() if entry.linestyle == searchers.LINESTYLES[0]}
    free = [colour for colour in searchers.PALETTE if colour.upper() not in taken]
    key = zlib.crc32(searcher.encode())
    if free:
        return free[key % len(free)], searchers.LINESTYLES[0]
    palette, dashed = searchers.PALETTE, searchers.LINESTYLES[1:]
    return palette[key % len(palette)], dashed[key // len(palette) % len(dashed)]


def searcher_colour(searcher: str) -> str:
    """The fixed colour of ``searcher`` in every figure (see ``searcher_style``)."""
    return searcher_style(searcher)[0]


FIGURE_FORMATS = ("png", "pdf", "svg")


def new_figure(width: float, height: float) -> Figure:
    """A headless figure (no pyplot state, no GUI backend) with constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path, formats: Sequence[str] = ("png",)) -> Path:
    """Save ``figure`` as ``path`` (PNG, shown in report.md) and once more in each other format; returns ``path``."""
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f"unknown figure format(s) {', '.join(unknown)}; choose from {', '.join(FIGURE_FORMATS)}")
    figure.savefig(path, dpi=_DPI)
    for fmt in formats:
        if fmt != path.suffix.lstrip("."):
            figure.savefig(path.with_suffix(f".{fmt}"), dpi=_DPI)
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
    pairs = pairs.assign(_rank=searcher_rank(pairs["searcher"])).sort_values(["_rank", "searcher", "variant"])
    for searcher, group in pairs.groupby("searcher", sort=False):
        for i, variant in enumerate(group["variant"]):
            label = searcher if not variant else f"{searcher} ({variant})"
            width = max(0.8, 2.4 - 0.4 * len(styles))
            colour, linestyle = searcher_style(searcher)
            # Configurations of one searcher take the line styles after the searcher's own.
            first = searchers.LINESTYLES.index(linestyle)
            variant_style = searchers.LINESTYLES[(first + i) % len(searchers.LINESTYLES)]
            styles[(searcher, variant)] = _Style(label, colour, variant_style, width)
    return styles


def legend(figure: Figure, axes: Axes, order: Sequence[str] = ()) -> None:
    """One entry per label below the axes, in ``order`` (searcher order) where given, never wider than the figure.

    Fewer columns are tried until the legend fits; a label too long even for one column is wrapped.
    """
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ranked = sorted(unique, key=lambda label: order.index(label) if label in order else len(order))
    renderer = figure.canvas.get_renderer()
    width = figure.get_figwidth() * figure.dpi
    for wrap in (None, 40, 24, 16):
        texts = ranked if wrap is None else [textwrap.fill(label, wrap) for label in ranked]
        for ncols in range(min(3, len(ranked)), 0, -1):
            drawn = figure.legend([unique[k] for k in ranked], texts, loc="outside lower center", ncols=ncols, frameon=False)
            if drawn.get_window_extent(renderer).width <= width:
                return
            drawn.remove()
    figure.legend([unique[k] for k in ranked], texts, loc="outside lower center", ncols=1, frameon=False)


def _mean_lines(
    gens: pd.DataFrame, column: str, title: str, ylabel: str, path: Path, formats: Sequence[str], *, steps: bool = False
) -> Path:
    """One line per searcher configuration: mean of ``column`` over seeds at each generation, with a ±1 std
    band over seeds where there are several; ``steps`` draws an integer quantity (frozen depth) as steps."""
    figure = new_figure(COLUMN_WIDTH_IN, 2.9)
    axes = figure.add_subplot()
    styles = _styles(gens)
    for (searcher, variant), style in styles.items():
        mine = gens[(gens["searcher"] == searcher) & (gens["variant"] == variant)]
        per_generation = mine.groupby("generation")[column]
        mean, std = per_generation.mean(), per_generation.std()
        drawstyle = "steps-post" if steps else "default"
        axes.plot(
            mean.index, mean.values, drawstyle=drawstyle, marker="o", markersize=3,
            color=style.colour, linestyle=style.linestyle, linewidth=style.linewidth, label=style.label,
        )
        if (per_generation.count() > 1).any():
            axes.fill_between(
                mean.index, (mean - std).values, (mean + std).values, step="post" if steps else None,
                color=style.colour, alpha=0.15, linewidth=0,
            )
    axes.set_title(title)
    axes.set_xlabel("generation")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if steps:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    legend(figure, axes, [style.label for style in styles.values()])
    return save(figure, path, formats)


def hold_after_end(gens: pd.DataFrame, column: str, final: float | None = None) -> pd.DataFrame:
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


def _per_run_lines(gens: pd.DataFrame, x: str, title: str, xlabel: str, path: Path, formats: Sequence[str]) -> Path:
    """Best score against a cumulative cost, one line per run (runs reach different costs)."""
    figure = new_figure(COLUMN_WIDTH_IN, 2.9)
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
    legend(figure, axes, [style.label for style in styles.values()])
    return save(figure, path, formats)


def _share_columns(gens: pd.DataFrame) -> list[str]:
    found = [c for c in gens.columns if re.fullmatch(r"share_b\d+", c) and gens[c].notna().any()]
    return sorted(found, key=lambda c: int(c[len("share_b") :]))


def _heatmap(gens: pd.DataFrame, supernet: str, path: Path, formats: Sequence[str]) -> Path | None:
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
    figure = new_figure(PAGE_WIDTH_IN if len(panels) > 1 else COLUMN_WIDTH_IN, 2.8)
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
    return save(figure, path, formats)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def group_slug(protocol_hash: str, checkpoint_hash: str) -> str:
    return slug(f"p{protocol_hash[:8]}_c{checkpoint_hash[:8]}")


def supernet_figures(
    gens: pd.DataFrame, supernet: str, out_dir: Path, prefix: str, formats: Sequence[str] = ("png",)
) -> Iterator[tuple[str, str]]:
    """Draw one supernet's figures; yields (markdown caption, file name) or (note, "") for figures not drawn."""
    gens = gens.assign(gen_wall_s=gens[[f"{p}_wall_s" for p in schema.PHASES]].sum(axis=1, min_count=1))
    base = f"{prefix}_{slug(supernet)}"
    path = _mean_lines(
        hold_after_end(gens, "gen_wall_s", final=0.0), "gen_wall_s", f"{supernet}: wall time per generation",
        "wall time per generation (s)\n(mean over seeds)", out_dir / f"{base}_generation_cost.png", formats
    )
    yield (
        "Wall time per generation, mean over seeds with a ±1 std band (cf. paper Fig. 7); a search that ended early "
        "costs 0 s afterwards",
        path.name,
    )
    path = _mean_lines(
        hold_after_end(gens, "best_score"), "best_score", f"{supernet}: best score per generation",
        "best search score (accuracy)\n(mean over seeds)",
        out_dir / f"{base}_best_score.png", formats
    )
    sampled = sorted(set(gens.loc[gens.groupby("run_id")["sample_size"].transform("nunique") > 1, "searcher"]))
    is_note = (
        f". {', '.join(sampled)}: once importance sampling starts, search scores are estimates on a subset of the "
        "validation images, so the best of them runs optimistic; the summary's final score re-scores every "
        "winner on the full validation set"
        if sampled else ""
    )
    yield (
        f"Best search score per generation, mean over seeds with a ±1 std band (cf. paper Fig. 8); a search that ended early "
        f"keeps its best score{is_note}",
        path.name,
    )
    path = _heatmap(gens, supernet, out_dir / f"{base}_majority_share.png", formats)
    if path is None:
        yield f"Majority-share heatmap not drawn: no {BASELINE} or pcf-es runs", ""
    else:
        yield "Majority-choice share per block over generations, evolution vs pcf-es (cf. paper Fig. 2)", path.name
    # A freezing search ends early only once every block is frozen (then its last arch is scored).
    path = _mean_lines(
        hold_after_end(gens, "frozen_depth", final=len(_share_columns(gens)) or None), "frozen_depth",
        f"{supernet}: frozen prefix depth", "frozen blocks\n(mean over seeds)",
        out_dir / f"{base}_frozen_depth.png", formats, steps=True,
    )
    yield (
        "Frozen prefix depth per generation, mean over seeds with a ±1 std band; a search that ended early (every block frozen) "
        "counts as fully frozen afterwards",
        path.name,
    )
    path = _per_run_lines(
        gens, "cum_wall_s", f"{supernet}: best score vs wall time", "cumulative wall time (s)",
        out_dir / f"{base}_score_vs_time.png", formats
    )
    yield f"Best search score against cumulative wall time, one line per run{is_note}", path.name
    with_energy = gens.groupby("run_id")["cum_energy_j"].transform(lambda s: s.notna().all())
    without = sorted(set(gens.loc[~with_energy, "run_id"]))
    if with_energy.any():
        path = _per_run_lines(
            gens[with_energy], "cum_energy_j", f"{supernet}: best score vs energy", "cumulative energy (J)",
            out_dir / f"{base}_score_vs_energy.png", formats
        )
        note = f" (left out, energy unavailable: {', '.join(without)})" if without else ""
        yield (
            f"Best search score against cumulative energy, one line per run{note}; the energy source of each "
            f"run is listed under the tables above (an estimate where so labelled){is_note}",
            path.name,
        )
    else:
        yield "Best score against cumulative energy not drawn: energy unavailable for every run", ""


def seed_strips(runs: pd.DataFrame, supernet: str, path: Path, formats: Sequence[str]) -> Path | None:
    """Per-seed CPU-time saving and held-out accuracy difference vs evolution, one strip per configuration (bimodality shows)."""
    paired = runs[runs["paired"] & (runs["searcher"] != BASELINE)]
    if paired.empty:
        return None
    names = paired.assign(_rank=searcher_rank(paired["searcher"])).sort_values(["_rank", "searcher", "variant"])
    configurations = list(dict.fromkeys(zip(names["searcher"], names["variant"])))
    figure = new_figure(PAGE_WIDTH_IN, 0.9 + 0.35 * len(configurations))
    saved_axes, score_axes = figure.subplots(1, 2, sharey=True)
    for row, (searcher, variant) in enumerate(configurations):
        mine = paired[(paired["searcher"] == searcher) & (paired["variant"] == variant)]
        jitter = np.linspace(-0.15, 0.15, len(mine)) if len(mine) > 1 else np.zeros(1)
        for axes, column in ((saved_axes, "cpu_s_reduction_pct"), (score_axes, "test_accuracy_diff_pts")):
            axes.scatter(mine[column], row + jitter, s=14, color=searcher_colour(searcher), zorder=3)
    labels = [searcher if not variant else f"{searcher} ({variant})" for searcher, variant in configurations]
    saved_axes.set_yticks(range(len(configurations)), [textwrap.fill(label, 28) for label in labels])
    saved_axes.invert_yaxis()
    for axes in (saved_axes, score_axes):
        axes.axvline(0.0, color="#555555", linewidth=0.8)
        axes.xaxis.set_major_locator(MaxNLocator(nbins=5))
    saved_axes.set_xlabel(f"CPU time saved vs {BASELINE} (%)")
    score_axes.set_xlabel(f"held-out test accuracy − {BASELINE} (points)")
    figure.suptitle(f"{supernet}: one point per seed")
    return save(figure, path, formats)

"""Figures of a report: per-generation cost, score, frozen depth and majority share; headless matplotlib.

The look (sizes, fonts, palette, legends, file layout) is ``harness.report.style``'s.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

import searchers
from harness import schema
from harness.report.runs import BASELINE, searcher_rank
from harness.report.style import (
    AXES_HEIGHT_IN, COLUMN_WIDTH_IN, LINESTYLES, PAGE_WIDTH_IN, clip_band, legend, new_figure, save, searcher_colour,
    searcher_style,
)

# How each energy source reads on an axis: measured by a counter, or a CodeCarbon estimate.
_ENERGY_SOURCE_WORDS = (("codecarbon_estimate", "CodeCarbon estimate"), ("codecarbon_rapl", "CodeCarbon from RAPL"),
                        ("nvml", "NVML"), ("rapl", "RAPL"))


def energy_source_text(sources: Iterable[str]) -> str:
    """How the energy of the runs drawn was obtained, for an axis label: ``CodeCarbon estimate``, ``measured: RAPL``."""
    words = []
    for source in sorted(set(sources)):
        parts = [word for key, word in _ENERGY_SOURCE_WORDS if key in source]
        words.append(" + ".join(dict.fromkeys(p for p in parts if not (p == "RAPL" and "CodeCarbon from RAPL" in parts))))
    if len(set(words)) != 1 or not words[0]:
        return "sources differ per run (see the tables)"
    return words[0] if "CodeCarbon" in words[0] else f"measured: {words[0]}"


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
            width = max(0.8, 2.0 - 0.3 * len(styles))
            colour, linestyle = searcher_style(searcher)
            # Configurations of one searcher take the line styles after the searcher's own.
            variant_style = LINESTYLES[(LINESTYLES.index(linestyle) + i) % len(LINESTYLES)]
            styles[(searcher, variant)] = _Style(label, colour, variant_style, width)
    return styles


def _mean_lines(
    gens: pd.DataFrame, column: str, title: str, ylabel: str, path: Path, formats: Sequence[str], *,
    bounds: tuple[float | None, float | None], steps: bool = False,
) -> Path:
    """One line per searcher configuration: mean of ``column`` over seeds at each generation, with a ±1 std
    band over seeds where there are several, clipped to ``bounds``; ``steps`` draws an integer quantity (a depth)
    as steps on its whole feasible range."""
    figure = new_figure(COLUMN_WIDTH_IN)
    axes = figure.add_subplot()
    styles = _styles(gens)
    for (searcher, variant), style in styles.items():
        mine = gens[(gens["searcher"] == searcher) & (gens["variant"] == variant)]
        per_generation = mine.groupby("generation")[column]
        mean, std = per_generation.mean(), per_generation.std()
        axes.plot(
            mean.index, mean.values, drawstyle="steps-post" if steps else "default", marker="o", markersize=2.5,
            color=style.colour, linestyle=style.linestyle, linewidth=style.linewidth, label=style.label,
        )
        if (per_generation.count() > 1).any():
            low, high = clip_band(mean - std, mean + std, bounds)
            axes.fill_between(
                mean.index, low.values, high.values, step="post" if steps else None, color=style.colour, alpha=0.15, linewidth=0,
            )
    axes.set_title(title)
    axes.set_xlabel("generation")
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if steps:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        low, high = bounds
        if low is not None and high is not None:
            axes.set_ylim(low - 0.04 * (high - low or 1), high + 0.04 * (high - low or 1))
    legend(figure, axes, [style.label for style in styles.values()])
    return save(figure, path, formats)


def hold_after_end(
    gens: pd.DataFrame, column: str, final: float | None = None, *, until: Mapping[str, int] | None = None
) -> pd.DataFrame:
    """Extend runs that stopped before other seeds of their configuration (searcher + variant), so
    means over seeds do not jump when one ends: added rows hold ``final``, or the last value.
    ``until`` (run id -> generation) extends those runs to that generation instead."""
    last_of = gens.groupby(["searcher", "variant"])["generation"].transform("max")
    until = until or {}
    rows = []
    for run_id, run in gens.groupby("run_id", sort=False):
        end = int(run["generation"].max())
        last = int(until.get(run_id, last_of[run.index].max()))
        if end < last:
            tail = run.iloc[[-1] * (last - end)].copy()
            tail["generation"] = range(end + 1, last + 1)
            if final is not None:
                tail[column] = final
            rows.append(tail)
    return pd.concat([gens, *rows], ignore_index=True) if rows else gens


def _per_run_lines(gens: pd.DataFrame, x: str, title: str, xlabel: str, path: Path, formats: Sequence[str]) -> Path:
    """Best score against a cumulative cost, one line per run (runs reach different costs)."""
    figure = new_figure(COLUMN_WIDTH_IN)
    axes = figure.add_subplot()
    styles = _styles(gens)
    for _, run in gens.groupby("run_id"):
        style = styles[(run["searcher"].iloc[0], run["variant"].iloc[0])]
        axes.plot(
            run[x], run["best_score"], color=style.colour, linestyle=style.linestyle, linewidth=style.linewidth,
            marker="o", markersize=2, label=style.label,
        )
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(SCORE_LABEL)
    legend(figure, axes, [style.label for style in styles.values()])
    return save(figure, path, formats)


def _share_columns(gens: pd.DataFrame) -> list[str]:
    found = [c for c in gens.columns if re.fullmatch(r"share_b\d+", c) and gens[c].notna().any()]
    return sorted(found, key=lambda c: int(c[len("share_b") :]))


def _heatmap(gens: pd.DataFrame, supernet: str, path: Path, formats: Sequence[str]) -> Path | None:
    """Majority-choice share per block over generations for the baseline and the paper's method, one seed (paper Fig. 2)."""
    wanted = [s for s in (BASELINE, searchers.paper_method_name(missing_ok=True)) if s in set(gens["searcher"])]
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
    figure = new_figure(PAGE_WIDTH_IN if len(panels) > 1 else COLUMN_WIDTH_IN, AXES_HEIGHT_IN + 0.4)
    axes_list = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    image = None
    for axes, (searcher, run) in zip(axes_list, panels):
        columns = _share_columns(run)
        generations = run["generation"].to_numpy()
        image = axes.imshow(
            run[columns].to_numpy().T, aspect="auto", origin="upper", vmin=0.0, vmax=1.0, cmap="viridis",
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
    axes_list[0].set_ylabel("block index (0 = input side)")
    figure.colorbar(image, ax=list(axes_list), label="majority-choice share")
    figure.suptitle(f"{supernet}: majority-choice share per block, seed {seed}")
    return save(figure, path, formats)


SCORE_LABEL = "best search score (accuracy)"
# File names of the figures in a group's folder; what each shows is in its name.
FIGURE_FILES: Mapping[str, str] = {
    "generation_cost": "wall_time_per_generation.png",
    "best_score": "best_score_per_generation.png",
    "majority_share": "majority_share_per_block.png",
    "frozen_depth": "frozen_prefix_depth.png",
    "score_vs_time": "best_score_vs_wall_time.png",
    "score_vs_energy": "best_score_vs_energy.png",
    "seed_savings": "savings_per_seed.png",
    "majority_distance": "majority_vs_final_choice.png",
}


def _freeze_note(gens: pd.DataFrame) -> str:
    """Why a freezing searcher's best score can fall: after a freeze the answer must carry the frozen prefix."""
    frozen = sorted(set(gens.loc[gens["frozen_depth"] > 0, "searcher"]), key=searchers.display_rank)
    if not frozen:
        return ""
    return (
        f". The best score of {', '.join(frozen)} can fall at a freeze: from then on the answer is the best parent "
        "that carries the frozen prefix (searchers/evolution.py), so a better-scored arch with other choices in "
        "the frozen blocks stops counting; this is the searcher's rule, not a lost evaluation"
    )


def supernet_figures(
    gens: pd.DataFrame, supernet: str, folder: Path, formats: Sequence[str] = ("png",),
    energy_sources: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, Path | None]]:
    """Draw one supernet's figures into ``folder``; yields (markdown caption, path) or (note, None) for figures
    not drawn. ``energy_sources`` (run id -> energy source) labels the energy axis measured or estimated, and
    says why where no run has energy."""
    energy_sources = dict(energy_sources or {})
    gens = gens.assign(gen_wall_s=gens[[f"{p}_wall_s" for p in schema.PHASES]].sum(axis=1, min_count=1))
    blocks = len(_share_columns(gens))
    path = _mean_lines(
        hold_after_end(gens, "gen_wall_s", final=0.0), "gen_wall_s", f"{supernet}: cost per generation",
        "wall time per generation (s)", folder / FIGURE_FILES["generation_cost"], formats, bounds=(0.0, None),
    )
    yield (
        "Wall-clock time per generation (perf_counter; all phases), mean over seeds with a ±1 std band (cf. paper "
        "Fig. 7); a search that ended early costs 0 s afterwards",
        path,
    )
    path = _mean_lines(
        hold_after_end(gens, "best_score"), "best_score", f"{supernet}: best score per generation", SCORE_LABEL,
        folder / FIGURE_FILES["best_score"], formats, bounds=(0.0, 1.0),
    )
    sampled = sorted(set(gens.loc[gens.groupby("run_id")["sample_size"].transform("nunique") > 1, "searcher"]))
    is_note = (
        f". {', '.join(sampled)}: once importance sampling starts, search scores are estimates on a subset of the "
        "validation images, so the best of them runs optimistic; the summary's final score re-scores every "
        "winner on the full validation set"
        if sampled else ""
    )
    freeze_note = _freeze_note(gens)
    yield (
        "Best search score (on the search's validation images) per generation, mean over seeds with a ±1 std band "
        f"(cf. paper Fig. 8); a search that ended early keeps its best score{freeze_note}{is_note}",
        path,
    )
    path = _heatmap(gens, supernet, folder / FIGURE_FILES["majority_share"], formats)
    if path is None:
        yield f"Majority-share heatmap not drawn: no {BASELINE} or {searchers.paper_method_name(missing_ok=True)} runs", None
    else:
        yield (
            f"Share of the population taking each block's most common choice, per generation, {BASELINE} vs "
            f"{searchers.paper_method_name(missing_ok=True)} (cf. paper Fig. 2); a frozen block is 1 by construction",
            path,
        )
    # A freezing search ends early only once every block is frozen (then its last arch is scored): it
    # counts as fully frozen up to the last generation of any run, even with no other seed to run on.
    entries = searchers.registered_searchers()
    longest = int(gens["generation"].max())
    until = {
        run_id: longest for run_id, searcher in gens.groupby("run_id")["searcher"].first().items()
        if searcher in entries and entries[searcher].freezing
    }
    path = _mean_lines(
        hold_after_end(gens, "frozen_depth", final=blocks or None, until=until), "frozen_depth",
        f"{supernet}: frozen prefix depth",
        f"frozen blocks (of {blocks})" if blocks else "frozen blocks", folder / FIGURE_FILES["frozen_depth"], formats,
        bounds=(0.0, float(blocks) if blocks else None), steps=True,
    )
    yield (
        "Frozen prefix depth during each generation, mean over seeds with a ±1 std band clipped to [0, blocks]; a "
        "freezing search that ended early (every block frozen) counts as fully frozen afterwards, up to the last "
        "generation of the longest run",
        path,
    )
    path = _per_run_lines(
        gens, "cum_wall_s", f"{supernet}: best score vs time", "cumulative wall time (s)",
        folder / FIGURE_FILES["score_vs_time"], formats,
    )
    yield f"Best search score against cumulative wall-clock time, one line per run{freeze_note}{is_note}", path
    with_energy = gens.groupby("run_id")["cum_energy_j"].transform(lambda s: s.notna().all())
    without = sorted(set(gens.loc[~with_energy, "run_id"]))
    if with_energy.any():
        sources = [energy_sources[r] for r in set(gens.loc[with_energy, "run_id"]) if r in energy_sources]
        source = energy_source_text(sources) if sources else "source not recorded"
        path = _per_run_lines(
            gens[with_energy], "cum_energy_j", f"{supernet}: best score vs energy",
            f"cumulative energy (J), {source}", folder / FIGURE_FILES["score_vs_energy"], formats,
        )
        note = f" (left out, energy unavailable: {', '.join(without)})" if without else ""
        yield (
            f"Best search score against cumulative energy ({source}), one line per run{note}; the energy source of "
            f"each run is listed under the tables above{is_note}",
            path,
        )
    else:
        reasons = sorted({energy_sources[r] for r in without if r in energy_sources}) or ["no source recorded"]
        yield (
            f"Best score against cumulative energy not drawn: energy unavailable for every run ({'; '.join(reasons)}); "
            "runs with CodeCarbon on (no --no-carbon) or with readable RAPL / NVML counters have it",
            None,
        )


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

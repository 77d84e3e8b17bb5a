"""The look of every report figure: sizes, fonts, the searcher palette, compact legends, file layout.

Figures are drawn at a journal's column (3.5 in) or page (7 in) width with 8 pt text, so they
can go into a paper unscaled. Each searcher keeps one (colour, line style) in every figure: the
colour its registry entry declares, else the first free slot of an Okabe-Ito palette.
"""

from __future__ import annotations

import re
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import searchers

COLUMN_WIDTH_IN = 3.5
PAGE_WIDTH_IN = 7.0
AXES_HEIGHT_IN = 2.2  # a single-axes figure's plot area before its legend rows are added
DPI = 200
FIGURE_FORMATS = ("png", "pdf", "svg")
RC_PARAMS: Mapping[str, object] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.handlelength": 1.8,
    "legend.columnspacing": 1.0,
    "legend.handletextpad": 0.4,
}
# Okabe-Ito (colour-blind safe) plus grey; once every colour is taken, colours repeat dashed.
PALETTE = ("#000000", "#999999", "#E69F00", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442")
LINESTYLES = ("-", "--", ":", "-.")
_LEGEND_COLUMNS = 2


def registered_styles() -> dict[str, tuple[str, str]]:
    """(colour, line style) of every registered searcher: its declared colour solid, else the first free slot."""
    styles: dict[str, tuple[str, str]] = {}
    entries = searchers.registered_searchers()
    for name, entry in entries.items():
        if entry.colour is not None:
            styles[name] = (entry.colour, LINESTYLES[0])
    for name in entries:
        if name not in styles:
            taken = {(colour.upper(), style) for colour, style in styles.values()}
            free = [(c, s) for s in LINESTYLES for c in PALETTE if (c.upper(), s) not in taken]
            styles[name] = free[0] if free else (PALETTE[len(styles) % len(PALETTE)], LINESTYLES[0])
    return {name: styles[name] for name in entries}


def searcher_style(searcher: str) -> tuple[str, str]:
    """The fixed (colour, line style) of ``searcher`` in every figure.

    A searcher that is not registered (found only in old run folders) gets a stable fallback by
    the hash of its name: a palette colour no registered searcher has, solid, while one is free.
    """
    styles = registered_styles()
    if searcher in styles:
        return styles[searcher]
    taken = {colour.upper() for colour, style in styles.values() if style == LINESTYLES[0]}
    free = [colour for colour in PALETTE if colour.upper() not in taken]
    key = zlib.crc32(searcher.encode())
    if free:
        return free[key % len(free)], LINESTYLES[0]
    return PALETTE[key % len(PALETTE)], LINESTYLES[1:][key // len(PALETTE) % (len(LINESTYLES) - 1)]


def searcher_colour(searcher: str) -> str:
    """The fixed colour of ``searcher`` in every figure (see ``searcher_style``)."""
    return searcher_style(searcher)[0]


def new_figure(width: float, height: float = AXES_HEIGHT_IN) -> Figure:
    """A headless figure (no pyplot state, no GUI backend) with constrained layout."""
    figure = Figure(figsize=(width, height), layout="constrained", dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def legend(figure: Figure, axes: Axes, order: Sequence[str] = ()) -> None:
    """A compact legend below the plot, one entry per label in ``order`` (searcher order) where given.

    At most two columns, labels wrapped until the legend fits the figure's width; the figure grows
    by the legend's height so the plot area keeps its size however many configurations there are.
    """
    handles, labels = axes.get_legend_handles_labels()
    if not labels:
        return
    unique = dict(zip(labels, handles))
    ranked = sorted(unique, key=lambda label: order.index(label) if label in order else len(order))
    renderer = figure.canvas.get_renderer()
    for columns, wrap in ((min(_LEGEND_COLUMNS, len(ranked)), None), (_LEGEND_COLUMNS, 28), (1, 40), (1, 24), (1, 16)):
        texts = ranked if wrap is None else [textwrap.fill(label, wrap) for label in ranked]
        drawn = figure.legend([unique[k] for k in ranked], texts, loc="outside lower center", ncols=min(columns, len(ranked)), frameon=False)
        box = drawn.get_window_extent(renderer)
        if box.width <= figure.bbox.width or wrap == 16:
            break
        drawn.remove()
    figure.set_figheight(figure.get_figheight() + box.height / figure.dpi)


def clip_band(low, high, bounds: tuple[float | None, float | None]):
    """A ±std band clipped to the feasible range of its quantity (an accuracy in [0, 1], a depth in [0, blocks])."""
    lo, hi = bounds
    return low.clip(lower=lo, upper=hi), high.clip(lower=lo, upper=hi)


def slug(text: str) -> str:
    """``text`` as a file or folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def figure_dir(out_dir: Path, supernet: str, group: int, groups: int) -> Path:
    """The folder of one group's figures of one supernet: ``spos-cpu/`` (``spos-cpu-group2/`` among several groups)."""
    name = slug(supernet) if groups == 1 else f"{slug(supernet)}-group{group}"
    return Path(out_dir) / name


def save(figure: Figure, path: Path, formats: Sequence[str] = ("png",)) -> Path:
    """Save ``figure`` as ``path`` (PNG, shown in report.md) and once more in each other format; returns ``path``."""
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown:
        raise ValueError(f"unknown figure format(s) {', '.join(unknown)}; choose from {', '.join(FIGURE_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    for fmt in formats:
        if fmt != path.suffix.lstrip("."):
            figure.savefig(path.with_suffix(f".{fmt}"), dpi=DPI)
    return path

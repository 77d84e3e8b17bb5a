"""The paper's premises checked on a user's supernet, from evolution runs (paper Fig. 3 and observation 1).

Observation 1: the choices of shallow blocks converge first, and early majority choices are already
close to the final optimum. Two views of evolution runs show whether a supernet is in that regime:
the binary distance between each block's majority choice at generation g and the final answer's
choice (Fig. 3), and per block the first generation whose majority share exceeds the threshold H,
with the Spearman rank correlation between block depth and that generation (positive = shallow
blocks first, as PCF-ES assumes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from scipy import stats

import searchers
from harness import schema
from harness.report.style import AXES_HEIGHT_IN, PAGE_WIDTH_IN, new_figure, save
from harness.report.paper import family_key
from harness.report.runs import BASELINE
from harness.report.tables import md_table


def premise_threshold(supernet: str) -> float:
    """The paper method's preset threshold H for the family of ``supernet`` (PCF-ES: SPOS 0.7; FairNAS and GreedyNAS 0.4)."""
    method = searchers.searcher_entry(searchers.paper_method_name())
    threshold = method.threshold(family_key(supernet))
    if threshold is None:
        raise ValueError(f"searcher {method.name!r}, the paper's method, declares no threshold_param; the premises need its H")
    return threshold


def _blocks(gens: pd.DataFrame) -> list[int]:
    found = {int(m[1]) for c in gens.columns if (m := re.fullmatch(r"majority_b(\d+)", c)) and gens[c].notna().any()}
    return sorted(found)


@dataclass(frozen=True)
class Premises:
    """Per-block convergence of the evolution runs of one supernet."""

    threshold: float
    runs: int
    first_above: pd.DataFrame  # block, mean first generation above H, seeds that got there
    spearman_rho: float  # depth vs first generation (nan when too few blocks converged)
    spearman_p: float
    distance: pd.DataFrame  # generation x block: share of runs whose majority differs from the final answer


def premises(gens: pd.DataFrame, answers: pd.Series, threshold: float) -> Premises | None:
    """Premises from the evolution runs in ``gens`` (``answers``: run_id -> best arch string); None without any."""
    evolution = gens[gens["searcher"] == BASELINE]
    if evolution.empty:
        return None
    blocks = _blocks(evolution)
    firsts, distances = [], []
    for run_id, run in evolution.groupby("run_id"):
        run = run.sort_values("generation")
        answer = schema.arch_from_str(answers[run_id])
        above = run[[schema.share_column(b) for b in blocks]].to_numpy() > threshold
        generations = run["generation"].to_numpy()
        firsts.append([generations[np.argmax(col)] if col.any() else np.nan for col in above.T])
        majority = run[[schema.majority_column(b) for b in blocks]].to_numpy()
        distances.append(pd.DataFrame(majority != np.asarray([answer[b] for b in blocks]), index=generations, columns=blocks))
    first = pd.DataFrame(firsts, columns=blocks, dtype=float)
    table = pd.DataFrame({
        "block": blocks,
        "first_generation_above_h": first.mean().to_numpy(),  # over the runs that got there
        "runs_above_h": first.count().to_numpy(),
    })
    converged = table.dropna(subset=["first_generation_above_h"])
    rho, p = (math.nan, math.nan)
    if len(converged) >= 3 and converged["first_generation_above_h"].nunique() > 1:
        result = stats.spearmanr(converged["block"], converged["first_generation_above_h"])
        rho, p = float(result.statistic), float(result.pvalue)
    distance = pd.concat(distances).astype(float).groupby(level=0).mean()
    return Premises(threshold, len(firsts), table, rho, p, distance)


def premises_md(found: Premises, supernet: str) -> str:
    """The per-block table and the rank correlation, in words a user can act on."""
    rows = [
        [str(int(r.block)), "never" if math.isnan(r.first_generation_above_h) else f"{r.first_generation_above_h:.1f}",
         f"{int(r.runs_above_h)}/{found.runs}"]
        for r in found.first_above.itertuples()
    ]
    table = md_table(["block", f"first generation with majority share > H = {found.threshold:g} (mean)", "runs"], rows)
    if math.isnan(found.spearman_rho):
        verdict = "Too few blocks passed H to rank them: PCF-ES would freeze little on this supernet with this H."
    else:
        regime = (
            "shallow blocks converge first, the regime PCF-ES assumes"
            if found.spearman_rho > 0 and found.spearman_p < 0.05
            else "no significant shallow-first order: freezing a prefix early may lose accuracy"
        )
        verdict = (
            f"Spearman rank correlation between block depth and that generation: ρ = {found.spearman_rho:.2f} "
            f"(p = {found.spearman_p:.3g}, {len(found.first_above.dropna())} blocks): {regime}."
        )
    return (
        f"Evolution runs on {supernet} ({found.runs}), threshold H = {found.threshold:g} (the paper's setting for "
        f"this space's family).\n\n{table}\n{verdict}\n"
    )


def distance_figure(found: Premises, supernet: str, path: Path, formats: Sequence[str]) -> Path:
    """Paper Fig. 3: share of evolution runs whose majority choice of block j at generation g is not the answer's."""
    figure = new_figure(PAGE_WIDTH_IN, AXES_HEIGHT_IN + 0.6)
    heat, lines = figure.subplots(1, 2, width_ratios=(3, 2))
    d = found.distance
    image = heat.imshow(
        d.to_numpy().T, aspect="auto", origin="upper", vmin=0.0, vmax=1.0, cmap="magma_r", interpolation="nearest",
        extent=(d.index[0] - 0.5, d.index[-1] + 0.5, d.columns[-1] + 0.5, d.columns[0] - 0.5),
    )
    heat.set_xlabel("generation")
    heat.set_ylabel("block index")
    heat.xaxis.set_major_locator(MaxNLocator(integer=True))
    heat.yaxis.set_major_locator(MaxNLocator(integer=True))
    heat.grid(False)
    figure.colorbar(image, ax=heat, label="share of runs whose\nmajority ≠ final choice")
    half = len(d.columns) // 2 or 1
    for blocks, label, style in ((d.columns[:half], "shallow half", "-"), (d.columns[half:], "deep half", "--")):
        if len(blocks):
            lines.plot(d.index, d[blocks].mean(axis=1), linestyle=style, marker="o", markersize=3, color="#0072B2", label=label)
    lines.set_xlabel("generation")
    lines.xaxis.set_major_locator(MaxNLocator(integer=True))
    lines.set_ylabel("mean binary distance")
    lines.set_ylim(-0.02, 1.02)
    lines.legend(frameon=False)
    figure.suptitle(f"{supernet}: majority choice vs final answer\n({found.runs} {BASELINE} runs)")
    return save(figure, path, formats)

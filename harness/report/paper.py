"""The paper's reported savings and the table that sets ours beside them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

import supernets
from harness.report.statistics import SAVINGS
from harness.report.tables import configuration_name, estimate_cell, md_table

# How each reuse level is paired with evolution (harness.report.statistics.baseline_level).
PAIRINGS = {
    "none": "both without reuse",
    "frozen": "the paper's: frozen-prefix cache vs evolution without reuse",
    "prefix": "fair: both with exact prefix reuse",
}


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
_OURS = ("wall_s", "cpu_s", "energy_j", "co2_g", "macs")


def family_key(supernet: str) -> str | None:
    """The registered family of a supernet (``spos-tiny`` -> ``spos``); None outside the paper's families or when not registered."""
    entry = supernets.registered_supernets().get(supernet)
    return entry.family if entry is not None else None


def supernet_family(supernet: str) -> str | None:
    """The paper's name of a supernet's family (``spos-tiny`` -> ``SPOS``); None when it has none."""
    key = family_key(supernet)
    return supernets.FAMILIES[key] if key is not None else None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def paper_md(summary: pd.DataFrame) -> str | None:
    """Our savings next to the paper's, per family of the supernets in ``summary`` (None if none is a paper family)."""
    labels = dict(SAVINGS)
    rows = []
    for supernet in sorted(summary["supernet"].unique()):
        family = supernet_family(supernet)
        if family is None:
            continue
        ours = summary[summary["supernet"] == supernet]
        for paper in (p for p in PAPER_RESULTS if p.family in (family, None)):
            mine = ours[ours["searcher"] == paper.searcher]
            cells_list = (
                [[configuration_name(r), PAIRINGS.get(r["reuse"], r["reuse"]),
                  *(estimate_cell(r, f"{q}_reduction_pct") for q in _OURS)] for _, r in mine.iterrows()]
                or [[f"{paper.searcher} (not run)", "–", *(["–"] * len(_OURS))]]
            )
            for name, pairing, time, cpu, energy, co2, macs in cells_list:
                settings = paper.settings + (f" ({paper.qualifier})" if paper.qualifier else "")
                rows.append([
                    f"{family} ({supernet})", name, pairing, settings,
                    _pct(paper.time_saved_pct), time, cpu,
                    _pct(paper.energy_saved_pct), energy,
                    _pct(paper.co2_saved_pct), co2,
                    macs, paper.source,
                ])
    if not rows:
        return None
    header = [
        "family (ours)", "searcher (ours)", "pairing", "paper settings",
        "paper time saved (%)", f"ours {labels['wall_s']}", f"ours {labels['cpu_s']}",
        "paper energy saved (%)", f"ours {labels['energy_j']}",
        "paper CO2 saved (%)", f"ours {labels['co2_g']}",
        f"ours {labels['macs']}", "paper source",
    ]
    return md_table(header, rows)

"""Comparative reports over recorded runs: tables with paired savings and intervals, the paper's numbers, figures, sweeps."""

from harness.report.document import write_report
from harness.report.style import searcher_colour, searcher_style
from harness.report.paper import PAPER_RESULTS, PaperResult, supernet_family
from harness.report.statistics import Estimate, estimate, pair_with_baseline, summarise
from harness.report.sweeps import sweep_report

__all__ = [
    "PAPER_RESULTS",
    "Estimate",
    "PaperResult",
    "estimate",
    "pair_with_baseline",
    "searcher_colour",
    "searcher_style",
    "summarise",
    "supernet_family",
    "sweep_report",
    "write_report",
]

"""A bench result as github-action-benchmark series (``customSmallerIsBetter`` JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import store
from harness.bench.gate import NO_REUSE, BenchResult, Replayed


_UNITS = {"macs": "MACs", "images": "images", "cache_peak_bytes": "bytes", "store_peak_bytes": "bytes", "store_evictions": "evictions"}
NOT_COSTS = ("macs_avoided", "candidates")  # more is not worse: never an alerting series
SERIES = ("costs", "decisions", "times")


def benchmark_action_entries(result: BenchResult, series: str = "costs") -> list[dict[str, Any]]:
    """github-action-benchmark's ``customSmallerIsBetter`` list of one kind of series.

    ``costs`` (what a CI alerts on; every series can regress): each replay's exact work counts,
    the MAC ratios to evolution without reuse and the same-machine CPU-time ratios. ``decisions``
    (charted, machine-independent, not a cost): candidates, generations and final frozen depth of
    each searcher on the landscape. ``times``: absolute CPU seconds of each replay on this runner,
    labelled so; they move with the runner's hardware and load.

    A series that is structurally constant is left out: a zero count (no cache at level none, no
    importance phase without sampling) and a count equal to the same searcher's at level none (a
    level that gives that searcher nothing to reuse). Both follow from counts the gate keeps
    exact, so every passing run writes the same set of series.
    """
    if series not in SERIES:
        raise ValueError(f"unknown series {series!r}; choose from {', '.join(SERIES)}")
    if series == "decisions":
        return [
            {"name": f"{name} {metric}", "unit": unit, "value": value}
            for name, d in result.decisions.items()
            for metric, unit, value in (
                ("candidates", "candidates", d["candidates"]),
                ("generations", "generations", d["generations"]),
                ("final frozen depth", "blocks", d["frozen_depth"][-1] if d["frozen_depth"] else 0),
            )
            if value
        ]
    if series == "times":
        return [
            {"name": f"absolute cpu time {r.label} (this runner)", "unit": "s", "value": float(m.info["cpu_s"]),
             "extra": f"absolute, not comparable across runners; fingerprint {result.environment['fingerprint']}"}
            for r, m in result.work.items()
        ]
    entries = []
    for replayed, m in result.work.items():
        plain = result.work.get(Replayed(replayed.searcher, NO_REUSE))
        for metric, value in m.counts.items():
            same_as_plain = replayed.level != NO_REUSE and plain is not None and plain.counts[metric] == value
            if metric in NOT_COSTS or value == 0 or same_as_plain:
                continue
            entries.append({"name": f"{replayed.label} {metric}", "unit": _UNITS.get(metric, "MACs"), "value": value})
    # A ratio of exactly 1 is evolution at a level that reuses nothing for it: constant.
    entries += [{"name": name, "unit": "ratio", "value": value} for name, value in result.ratios().items() if value != 1.0]
    for t in result.timing:
        entries.append({
            "name": f"time {t.pair.name}",
            "unit": "ratio",
            "value": t.ratio,
            "extra": f"same-machine ratio, min of {len(t.numerator_s)} alternating runs; fingerprint {result.environment['fingerprint']}",
        })
    return entries


def write_benchmark_action(result: BenchResult, path: Path, series: str = "costs") -> None:
    """Write ``benchmark_action_entries`` of ``series`` as JSON for github-action-benchmark (customSmallerIsBetter)."""
    store.write_json(Path(path), benchmark_action_entries(result, series))

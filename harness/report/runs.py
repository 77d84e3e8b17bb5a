"""Recorded runs as a DataFrame, one row each: identity, totals, variant label, sources, contention.

Runs are only ever compared within one (protocol_hash, checkpoint_hash) group and one supernet;
a *configuration* is a searcher with its ``searcher_params`` and reuse level.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pandas as pd

import searchers
from harness import schema
from harness.config import RunConfig
from harness.store import StoredRun, run_summary_row

# The searcher savings are measured against: the one registered with baseline=True (evolution;
# the registry refuses a second one, so this cannot change after import).
BASELINE = searchers.baseline_name()
GROUP_KEYS = ("protocol_hash", "checkpoint_hash")
ROW_KEYS = (*GROUP_KEYS, "supernet", "searcher", "params", "reuse")  # one row per configuration
# A single-threaded run whose wall time exceeds its CPU time by more than this waited for the CPU.
CONTENTION_RATIO = 1.25

# (column in run totals / result, table label, number format; "" = 4 significant digits)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("wall_s", "wall time (s)", ""),
    ("cpu_s", "CPU time (s)", ""),
    ("gpu_s", "GPU time (s)", ""),
    ("energy_j", "energy (J)", ""),
    ("co2_g", "CO2 (g)", ""),
    ("macs", "MACs", ".3e"),
    ("macs_no_reuse", "MACs without reuse", ".3e"),  # executed + avoided: what level "none" would have run
    ("candidates_evaluated", "candidates", ".1f"),
    ("generations", "generations", ".1f"),
    ("final_score", "final score", ".4f"),
    ("test_accuracy", "test accuracy", ".4f"),
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
UNMEASURED_REASONS = {"test_accuracy": "dataset has no test split"}


def meter_source(meter_sources: Mapping[str, str], quantity: str) -> str:
    """Source string of ``quantity`` (keys may carry the unit, ``gpu_energy_j``, or not, ``gpu_energy``)."""
    unitless = quantity.rsplit("_", 1)[0]
    return str(meter_sources.get(quantity) or meter_sources.get(unitless) or "no source recorded")


def grid_text(emissions: Mapping[str, Any]) -> str:
    """The grid intensity a run's CO2 was computed with, and where it came from."""
    intensity = emissions.get("grid_intensity_g_per_kwh")
    where = emissions.get("country_iso_code") or "unknown country"
    source = emissions.get("intensity_source") or "source not recorded"
    return f"{'unknown' if intensity is None else intensity} g/kWh for {where} ({source})"


def mac_limit_text(config: RunConfig) -> str:
    """The MACs-per-image limit a run searched under, as the report states it."""
    limit = config.mac_limit
    return f"{limit:,} MACs per image" if isinstance(limit, int) else "none"


def is_contended(wall_s: float, cpu_s: float, threads: Any) -> bool:
    """A single-threaded run that spent more than CONTENTION_RATIO x its CPU time on the wall clock."""
    return threads == 1 and wall_s == wall_s and cpu_s == cpu_s and wall_s > CONTENTION_RATIO * cpu_s


def runs_frame(records: Sequence[StoredRun], *, unlabelled: Iterable[str] = ()) -> pd.DataFrame:
    """One row per run: ``store.run_summary_row`` plus params, reuse, variant label, sources, contention."""
    rows = []
    for record in records:
        row = run_summary_row(record)
        run = record.run
        row["params"] = json.dumps(run.setup.searcher_params, sort_keys=True)
        row["reuse"] = run.config.reuse.level
        row["mac_limit"] = mac_limit_text(run.config)
        row["threads"] = run.environment.machine.get("torch_threads")
        for quantity in SOURCE_LABELS:
            row[schema.source_column(quantity)] = meter_source(run.environment.meter_sources, quantity)
        row["grid"] = grid_text(record.emissions)
        rows.append(row)
    frame = pd.DataFrame(rows)
    numeric = list(dict.fromkeys([*(m for m, _, _ in METRICS), *(q for q in SOURCE_LABELS if q in frame)]))
    frame["macs_no_reuse"] = frame["macs"] + frame["macs_avoided"] if "macs_avoided" in frame else frame["macs"]
    frame[numeric] = frame[numeric].apply(pd.to_numeric)  # JSON null -> NaN, never 0
    frame["contended"] = [is_contended(w, c, t) for w, c, t in zip(frame["wall_s"], frame["cpu_s"], frame["threads"])]
    frame["variant"] = variant_labels(frame, tuple(unlabelled))
    return frame


def variant_labels(frame: pd.DataFrame, unlabelled: tuple[str, ...]) -> pd.Series:
    """Name each configuration by what differs among a searcher's runs: params (but ``unlabelled``) and reuse."""
    labels = pd.Series("", index=frame.index, dtype=object)
    for _, group in frame.groupby([*GROUP_KEYS, "supernet", "searcher"]):
        params = [json.loads(p) for p in group["params"]]
        keys = sorted(set().union(*params))
        varying = [k for k in keys if k not in unlabelled and len({json.dumps(p.get(k)) for p in params}) > 1]
        parts = [[f"{k}={p[k]}" for k in varying if k in p] for p in params]
        if group["reuse"].nunique() > 1:
            parts = [[*part, f"reuse={level}"] for part, level in zip(parts, group["reuse"])]
        labels[group.index] = [", ".join(part) for part in parts]
    return labels


def searcher_rank(names: pd.Series) -> pd.Series:
    """Position in tables and legends (``searchers.display_rank``: the baseline first, unregistered searchers last)."""
    return names.map(searchers.display_rank)

"""Names of the result files and their columns: one place, so writer and readers never drift.

Units are part of every column name: ``_s`` seconds, ``_j`` joules, ``_kwh``, ``_g`` grams
CO2-equivalent, ``_macs`` multiply-accumulates, ``_bytes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 3  # 2: reuse levels (reused_depth, store and avoided-work columns); 3: run.json as harness.run_record.RunRecord

RUN_JSON = "run.json"  # harness.run_record.RunRecord
GENERATIONS_CSV = "generations.csv"
CANDIDATES_CSV = "candidates.csv"
EMISSIONS_JSON = "emissions.json"
SUMMARY_CSV = "summary.csv"  # a report's one row per configuration (harness.report.statistics.summarise)
EMISSIONS_CSV = "emissions.csv"  # CodeCarbon's fields per window (optional: absent where CodeCarbon is off)
CHECKPOINT_JSON = "checkpoint.json"  # runner state for --resume; removed when the run completes
LOCK_FILE = ".pcfes.lock"  # advisory lock of a run / compare / sweep folder while a process writes it

RUN_FILES = (RUN_JSON, GENERATIONS_CSV, CANDIDATES_CSV, EMISSIONS_JSON)

# Phases the runner measures, in loop order.
PHASES = ("cache", "evaluate", "search")

# Quantities measured per phase window. Column "<phase>_<quantity>".
PHASE_QUANTITIES = (
    "wall_s",
    "cpu_s",
    "gpu_s",
    "gpu_energy_j",
    "cpu_energy_j",
    "energy_j",  # best available total (measured where possible, else CodeCarbon estimate)
    "co2_g",
)

def _names(record: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record))


@dataclass(frozen=True)
class GenerationRow:
    """generations.csv: one row per generation (``to_row`` gives the columns, ``GEN_COLUMNS`` their order)."""

    generation: int
    evaluated: int  # candidates scored in this generation
    best_score: float  # best search score so far
    frozen_depth: int  # frozen prefix length during this generation
    unique_archs: int
    sample_size: int  # validation images used per candidate (< full set under importance sampling)
    cache_bytes: int  # bytes of the stored frozen-prefix node
    cache_macs: int  # work spent building / extending the frozen-prefix node, and on importance losses
    evaluate_macs: int  # work spent scoring candidates
    evaluate_images: int  # images scored (calibration + validation passes of the candidates)
    macs_avoided: int  # MACs that reuse level "none" would have run on top, for this generation's work
    store_bytes: int  # bytes of every stored prefix node after the generation (frozen one included)
    store_evictions: int  # prefix nodes evicted to make room during the generation
    rebuild_macs: int  # work recomputing stored nodes' tensors after a resume (not in cum_macs)
    phases: Mapping[str, float | None]  # "<phase>_<quantity>" for every phase and PHASE_QUANTITIES
    cum_wall_s: float
    cum_energy_j: float | None
    cum_macs: int
    majority: tuple[int, ...] = ()  # most popular choice per block (paper Fig. 2), if the searcher says
    share: tuple[float, ...] = ()  # the share of candidates taking it

    def to_row(self) -> dict[str, Any]:
        """The generations.csv row: GEN_COLUMNS, then "majority_b{i}" and "share_b{i}" per block."""
        row: dict[str, Any] = {}
        for name in _names(GenerationRow):
            if name == "phases":
                row.update({column: self.phases[column] for column in PHASE_COLUMNS})
            elif name not in ("majority", "share"):
                row[name] = getattr(self, name)
        for i, (choice, share) in enumerate(zip(self.majority, self.share)):
            row[majority_column(i)] = choice
            row[share_column(i)] = share
        return row


PHASE_COLUMNS = tuple(f"{phase}_{q}" for phase in PHASES for q in PHASE_QUANTITIES)
GEN_COLUMNS = tuple(
    column
    for name in _names(GenerationRow)
    if name not in ("majority", "share")
    for column in (PHASE_COLUMNS if name == "phases" else (name,))
)


def majority_column(block: int) -> str:
    return f"majority_b{block}"


def share_column(block: int) -> str:
    return f"share_b{block}"


@dataclass(frozen=True)
class CandidateRow:
    """candidates.csv: one row per evaluated arch, in evaluation order."""

    index: int
    generation: int
    arch: str  # choices joined by "-", e.g. "0-3-1-2"
    score: float  # search score (accuracy in [0, 1]; importance-weighted under sampling)
    arch_macs: int  # MACs per image of the whole sub-network
    executed_macs: int  # MACs executed to score it (a shared tree node is paid by the first arch through it)
    reused_depth: int  # blocks whose outputs it reused: stored node or an earlier candidate (0 = none)
    sample_size: int


CAND_COLUMNS = _names(CandidateRow)


@dataclass(frozen=True)
class Emissions:
    """emissions.json: CO2 with what it was computed from (kWh x grid intensity), so it can be recomputed."""

    country_iso_code: str | None
    co2_g: float | None
    energy_kwh: float | None
    grid_intensity_g_per_kwh: float | None
    intensity_source: str | None
    codecarbon_version: str | None
    sources: Mapping[str, str]  # quantity -> meter source
    per_phase: Mapping[str, Mapping[str, Mapping[str, Any]]]  # phase -> quantity -> value, unit, source
    # CodeCarbon's tracking mode ("process" | "machine") and what its numbers cover; None where it did not run.
    tracking_mode: str | None = None
    attribution: str | None = None


def source_column(quantity: str) -> str:
    """The run-table column naming where a quantity's measurement came from."""
    return f"source.{quantity}"


def arch_to_str(arch) -> str:
    return "-".join(str(int(c)) for c in arch)


def arch_from_str(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in str(text).split("-")) if text != "" else ()


def summary_dtypes(columns: Iterable[str]) -> dict[str, str]:
    """pandas dtypes of a report's summary.csv (and a sweep's CSV) that a CSV cannot carry by itself.

    ``seeds`` is a string ("3" for one seed, "3 11" for two), never an int; each ``*_significant``
    is a nullable boolean, ``<NA>`` where there is no interval (one paired seed, or none).
    """
    return {c: "string" if c == "seeds" else "boolean" for c in columns if c == "seeds" or c.endswith("_significant")}

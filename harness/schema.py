"""Names of the result files and their columns: one place, so writer and readers never drift.

Units are part of every column name: ``_s`` seconds, ``_j`` joules, ``_kwh``, ``_g`` grams
CO2-equivalent, ``_macs`` multiply-accumulates, ``_bytes``.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

RUN_JSON = "run.json"
GENERATIONS_CSV = "generations.csv"
CANDIDATES_CSV = "candidates.csv"
EMISSIONS_JSON = "emissions.json"
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

# generations.csv: one row per generation.
GEN_COLUMNS = (
    "generation",
    "evaluated",  # candidates scored in this generation
    "best_score",  # best search score so far
    "frozen_depth",  # frozen prefix length during this generation
    "unique_archs",
    "sample_size",  # validation images used per candidate (< full set under importance sampling)
    "cache_bytes",
    "cache_macs",  # work spent building / extending the prefix cache
    "evaluate_macs",  # work spent scoring candidates
    "evaluate_images",  # images forwarded while scoring candidates (calibration + validation)
    *(f"{phase}_{q}" for phase in PHASES for q in PHASE_QUANTITIES),
    "cum_wall_s",
    "cum_energy_j",
    "cum_macs",
)
# ... followed by "majority_b{i}" and "share_b{i}" for every block i (paper Fig. 2).


def majority_column(block: int) -> str:
    return f"majority_b{block}"


def share_column(block: int) -> str:
    return f"share_b{block}"


# candidates.csv: one row per evaluated arch, in evaluation order.
CAND_COLUMNS = (
    "index",
    "generation",
    "arch",  # choices joined by "-", e.g. "0-3-1-2"
    "score",  # search score (accuracy in [0, 1]; importance-weighted under sampling)
    "arch_macs",  # MACs per image of the whole sub-network
    "executed_macs",  # MACs actually executed to score it (calibration + validation)
    "cached_depth",  # blocks served from the prefix cache (0 = uncached)
    "sample_size",
)

# run.json top-level keys.
RUN_KEYS = (
    "schema_version",
    "run_id",
    "status",  # "running" | "complete"
    "created_utc",
    "finished_utc",
    "config",
    "config_hash",
    "searcher",
    "searcher_params",
    "seed",
    "supernet",
    "supernet_config",
    "checkpoint_hash",
    "checkpoint_path",  # absolute: what --resume loads, from any working directory
    "dataset",
    "protocol",  # as scored: val_size 0 is recorded as the split's size
    "protocol_hash",
    "versions",
    "git",
    "machine",
    "device",
    "meter_sources",  # quantity -> source, e.g. {"gpu_energy_j": "nvml_counter", "cpu_energy_j": "unavailable: ..."}
    "totals",  # TOTAL_KEYS
    "result",  # RESULT_KEYS
    "resumes",  # number of times the run was resumed
)

TOTAL_KEYS = (
    "wall_s",
    "cpu_s",
    "gpu_s",
    "gpu_energy_j",
    "cpu_energy_j",
    "energy_j",
    "energy_kwh",
    "co2_g",
    "macs",
    "images",
    "candidates_evaluated",
    "generations",
    "cache_peak_bytes",
    "meter_overhead_s",
    "wall_s_before_resume",
)

RESULT_KEYS = ("best_arch", "search_score", "final_score", "test_accuracy")


def arch_to_str(arch) -> str:
    return "-".join(str(int(c)) for c in arch)


def arch_from_str(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in str(text).split("-")) if text != "" else ()

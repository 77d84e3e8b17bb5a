"""Names of the result files and their columns: one place, so writer and readers never drift.

Units are part of every column name: ``_s`` seconds, ``_j`` joules, ``_kwh``, ``_g`` grams
CO2-equivalent, ``_macs`` multiply-accumulates, ``_bytes``.
"""

from __future__ import annotations

SCHEMA_VERSION = 2  # 2: reuse levels (reused_depth, store and avoided-work columns, run.json "reuse")

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
    "cache_bytes",  # bytes of the stored frozen-prefix node
    "cache_macs",  # work spent building / extending the frozen-prefix node, and on importance losses
    "evaluate_macs",  # work spent scoring candidates
    "evaluate_images",  # images scored (calibration + validation passes of the candidates)
    "macs_avoided",  # MACs that reuse level "none" would have run on top, for this generation's work
    "store_bytes",  # bytes of every stored prefix node after the generation (frozen one included)
    "store_evictions",  # prefix nodes evicted to make room during the generation
    "rebuild_macs",  # work recomputing stored nodes' tensors after a resume (not in cum_macs)
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
    "executed_macs",  # MACs executed to score it (a shared tree node is paid by the first arch through it)
    "reused_depth",  # blocks whose outputs it reused: stored node or an earlier candidate (0 = none)
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
    "reuse",  # REUSE_KEYS
)

# run.json "reuse": how much exact work reuse the run did (harness/evaluation).
REUSE_KEYS = (
    "level",  # "none" | "frozen" | "prefix"
    "budget_bytes",  # the store's resolved byte budget
    "budget_setting",  # the configured budget: an integer or "auto"
    "location",  # "device" | "host"
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
    "cache_peak_bytes",  # peak bytes of the frozen-prefix node
    "macs_avoided",  # MACs that reuse level "none" would have run on top of "macs"
    "store_peak_bytes",  # peak bytes of all stored prefix nodes (<= the reuse budget)
    "store_evictions",
    "rebuild_macs",  # recomputing stored nodes' tensors after a resume: never in "macs"
    "rebuild_images",
    "meter_overhead_s",
    "wall_s_before_resume",
)

RESULT_KEYS = ("best_arch", "search_score", "final_score", "test_accuracy")


def arch_to_str(arch) -> str:
    return "-".join(str(int(c)) for c in arch)


def arch_from_str(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in str(text).split("-")) if text != "" else ()

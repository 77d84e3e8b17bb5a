"""run.json as one frozen, versioned record, and the only code that turns it into JSON and back.

A run's record has five parts: its setup (what ran, on which weights and data), its environment
(where, measured by what), its totals (what the search cost), its result (what it found, once
complete) and its status. The runner writes it, the store, report, gate and workflow read it, all
through ``RunRecord.to_json`` / ``RunRecord.from_json``. A run.json of the previous layout
(version 2) loads through ``migrate_v2``; any other version is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness.config import RunConfig, run_config_from_dict
from harness.schema import SCHEMA_VERSION

SUPPORTED_VERSIONS = (2, SCHEMA_VERSION)  # 2 through migrate_v2


class RunStatus(StrEnum):
    """How far a run got: "running" until its answer is re-scored, then "complete"."""

    RUNNING = "running"
    COMPLETE = "complete"


@dataclass(frozen=True)
class RunSetup:
    """What ran: the config as run, and the weights, data and protocol it was scored on."""

    run_id: str
    config: RunConfig  # resolved; protocol as scored (val_size 0 as the split's size), data_root absolute
    config_hash: str
    searcher: str
    searcher_params: Mapping[str, Any]
    seed: int
    supernet: str
    supernet_config: Mapping[str, Any]
    checkpoint_hash: str
    checkpoint_path: str  # absolute: what --resume loads, from any working directory
    dataset: str
    protocol: Mapping[str, Any]  # as scored
    protocol_hash: str


@dataclass(frozen=True)
class RunEnvironment:
    """Where a run ran, and what measured it."""

    versions: Mapping[str, Any]
    git: Mapping[str, Any]
    machine: Mapping[str, Any]
    device: Mapping[str, Any]
    meter_sources: Mapping[str, str]  # quantity -> source, e.g. {"cpu_energy_j": "unavailable: ..."}


@dataclass(frozen=True)
class RunTotals:
    """The search's totals (the final re-scoring is in ``RunRecord.final_phase``)."""

    wall_s: float | None
    cpu_s: float | None
    gpu_s: float | None
    gpu_energy_j: float | None
    cpu_energy_j: float | None
    energy_j: float | None
    energy_kwh: float | None
    co2_g: float | None
    macs: int
    images: int
    candidates_evaluated: int
    generations: int
    cache_peak_bytes: int  # peak bytes of the frozen-prefix node
    macs_avoided: int  # MACs that reuse level "none" would have run on top of "macs"
    store_peak_bytes: int  # peak bytes of all stored prefix nodes (<= the reuse budget)
    store_evictions: int
    store_captured: int  # prefix nodes the store took (level prefix)
    store_read_again: int  # of those, nodes a later request started from
    rebuild_macs: int  # recomputing stored nodes' tensors after a resume: never in "macs"
    rebuild_images: int
    meter_overhead_s: float
    wall_s_before_resume: float


@dataclass(frozen=True)
class RunResult:
    """The answer, re-scored under the full protocol."""

    best_arch: tuple[int, ...]
    search_score: float
    final_score: float
    test_accuracy: float | None  # None where the dataset has no test split
    test_images: int | None  # size of the test split test_accuracy was measured on (None: no split)


def _names(part: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(part))


SETUP_KEYS = _names(RunSetup)
ENVIRONMENT_KEYS = _names(RunEnvironment)
TOTAL_KEYS = _names(RunTotals)
# run.json's keys besides the setup's and the environment's, which sit beside them at the top level.
OWN_KEYS = (
    "schema_version", "status", "created_utc", "finished_utc", "totals", "result", "resumes",
    "searcher_notes", "reuse_budget_bytes", "evaluation", "final_phase",
)
RUN_KEYS = (*OWN_KEYS[:4], *SETUP_KEYS, *ENVIRONMENT_KEYS, *OWN_KEYS[4:])


@dataclass(frozen=True)
class RunRecord:
    """run.json: one run's setup, environment, totals, result and status."""

    setup: RunSetup
    environment: RunEnvironment
    status: RunStatus
    created_utc: str
    finished_utc: str | None  # None while running
    totals: RunTotals
    result: RunResult | None  # None while running
    resumes: int  # times the run was resumed
    searcher_notes: tuple[str, ...]  # warnings the searcher logged, in order
    reuse_budget_bytes: int  # the store's resolved byte budget (the setting is setup.config.reuse)
    evaluation: Mapping[str, Any]  # the evaluator's own account: cache events, importance subset, work per phase and block
    final_phase: Mapping[str, float | None]  # quantity -> value of the final re-scoring (not in totals)

    @property
    def config(self) -> RunConfig:
        return self.setup.config

    def to_json(self) -> dict[str, Any]:
        """The run.json object of the current schema version (keys in ``RUN_KEYS`` order)."""
        setup = {name: getattr(self.setup, name) for name in SETUP_KEYS}
        setup["config"] = self.setup.config.to_dict()
        result = None
        if self.result is not None:
            result = {**dataclasses.asdict(self.result), "best_arch": list(self.result.best_arch)}
        data = {
            "schema_version": SCHEMA_VERSION,
            "status": self.status.value,
            "created_utc": self.created_utc,
            "finished_utc": self.finished_utc,
            **setup,
            **{name: getattr(self.environment, name) for name in ENVIRONMENT_KEYS},
            "totals": dataclasses.asdict(self.totals),
            "result": result,
            "resumes": self.resumes,
            "searcher_notes": list(self.searcher_notes),
            "reuse_budget_bytes": self.reuse_budget_bytes,
            "evaluation": self.evaluation,
            "final_phase": self.final_phase,
        }
        return {key: data[key] for key in RUN_KEYS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record of a run.json object; version 2 is migrated, any other version is a ValueError."""
        version = data.get("schema_version")
        if version == 2:
            data = migrate_v2(data)
        elif version != SCHEMA_VERSION:
            raise ValueError(
                f"run.json has schema version {version!r}; this pcfes-bench reads versions "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}"
            )
        missing, unknown = sorted(set(RUN_KEYS) - set(data)), sorted(set(data) - set(RUN_KEYS))
        if missing or unknown:
            raise ValueError(
                f"run.json of schema version {SCHEMA_VERSION} lacks {', '.join(missing) or 'nothing'} "
                f"and has unknown {', '.join(unknown) or 'nothing'}; it was not written by this pcfes-bench"
            )
        result = data["result"]
        return cls(
            setup=RunSetup(**{**{k: data[k] for k in SETUP_KEYS}, "config": run_config_from_dict(data["config"])}),
            environment=RunEnvironment(**{k: data[k] for k in ENVIRONMENT_KEYS}),
            status=RunStatus(data["status"]),
            created_utc=data["created_utc"],
            finished_utc=data["finished_utc"],
            totals=RunTotals(**data["totals"]),
            result=None if result is None else RunResult(**{**result, "best_arch": tuple(result["best_arch"])}),
            resumes=data["resumes"],
            searcher_notes=tuple(data["searcher_notes"]),
            reuse_budget_bytes=data["reuse_budget_bytes"],
            evaluation=data["evaluation"],
            final_phase=data["final_phase"],
        )


def migrate_v2(data: Mapping[str, Any]) -> dict[str, Any]:
    """A version 2 run.json in the version 3 layout.

    Version 2 recorded the reuse level, budget setting and location a second time, beside
    ``config.reuse``; only the resolved byte budget was its own. Runs written before 2026-12-02 01:39
    UTC lack ``searcher_notes`` (none were kept) and before 2026-12-07 ``result.test_images`` (unknown).
    """
    migrated = {key: value for key, value in data.items() if key != "reuse"}
    migrated["schema_version"] = SCHEMA_VERSION
    migrated["reuse_budget_bytes"] = data["reuse"]["budget_bytes"]
    migrated.setdefault("searcher_notes", [])
    if migrated.get("result") is not None:
        migrated["result"] = {"test_images": None, **migrated["result"]}
    return migrated

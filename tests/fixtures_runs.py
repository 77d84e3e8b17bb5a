"""Synthetic, schema-complete recorded runs with known numbers, for report tests."""

from __future__ import annotations

import dataclasses

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import schema
from harness.config import ReuseConfig, RunConfig
from harness.run_record import RunEnvironment, RunRecord, RunResult, RunSetup, RunStatus, RunTotals
from harness.store import write_csv, write_json

SEARCHERS = ("evolution", "pcf-es", "pcf-es-is", "random")
DEFAULT_PARAMS: Mapping[str, Mapping[str, Any]] = {
    "evolution": {"population": 6},
    "random": {"population": 6},
    "cf-es": {"population": 6, "threshold": 0.7},
    "pcf-es": {"population": 6, "threshold": 0.7, "monitor": 3},
    "pcf-es-is": {"population": 6, "threshold": 0.7, "monitor": 3, "rate": 0.4},
}
# Fraction of the same seed's evolution wall time each searcher needs (before the per-seed tweak).
TIME_RATIO = {"evolution": 1.0, "random": 1.02, "cf-es": 0.83, "pcf-es": 0.45, "pcf-es-is": 0.30}
GENERATIONS = {"evolution": 5, "random": 5, "cf-es": 5, "pcf-es": 4, "pcf-es-is": 4}
CANDIDATES_PER_GENERATION = 6
# Search-split score minus held-out accuracy of each searcher's answer (its winner's curse), before
# the per-seed term: held-out differences then differ from search-split ones by known amounts.
SELECTION_BIAS = {"evolution": 0.020, "random": 0.010, "cf-es": 0.018, "pcf-es": 0.012, "pcf-es-is": 0.015}
TEST_IMAGES = 10_000
# The last choice of each searcher's answer: pcf-es and pcf-es-is answer alike (one stand-alone training).
ANSWER_LAST = {"evolution": 0, "random": 1, "cf-es": 2, "pcf-es": 3, "pcf-es-is": 3}
# Stand-alone test accuracy of each searcher's answer below 0.85 + 0.002 x seed.
STANDALONE_LOSS = {"evolution": 0.0, "random": 0.012, "cf-es": 0.004, "pcf-es": 0.003, "pcf-es-is": 0.003}
GRID_G_PER_KWH = 56.0
# A CPU machine: no GPU meters, RAPL for CPU energy, CodeCarbon for CO2.
DEFAULT_SOURCES = {
    "wall_s": "perf_counter_ns",
    "cpu_s": "process_time_ns",
    "gpu_s": "unavailable: no CUDA device",
    "gpu_energy_j": "unavailable: no CUDA device",
    "cpu_energy_j": "rapl",
    "energy_j": "rapl",
    "co2_g": "codecarbon_estimate",
}


@dataclass(frozen=True)
class FixtureRun:
    """What to write for one synthetic run; the numbers follow from these fields (see ``totals_for``)."""

    searcher: str
    seed: int
    supernet: str = "spos-tiny"
    protocol_hash: str = "protoA"
    checkpoint_hash: str = "ckptA"
    searcher_params: Mapping[str, Any] | None = None  # None: DEFAULT_PARAMS[searcher]
    blocks: int = 4
    unavailable: Mapping[str, str] = field(default_factory=dict)  # quantity -> "unavailable: reason"
    status: str = "complete"
    schema_version: int = schema.SCHEMA_VERSION
    run_id: str = ""
    cpu_ratio: float = 0.9  # CPU time / wall time; below 1 / 1.25 a single-threaded run counts as contended
    threads: int = 1
    test_split: bool = True  # False: a dataset without test split (test_accuracy None)

    @property
    def params(self) -> dict[str, Any]:
        return dict(DEFAULT_PARAMS[self.searcher] if self.searcher_params is None else self.searcher_params)

    @property
    def name(self) -> str:
        extra = "".join(f"-{k}{v}" for k, v in sorted(self.params.items()) if k != "population")
        return self.run_id or f"{self.searcher}{extra}-{self.supernet}-s{self.seed}-{self.protocol_hash}"


def totals_for(spec: FixtureRun) -> dict[str, Any]:
    """The known totals of a fixture run (None where a quantity is unavailable)."""
    ratio = TIME_RATIO[spec.searcher]
    if spec.searcher != "evolution":
        ratio *= 1.0 + 0.01 * spec.seed  # per-seed reductions differ, so a wrong seed pairing shows
    ratio *= spec.params.get("threshold", 0.7) / 0.7
    if spec.protocol_hash != "protoA":
        ratio *= 3.0  # another protocol: numbers that would visibly shift a wrongly merged mean
    wall = (50.0 + 10.0 * spec.seed) * ratio
    energy = wall * (40.0 + spec.seed)
    totals: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": spec.cpu_ratio * wall,
        "gpu_s": 0.8 * wall,
        "gpu_energy_j": 0.6 * energy,
        "cpu_energy_j": 0.4 * energy,
        "energy_j": energy,
        "energy_kwh": energy / 3.6e6,
        "co2_g": energy / 3.6e6 * GRID_G_PER_KWH,
        "macs": int(1e9 * (spec.seed + 1) * ratio),
        "images": 1000 * GENERATIONS[spec.searcher],
        "candidates_evaluated": CANDIDATES_PER_GENERATION * GENERATIONS[spec.searcher],
        "generations": GENERATIONS[spec.searcher],
        "cache_peak_bytes": 0 if spec.searcher in ("evolution", "random") else 4096,
        "macs_avoided": 0,
        "store_peak_bytes": 0 if spec.searcher in ("evolution", "random") else 4096,
        "store_evictions": 0,
        "store_captured": 0,
        "store_read_again": 0,
        "rebuild_macs": 0,
        "rebuild_images": 0,
        "meter_overhead_s": 0.01,
        "wall_s_before_resume": 0.0,
    }
    for quantity, source in _sources(spec).items():
        if source.startswith("unavailable"):
            totals[quantity] = None
    if totals["energy_j"] is None:
        totals["energy_kwh"] = None
    return totals


def result_for(spec: FixtureRun) -> dict[str, Any]:
    """The known result of a fixture run."""
    final = 0.80 + 0.001 * spec.seed - (0.004 if spec.searcher == "pcf-es-is" else 0.0)
    arch = [spec.seed % 4] * (spec.blocks - 2) + [spec.seed // 4 % 4, ANSWER_LAST[spec.searcher]]
    test = final - selection_bias(spec) if spec.test_split else None
    return dataclasses.asdict(
        RunResult(
            best_arch=tuple(arch), search_score=final + 0.01, final_score=final, test_accuracy=test,
            test_images=TEST_IMAGES if spec.test_split else None,
        )
    )


def selection_bias(spec: FixtureRun) -> float:
    """The known search-split score minus held-out accuracy of a fixture run."""
    return SELECTION_BIAS[spec.searcher] + (0.0005 * spec.seed if spec.searcher != "evolution" else 0.0)


def _sources(spec: FixtureRun) -> dict[str, str]:
    return {**DEFAULT_SOURCES, **spec.unavailable}


def _frozen_depth(spec: FixtureRun, generation: int) -> int:
    if spec.searcher in ("pcf-es", "pcf-es-is"):
        return min(spec.blocks, generation)
    if spec.searcher == "cf-es":
        return 2 if generation >= 1 else 0
    return 0


def _generations(spec: FixtureRun, totals: Mapping[str, Any], rng: np.random.Generator) -> pd.DataFrame:
    n = GENERATIONS[spec.searcher]
    # Freezing searchers get cheaper every generation; the weights split the totals exactly.
    weights = np.array([1.0 - (0.15 * g if _frozen_depth(spec, g) else 0.0) for g in range(n)])
    weights /= weights.sum()
    best = result_for(spec)["search_score"]
    phase_split = {"cache": 0.1, "evaluate": 0.85, "search": 0.05}
    rows = []
    for g in range(n):
        depth = _frozen_depth(spec, g)
        row: dict[str, Any] = {
            "generation": g,
            "evaluated": CANDIDATES_PER_GENERATION,
            "best_score": best - 0.01 * (n - 1 - g),
            "frozen_depth": depth,
            "unique_archs": CANDIDATES_PER_GENERATION,
            "sample_size": 40 if spec.searcher == "pcf-es-is" and depth else 100,
            "cache_bytes": 4096 if depth else 0,
            "cache_macs": 1000 * depth,
            "evaluate_macs": int(totals["macs"] * weights[g]),
            "evaluate_images": 1000,
            "macs_avoided": 0,
            "store_bytes": 4096 if depth else 0,
            "store_evictions": 0,
            "rebuild_macs": 0,
        }
        for phase, share in phase_split.items():
            for q in schema.PHASE_QUANTITIES:
                value = totals[q]
                row[f"{phase}_{q}"] = np.nan if value is None else value * weights[g] * share
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["cum_wall_s"] = np.cumsum(totals["wall_s"] * weights)
    frame["cum_energy_j"] = np.nan if totals["energy_j"] is None else np.cumsum(totals["energy_j"] * weights)
    frame["cum_macs"] = frame["evaluate_macs"].cumsum() + frame["cache_macs"].cumsum()
    for b in range(spec.blocks):
        frame[schema.majority_column(b)] = rng.integers(0, 4, size=n)
        frozen = frame["frozen_depth"] > b
        converging = np.clip(0.3 + 0.12 * np.arange(n) + rng.uniform(-0.05, 0.05, size=n), 0.25, 0.95)
        frame[schema.share_column(b)] = np.where(frozen, 1.0, converging.round(3))
    return frame


def _candidates(spec: FixtureRun, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for g in range(GENERATIONS[spec.searcher]):
        for _ in range(CANDIDATES_PER_GENERATION):
            depth = _frozen_depth(spec, g)
            row = schema.CandidateRow(
                index=len(rows), generation=g, arch=schema.arch_to_str(rng.integers(0, 4, size=spec.blocks)),
                score=float(rng.uniform(0.5, 0.8)), arch_macs=1_000_000, executed_macs=1_000_000 * (spec.blocks - depth),
                reused_depth=depth, sample_size=100,
            )
            rows.append(dataclasses.asdict(row))
    return pd.DataFrame(rows, columns=list(schema.CAND_COLUMNS))


def record_for(spec: FixtureRun) -> RunRecord:
    """The run.json record of a fixture run."""
    complete = spec.status == RunStatus.COMPLETE
    config = RunConfig(
        supernet=spec.supernet, searcher=spec.searcher, searcher_params=spec.params, seed=spec.seed,
        reuse=ReuseConfig(level="frozen", budget_bytes=2**31),
    )
    return RunRecord(
        setup=RunSetup(
            run_id=spec.name, config=config, config_hash=f"cfg-{spec.name}", searcher=spec.searcher,
            searcher_params=spec.params, seed=spec.seed, supernet=spec.supernet,
            supernet_config={"blocks": spec.blocks, "choices": 4}, checkpoint_hash=spec.checkpoint_hash,
            checkpoint_path=f"/fixture/{spec.supernet}.pt", dataset="fashion16",
            protocol={"dataset": "fashion16", "val_size": 100, "device": "cpu", "tag": spec.protocol_hash},
            protocol_hash=spec.protocol_hash,
        ),
        environment=RunEnvironment(
            versions={"python": "3.11", "torch": "2.13.0", "codecarbon": "3.3.2"},
            git={"commit": "0" * 40, "dirty": False},
            machine={"hostname": "fixture", "cpu": "fixture cpu", "torch_threads": spec.threads},
            device={"type": "cpu", "name": "fixture cpu"},
            meter_sources=_sources(spec),
        ),
        status=RunStatus(spec.status),
        created_utc="2024-01-01T00:00:00Z",
        finished_utc="2024-01-01T00:10:00Z" if complete else None,
        totals=RunTotals(**totals_for(spec)),
        result=RunResult(**result_for(spec)) if complete else None,
        resumes=0,
        searcher_notes=(),
        reuse_budget_bytes=2**31,
        evaluation={},
        final_phase={},
    )


def as_version_2(data: dict[str, Any]) -> dict[str, Any]:
    """A version 3 run.json as the version 2 runner wrote it: the reuse settings again beside the config's."""
    reuse = data["config"]["reuse"]
    old = {key: value for key, value in data.items() if key != "reuse_budget_bytes"}
    old["schema_version"] = 2
    old["reuse"] = {
        "level": reuse["level"], "budget_bytes": data["reuse_budget_bytes"],
        "budget_setting": reuse["budget_bytes"], "location": reuse["location"],
    }
    return old


def write_run(root: Path, spec: FixtureRun) -> Path:
    """Write one synthetic run directory under ``root`` (run.json through ``RunRecord.to_json``); returns its path."""
    path = Path(root) / spec.name
    rng = np.random.default_rng([spec.seed, len(spec.searcher), spec.blocks])
    totals = totals_for(spec)
    write_json(path / schema.RUN_JSON, {**record_for(spec).to_json(), "schema_version": spec.schema_version})
    write_csv(path / schema.GENERATIONS_CSV, _generations(spec, totals, rng))
    write_csv(path / schema.CANDIDATES_CSV, _candidates(spec, rng))
    emissions = schema.Emissions(
        country_iso_code="FRA",
        co2_g=totals["co2_g"],
        energy_kwh=totals["energy_kwh"],
        grid_intensity_g_per_kwh=GRID_G_PER_KWH,
        intensity_source="codecarbon offline table",
        codecarbon_version="3.3.2",
        sources=_sources(spec),
        per_phase={},
    )
    write_json(path / schema.EMISSIONS_JSON, dataclasses.asdict(emissions))
    return path


def write_fixture_runs(
    root: Path,
    *,
    seeds: Sequence[int] = (3, 11),
    searchers: Iterable[str] = SEARCHERS,
    supernet: str = "spos-tiny",
    second_protocol: bool = False,
    unavailable: Mapping[str, str] | None = None,
    test_split: bool = True,
) -> list[Path]:
    """Write ``seeds`` x ``searchers`` runs (plus, optionally, the same again under protocol "protoB")."""
    protocols = ("protoA", "protoB") if second_protocol else ("protoA",)
    return [
        write_run(root, FixtureRun(s, seed, supernet, protocol, unavailable=dict(unavailable or {}), test_split=test_split))
        for protocol in protocols
        for s in searchers
        for seed in seeds
    ]


def standalone_accuracy(spec: FixtureRun) -> float:
    """The known stand-alone test accuracy of a fixture run's answer."""
    return 0.85 + 0.002 * spec.seed - STANDALONE_LOSS[spec.searcher] - (0.0001 * spec.seed if spec.searcher == "random" else 0.0)


def write_standalone(cache: Path, spec: FixtureRun, recipe_seed: int = 0) -> Path:
    """Write the stand-alone result of a fixture run's answer as ``pcfes retrain`` would; returns its folder."""
    from harness import retrain

    recipe = retrain.RetrainRecipe(epochs=1, seed=recipe_seed)
    arch = schema.arch_to_str(result_for(spec)["best_arch"])
    config = {"blocks": spec.blocks, "choices": 4}
    key = f"fixture-{spec.supernet}-{arch}-{recipe.hash()}"
    result = retrain.RetrainResult(
        key=key, supernet=spec.supernet, supernet_config=config, arch=arch, macs=1_000_000, dataset="fashion16",
        recipe=dataclasses.asdict(recipe), recipe_hash=recipe.hash(), train_images=20_000, test_images=TEST_IMAGES,
        test_accuracy=standalone_accuracy(spec), val_accuracy=standalone_accuracy(spec), cpu_s=10.0, wall_s=11.0,
        epochs=[{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "lr": 0.0}], resumes=0, threads=1, torch_version="2.13.0",
        finished_utc="2024-01-01T00:00:00+00:00",
    )
    write_json(Path(cache) / key / "result.json", dataclasses.asdict(result))
    return Path(cache) / key


def table_rows(markdown: str, header_start: str) -> list[dict[str, str]]:
    """Parse the first markdown table whose header begins with ``header_start`` into dicts."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split(" | ")))))
    return rows

"""The instrumented search loop: hints -> prepare reuse -> ask -> evaluate -> tell, under meters.

The runner owns the loop and the clock; the searcher never sees either. After every
generation it writes the run's files and a checkpoint, so an interrupted run can be resumed
to the same candidates and the same final result.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

import searchers
from harness import schema, store
from harness.evaluation import CANDIDATE_PHASES, PREPARE_PHASES, SEARCH_WORK_PHASES, Evaluator, WorkPhase
from harness.progress import progress_bar
from harness.meters import MeterSet
from harness.run_record import RunEnvironment, RunRecord, RunResult, RunSetup, RunStatus, RunTotals
from searchers.base import Searcher

log = logging.getLogger(__name__)

SEARCH_PHASES = schema.PHASES  # what "search cost" totals add up; the final re-score is kept apart


class _SearcherNotes(logging.Handler):
    """Keeps the warnings a searcher logs during a run (e.g. why it stopped drawing candidates) for run.json."""

    def __init__(self, notes: list[str]):
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


class SearcherContractError(RuntimeError):
    """A searcher broke the ask/tell contract (e.g. no candidates while not done)."""


@dataclass(frozen=True)
class RunIdentity:
    """What run.json records about a run besides its measurements."""

    setup: RunSetup
    provenance: dict[str, Any]  # versions, git, machine, device (RunEnvironment without the meters' sources)
    test_images: int | None = None  # size of the dataset's test split (None: it has none)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _value(measurements: dict[str, Any], quantity: str) -> float | None:
    m = measurements.get(quantity)
    return None if m is None else m.value


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


class Runner:
    """Drives one searcher against one evaluator and records everything under ``run_dir``."""

    def __init__(
        self,
        identity: RunIdentity,
        searcher: Searcher,
        evaluator: Evaluator,
        meters: MeterSet,
        run_dir: Path,
        *,
        progress: bool = True,
        on_generation: Callable[[int], None] | None = None,
    ):
        self.identity = identity
        self.searcher = searcher
        self.evaluator = evaluator
        self.meters = meters
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.on_generation = on_generation  # test hook: called after each generation is saved
        self.gen_rows: list[dict[str, Any]] = []
        self.cand_rows: list[dict[str, Any]] = []
        self.created = _now()
        self.resumes = 0
        self.wall_before_resume = 0.0
        self.searcher_notes: list[str] = []

    # --- resume -----------------------------------------------------------------------

    def restore(self) -> None:
        """Load the checkpoint of an interrupted run in ``run_dir``."""
        state = store.read_json(self.run_dir / schema.CHECKPOINT_JSON)
        if state["config_hash"] != self.identity.setup.config_hash:
            raise ValueError(
                f"cannot resume {self.run_dir}: it was started with config {state['config_hash']}, "
                f"not {self.identity.setup.config_hash}"
            )
        started_on = state.get("checkpoint_hash")
        if started_on is None:
            raise ValueError(
                f"cannot resume {self.run_dir}: its {schema.CHECKPOINT_JSON} does not record the supernet checkpoint "
                "it started on (written by an older pcfes-bench); start it again with --overwrite"
            )
        if started_on != self.identity.setup.checkpoint_hash:
            raise ValueError(
                f"cannot resume {self.run_dir}: it was started on supernet checkpoint {started_on}, but "
                f"{self.identity.setup.checkpoint_path} now holds {self.identity.setup.checkpoint_hash}; put the original back "
                "(a run cannot continue on other weights)"
            )
        self.searcher.load_state_dict(state["searcher"])
        self.evaluator.load_state_dict(state["evaluator"])
        self.meters.load_state_dict(state["meters"])
        self.gen_rows = state["generations"]
        self.cand_rows = state["candidates"]
        self.created = state["created_utc"]
        self.resumes = state["resumes"] + 1
        self.searcher_notes = state.get("searcher_notes", [])  # checkpoints from before notes were kept
        self.wall_before_resume = self._phase_sum(self.meters.totals(), "wall_s") or 0.0
        log.info("resuming %s after generation %d (%.1f s spent before)", self.run_dir, self.searcher.generation, self.wall_before_resume)

    def _checkpoint(self) -> None:
        store.write_json(
            self.run_dir / schema.CHECKPOINT_JSON,
            {
                "schema_version": schema.SCHEMA_VERSION,
                "config_hash": self.identity.setup.config_hash,
                "checkpoint_hash": self.identity.setup.checkpoint_hash,
                "created_utc": self.created,
                "resumes": self.resumes,
                "searcher": self.searcher.state_dict(),
                "evaluator": self.evaluator.state_dict(),
                "meters": self.meters.state_dict(),
                "generations": self.gen_rows,
                "candidates": self.cand_rows,
                "searcher_notes": self.searcher_notes,
            },
        )

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> store.StoredRun:
        """Search to the end, re-score the best under the full protocol, write the results; returns them."""
        # A stand-in under a registered name (the gate's replays) declares no generation count.
        entry = searchers.registered_searchers().get(self.identity.setup.searcher)
        known = entry is not None and isinstance(self.searcher, entry.cls)
        total = entry.generation_count(self.searcher.params) if known else None
        bar = progress_bar(
            total, f"{self.identity.setup.searcher} s{self.identity.setup.seed}", "gen",
            enabled=self.progress, initial=self.searcher.generation, position=1, leave=False,
        )
        # The built-in searchers log under "searchers"; a plugin under its own top-level package.
        loggers = {logging.getLogger(name) for name in ("searchers", type(self.searcher).__module__.split(".")[0])}
        notes = _SearcherNotes(self.searcher_notes)
        for logger in loggers:
            logger.addHandler(notes)
        try:
            self._search(bar)
        finally:
            for logger in loggers:
                logger.removeHandler(notes)
        result = self._final()
        record = self._write(RunStatus.COMPLETE, result)
        (self.run_dir / schema.CHECKPOINT_JSON).unlink(missing_ok=True)
        store.remove_stale_temps(self.run_dir)
        return record

    def _search(self, bar: Any) -> None:
        with bar:
            while not self.searcher.done():
                self._generation()
                best = self.gen_rows[-1]
                bar.set_postfix(best=f"{best['best_score']:.4f}", frozen=best["frozen_depth"], wall=f"{best['cum_wall_s']:.0f}s")
                bar.update(1)
                self._write(RunStatus.RUNNING)
                self._checkpoint()
                if self.on_generation is not None:
                    self.on_generation(self.searcher.generation)

    def _generation(self) -> None:
        before = self.meters.totals()
        searcher, evaluator = self.searcher, self.evaluator
        work_before = evaluator.snapshot()
        hints = searcher.hints()
        # Importance sampling's reference carries the frozen prefix: the best arch rewritten by it.
        k = len(hints.frozen)
        reference = [tuple(hints.frozen) + searcher.best()[0][k:]] if searcher.generation > 0 else []
        with self.meters.window("cache"):
            evaluator.prepare(hints, reference)
        with self.meters.window("search"):
            archs = searcher.ask()
        if not archs:  # tell([]) would change nothing: the loop would spin forever
            raise SearcherContractError(
                f"searcher {self.identity.setup.searcher!r} returned no candidates from ask() while done() is False; "
                "a searcher must propose at least one arch per generation or report done()"
            )
        with self.meters.window("evaluate"):
            results = evaluator.evaluate(archs)
        with self.meters.window("search"):
            searcher.tell([(r.arch, r.score) for r in results])
        gen = searcher.generation - 1
        for r in results:
            row = schema.CandidateRow(
                index=len(self.cand_rows), generation=gen, arch=schema.arch_to_str(r.arch), score=r.score,
                arch_macs=r.arch_macs, executed_macs=r.executed_macs, reused_depth=r.reused_depth,
                sample_size=r.sample_size,
            )
            self.cand_rows.append(dataclasses.asdict(row))
        after = self.meters.totals()
        work = evaluator.snapshot() - work_before
        cache_macs, eval_macs = work.macs(PREPARE_PHASES), work.macs(CANDIDATE_PHASES)
        phases = {
            f"{phase}_{q}": _sub(_value(after.get(phase, {}), q), _value(before.get(phase, {}), q) if phase in before else 0.0)
            for phase in SEARCH_PHASES
            for q in schema.PHASE_QUANTITIES
        }
        prev = self.gen_rows[-1] if self.gen_rows else {"cum_wall_s": 0.0, "cum_energy_j": 0.0, "cum_macs": 0}
        gen_energy: float | None = 0.0
        for p in SEARCH_PHASES:
            gen_energy = _add(gen_energy, phases[f"{p}_energy_j"])
        diag = searcher.diagnostics()
        generation = schema.GenerationRow(
            generation=gen,
            evaluated=work.candidates,
            best_score=searcher.best()[1],
            frozen_depth=len(hints.frozen),
            unique_archs=diag.unique_archs if diag is not None else len({r.arch for r in results}),
            sample_size=evaluator.sample_size,
            cache_bytes=work.cache_bytes,
            cache_macs=cache_macs,
            evaluate_macs=eval_macs,
            evaluate_images=work.images(CANDIDATE_PHASES),
            macs_avoided=work.avoided_macs(),
            store_bytes=work.store_bytes,
            store_evictions=work.store_evictions,
            rebuild_macs=work.macs([WorkPhase.REBUILD]),
            phases=phases,
            cum_wall_s=prev["cum_wall_s"] + sum(phases[f"{p}_wall_s"] or 0.0 for p in SEARCH_PHASES),
            cum_energy_j=_add(prev["cum_energy_j"], gen_energy),
            cum_macs=prev["cum_macs"] + cache_macs + eval_macs,
            majority=tuple(diag.majority) if diag is not None else (),
            share=tuple(diag.share) if diag is not None else (),
        )
        row = generation.to_row()
        self.gen_rows.append(row)

    def _final(self) -> RunResult:
        arch, search_score = self.searcher.best()
        with self.meters.window("final"):
            final_score = self.evaluator.score_full(arch, "val")
            try:
                test_accuracy = self.evaluator.score_full(arch, "test")
            except ValueError:
                test_accuracy = None
        return RunResult(
            best_arch=tuple(arch), search_score=search_score, final_score=final_score, test_accuracy=test_accuracy,
            test_images=None if test_accuracy is None else self.identity.test_images,
        )

    # --- records ----------------------------------------------------------------------

    @staticmethod
    def _phase_sum(totals: dict[str, dict[str, Any]], quantity: str) -> float | None:
        value: float | None = 0.0
        for phase in SEARCH_PHASES:
            if phase in totals:
                value = _add(value, _value(totals[phase], quantity))
        return value

    def _totals(self) -> RunTotals:
        totals = self.meters.totals()
        evaluator = self.evaluator
        work = evaluator.work
        return RunTotals(
            **{q: self._phase_sum(totals, q) for q in (*schema.PHASE_QUANTITIES, "energy_kwh")},
            macs=work.search_macs(),
            images=work.search_images(),
            candidates_evaluated=len(self.cand_rows),
            generations=len(self.gen_rows),
            cache_peak_bytes=evaluator.cache_peak_bytes,
            macs_avoided=work.search_avoided_macs(),
            store_peak_bytes=evaluator.store.peak_bytes,
            store_evictions=evaluator.store.evictions,
            store_captured=evaluator.store.captured,
            store_read_again=evaluator.store.read_again,
            rebuild_macs=work.macs["rebuild"],
            rebuild_images=work.images["rebuild"],
            meter_overhead_s=self.meters.overhead_s,
            wall_s_before_resume=self.wall_before_resume,
        )

    def _write(self, status: RunStatus, result: RunResult | None = None) -> store.StoredRun:
        """Write the run's files as they stand; returns what was written."""
        ident = self.identity
        evaluator, work = self.evaluator, self.evaluator.work
        meter_totals = self.meters.totals()
        run = RunRecord(
            setup=ident.setup,
            environment=RunEnvironment(**ident.provenance, meter_sources=self.meters.sources()),
            status=status,
            created_utc=self.created,
            finished_utc=_now() if status is RunStatus.COMPLETE else None,
            totals=self._totals(),
            result=result,
            resumes=self.resumes,
            searcher_notes=tuple(self.searcher_notes),
            reuse_budget_bytes=evaluator.budget_bytes,
            evaluation={
                "cache_events": evaluator.cache_events,
                "importance_subset": evaluator.subset.to_dict() if evaluator.subset else None,
                "store_dropped": evaluator.store.dropped,
                "work_macs_by_phase": dict(work.macs),
                "work_images_by_phase": dict(work.images),
                "work_macs_by_block": work.block_macs,
                "work_images_by_block": work.block_images,
                "work_macs_avoided_by_phase": {p: work.avoided_macs(p) for p in SEARCH_WORK_PHASES},
                "work_macs_avoided_by_block": {p: work.avoided_block_macs(p) for p in SEARCH_WORK_PHASES},
            },
            final_phase={q: m.value for q, m in meter_totals.get("final", {}).items()},
        )
        store.write_json(self.run_dir / schema.RUN_JSON, run.to_json())
        gens = pd.DataFrame(self.gen_rows)
        ordered = [c for c in schema.GEN_COLUMNS if c in gens.columns]
        gens = gens[ordered + [c for c in gens.columns if c not in ordered]] if len(gens) else pd.DataFrame(columns=schema.GEN_COLUMNS)
        cands = pd.DataFrame(self.cand_rows, columns=schema.CAND_COLUMNS)
        emissions = self._emissions(meter_totals)
        store.write_csv(self.run_dir / schema.GENERATIONS_CSV, gens)
        store.write_csv(self.run_dir / schema.CANDIDATES_CSV, cands)
        store.write_json(self.run_dir / schema.EMISSIONS_JSON, emissions)
        return store.StoredRun(self.run_dir, run, gens, cands, emissions)

    def _emissions(self, meter_totals: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """CO2 with what it was computed from (kWh x grid intensity), so it can be recomputed."""
        intensity = self.meters.grand_totals().get("grid_intensity_g_per_kwh")
        emissions = schema.Emissions(
            country_iso_code=self.identity.setup.config.country_iso_code,
            co2_g=self._phase_sum(meter_totals, "co2_g"),
            energy_kwh=self._phase_sum(meter_totals, "energy_kwh"),
            grid_intensity_g_per_kwh=None if intensity is None else intensity.value,
            intensity_source=None if intensity is None else intensity.source,
            codecarbon_version=self.identity.provenance["versions"].get("codecarbon"),
            sources=self.meters.sources(),
            tracking_mode=self.meters.settings().get("tracking_mode"),
            attribution=self.meters.settings().get("attribution"),
            per_phase={
                phase: {q: {"value": m.value, "unit": m.unit, "source": m.source} for q, m in measured.items()}
                for phase, measured in meter_totals.items()
            },
        )
        return dataclasses.asdict(emissions)


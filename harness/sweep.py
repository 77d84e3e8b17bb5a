"""`pcfes sweep`: a run matrix (supernets x searchers x seeds x parameter grid) run locally or on Ray.

Every run goes to ``<out>/<run id>/`` (``harness.resolution``: the id holds the config hash), so a sweep is
idempotent: a run that ``store.load_run`` accepts is skipped, an interrupted one (checkpoint
present) resumes, anything else starts afresh. Supernet checkpoints are trained once in the
driver before any run starts, so parallel runs never race to train the same file.

Ray workers write their run directories themselves: the output folder (and the working
directory that relative checkpoint / data paths refer to) must be visible to every node, i.e.
on shared storage for a multi-node cluster.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pandas as pd
import torch

from harness import checkpoints, plugins, store, workflow
from harness.config import RunConfig, check_fields, content_hash, load_toml, merge, reject_unknown, run_config_from_dict
from harness.matrix import Matrix, build
from harness.progress import progress_bar
from harness.datasets import load_dataset
from harness.resolution import ResolvedRun

log = logging.getLogger(__name__)

Backend = Literal["local", "ray"]
Status = Literal["ok", "skipped", "failed"]
RAY_INSTALL_HINT = "the ray backend needs Ray: pip install -e '.[ray]'"


@dataclass(frozen=True)
class Resources:
    """What one run asks for: GPUs and CPUs (Ray's scheduling units) and torch threads."""

    num_gpus: float = 0.0
    num_cpus: float = 1.0
    threads: int = 1  # the same count on every backend keeps results equal bit for bit

    def __post_init__(self) -> None:
        check_fields(self, "resources")
        if self.num_gpus < 0 or self.num_cpus <= 0 or self.threads < 1:
            raise ValueError(
                f"[resources] needs num_gpus >= 0, num_cpus > 0 and threads >= 1; got "
                f"num_gpus={self.num_gpus}, num_cpus={self.num_cpus}, threads={self.threads}"
            )


@dataclass(frozen=True)
class SweepConfig:
    """A sweep file: the base run config, the matrix to expand over it, per-run resources."""

    base: RunConfig
    matrix: Matrix
    resources: Resources = field(default_factory=Resources)
    name: str = ""


@dataclass(frozen=True)
class Outcome:
    """What happened to one run of a sweep."""

    run_id: str
    status: Status
    error: str = ""


_TOP_KEYS = ("name", "matrix", "base", "resources")
_MATRIX_KEYS = ("supernets", "searchers", "seeds", "grid", "reuse")


def sweep_from_dict(data: Mapping[str, Any], base_overrides: Mapping[str, Any] | None = None) -> SweepConfig:
    """Parse a sweep (``name``, ``[matrix]`` with ``[matrix.grid]`` / ``[matrix.reuse]``, ``[base]``, ``[resources]``).

    ``base_overrides`` (plain nested data, e.g. a user's ``--config`` / ``--set``) is laid over ``[base]``.
    """
    reject_unknown(data, _TOP_KEYS, "sweep config")
    matrix = _table(data, "matrix")
    reject_unknown(matrix, _MATRIX_KEYS, "[matrix]")
    base = run_config_from_dict(merge(_table(data, "base"), base_overrides or {}))
    resources = _table(data, "resources")
    reject_unknown(resources, [f.name for f in dataclasses.fields(Resources)], "[resources]")
    if "num_gpus" not in resources and base.protocol.device.startswith("cuda"):
        resources = {**resources, "num_gpus": 1}  # one GPU per run, as DESIGN.md's scale section says
    grid, reuse = _table(matrix, "grid"), _table(matrix, "reuse")
    for where, table in (("grid", grid), ("reuse", reuse)):
        for key, values in table.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"[matrix.{where}] {key} must be a non-empty list of values, got {values!r}")
    return SweepConfig(
        base=base,
        matrix=Matrix(
            searchers=tuple(_names(matrix, "searchers", base.searcher)),
            seeds=_seeds(matrix.get("seeds", [base.seed])),
            supernets=tuple(_names(matrix, "supernets", base.supernet)) if "supernets" in matrix else (),
            grid={key: tuple(values) for key, values in grid.items()},
            reuse={key: tuple(values) for key, values in reuse.items()},
        ),
        resources=Resources(**resources),
        name=str(data.get("name", "")),
    )


def load_sweep(path: str | Path) -> SweepConfig:
    """Read a sweep TOML file (see ``examples/sweep.toml``)."""
    try:
        return sweep_from_dict(load_toml(path))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"[{key}] must be a table, got {value!r}")
    return value


def _names(matrix: Mapping[str, Any], key: str, default: str) -> list[str]:
    names = matrix.get(key, [default])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"[matrix] {key} must be a non-empty list of names, got {names!r}")
    return names


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        return tuple(value)
    raise ValueError(f"[matrix] seeds must be a count >= 1 or a non-empty list of ints, got {value!r}")


def expand(sweep: SweepConfig) -> list[ResolvedRun]:
    """Every run of the sweep's matrix over its base, in order, without duplicates (``harness.matrix.build``)."""
    return build(sweep.base, sweep.matrix)


def default_out_dir(sweep: SweepConfig, runs: Sequence[ResolvedRun]) -> Path:
    """``<results_dir>/sweep-<name>``, or ``sweep-<hash of its runs>`` for an unnamed sweep."""
    label = sweep.name or content_hash([r.config.hash() for r in runs], 8)
    return Path(sweep.base.results_dir) / f"sweep-{label}"


def execute_run(run: ResolvedRun, out_dir: str, cwd: str, threads: int, plugin_modules: Sequence[str] = ()) -> Outcome:
    """Run, resume or skip one run in this process; a failure of the run is returned, not raised.

    This is the body of a local worker process and of a Ray task. ``cwd`` is the driver's
    working directory, which relative checkpoint and data paths refer to; ``plugin_modules``
    are the driver's ``--plugin`` modules (``plugins.requested()``), loaded with the installed
    entry points before any name resolves. A plugin that fails to load raises: the driver
    names the run.
    """
    os.chdir(cwd)
    plugins.load(plugin_modules)
    name = run.run_id
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # run_matrix skips a complete run, resumes an interrupted one and locks the run folder
        # (the driver holds the lock of the sweep folder, never of a run folder).
        workflow.run_matrix([run], Path(out_dir), progress=False)
    except Exception as exc:  # noqa: BLE001 - a failed run must not stop the others
        log.exception("run %s failed", name)
        return Outcome(name, "failed", f"{type(exc).__name__}: {exc}")
    finally:
        torch.set_num_threads(previous)
    return Outcome(name, "ok")


def prepare_checkpoints(runs: Sequence[ResolvedRun], *, progress: bool = True) -> dict[Path, str]:
    """Train (or check) each distinct supernet checkpoint once, before any run is started; their content hashes."""
    hashes: dict[Path, str] = {}
    for config in (r.config for r in runs):
        path = checkpoints.checkpoint_path(config)
        if path in hashes:
            continue
        splits = load_dataset(config.protocol.dataset, root=config.data_root or None)
        hashes[path] = checkpoints.ensure_checkpoint(config, splits, progress=progress)[1].content_hash
    return hashes


def run_sweep(
    sweep: SweepConfig,
    out_dir: Path | None = None,
    *,
    backend: Backend = "local",
    jobs: int = 1,
    address: str | None = None,
    progress: bool = True,
) -> tuple[Path, list[Outcome]]:
    """Run every missing run of a sweep; returns the output folder and one outcome per run."""
    if backend not in ("local", "ray"):
        raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    ray = _import_ray() if backend == "ray" else None  # before any training: fail fast
    runs = expand(sweep)
    for run in runs:
        workflow.validate(run)
    out = Path(out_dir) if out_dir else default_out_dir(sweep, runs)
    with store.folder_lock(out):  # run folders inside are locked by whoever runs them
        ids = [r.run_id for r in runs]
        complete = {name: record for name in ids if (record := workflow.complete_run(out / name)) is not None}
        todo = [r for r in runs if r.run_id not in complete]
        log.info("sweep %s: %d runs, %d complete, %d to run on %s", out, len(runs), len(complete), len(todo), backend)
        done: dict[str, Outcome] = {}
        if todo:
            hashes = prepare_checkpoints(todo, progress=progress)
            for run in runs:  # before any new run: kept runs must share its weights
                path = checkpoints.checkpoint_path(run.config)
                if run.run_id in complete and path in hashes:
                    workflow.require_same_weights(complete[run.run_id], path, hashes[path])
            if ray is not None:
                results = _run_ray(ray, todo, out.resolve(), sweep.resources, address, progress)
            else:
                results = _run_local(todo, out.resolve(), sweep.resources, jobs, progress)
            done = {o.run_id: o for o in results}
    return out, [done.get(name, Outcome(name, "skipped")) for name in ids]


def _run_local(runs: Sequence[ResolvedRun], out: Path, res: Resources, jobs: int, progress: bool) -> list[Outcome]:
    cwd = os.getcwd()
    bar = progress_bar(len(runs), "sweep", "run", enabled=progress)
    outcomes = []
    with bar:
        if jobs == 1:
            for run in runs:
                outcomes.append(execute_run(run, str(out), cwd, res.threads, plugins.requested()))
                bar.update(1)
            return outcomes
        # spawn, not fork: a forked child would inherit the driver's torch/OpenMP thread state.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(execute_run, r, str(out), cwd, res.threads, plugins.requested()): r for r in runs}
            for future in concurrent.futures.as_completed(futures):
                outcomes.append(_result(future.result, futures[future]))
                bar.update(1)
    return outcomes


def _import_ray() -> ModuleType:
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ImportError(f"{RAY_INSTALL_HINT} ({exc})") from None


def _run_ray(
    ray: Any, runs: Sequence[ResolvedRun], out: Path, res: Resources, address: str | None, progress: bool
) -> list[Outcome]:
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False)
    try:
        task = ray.remote(num_gpus=res.num_gpus, num_cpus=res.num_cpus, max_retries=0)(execute_run)
        cwd = os.getcwd()
        futures = {task.remote(r, str(out), cwd, res.threads, plugins.requested()): r for r in runs}
        outcomes = []
        pending = list(futures)
        with progress_bar(len(runs), "sweep (ray)", "run", enabled=progress) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                outcomes.append(_result(lambda: ray.get(ready[0]), futures[ready[0]]))
                bar.update(1)
        return outcomes
    finally:
        if started:
            ray.shutdown()


def _result(get: Callable[[], Outcome], run: ResolvedRun) -> Outcome:
    """A task's outcome; a task that died without returning one (worker crash) counts as failed."""
    try:
        return get()
    except Exception as exc:  # noqa: BLE001 - e.g. ray's WorkerCrashedError, BrokenProcessPool
        return Outcome(run.run_id, "failed", f"{type(exc).__name__}: {exc}")


def outcomes_table(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """The summary the CLI prints: run id, status (ok / skipped / failed), error."""
    return pd.DataFrame([dataclasses.asdict(o) for o in outcomes], columns=["run_id", "status", "error"])

"""Glue between the CLI and the parts: data, checkpoint (``harness.checkpoints``: trained on first
use), evaluator, searcher, meters and runner; what ``pcfes train``, ``search`` and ``compare`` do.
A comparison shares one workspace (data + checkpoint + evaluator tensors) across all its runs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

import searchers
import supernets
from harness import provenance, schema, store
from harness.checkpoints import TrainOutcome, build_supernet, checkpoint_path, default_train_config, ensure_checkpoint, train_checkpoint
from harness.config import EvalProtocol, RunConfig
from harness.datasets import DatasetSplits, available_datasets, load_dataset
from harness.evaluation import Evaluator
from harness.matrix import Matrix, build
from harness.meters import codecarbon_missing, default_meters, validate_country_iso_code
from harness.progress import progress_bar
from harness.resolution import ResolvedRun, recorded_run, require_resolved, resolve
from harness.run_record import RunSetup
from harness.runner import RunIdentity, Runner
from supernets.checkpoint import CheckpointInfo

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    """Data, trained supernet and evaluator shared by every run of a comparison."""

    splits: DatasetSplits
    net: supernets.Supernet
    checkpoint: CheckpointInfo
    evaluator: Evaluator
    protocol: EvalProtocol  # as scored: val_size 0 replaced by the split's size (see EvalProtocol.for_split)


def open_workspace(run: ResolvedRun, *, progress: bool = True, checkpoint_hash: str | None = None) -> Workspace:
    """Load data and checkpoint (training it on first use) and materialise the protocol tensors.

    ``checkpoint_hash`` (resume) requires the checkpoint to hold exactly those weights.
    """
    config = require_resolved(run, "open_workspace").config
    splits = load_dataset(config.protocol.dataset, root=config.data_root or None)
    protocol = config.protocol.for_split(len(splits.val_x))  # before any training: a bad val_size fails now
    net, info = ensure_checkpoint(config, splits, progress=progress, expected_hash=checkpoint_hash)
    evaluator = Evaluator(net, splits, protocol, config.reuse)
    return Workspace(splits, net, info, evaluator, protocol)


def search_space(net: supernets.Supernet, limit: int | None) -> searchers.SearchSpace:
    """The space of ``net``'s archs within ``limit`` MACs per image (None: all of them)."""
    return searchers.SearchSpace(net.choices, None if limit is None else _within(net, limit))


def make_searcher(run: ResolvedRun, net: supernets.Supernet) -> searchers.Searcher:
    config = run.config
    return searchers.get_searcher(config.searcher, search_space(net, run.mac_limit), config.seed, **dict(config.searcher_params))


def _within(net: supernets.Supernet, limit: int) -> searchers.CostLimit:
    """The search-space constraint of a MAC limit; a limit below the cheapest arch is an error."""
    cheapest, dearest = net.mac_range()
    if limit < cheapest:
        raise ValueError(
            f"mac_limit {limit:,} is below the cheapest arch of {net.display_name} ({cheapest:,} MACs per image; "
            f"the dearest has {dearest:,}): no arch meets it"
        )
    costs = tuple(tuple(int(m) for m in block.op_macs) for block in net.blocks)
    return searchers.CostLimit(costs, limit, fixed=int(net.stem_macs + net.head_macs))


def check_importance_rate(run: ResolvedRun, workspace: Workspace) -> None:
    """Reject, before any search, an importance rate that scores fewer than one validation image."""
    entry = searchers.searcher_entry(run.config.searcher)
    if entry.uses_importance_sampling:
        rate = entry.importance_rate(make_searcher(run, workspace.net).params)
        try:
            workspace.evaluator.check_importance_rate(rate)
        except ValueError as exc:
            raise ValueError(f"{run.config.searcher}: {exc}") from None


def validate(run: ResolvedRun) -> None:
    """Fail fast on bad names and parameters, before any data or training."""
    config = require_resolved(run, "validate").config
    net = build_supernet(config)
    make_searcher(run, net)
    if config.protocol.dataset not in available_datasets():
        raise ValueError(
            f"unknown dataset {config.protocol.dataset!r}; available: {', '.join(available_datasets())}"
        )
    if config.carbon.enabled and not codecarbon_missing():  # a missing CodeCarbon is recorded unavailable
        validate_country_iso_code(config.country_iso_code)
    device = torch.device(config.protocol.device)  # the syntax is checked by EvalProtocol
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.protocol.device!r} requested but CUDA is not available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {config.protocol.device!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")


def run_search(
    run: ResolvedRun,
    workspace: Workspace,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_generation: Callable[[int], None] | None = None,
    searcher: searchers.Searcher | None = None,
) -> store.StoredRun:
    """One instrumented search; returns its record (``.path`` is its results directory).

    ``resume`` continues the run in ``run_dir`` from its checkpoint (or restarts one stopped
    before its first checkpoint). The folder is locked while the run writes it. ``searcher``
    replaces the one the config names (the bench replays recorded searches). ``run_dir`` (default
    ``<results_dir>/<run id>``) is only where the run is written: run.json records ``run.run_id``.
    """
    config = require_resolved(run, "run_search").config
    run_dir = Path(run_dir) if run_dir else Path(config.results_dir) / run.run_id
    if config.protocol.for_split(len(workspace.splits.val_x)) != workspace.protocol:
        raise ValueError(
            f"the workspace was opened for protocol {workspace.protocol.hash()}, this run has "
            f"{config.protocol.hash()}; open a workspace for this config"
        )
    check_importance_rate(run, workspace)
    # Recorded as scored and from anywhere: val_size 0 as the split's size, data_root absolute.
    data_root = str(Path(config.data_root).resolve()) if config.data_root else ""
    config = dataclasses.replace(config, protocol=workspace.protocol, data_root=data_root)
    with store.folder_lock(run_dir):
        return _locked_search(run, config, workspace, run_dir, resume, overwrite, progress, on_generation, searcher)


def _locked_search(
    run: ResolvedRun,
    config: RunConfig,  # the run's config as scored (see run_search)
    workspace: Workspace,
    run_dir: Path,
    resume: bool,
    overwrite: bool,
    progress: bool,
    on_generation: Callable[[int], None] | None,
    searcher: searchers.Searcher | None,
) -> store.StoredRun:
    restore = store.prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    evaluator = workspace.evaluator
    if evaluator.reuse != config.reuse:
        evaluator.set_reuse(config.reuse)  # a matrix may vary the reuse level over one workspace
    else:
        evaluator.reset()
    searcher = searcher or make_searcher(run, workspace.net)
    meters = default_meters(
        config.protocol.device, config.country_iso_code, codecarbon=config.carbon.enabled,
        tracking_mode=config.carbon.tracking_mode, emissions_csv=run_dir / schema.EMISSIONS_CSV,
    )
    identity = RunIdentity(
        setup=RunSetup(
            run_id=run.run_id,
            config=config,
            config_hash=config.hash(),
            searcher=config.searcher,
            searcher_params=dict(config.searcher_params),
            seed=config.seed,
            supernet=config.supernet,
            supernet_config=dict(workspace.net.spec.config) if workspace.net.spec else {},
            checkpoint_hash=workspace.checkpoint.content_hash,
            checkpoint_path=str(Path(workspace.checkpoint.path).resolve()),
            dataset=workspace.splits.name,
            protocol=dataclasses.asdict(config.protocol),
            protocol_hash=config.protocol.hash(),
        ),
        test_images=None if workspace.splits.test_x is None else len(workspace.splits.test_x),
        provenance={
            "versions": provenance.versions(),
            "git": provenance.git_state(),
            "machine": provenance.machine(),
            "device": provenance.device_info(config.protocol.device),
        },
    )
    runner = Runner(identity, searcher, evaluator, meters, run_dir, progress=progress, on_generation=on_generation)
    try:
        if restore:
            runner.restore()
        return runner.run()
    except BaseException:
        if not (run_dir / schema.RUN_JSON).exists():  # failed before its first record: leave nothing behind
            (run_dir / schema.EMISSIONS_CSV).unlink(missing_ok=True)
        raise
    finally:
        meters.close()


def train(config: RunConfig, *, overwrite: bool, progress: bool, **overrides: Any) -> TrainOutcome:
    """``pcfes train``: the config's checkpoint, trained with its registered settings and ``overrides``
    (epochs, seed, device) once the config's names and parameters are valid."""
    train_config = default_train_config(config, **overrides)
    validate(resolve(config))
    return train_checkpoint(config, train_config, overwrite=overwrite, progress=progress)


def search(run: ResolvedRun, *, overwrite: bool = False, progress: bool = True) -> store.StoredRun:
    """``pcfes search``: one new run in ``<results_dir>/<run id>``, its folder claimed before any data loads or training."""
    validate(run)
    run_dir = Path(run.config.results_dir) / run.run_id
    with store.folder_lock(run_dir):
        store.prepare_run_dir(run_dir, overwrite=overwrite)
        workspace = open_workspace(run, progress=progress)
        return run_search(run, workspace, run_dir=run_dir, overwrite=overwrite, progress=progress)


def compare(
    config: RunConfig,
    searcher_names: Iterable[str],
    seeds: Iterable[int],
    out_dir: Path | None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    announce: Callable[[str], None],
) -> tuple[Path, list[Path]]:
    """``pcfes compare``: searchers x seeds over ``config`` in ``out_dir`` (default a fresh ``compare-<time>``
    folder), one workspace; the folder and its run folders. ``announce`` hears the plan once the folder is held."""
    runs = build(config, Matrix(searchers=tuple(searcher_names), seeds=tuple(seeds)))
    for run in runs:  # before the output folder is made: a bad config leaves nothing behind
        validate(run)
    out = out_dir or session_dir(config.results_dir, "compare")
    with store.folder_lock(out):
        announce(f"{len(runs)} runs -> {out} (complete runs are kept, interrupted ones resumed)")
        return out, run_matrix(runs, out, overwrite=overwrite, progress=progress)


def resume_search(run_dir: Path, *, progress: bool = True) -> store.StoredRun:
    """Continue an interrupted run with the config and the checkpoint it started with, from any working directory."""
    run_dir = Path(run_dir)
    with store.folder_lock(run_dir):
        setup = store.resumable_run(run_dir).setup
        located = recorded_run(setup, at_recorded_checkpoint=True)  # its weights are hash-checked all the same
        workspace = open_workspace(located, progress=progress, checkpoint_hash=setup.checkpoint_hash)
        return run_search(recorded_run(setup), workspace, run_dir=run_dir, resume=True, progress=progress)


def session_dir(results_dir: str, kind: str) -> Path:
    """A fresh folder for a comparison's runs, e.g. results/compare-20261129-101500."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(results_dir) / f"{kind}-{stamp}"


def run_matrix(
    runs: Sequence[ResolvedRun],
    out_dir: Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Run runs that share a supernet + protocol in one workspace, each in ``out_dir/<run id>``; returns their folders.

    Idempotent: a complete run is kept, an interrupted one resumed, one stopped before its
    first checkpoint started again; ``overwrite`` redoes every run (replacing only run folders
    of ours).
    """
    if not runs:
        return []
    for run in runs:
        validate(require_resolved(run, "run_matrix"))
    workspace = open_workspace(runs[0], progress=progress)
    for run in runs:  # before any run: a bad rate or a run on other weights fails the matrix, not its tenth run
        check_importance_rate(run, workspace)
        kept = None if overwrite else complete_run(Path(out_dir) / run.run_id)
        if kept is not None:
            require_same_weights(kept, checkpoint_path(run.config), workspace.checkpoint.content_hash)
    paths = []
    with progress_bar(len(runs), "runs", "run", enabled=progress and len(runs) > 1) as bar:
        for run in runs:
            name = f"{run.config.searcher} s{run.config.seed}"
            bar.set_postfix(running=name)  # shown on a terminal bar while the run goes
            paths.append(_matrix_run(run, workspace, Path(out_dir) / run.run_id, overwrite, progress))
            bar.set_postfix(done=name)  # the counted line (a log line off a terminal) names the run it counts
            bar.update(1)
    return paths


def _matrix_run(run: ResolvedRun, workspace: Workspace, run_dir: Path, overwrite: bool, progress: bool) -> Path:
    if overwrite:
        return run_search(run, workspace, run_dir=run_dir, overwrite=True, progress=progress).path
    try:
        store.load_run(run_dir)
    except (store.RunLoadError, OSError) as exc:
        problem = exc
    else:
        log.info("skipping %s: already complete", run_dir)
        return run_dir
    try:
        store.resumable_run(run_dir)
    except FileNotFoundError:
        if not store.is_vacant(run_dir):
            raise store.RunLoadError(f"cannot continue {run_dir}: {problem}; delete it to run it again") from None
        return run_search(run, workspace, run_dir=run_dir, progress=progress).path
    return run_search(run, workspace, run_dir=run_dir, resume=True, progress=progress).path


def require_same_weights(record: store.StoredRun, checkpoint: Path, current_hash: str) -> None:
    """Refuse to keep a complete run beside new ones when the checkpoint now holds other weights.

    A set of runs is compared as one experiment on one supernet; a checkpoint retrained since
    (``pcfes train --overwrite``, another machine, changed code) would silently mix two.
    """
    recorded = record.run.setup.checkpoint_hash
    if recorded != current_hash:
        raise ValueError(
            f"{record.path} was made on supernet checkpoint {str(recorded)[:16]}, but {checkpoint} now holds "
            f"{current_hash[:16]}; new runs would mix two supernets in one comparison: put the original "
            "checkpoint back, or write the runs to another --out"
        )


def complete_run(run_dir: Path) -> store.StoredRun | None:
    """The run in ``run_dir`` if ``store.load_run`` accepts it (finished, readable, known schema), else None."""
    try:
        return store.load_run(run_dir)
    except (store.RunLoadError, OSError):
        return None

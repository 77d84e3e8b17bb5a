"""Glue between the CLI and the parts: data, checkpoint (trained on first use), evaluator,
searcher, meters and runner. A comparison shares one workspace (data + checkpoint + evaluator
tensors) across all its runs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import searchers
import supernets
from harness import provenance, schema, store
from harness.config import RunConfig, content_hash
from harness.data import DatasetSplits, available_datasets, load_dataset
from harness.evaluation import Evaluator
from harness.meters import default_meters, validate_country_iso_code
from harness.runner import RunIdentity, Runner
from supernets.train import CheckpointInfo, TrainConfig, load_checkpoint, train_supernet

log = logging.getLogger(__name__)

# The four searchers of the user's brief; cf-es on request.
COMPARE_SEARCHERS = ("random", "evolution", "pcf-es", "pcf-es-is")
FREEZING_SEARCHERS = ("cf-es", "pcf-es", "pcf-es-is")


def supernet_name(config: RunConfig) -> str:
    return config.supernet or supernets.DEFAULT_SUPERNET


def resolve(config: RunConfig) -> RunConfig:
    """Fill in defaults that depend on other fields (supernet, paper presets)."""
    params = dict(config.searcher_params)
    name = supernet_name(config)
    if config.searcher in FREEZING_SEARCHERS:
        for key, value in searchers.preset_for(name).items():
            if key == "monitor" and config.searcher == "cf-es":
                continue
            params.setdefault(key, value)
    return dataclasses.replace(config, supernet=name, searcher_params=params)


def checkpoint_path(config: RunConfig) -> Path:
    """Where the supernet checkpoint of a config lives (default: ./checkpoints/)."""
    if config.checkpoint:
        return Path(config.checkpoint)
    suffix = f"-{content_hash(dict(config.supernet_overrides), 8)}" if config.supernet_overrides else ""
    return Path("checkpoints") / f"{supernet_name(config)}-{config.protocol.dataset}{suffix}.pt"


@dataclass
class Workspace:
    """Data, trained supernet and evaluator shared by every run of a comparison."""

    splits: DatasetSplits
    net: supernets.Supernet
    checkpoint: CheckpointInfo
    evaluator: Evaluator


def build_supernet(config: RunConfig) -> supernets.Supernet:
    kwargs = dict(config.supernet_overrides)
    return supernets.get_supernet(supernet_name(config), **kwargs)


def ensure_checkpoint(
    config: RunConfig,
    splits: DatasetSplits,
    *,
    train_config: TrainConfig | None = None,
    progress: bool = True,
    train_named: bool = False,
) -> tuple[supernets.Supernet, CheckpointInfo]:
    """Load the config's supernet checkpoint, training it first if it does not exist.

    A checkpoint path the user named is only trained when ``train_named`` (``pcfes train``);
    elsewhere a missing named checkpoint is an error, not a silent training run.
    """
    path = checkpoint_path(config)
    expected = build_supernet(config)
    _match_input(expected, splits, config)
    if not path.exists() or _is_partial(path):
        if config.checkpoint and not path.exists() and not train_named:
            raise FileNotFoundError(f"checkpoint {path} does not exist; run `pcfes train --checkpoint {path}` first")
        log.info("training %s on %s -> %s", expected.display_name, splits.name, path)
        train_supernet(
            expected,
            splits.train_x,
            splits.train_y,
            train_config or TrainConfig(device=config.protocol.device),
            checkpoint_path=path,
            metadata={"dataset": splits.name, "input_shape": list(splits.input_shape)},
            progress=progress,
        )
    net, info = load_checkpoint(path, expected_spec=expected.spec)
    return net, info


def _is_partial(path: Path) -> bool:
    """A checkpoint written mid-training (training resumes from it)."""
    try:
        _, info = load_checkpoint(path)
    except ValueError:
        return False  # let the real load report the corruption
    return not info.complete


def _match_input(net: supernets.Supernet, splits: DatasetSplits, config: RunConfig) -> None:
    if tuple(net.input_shape) != tuple(splits.input_shape) or net.num_classes != splits.num_classes:
        raise ValueError(
            f"supernet {net.display_name} takes {tuple(net.input_shape)} images and {net.num_classes} classes, "
            f"dataset {splits.name} has {tuple(splits.input_shape)} and {splits.num_classes}; "
            f"set supernet_overrides (input_size, in_channels, num_classes) to match"
        )


def open_workspace(config: RunConfig, *, progress: bool = True) -> Workspace:
    """Load data and checkpoint (training it on first use) and materialise the protocol tensors."""
    splits = load_dataset(config.protocol.dataset, root=config.data_root or None)
    net, info = ensure_checkpoint(config, splits, progress=progress)
    evaluator = Evaluator(net, splits, config.protocol, config.reuse)
    return Workspace(splits, net, info, evaluator)


def make_searcher(config: RunConfig, net: supernets.Supernet) -> searchers.Searcher:
    space = searchers.SearchSpace(net.choices)
    return searchers.get_searcher(config.searcher, space, config.seed, **dict(config.searcher_params))


def check_importance_rate(config: RunConfig, workspace: Workspace) -> None:
    """Reject, before any search, an importance rate that scores fewer than one validation image."""
    params = getattr(make_searcher(resolve(config), workspace.net), "params", None)
    if isinstance(params, searchers.PCFISParams):
        try:
            workspace.evaluator.check_importance_rate(params.rate)
        except ValueError as exc:
            raise ValueError(f"{config.searcher}: {exc}") from None


def run_id(config: RunConfig) -> str:
    return config.run_id or f"{supernet_name(config)}_{config.searcher}_s{config.seed}_{config.hash()[:8]}"


def validate(config: RunConfig) -> None:
    """Fail fast on bad names and parameters, before any data or training."""
    config = resolve(config)
    net = build_supernet(config)
    make_searcher(config, net)
    if config.protocol.dataset not in available_datasets():
        raise ValueError(
            f"unknown dataset {config.protocol.dataset!r}; available: {', '.join(available_datasets())}"
        )
    validate_country_iso_code(config.country_iso_code)
    if config.protocol.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {config.protocol.device!r} requested but CUDA is not available")


def run_search(
    config: RunConfig,
    workspace: Workspace,
    *,
    run_dir: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_generation: Callable[[int], None] | None = None,
) -> Path:
    """One instrumented search; returns its results directory."""
    config = resolve(config)
    run_dir = Path(run_dir) if run_dir else Path(config.results_dir) / run_id(config)
    check_importance_rate(config, workspace)
    store.prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    evaluator = workspace.evaluator
    if evaluator.reuse != config.reuse:
        evaluator.set_reuse(config.reuse)  # a matrix may vary the reuse level over one workspace
    else:
        evaluator.reset()
    searcher = make_searcher(config, workspace.net)
    meters = default_meters(config.protocol.device, config.country_iso_code)
    identity = RunIdentity(
        run_id=run_dir.name,
        config=config.to_dict(),
        config_hash=config.hash(),
        searcher=config.searcher,
        searcher_params=dict(config.searcher_params),
        seed=config.seed,
        supernet=supernet_name(config),
        supernet_config=dict(workspace.net.spec.config) if workspace.net.spec else {},
        checkpoint_hash=workspace.checkpoint.content_hash,
        dataset=workspace.splits.name,
        protocol=dataclasses.asdict(config.protocol),
        protocol_hash=config.protocol.hash(),
        provenance={
            "versions": provenance.versions(),
            "git": provenance.git_state(),
            "machine": provenance.machine(),
            "device": provenance.device_info(config.protocol.device),
        },
    )
    runner = Runner(identity, searcher, evaluator, meters, run_dir, progress=progress, on_generation=on_generation)
    try:
        if resume:
            runner.restore()
        return runner.run()
    finally:
        meters.close()


def compare_configs(base: RunConfig, searcher_names: Sequence[str], seeds: Sequence[int]) -> list[RunConfig]:
    """The run matrix of a comparison: every searcher x seed on one supernet and protocol.

    ``base.searcher_params`` go to every searcher that accepts them (e.g. ``generations`` to the
    evolution family); ``random`` gets the evolution budget (population x generations) unless
    its ``budget`` is given, so that both evaluate the same number of candidates.
    """
    given = dict(base.searcher_params)
    accepted = {name: searchers.searcher_defaults(name) for name in searcher_names}
    unused = sorted(set(given) - {key for params in accepted.values() for key in params})
    if unused:
        raise ValueError(f"no searcher of {', '.join(searcher_names)} takes parameter(s) {', '.join(unused)}")
    evolution = {**searchers.searcher_defaults("evolution"), **given}
    configs = []
    for seed in seeds:
        for name in searcher_names:
            params = {k: v for k, v in given.items() if k in accepted[name]}
            if name == "random" and "budget" not in params:
                params["budget"] = evolution["population"] * evolution["generations"]
                params.setdefault("batch_size", evolution["population"])
            configs.append(dataclasses.replace(base, searcher=name, seed=seed, searcher_params=params, run_id=""))
    return configs


def session_dir(results_dir: str, kind: str) -> Path:
    """A fresh folder for a comparison's runs, e.g. results/compare-20261129-101500."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(results_dir) / f"{kind}-{stamp}"


def run_matrix(
    configs: Sequence[RunConfig],
    out_dir: Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    skip_complete: bool = False,
) -> list[Path]:
    """Run configs that share a supernet + protocol in one workspace; returns run directories."""
    if not configs:
        return []
    for config in configs:
        validate(config)
    workspace = open_workspace(resolve(configs[0]), progress=progress)
    for config in configs:
        check_importance_rate(config, workspace)
    paths = []
    for config in configs:
        run_dir = Path(out_dir) / run_id(resolve(config))
        if skip_complete and is_complete(run_dir):
            log.info("skipping %s: already complete", run_dir)
            paths.append(run_dir)
            continue
        resume = skip_complete and (run_dir / schema.CHECKPOINT_JSON).exists()
        paths.append(
            run_search(config, workspace, run_dir=run_dir, resume=resume, overwrite=overwrite and not resume, progress=progress)
        )
    return paths


def is_complete(run_dir: Path) -> bool:
    """A run folder that ``store.load_run`` accepts (finished, readable, known schema)."""
    try:
        store.load_run(run_dir)
    except (store.RunLoadError, OSError):
        return False
    return True


def summary_table(paths: Sequence[Path]) -> pd.DataFrame:
    """The compare table: searcher, wall s, MACs, energy J + source, CO2 g, score, reduction vs evolution."""
    frame = store.load_runs(paths)
    rows = []
    for _, run in frame.iterrows():
        base = frame[(frame.searcher == "evolution") & (frame.seed == run.seed) & (frame.supernet == run.supernet)]
        ref = base.iloc[0] if len(base) else None
        rows.append(
            {
                "searcher": run.searcher,
                "seed": run.seed,
                "wall_s": round(run.wall_s, 1),
                "macs": f"{run.macs:.3e}",
                "energy_j": _fmt(run.energy_j),
                "energy_source": run["source.energy_j"],
                "co2_g": _fmt(run.co2_g, 4),
                "candidates": run.candidates_evaluated,
                "final_score": round(run.final_score, 4),
                "test_acc": None if run.test_accuracy is None else round(run.test_accuracy, 4),
                "wall_saved_%": None if ref is None else round(100 * (1 - run.wall_s / ref.wall_s), 1),
                "macs_saved_%": None if ref is None else round(100 * (1 - run.macs / ref.macs), 1),
            }
        )
    return pd.DataFrame(rows)


def _fmt(value: Any, digits: int = 1) -> Any:
    return "n/a" if value is None or value != value else round(float(value), digits)

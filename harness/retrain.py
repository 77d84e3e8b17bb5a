"""Stand-alone ground truth: an arch trained from scratch as its own network, tested on held-out images.

The stand-alone network is the supernet's path for the arch with fresh weights: the supernet is
built on the ``meta`` device (nothing allocated) and only the stem, the chosen op of every block
and the head are materialised and initialised (``supernets.train.init_weights``) from the
recipe's seed, so it computes exactly ``supernet(x, arch)`` with its own weights. It is trained
with its own ``RetrainRecipe`` on the same training tensors the supernet saw (seeded batch order,
SGD with a per-step cosine schedule, no augmentation, as ``supernets.train``) and scored on the
dataset's test split, which neither the supernet nor any search ever saw.

Results are cached under ``<cache>/<key>/``: the key hashes the supernet (spec and code
fingerprint), the arch, the recipe and the data, so an arch is trained once however many runs
answered it. A per-epoch ``partial.pt`` makes a retrain resumable to bit-identical weights on the
same machine and thread count; ``result.json`` is written only when training has finished, so a
partial result is never read as final.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import supernets
from harness import checkpoints, plugins, resolution, schema, store
from harness.config import RunConfig, check_fields, content_hash, load_toml, reject_unknown
from harness.datasets import DatasetSplits, load_dataset
from harness.progress import progress_bar
from supernets.checkpoint import TrainConfig, atomic_torch_save, code_fingerprint, data_hash, training_problems
from supernets.train import init_weights, sgd_optimizer

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path("results") / "standalone"
RESULT_JSON = "result.json"
PARTIAL = "partial.pt"
EVAL_BATCH = 1000


@dataclass(frozen=True)
class RetrainRecipe:
    """How a stand-alone network is trained; every field changes the result, so all go into ``hash``."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1  # peak learning rate, decayed to 0 by a per-step cosine schedule
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5  # conv and linear weights only, as in the supernet's training
    label_smoothing: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "recipe")
        problems = training_problems(self, "recipe.")
        if self.seed < 0:
            problems.append(f"recipe.seed must be >= 0, got {self.seed}")
        if problems:
            raise ValueError("; ".join(problems))

    def hash(self) -> str:
        return content_hash(dataclasses.asdict(self))

    def train_config(self) -> TrainConfig:
        """The supernet-training config with this recipe's optimiser settings (for ``sgd_optimizer``)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return TrainConfig(**fields, device="cpu")


def recipe_from_dict(data: Mapping[str, Any]) -> RetrainRecipe:
    """A recipe from plain data (a TOML table or ``--set`` pairs); unknown keys are errors naming the valid ones."""
    reject_unknown(data, [f.name for f in dataclasses.fields(RetrainRecipe)], "retrain recipe")
    return RetrainRecipe(**data)


def load_recipe(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> RetrainRecipe:
    """The recipe of a TOML file (or the defaults) with ``overrides`` on top."""
    data = dict(load_toml(path)) if path else {}
    return recipe_from_dict({**data, **(overrides or {})})


@dataclass(frozen=True)
class RetrainJob:
    """One arch of one supernet space to train stand-alone; ``key`` names its cache folder."""

    config: RunConfig  # supernet, supernet_overrides, dataset (protocol.dataset), data_root, mac_limit
    arch: tuple[int, ...]
    recipe: RetrainRecipe

    @property
    def supernet(self) -> str:
        return resolution.supernet_name(self.config)


@dataclass(frozen=True)
class RetrainResult:
    """result.json of a finished stand-alone training."""

    key: str
    supernet: str
    supernet_config: Mapping[str, Any]
    arch: str  # schema.arch_to_str
    macs: int  # per image, exact
    dataset: str
    recipe: Mapping[str, Any]
    recipe_hash: str
    train_images: int
    test_images: int
    test_accuracy: float
    val_accuracy: float
    cpu_s: float  # process CPU time of training, summed over resumed sessions
    wall_s: float
    epochs: Sequence[Mapping[str, float]]  # per epoch: loss, accuracy (training), lr
    resumes: int
    threads: int
    torch_version: str
    finished_utc: str


RESULT_KEYS = tuple(f.name for f in dataclasses.fields(RetrainResult))


class StandaloneNet(nn.Module):
    """The path of ``arch`` through a supernet as a network of its own: stem, one op per block, head."""

    def __init__(self, net: supernets.Supernet, arch: Sequence[int]):
        super().__init__()
        self.path = nn.Sequential(*net.path_modules(net.check_arch(arch)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.path(x)


def build_standalone(job: RetrainJob) -> tuple[StandaloneNet, int]:
    """The job's stand-alone network, freshly initialised from the recipe's seed, and its MACs per image."""
    with torch.device("meta"):  # unchosen ops are never allocated
        net = checkpoints.build_supernet(job.config)
    model = StandaloneNet(net, job.arch)
    model.to_empty(device="cpu")
    init_weights(model, torch.Generator().manual_seed(job.recipe.seed))
    return model, net.macs(job.arch)


def _space_identity(config: RunConfig, dataset: str) -> dict[str, Any]:
    net_config = supernets.default_config(resolution.supernet_name(config)) | dict(config.supernet_overrides)
    return {"supernet": resolution.supernet_name(config), "supernet_config": net_config, "dataset": dataset}


def answer_key(supernet: str, supernet_config: Mapping[str, Any], dataset: str, arch: Sequence[int] | str) -> str:
    """What identifies a stand-alone accuracy apart from the recipe: the space, the dataset and the arch."""
    arch_text = arch if isinstance(arch, str) else schema.arch_to_str(arch)
    full = supernets.default_config(supernet) | dict(supernet_config)
    return content_hash({"supernet": supernet, "supernet_config": full, "dataset": dataset, "arch": arch_text})


def job_key(job: RetrainJob, splits: DatasetSplits) -> str:
    """The cache folder name: space, arch, recipe, code fingerprint and the data the result depends on."""
    space = _space_identity(job.config, splits.name)
    spec = supernets.SupernetSpec(space["supernet"], space["supernet_config"])
    return content_hash({
        "answer": answer_key(space["supernet"], space["supernet_config"], splits.name, job.arch),
        "recipe": job.recipe.hash(),
        "code": code_fingerprint(spec),
        "train": data_hash(splits.train_x, splits.train_y),
        "test": data_hash(splits.test_x, splits.test_y),  # type: ignore[arg-type]  # checked by validate_data
        "val": data_hash(splits.val_x, splits.val_y),
    }, 24)


def validate_arch(job: RetrainJob) -> supernets.Supernet:
    """Refuse, before any data is loaded, an arch outside the space or over its MAC limit; returns the (meta) supernet."""
    with torch.device("meta"):
        net = checkpoints.build_supernet(job.config)
    try:
        arch = net.check_arch(job.arch)
    except ValueError as exc:
        raise ValueError(f"cannot retrain {schema.arch_to_str(job.arch)}: {exc}") from None
    limit = resolution.mac_limit(job.config)
    if limit is not None and net.macs(arch) > limit:
        raise ValueError(
            f"arch {schema.arch_to_str(arch)} has {net.macs(arch):,} MACs per image, over the MAC limit {limit:,} of "
            f"{net.display_name}; no search could answer it (pass --mac-limit none to retrain it anyway)"
        )
    return net


def validate_data(job: RetrainJob, net: supernets.Supernet, splits: DatasetSplits) -> None:
    """Refuse, before any training, data without a test split or of another shape than the supernet takes."""
    if splits.test_x is None:
        raise ValueError(f"dataset {splits.name} has no test split: a stand-alone accuracy needs held-out images")
    if tuple(net.input_shape) != tuple(splits.input_shape) or net.num_classes != splits.num_classes:
        raise ValueError(
            f"supernet {net.display_name} takes {tuple(net.input_shape)} images and {net.num_classes} classes, "
            f"dataset {splits.name} has {tuple(splits.input_shape)} and {splits.num_classes}"
        )
    if len(splits.train_x) < job.recipe.batch_size:
        raise ValueError(f"recipe.batch_size {job.recipe.batch_size} exceeds the {len(splits.train_x)} training images")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` in eval mode (batch-norm running statistics) on ``x``."""
    model.eval()
    hits = 0
    with torch.no_grad():
        for start in range(0, len(x), EVAL_BATCH):
            batch = x[start : start + EVAL_BATCH].contiguous(memory_format=torch.channels_last)
            hits += int((model(batch).argmax(1) == y[start : start + EVAL_BATCH]).sum())
    return hits / len(x)


def _read_partial(path: Path) -> dict[str, Any] | None:
    """The saved state of an interrupted retrain, or None (none there, or unreadable: then it restarts)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ... on damage
        log.warning("%s is unreadable (%s); restarting that retrain", path, exc)
        return None


def train_standalone(
    job: RetrainJob,
    splits: DatasetSplits,
    folder: Path,
    *,
    on_epoch: Callable[[int], None] | None = None,
) -> RetrainResult:
    """Train ``job`` in ``folder`` (resuming its partial.pt of the same key), write result.json, return it.

    ``on_epoch(epoch)`` is called after each epoch's state is saved (a test raises from it to
    simulate a kill).
    """
    key = folder.name
    model, macs = build_standalone(job)
    model.to(memory_format=torch.channels_last)
    recipe = job.recipe
    optimizer = sgd_optimizer(model, recipe.train_config())
    steps = len(splits.train_x) // recipe.batch_size  # the last partial batch is dropped, as in supernet training
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs * steps, eta_min=0.0)
    generator = torch.Generator().manual_seed(recipe.seed)
    history: list[dict[str, float]] = []
    spent = {"cpu_s": 0.0, "wall_s": 0.0}
    resumes = 0
    partial = folder / PARTIAL
    state = _read_partial(partial)
    if state is not None:
        if state.get("key") == key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            generator.set_state(state["rng"])
            history, spent, resumes = list(state["history"]), dict(state["spent"]), int(state["resumes"]) + 1
            log.info("resuming stand-alone %s %s after epoch %d", job.supernet, schema.arch_to_str(job.arch), len(history))
        else:
            log.warning("%s belongs to another retrain (key %s); restarting", partial, state.get("key"))
    x_all, y_all = splits.train_x, splits.train_y
    for epoch in range(len(history), recipe.epochs):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        model.train()
        order = torch.randperm(len(x_all), generator=generator)
        loss_sum, hits = 0.0, 0
        for step in range(steps):
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            x, y = x_all[idx].contiguous(memory_format=torch.channels_last), y_all[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * len(y)
            hits += int((logits.detach().argmax(1) == y).sum())
        seen = steps * recipe.batch_size
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "accuracy": hits / seen, "lr": lr})
        spent = {"cpu_s": spent["cpu_s"] + time.process_time() - cpu0, "wall_s": spent["wall_s"] + time.perf_counter() - wall0}
        atomic_torch_save(
            {"key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "rng": generator.get_state(), "history": history, "spent": spent, "resumes": resumes},
            partial,
        )
        if on_epoch is not None:
            on_epoch(epoch + 1)
    space = _space_identity(job.config, splits.name)
    result = RetrainResult(
        key=key, supernet=space["supernet"], supernet_config=space["supernet_config"], arch=schema.arch_to_str(job.arch),
        macs=macs, dataset=splits.name, recipe=dataclasses.asdict(recipe), recipe_hash=recipe.hash(),
        train_images=len(x_all), test_images=len(splits.test_x),  # type: ignore[arg-type]
        test_accuracy=accuracy(model, splits.test_x, splits.test_y),  # type: ignore[arg-type]
        val_accuracy=accuracy(model, splits.val_x, splits.val_y),
        cpu_s=spent["cpu_s"], wall_s=spent["wall_s"], epochs=history, resumes=resumes, threads=torch.get_num_threads(),
        torch_version=torch.__version__, finished_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    store.write_json(folder / RESULT_JSON, dataclasses.asdict(result))
    partial.unlink(missing_ok=True)
    return result


def read_result(folder: Path) -> RetrainResult | None:
    """The finished result in ``folder``, or None when there is none (never a partial one)."""
    path = Path(folder) / RESULT_JSON
    if not path.is_file():
        return None
    data = store.read_json(path)
    if set(data) != set(RESULT_KEYS):
        log.warning("ignoring %s: not a stand-alone result of this version (keys differ)", path)
        return None
    return RetrainResult(**data)


def retrain(
    job: RetrainJob, cache: Path, *, splits: DatasetSplits | None = None, on_epoch: Callable[[int], None] | None = None
) -> RetrainResult:
    """The cached result of ``job``, training it first when there is none (resuming a partial one).

    ``splits``: the job's dataset, when the caller has it loaded already.
    """
    net = validate_arch(job)
    if splits is None:
        splits = load_dataset(job.config.protocol.dataset, root=job.config.data_root or None)
    validate_data(job, net, splits)
    folder = Path(cache) / job_key(job, splits)
    with store.folder_lock(folder):
        done = read_result(folder)
        if done is not None:
            return done
        return train_standalone(job, splits, folder, on_epoch=on_epoch)


def _worker(job: RetrainJob, cache: str, cwd: str, threads: int, plugin_modules: Sequence[str]) -> RetrainResult:
    """One retrain in a fresh process: the driver's working directory, thread count and plugins."""
    os.chdir(cwd)
    plugins.load(plugin_modules)
    torch.set_num_threads(threads)
    return retrain(job, Path(cache))


def retrain_all(
    jobs: Sequence[RetrainJob], cache: Path, *, workers: int = 1, progress: bool = True
) -> list[RetrainResult]:
    """Every distinct job once (validated all before any trains), ``workers`` processes at a time; results in job order."""
    if workers < 1:
        raise ValueError(f"--jobs must be >= 1, got {workers}")
    nets = [validate_arch(job) for job in jobs]
    splits_by: dict[tuple[str, str], DatasetSplits] = {}
    keyed: dict[str, RetrainJob] = {}
    data_of: dict[str, DatasetSplits] = {}
    order = []
    for job, net in zip(jobs, nets):
        where = (job.config.protocol.dataset, job.config.data_root)
        if where not in splits_by:
            splits_by[where] = load_dataset(where[0], root=where[1] or None)
        validate_data(job, net, splits_by[where])
        key = job_key(job, splits_by[where])
        keyed.setdefault(key, job)
        data_of[key] = splits_by[where]
        order.append(key)
    cache = Path(cache)
    results = {key: r for key in keyed if (r := read_result(cache / key)) is not None}
    todo = [key for key in keyed if key not in results]
    log.info("stand-alone: %d answers, %d distinct archs, %d to train -> %s", len(jobs), len(keyed), len(todo), cache)
    threads = torch.get_num_threads()
    with progress_bar(len(todo), "retrain", "arch", enabled=progress) as bar:
        if workers == 1:
            for key in todo:
                results[key] = retrain(keyed[key], cache, splits=data_of[key])
                bar.update(1)
        else:
            # spawn, not fork: a forked child would inherit the driver's torch/OpenMP thread state.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {
                    pool.submit(_worker, keyed[key], str(cache.resolve()), os.getcwd(), threads, plugins.requested()): key
                    for key in todo
                }
                for future in concurrent.futures.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(1)
    return [results[key] for key in order]


def answer_jobs(records: Iterable[store.StoredRun], recipe: RetrainRecipe) -> list[RetrainJob]:
    """One job per run: its answer, in its run's space, dataset and MAC limit."""
    jobs = []
    for record in records:
        jobs.append(RetrainJob(record.run.config, record.run.result.best_arch, recipe))
    return jobs


def results_frame(cache: Path | None) -> pd.DataFrame:
    """Every finished stand-alone result under ``cache``, with its ``answer`` key (empty frame if none, or no cache)."""
    rows = []
    for folder in sorted(Path(cache).iterdir()) if cache is not None and Path(cache).is_dir() else []:
        result = read_result(folder) if folder.is_dir() else None
        if result is not None:
            row = dataclasses.asdict(result)
            row["answer"] = answer_key(result.supernet, result.supernet_config, result.dataset, result.arch)
            rows.append(row)
    return pd.DataFrame(rows, columns=[*RESULT_KEYS, "answer"])


def parse_arch(text: str) -> tuple[int, ...]:
    """``"0-3-1-2"`` -> ``(0, 3, 1, 2)``, with a one-line error for anything else."""
    try:
        arch = schema.arch_from_str(text.strip())
    except ValueError:
        arch = ()
    if not arch:
        raise ValueError(f"--arch {text!r} is not an arch; give one choice per block joined by '-', e.g. 0-3-1-2")
    return arch


def result_rows(results: Sequence[RetrainResult]) -> pd.DataFrame:
    """What ``pcfes retrain`` prints: one row per distinct result."""
    unique = {r.key: r for r in results}.values()
    return pd.DataFrame(
        [
            {"supernet": r.supernet, "arch": r.arch, "macs": r.macs, "test_accuracy": round(r.test_accuracy, 4),
             "val_accuracy": round(r.val_accuracy, 4), "cpu_s": round(r.cpu_s, 1), "epochs": len(r.epochs), "key": r.key}
            for r in unique
        ]
    )

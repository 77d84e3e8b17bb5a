"""Single-path uniform supernet training (SPOS) and verified, resumable checkpoints.

Training is a pure function of (supernet spec, training tensors, ``TrainConfig``): the
weights are initialised and every random draw (data order, sampled paths) is made from one
``torch.Generator`` seeded with ``config.seed``. With a ``checkpoint_path`` a checkpoint is
written atomically at the end of every epoch, holding the optimizer and generator state;
calling ``train_supernet`` again with the same path, spec, data and config resumes from the
last finished epoch and reaches bit-identical final weights (on the same device). A
checkpoint from a different training at that path is an error unless ``resume=False``.

Checkpoints are ``torch.save`` dicts of tensors and plain types (loadable with
``weights_only=True``); configs are JSON strings. ``content_hash`` (sha256 over the spec
and the weights) identifies the trained network; a second hash covers the rest, so any
corruption is detected and nothing is ever half-loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from supernets.base import Arch, Supernet, SupernetSpec, default_config, get_supernet
from supernets.convnet import GatedResidual

log = logging.getLogger(__name__)

FORMAT = "pcfes-supernet-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of single-path uniform supernet training."""

    # Defaults: DEFAULT_SUPERNET (conv-tiny) on 20k 16x16 images, ~80 s on 2 idle CPU cores.
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1  # peak learning rate, decayed to 0 by a per-step cosine schedule
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5  # conv and linear weights only, not BN or biases
    label_smoothing: float = 0.1
    seed: int = 0
    channels_last: bool = True
    device: str = "auto"  # "auto" = cuda when available, else cpu

    def __post_init__(self) -> None:
        problems = [
            msg
            for ok, msg in (
                (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
                (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
                (self.lr > 0, f"lr must be > 0, got {self.lr}"),
                (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
                (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
                (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            )
            if not ok
        ]
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from ``to_dict()`` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**data)


@dataclass(frozen=True)
class EpochMetrics:
    """Mean training loss and accuracy (on the sampled paths) of one epoch."""

    epoch: int
    loss: float
    accuracy: float
    lr: float  # at the epoch's last step
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """What ``train_supernet`` did; the network itself is trained in place."""

    config: TrainConfig
    epochs: tuple[EpochMetrics, ...]
    train_time_s: float  # all epochs, including those of earlier interrupted sessions
    content_hash: str
    resumed_from_epoch: int  # epochs already done when this call started (0 = fresh start)
    checkpoint_path: str | None


@dataclass(frozen=True)
class CheckpointInfo:
    """Everything a checkpoint records besides the weights."""

    path: str
    spec: SupernetSpec
    content_hash: str
    dataset: str | None
    input_shape: tuple[int, ...] | None
    metadata: dict[str, Any]
    train_config: TrainConfig | None
    seed: int | None
    epochs: tuple[EpochMetrics, ...]
    epochs_done: int
    complete: bool
    train_time_s: float
    data_hash: str | None
    torch_version: str
    created_utc: str
    resume_state: dict[str, Any] | None = field(default=None, repr=False)


# --- hashing ---------------------------------------------------------------------------------


def _update(h: Any, obj: Any) -> None:
    """Feed a nested structure of dicts, sequences, tensors and scalars into ``h`` unambiguously."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, Mapping):
        h.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=str):
            _update(h, str(key))
            _update(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}:".encode())
        for item in obj:
            _update(h, item)
    else:
        text = repr(obj)
        h.update(f"{type(obj).__name__}{len(text)}:{text}".encode())


def _digest(obj: Any) -> str:
    h = hashlib.sha256()
    _update(h, obj)
    return h.hexdigest()


def _spec_json(spec: SupernetSpec) -> str:
    return json.dumps({"name": spec.name, "config": spec.config}, sort_keys=True)


def content_hash(net: Supernet) -> str:
    """sha256 over the supernet's spec and weights: the identity of a trained supernet."""
    return _digest([_spec_json(_require_spec(net)), net.state_dict()])


def data_hash(train_x: torch.Tensor, train_y: torch.Tensor) -> str:
    """sha256 over the training tensors (so a resumed training provably sees the same data)."""
    return _digest([train_x, train_y])


def _require_spec(net: Supernet) -> SupernetSpec:
    if net.spec is None:
        raise ValueError(
            f"{type(net).__name__} has no spec; build it with supernets.get_supernet(name, ...) "
            "so that a checkpoint can rebuild it"
        )
    return net.spec


def _full_spec(spec: SupernetSpec) -> SupernetSpec:
    """The spec with registry defaults filled in and JSON-normalised (tuples become lists)."""
    config = json.loads(json.dumps({**default_config(spec.name), **spec.config}))
    return SupernetSpec(spec.name, config)


# --- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike[str],
    net: Supernet,
    *,
    config: TrainConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    epochs: Sequence[EpochMetrics] = (),
    complete: bool = True,
    data_hash: str | None = None,
    resume_state: Mapping[str, Any] | None = None,
) -> str:
    """Atomically write ``net`` and its training record to ``path``; returns the content hash."""
    spec_json = _spec_json(_require_spec(net))
    state_dict = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    info = {
        "metadata": dict(metadata or {}),
        "train_config": config.to_dict() if config else None,
        "epochs": [dataclasses.asdict(m) for m in epochs],
        "complete": complete,
        "data_hash": data_hash,
        "torch_version": torch.__version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    info_json = json.dumps(info, sort_keys=True)
    resume = dict(resume_state) if resume_state is not None else None
    chash = _digest([spec_json, state_dict])
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec_json,
        "state_dict": state_dict,
        "info": info_json,
        "resume": resume,
        "content_hash": chash,
        "record_hash": _digest([info_json, resume]),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes the file private; a checkpoint is meant to be shared
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return chash


def _read_payload(path: Path) -> dict[str, Any]:
    """Load and verify a checkpoint file; any damage is a ``ValueError``."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train the supernet first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on damage
        raise ValueError(f"checkpoint {path} is corrupt or truncated: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {payload.get('format_version')}, "
            f"this code reads version {FORMAT_VERSION}; retrain the supernet"
        )
    try:
        chash = _digest([payload["spec"], payload["state_dict"]])
        rhash = _digest([payload["info"], payload["resume"]])
        stored = (payload["content_hash"], payload["record_hash"])
    except KeyError as exc:
        raise ValueError(f"checkpoint {path} is corrupt or truncated: missing entry {exc}") from exc
    if (chash, rhash) != stored:
        raise ValueError(
            f"checkpoint {path} is corrupt or truncated: hash mismatch (stored content {stored[0][:12]}, "
            f"record {stored[1][:12]}; computed {chash[:12]}, {rhash[:12]})"
        )
    return payload


def _info(path: Path, payload: dict[str, Any]) -> CheckpointInfo:
    spec_data = json.loads(payload["spec"])
    info = json.loads(payload["info"])
    metadata = info["metadata"]
    config = TrainConfig.from_dict(info["train_config"]) if info["train_config"] else None
    epochs = tuple(EpochMetrics(**m) for m in info["epochs"])
    shape = metadata.get("input_shape")
    return CheckpointInfo(
        path=str(path),
        spec=SupernetSpec(spec_data["name"], spec_data["config"]),
        content_hash=payload["content_hash"],
        dataset=metadata.get("dataset"),
        input_shape=tuple(shape) if shape is not None else None,
        metadata=metadata,
        train_config=config,
        seed=config.seed if config else None,
        epochs=epochs,
        epochs_done=len(epochs),
        complete=info["complete"],
        train_time_s=sum(m.seconds for m in epochs),
        data_hash=info["data_hash"],
        torch_version=info["torch_version"],
        created_utc=info["created_utc"],
        resume_state=payload["resume"],
    )


def _check_spec(path: Path, stored: SupernetSpec, expected: SupernetSpec) -> None:
    if _full_spec(stored) != _full_spec(expected):
        raise ValueError(
            f"checkpoint {path} holds supernet {_spec_json(stored)} but {_spec_json(_full_spec(expected))} "
            "was expected; use the checkpoint's supernet config or retrain"
        )


def load_checkpoint(
    path: str | os.PathLike[str], expected_spec: SupernetSpec | None = None
) -> tuple[Supernet, CheckpointInfo]:
    """Rebuild the supernet stored at ``path`` (on CPU, eval mode) after verifying it completely."""
    path = Path(path)
    payload = _read_payload(path)
    info = _info(path, payload)
    if expected_spec is not None:
        _check_spec(path, info.spec, expected_spec)
    # Built on the meta device: no wasted random init, and nothing exists until every tensor loads.
    with torch.device("meta"):
        net = get_supernet(info.spec.name, **info.spec.config)
    net.to_empty(device="cpu")
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not match supernet {info.spec.name}: {exc}") from exc
    return net.eval(), info


# --- training --------------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def init_weights(net: nn.Module, generator: torch.Generator) -> None:
    """Deterministic init from ``generator``: Kaiming-normal convs, N(0, 0.01) linears, unit BN, closed gates."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, GatedResidual):
                m.reset_gate()
            if isinstance(m, nn.Conv2d):
                w = torch.empty(m.weight.shape)
                nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=generator)
                m.weight.copy_(w)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.empty(m.weight.shape).normal_(0.0, 0.01, generator=generator))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_parameters()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()


def sample_arch(choices: Sequence[int], generator: torch.Generator) -> Arch:
    """A uniformly random arch, one draw per block from ``generator``."""
    return tuple(int(torch.randint(n, (1,), generator=generator)) for n in choices)


def _optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    # Weight decay on conv/linear weights only; BN and biases are not decayed (as in SPOS).
    decay = [p for p in net.parameters() if p.ndim > 1]
    rest = [p for p in net.parameters() if p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
    )


def _comparable(config: TrainConfig) -> dict[str, Any]:
    # The device may change between sessions; every other field shapes the result.
    return {k: v for k, v in config.to_dict().items() if k != "device"}


def _resume_from(path: Path, net: Supernet, config: TrainConfig, dhash: str) -> CheckpointInfo:
    """Verify that the checkpoint at ``path`` is this training and load its weights into ``net``."""
    payload = _read_payload(path)
    info = _info(path, payload)
    _check_spec(path, info.spec, _require_spec(net))
    stored = info.train_config
    if stored is None or _comparable(stored) != _comparable(config) or info.data_hash != dhash:
        differs = "training data" if stored and _comparable(stored) == _comparable(config) else "training config"
        raise ValueError(
            f"checkpoint {path} holds a different training (its {differs} differs: stored config "
            f"{stored.to_dict() if stored else None}); delete it, pick another path or pass resume=False "
            "to overwrite it"
        )
    net.load_state_dict(payload["state_dict"], strict=True)
    return info


def train_supernet(
    net: Supernet,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
    resume: bool = True,
) -> TrainResult:
    """Train ``net`` in place by single-path uniform sampling (SPOS); checkpoint and resume per epoch.

    ``metadata`` (JSON-serialisable; keys ``dataset`` and ``input_shape`` are surfaced by
    ``load_checkpoint``) is stored in the checkpoint. ``net`` ends on ``config.device`` in eval mode.
    """
    if len(train_x) != len(train_y) or len(train_x) < config.batch_size:
        raise ValueError(
            f"need as many labels as images and at least one batch of {config.batch_size}; "
            f"got {len(train_x)} images and {len(train_y)} labels"
        )
    if tuple(train_x.shape[1:]) != net.input_shape:
        raise ValueError(
            f"training images have shape {tuple(train_x.shape[1:])} but supernet {net.display_name} "
            f"expects {net.input_shape}"
        )
    spec = _require_spec(net)
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    dhash = data_hash(train_x, train_y)
    device = resolve_device(config.device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    generator = torch.Generator().manual_seed(config.seed)
    history: list[EpochMetrics] = []
    resume_state: dict[str, Any] | None = None
    if path is not None and resume and path.exists():
        info = _resume_from(path, net, config, dhash)
        history, resume_state = list(info.epochs), info.resume_state
        log.info("resuming %s from %s after epoch %d", spec.name, path, len(history))
    else:
        init_weights(net, generator)
    net.to(device=device, memory_format=memory_format)
    optimizer = _optimizer(net, config)
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        generator.set_state(resume_state["rng"])
    done = len(history)

    x_all, y_all = train_x.to(device), train_y.to(device)
    steps = len(x_all) // config.batch_size  # the last partial batch is dropped: BN needs full batches
    total = config.epochs * steps
    net.train()
    bar = tqdm(total=total, initial=done * steps, disable=not progress, desc=f"train {net.display_name}", unit="step")
    try:
        for epoch in range(done, config.epochs):
            start = time.perf_counter()
            order = torch.randperm(len(x_all), generator=generator).to(device)
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            hits = torch.zeros((), dtype=torch.int64, device=device)
            for step in range(steps):
                lr = 0.5 * config.lr * (1 + math.cos(math.pi * (epoch * steps + step) / total))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                idx = order[step * config.batch_size : (step + 1) * config.batch_size]
                x = x_all[idx].contiguous(memory_format=memory_format)
                y = y_all[idx]
                logits = net(x, sample_arch(net.choices, generator))
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
                optimizer.zero_grad(set_to_none=True)  # unsampled ops get no update, no decay
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(y)
                hits += (logits.detach().argmax(1) == y).sum()
                bar.update()
            seen = steps * config.batch_size
            metrics = EpochMetrics(
                epoch + 1, float(loss_sum) / seen, int(hits) / seen, lr, time.perf_counter() - start
            )
            history.append(metrics)
            bar.set_postfix(loss=f"{metrics.loss:.3f}", acc=f"{metrics.accuracy:.3f}")
            log.info(
                "epoch %d/%d: loss %.4f, accuracy %.4f, %.1f s",
                metrics.epoch, config.epochs, metrics.loss, metrics.accuracy, metrics.seconds,
            )
            if path is not None:
                complete = epoch + 1 == config.epochs
                state = None if complete else {"optimizer": optimizer.state_dict(), "rng": generator.get_state()}
                save_checkpoint(
                    path, net, config=config, metadata=metadata, epochs=history,
                    complete=complete, data_hash=dhash, resume_state=state,
                )
    finally:
        bar.close()
    net.eval()
    return TrainResult(
        config=config,
        epochs=tuple(history),
        train_time_s=sum(m.seconds for m in history),
        content_hash=content_hash(net),
        resumed_from_epoch=done,
        checkpoint_path=str(path) if path is not None else None,
    )

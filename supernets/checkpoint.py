"""The supernet checkpoint format: verified, resumable files that say what built them.

Checkpoints are ``torch.save`` dicts of tensors and plain types (loadable with
``weights_only=True``); configs are JSON strings. ``content_hash`` (sha256 over the spec and the
weights) identifies the trained network; a second hash covers the rest, so any corruption is
detected and nothing is ever half-loaded. ``code_fingerprint`` (sha256 over the spec and the
syntax of the modules that define the supernet, docstrings and comments aside) records which code
built it: after an edit of a supernet's code a checkpoint of the same name and config is *stale*
(``StaleCheckpointError``), never silently loaded into another network.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import inspect
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from supernets.base import Supernet
from supernets.registry import SupernetSpec, default_config, get_supernet, supernet_entry

FORMAT = "pcfes-supernet-checkpoint"
FORMAT_VERSION = 2
# Modules whose code shapes every built-in family besides the family's own module.
CORE_MODULES = ("supernets.base", "supernets.builders")


class StaleCheckpointError(ValueError):
    """A checkpoint was written by other supernet code (or an older format) than the one running now."""


def training_problems(settings: Any, prefix: str = "") -> list[str]:
    """What is out of range among the SGD settings of ``settings`` (a TrainConfig or a stand-alone recipe)."""
    s = settings
    return [
        f"{prefix}{msg}"
        for ok, msg in (
            (s.epochs >= 1, f"epochs must be >= 1, got {s.epochs}"),
            (s.batch_size >= 1, f"batch_size must be >= 1, got {s.batch_size}"),
            (s.lr > 0, f"lr must be > 0, got {s.lr}"),
            (0 <= s.momentum < 1, f"momentum must be in [0, 1), got {s.momentum}"),
            (s.weight_decay >= 0, f"weight_decay must be >= 0, got {s.weight_decay}"),
            (0 <= s.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {s.label_smoothing}"),
        )
        if not ok
    ]


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
        problems = training_problems(self)
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
    code_fingerprint: str
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
    return _digest([_spec_json(require_spec(net)), net.state_dict()])


def data_hash(train_x: torch.Tensor, train_y: torch.Tensor) -> str:
    """sha256 over the training tensors (so a resumed training provably sees the same data)."""
    return _digest([train_x, train_y])


def require_spec(net: Supernet) -> SupernetSpec:
    """The registry spec of ``net``, or a ValueError saying how to build one that has it."""
    if net.spec is None:
        raise ValueError(
            f"{type(net).__name__} has no spec; build it with supernets.get_supernet(name, ...) "
            "so that a checkpoint can rebuild it"
        )
    return net.spec


def _syntax(module_name: str) -> str:
    """The module's syntax tree without docstrings: edits to comments or docs change nothing."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


def code_fingerprint(spec: SupernetSpec) -> str:
    """sha256 over the full spec and the code of the module defining its factory plus CORE_MODULES."""
    modules = dict.fromkeys([supernet_entry(spec.name).origin, *CORE_MODULES])
    return _digest([_spec_json(_full_spec(spec)), *(_syntax(name) for name in modules)])


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
    spec_json = _spec_json(require_spec(net))
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
    resume = dict(resume_state) if resume_state is not None else None
    chash = _digest([spec_json, state_dict])
    info["code_fingerprint"] = code_fingerprint(require_spec(net))
    info_json = json.dumps(info, sort_keys=True)
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
    atomic_torch_save(payload, Path(path))
    return chash


def atomic_torch_save(payload: Any, target: Path) -> None:
    """``torch.save`` to ``target`` through a temporary file and a rename: a reader sees the old file or the new, never half."""
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


def _read_payload(path: Path) -> dict[str, Any]:
    """Load and verify a checkpoint file; any damage is a ``ValueError``."""
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path {path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train the supernet first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on damage
        raise ValueError(f"checkpoint {path} is corrupt or truncated: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise StaleCheckpointError(
            f"checkpoint {path} has format version {payload.get('format_version')}, "
            f"this code reads version {FORMAT_VERSION}; retrain the supernet (pcfes train --checkpoint {path} --overwrite)"
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
        code_fingerprint=info["code_fingerprint"],
        resume_state=payload["resume"],
    )


def check_spec(path: Path, stored: SupernetSpec, expected: SupernetSpec) -> None:
    """Raise unless ``stored`` and ``expected`` are the same supernet once registry defaults are filled in."""
    if _full_spec(stored) != _full_spec(expected):
        raise ValueError(
            f"checkpoint {path} holds supernet {_spec_json(stored)} but {_spec_json(_full_spec(expected))} "
            "was expected; use the checkpoint's supernet config or retrain"
        )


def check_code(info: CheckpointInfo) -> None:
    """Raise StaleCheckpointError when the code that built ``info``'s supernet has changed since."""
    now = code_fingerprint(info.spec)
    if info.code_fingerprint != now:
        raise StaleCheckpointError(
            f"checkpoint {info.path} was trained by other code of supernet {info.spec.name} (code fingerprint "
            f"{info.code_fingerprint[:12]}, now {now[:12]}): its weights belong to another network; retrain it "
            f"(pcfes train --checkpoint {info.path} --overwrite)"
        )


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[CheckpointInfo, dict[str, torch.Tensor]]:
    """The verified record and weights of the checkpoint at ``path``, without building the network."""
    path = Path(path)
    payload = _read_payload(path)
    return _info(path, payload), payload["state_dict"]


def load_checkpoint(
    path: str | os.PathLike[str], expected_spec: SupernetSpec | None = None
) -> tuple[Supernet, CheckpointInfo]:
    """Rebuild the supernet stored at ``path`` (on CPU, eval mode) after verifying it completely.

    Raises StaleCheckpointError when the supernet's code changed since it was written.
    """
    path = Path(path)
    payload = _read_payload(path)
    info = _info(path, payload)
    if expected_spec is not None:
        check_spec(path, info.spec, expected_spec)
    check_code(info)
    # Built on the meta device: no wasted random init, and nothing exists until every tensor loads.
    with torch.device("meta"):
        net = get_supernet(info.spec.name, **info.spec.config)
    net.to_empty(device="cpu")
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not match supernet {info.spec.name}: {exc}") from exc
    return net.eval(), info

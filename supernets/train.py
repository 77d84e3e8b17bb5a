"""Single-path uniform supernet training (SPOS), resumable from its per-epoch checkpoints.

Training is a pure function of (supernet spec, training tensors, ``TrainConfig``): the
weights are initialised and every random draw (data order, sampled paths) is made from one
``torch.Generator`` seeded with ``config.seed``. With a ``checkpoint_path`` a checkpoint
(``supernets.checkpoint``) is written atomically at the end of every epoch, holding the optimizer,
learning-rate schedule and generator state; calling ``train_supernet`` again with the same path,
spec, data and config resumes from the last finished epoch and reaches bit-identical final weights
(on the same device). A checkpoint from a different training at that path is an error unless
``resume=False``.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from supernets.base import Arch, Supernet
from supernets.checkpoint import (
    CheckpointInfo,
    EpochMetrics,
    TrainConfig,
    check_code,
    check_spec,
    content_hash,
    data_hash,
    read_checkpoint,
    require_spec,
    save_checkpoint,
)
from supernets.builders import GatedResidual

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What ``train_supernet`` did; the network itself is trained in place."""

    config: TrainConfig
    epochs: tuple[EpochMetrics, ...]
    train_time_s: float  # all epochs, including those of earlier interrupted sessions
    content_hash: str
    resumed_from_epoch: int  # epochs already done when this call started (0 = fresh start)
    checkpoint_path: str | None


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


def sgd_optimizer(net: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with the config's momentum and weight decay on conv/linear weights only (supernet and stand-alone training)."""
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
    info, state_dict = read_checkpoint(path)
    check_spec(path, info.spec, require_spec(net))
    check_code(info)
    stored = info.train_config
    if stored is None or _comparable(stored) != _comparable(config) or info.data_hash != dhash:
        differs = "training data" if stored and _comparable(stored) == _comparable(config) else "training config"
        raise ValueError(
            f"checkpoint {path} holds a different training (its {differs} differs: stored config "
            f"{stored.to_dict() if stored else None}); delete it, pick another path or pass resume=False "
            "to overwrite it"
        )
    net.load_state_dict(state_dict, strict=True)
    return info


def _check_writable(path: Path) -> None:
    """Fail now, not after the first epoch, when the checkpoint cannot be written at ``path``."""
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path {path} is a folder; name a file, e.g. {path / 'supernet.pt'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write checkpoint {path}: {exc.strerror or exc}") from None


def _check_data(net: Supernet, train_x: torch.Tensor, train_y: torch.Tensor, config: TrainConfig) -> None:
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


@dataclass
class _Session:
    """The state one training call steps through: weights (in the net), optimizer, schedule, generator."""

    net: Supernet
    optimizer: torch.optim.SGD
    schedule: torch.optim.lr_scheduler.CosineAnnealingLR
    generator: torch.Generator
    memory_format: torch.memory_format

    def epoch(self, x_all: torch.Tensor, y_all: torch.Tensor, config: TrainConfig, bar: Any) -> tuple[float, float, float]:
        """One pass in a seeded order over full batches; returns (mean loss, accuracy, last lr)."""
        steps = len(x_all) // config.batch_size  # the last partial batch is dropped: BN needs full batches
        order = torch.randperm(len(x_all), generator=self.generator).to(x_all.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=x_all.device)
        hits = torch.zeros((), dtype=torch.int64, device=x_all.device)
        lr = self.optimizer.param_groups[0]["lr"]
        for step in range(steps):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            x, y = x_all[idx].contiguous(memory_format=self.memory_format), y_all[idx]
            logits = self.net(x, sample_arch(self.net.choices, self.generator))
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)  # unsampled ops get no update, no decay
            loss.backward()
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.schedule.step()  # per step: a cosine from lr to 0 over all steps of all epochs
            loss_sum += loss.detach() * len(y)
            hits += (logits.detach().argmax(1) == y).sum()
            bar.update()
        seen = steps * config.batch_size
        return float(loss_sum) / seen, int(hits) / seen, lr

    def resume_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(), "rng": self.generator.get_state()}

    def load_resume_state(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["rng"])


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
    _check_data(net, train_x, train_y, config)
    spec = require_spec(net)
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if path is not None:
        _check_writable(path)
    dhash = data_hash(train_x, train_y)
    device = resolve_device(config.device)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[EpochMetrics] = []
    resume_state: dict[str, Any] | None = None
    if path is not None and resume and path.exists():
        info = _resume_from(path, net, config, dhash)
        history, resume_state = list(info.epochs), info.resume_state
        log.info("resuming %s from %s after epoch %d", spec.name, path, len(history))
    else:
        init_weights(net, generator)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    net.to(device=device, memory_format=memory_format)
    optimizer = sgd_optimizer(net, config)
    steps = len(train_x) // config.batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps, eta_min=0.0)
    session = _Session(net, optimizer, schedule, generator, memory_format)
    if resume_state is not None:
        session.load_resume_state(resume_state)
    done = len(history)
    x_all, y_all = train_x.to(device), train_y.to(device)
    net.train()
    # Off a terminal the per-epoch log lines are the progress: a bar would write every refresh to the log.
    bar = tqdm(total=config.epochs * steps, initial=done * steps, disable=not (progress and sys.stderr.isatty()),
               desc=f"train {net.display_name}", unit="step")
    try:
        for epoch in range(done, config.epochs):
            start = time.perf_counter()
            loss, accuracy, lr = session.epoch(x_all, y_all, config, bar)
            metrics = EpochMetrics(epoch + 1, loss, accuracy, lr, time.perf_counter() - start)
            history.append(metrics)
            bar.set_postfix(loss=f"{metrics.loss:.3f}", acc=f"{metrics.accuracy:.3f}")
            log.info("epoch %d/%d: loss %.4f, accuracy %.4f, %.1f s", metrics.epoch, config.epochs, loss, accuracy, metrics.seconds)
            if path is not None:
                complete = epoch + 1 == config.epochs
                save_checkpoint(
                    path, net, config=config, metadata=metadata, epochs=history, complete=complete,
                    data_hash=dhash, resume_state=None if complete else session.resume_state(),
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


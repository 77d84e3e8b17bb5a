"""The supernet a run config names and its trained checkpoint: where it lives, training it on first use
(``pcfes train``), and telling a checkpoint that is partial (training resumes) or stale (other code wrote it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import supernets
from harness.config import RunConfig, content_hash
from harness.datasets import DatasetSplits, load_dataset
from harness.resolution import supernet_name
from supernets.checkpoint import CheckpointInfo, StaleCheckpointError, check_code, load_checkpoint, read_checkpoint
from supernets.train import TrainConfig, train_supernet

log = logging.getLogger(__name__)


def checkpoint_path(config: RunConfig) -> Path:
    """Where the supernet checkpoint of a config lives (default: ./checkpoints/)."""
    if config.checkpoint:
        return Path(config.checkpoint)
    suffix = f"-{content_hash(dict(config.supernet_overrides), 8)}" if config.supernet_overrides else ""
    return Path("checkpoints") / f"{supernet_name(config)}-{config.protocol.dataset}{suffix}.pt"


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
    expected_hash: str | None = None,
) -> tuple[supernets.Supernet, CheckpointInfo]:
    """Load the config's supernet checkpoint, training it first if it does not exist.

    A checkpoint path the user named is only trained when ``train_named`` (``pcfes train``);
    elsewhere a missing named checkpoint is an error, not a silent training run. With
    ``expected_hash`` (a resumed run) nothing is trained and the weights must have that hash.
    """
    path = checkpoint_path(config)
    expected = build_supernet(config)
    _match_input(expected, splits, config)
    if expected_hash is not None:
        net, info = load_checkpoint(path, expected_spec=expected.spec)
        if info.content_hash != expected_hash:
            raise ValueError(
                f"checkpoint {path} holds weights {info.content_hash[:16]}, but the run started on "
                f"{expected_hash[:16]}; put the original checkpoint back (a run cannot continue on other weights)"
            )
        return net, info
    stale = stale_reason(path)
    if stale and not config.checkpoint:
        # The default checkpoint is ours to keep current: retrain it, and say so.
        log.warning("%s; retraining the default checkpoint %s", stale, path)
        Path(path).unlink()
    if not path.exists() or is_partial(path):
        if config.checkpoint and not path.exists() and not train_named:
            raise FileNotFoundError(f"checkpoint {path} does not exist; run `pcfes train --checkpoint {path}` first")
        log.info("training %s on %s -> %s", expected.display_name, splits.name, path)
        train_supernet(
            expected,
            splits.train_x,
            splits.train_y,
            train_config or default_train_config(config),
            checkpoint_path=path,
            metadata={"dataset": splits.name, "input_shape": list(splits.input_shape)},
            progress=progress,
        )
    net, info = load_checkpoint(path, expected_spec=expected.spec)
    return net, info


def default_train_config(config: RunConfig, **overrides: Any) -> TrainConfig:
    """How a config's supernet is trained: TrainConfig's defaults, the space's registered epochs, ``overrides``."""
    defaults: dict[str, Any] = {"device": config.protocol.device}
    epochs = supernets.supernet_entry(supernet_name(config)).train_epochs
    if epochs is not None:
        defaults["epochs"] = epochs
    return TrainConfig(**{**defaults, **overrides})


def remove_checkpoint(path: Path) -> None:
    """Delete the supernet checkpoint at ``path`` (train --overwrite); refuse a file that is not one."""
    try:
        read_checkpoint(path)
    except StaleCheckpointError:
        pass  # ours, written by older code: exactly what --overwrite is for
    except ValueError as exc:
        raise ValueError(f"refusing to delete {path}: {exc}; delete it yourself if it may go") from None
    Path(path).unlink()


def is_partial(path: Path) -> bool:
    """A checkpoint written mid-training (training resumes from it)."""
    try:
        info, _ = read_checkpoint(path)
    except ValueError:
        return False  # let the real load report the corruption
    return not info.complete


def stale_reason(path: Path) -> str | None:
    """Why the checkpoint at ``path`` was written by other code (or format), or None if it is current or absent."""
    if not Path(path).is_file():
        return None
    try:
        check_code(read_checkpoint(path)[0])
    except StaleCheckpointError as exc:
        return str(exc)
    except ValueError:
        return None  # damage: the real load says what is wrong
    return None


def _match_input(net: supernets.Supernet, splits: DatasetSplits, config: RunConfig) -> None:
    if tuple(net.input_shape) != tuple(splits.input_shape) or net.num_classes != splits.num_classes:
        raise ValueError(
            f"supernet {net.display_name} takes {tuple(net.input_shape)} images and {net.num_classes} classes, "
            f"dataset {splits.name} has {tuple(splits.input_shape)} and {splits.num_classes}; "
            f"set supernet_overrides (input_size, in_channels, num_classes) to match"
        )


@dataclass(frozen=True)
class TrainOutcome:
    """What ``pcfes train`` did: the checkpoint's path, the dataset, and the training record when it trained now."""

    path: Path
    dataset: str
    trained: CheckpointInfo | None  # None: a current, complete checkpoint was there already


def train_checkpoint(config: RunConfig, train_config: TrainConfig, *, overwrite: bool, progress: bool) -> TrainOutcome:
    """Train the config's checkpoint (``pcfes train``), or resume a partial one; a current one stays unless ``overwrite``.

    A stale checkpoint (written by other code) is an error naming why, not a silent retrain: the
    user named this training, so retraining over it is their call (``overwrite``).
    """
    splits = load_dataset(config.protocol.dataset, root=config.data_root or None)
    path = checkpoint_path(config)
    if path.exists() and not overwrite and not is_partial(path):
        stale = stale_reason(path)
        if stale:
            raise ValueError(stale)
        return TrainOutcome(path, splits.name, None)
    if overwrite and path.exists():
        remove_checkpoint(path)
    _, info = ensure_checkpoint(config, splits, train_config=train_config, progress=progress, train_named=True)
    return TrainOutcome(path, splits.name, info)

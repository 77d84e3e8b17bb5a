"""The dataset registry: one typed entry per named dataset, in the style of the searcher and supernet registries.

``register_dataset(name, loader, *, defaults, takes_root)`` (or ``@register_dataset(name, ...)``
on the loader) adds a ``DatasetEntry``. A loader is called as ``loader(root, seed, **options)``
with ``root`` a ``Path`` or None and every option of ``defaults`` filled in, and returns a
:class:`harness.datasets.DatasetSplits`; :func:`load_dataset` checks a name and its options and calls it.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from pathlib import Path
from typing import Any, TypeVar

from harness.datasets.splits import DatasetSplits

log = logging.getLogger(__name__)

DEFAULT_DATASET = "fashion16"

# Names go into run configs, checkpoint names and the --dataset option.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset loader and its metadata."""

    name: str
    loader: Callable[..., DatasetSplits]
    defaults: Mapping[str, Any]  # every option the loader takes, JSON values (tuples allowed)
    takes_root: bool  # whether it reads files from a folder the user names (--data-root)
    description: str
    origin: str  # the module that defines ``loader``

    @property
    def builtin(self) -> bool:
        """Whether the dataset ships with this package."""
        return self.origin.split(".")[0] == "harness"


_REGISTRY: dict[str, DatasetEntry] = {}

L = TypeVar("L", bound=Callable[..., Any])


def register_dataset(
    name: str,
    loader: L | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    takes_root: bool,
    description: str | None = None,
) -> Any:
    """Register ``loader(root, seed, **options)`` under ``name``: a call, or ``@register_dataset(name, ...)`` on the loader."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"dataset name {name!r} must start with a letter or digit and hold only letters, digits, '.', '_' or '-'"
        )
    options = dict(defaults or {})
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"defaults of dataset {name!r} must be JSON values (they go into run configs): {exc}") from None

    def add(load: L) -> L:
        if not callable(load):
            raise TypeError(f"dataset {name!r}: the loader must be callable, got {load!r}")
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered, by {_REGISTRY[name].origin}; pick another name")
        _REGISTRY[name] = DatasetEntry(
            name=name,
            loader=load,
            defaults=MappingProxyType(copy.deepcopy(options)),
            takes_root=bool(takes_root),
            description=description if description is not None else (load.__doc__ or "").strip().split("\n", 1)[0],
            origin=load.__module__,
        )
        return load

    return add if loader is None else add(loader)


def registered_datasets() -> Mapping[str, DatasetEntry]:
    """Every registered dataset by name, in registration order (read-only)."""
    return MappingProxyType(_REGISTRY)


def dataset_entry(name: str) -> DatasetEntry:
    """The entry registered as ``name``; an unknown name is an error listing the registered ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(_REGISTRY)}") from None


def available_datasets() -> list[str]:
    """Registered dataset names in registration order (the embedded default first)."""
    return list(_REGISTRY)


def dataset_options(name: str) -> dict[str, Any]:
    """Option names of a dataset with their defaults."""
    return copy.deepcopy(dict(dataset_entry(name).defaults))


def load_dataset(name: str, *, root: str | Path | None = None, seed: int = 0, **options: Any) -> DatasetSplits:
    """Load a named dataset; ``seed`` fixes the splits made at load time (fashion16's split is fixed at build)."""
    spec = dataset_entry(name)
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        valid = ", ".join(sorted(spec.defaults)) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; valid options: {valid}")
    if root is not None and str(root) != "" and not spec.takes_root:
        raise ValueError(f"dataset {name!r} is built in and takes no root; got root={str(root)!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    root_path = Path(root).expanduser() if root is not None and str(root) != "" else None
    splits = spec.loader(root_path, seed, **{**spec.defaults, **options})
    log.info(
        "dataset %s: %d train / %d val / %s test images of shape %s from %s",
        name, len(splits.train_x), len(splits.val_x),
        "no" if splits.test_x is None else len(splits.test_x), splits.input_shape, splits.source,
    )
    return splits

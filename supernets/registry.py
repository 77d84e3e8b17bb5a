"""The supernet registry: one typed entry per search space, with the metadata the harness reads.

``register_supernet(name, factory, defaults, **metadata)`` (or as a decorator on the factory)
adds a ``SupernetEntry``: the factory and its JSON defaults (every key the factory accepts), the
paper family the space belongs to (which presets and paper numbers apply), its scale, and its
search limit. Nothing else sniffs supernet names. The factory may be named as
``"module:function"``, imported when the supernet is first built: the registry itself imports
no torch, so listing and validating names is instant (the built-in spaces, ``supernets.spaces``).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from supernets.base import Supernet

# The paper's search-space families and how the paper names them.
FAMILIES: Mapping[str, str] = MappingProxyType({"spos": "SPOS", "fairnas": "FairNAS", "greedynas": "GreedyNAS"})
# real: the paper's size (ImageNet input); cpu: full depth at reduced width and input; tiny: 12 blocks.
SCALES = ("real", "cpu", "tiny")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FACTORY_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
# SPOS's search limit, 330 M FLOPs on ImageNet; in the one-shot NAS literature "FLOPs" are
# multiply-accumulates, which is what ``Supernet.macs`` counts.
PAPER_MAC_LIMIT = 330_000_000


@dataclass(frozen=True)
class SupernetSpec:
    """Registry name plus the full constructor config: enough to rebuild the network."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MacLimit:
    """A search space's MAC limit per image and the measured share of uniformly random archs above it.

    ``matches`` names the real-size space whose excluded share (at ``PAPER_MAC_LIMIT``) this
    limit reproduces; ``None`` for a real-size space, whose limit is the paper's.
    """

    macs: int
    excluded_share: float
    matches: str | None = None


@dataclass(frozen=True)
class SupernetEntry:
    """A registered supernet factory and its metadata."""

    name: str
    maker: Callable[..., Supernet] | str  # the factory, or its "module:function" (imported on first build)
    defaults: Mapping[str, Any]  # every key the factory takes, JSON values
    description: str
    origin: str  # the module that defines the factory
    family: str | None = None  # a key of FAMILIES, or None for a space outside the paper's
    scale: str | None = None  # one of SCALES, or None when not stated
    mac_limit: MacLimit | None = None  # the default search limit; None: unconstrained
    train_epochs: int | None = None  # where TrainConfig's default epochs do not fit the space's budget

    @property
    def factory(self) -> Callable[..., Supernet]:
        """The factory, imported from its module the first time when registered by name."""
        if callable(self.maker):
            return self.maker
        module, attr = self.maker.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def builtin(self) -> bool:
        """Whether the supernet ships with this package."""
        return self.origin.split(".")[0] == "supernets"

    def config(self) -> dict[str, Any]:
        """A fresh deep copy of the defaults."""
        return copy.deepcopy(dict(self.defaults))


_REGISTRY: dict[str, SupernetEntry] = {}

F = TypeVar("F", bound=Callable[..., "Supernet"])


def register_supernet(
    name: str,
    factory: F | str | None = None,
    defaults: Mapping[str, Any] | None = None,
    description: str | None = None,
    *,
    family: str | None = None,
    scale: str | None = None,
    mac_limit: MacLimit | None = None,
    train_epochs: int | None = None,
) -> Any:
    """Register ``factory(**config)`` under ``name``: a call, or ``@register_supernet(name, defaults=...)`` on the factory.

    ``factory`` may be a ``"module:function"`` string (with ``description`` given): the module is
    imported when the supernet is first built, not when it is registered.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"supernet name {name!r} must start with a letter or digit and hold only letters, digits, '.', '_' "
            "or '-' (it goes into run ids and checkpoint names)"
        )
    if defaults is None:
        raise TypeError(f"register_supernet({name!r}) needs defaults: a dict of every option the factory takes")
    try:
        json.dumps(dict(defaults), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"defaults of supernet {name!r} must be JSON values (they go into checkpoints): {exc}") from None
    if family is not None and family not in FAMILIES:
        raise ValueError(f"supernet {name!r}: family must be one of {', '.join(FAMILIES)} or None, got {family!r}")
    if scale is not None and scale not in SCALES:
        raise ValueError(f"supernet {name!r}: scale must be one of {', '.join(SCALES)} or None, got {scale!r}")
    if mac_limit is not None and not isinstance(mac_limit, MacLimit):
        raise TypeError(f"supernet {name!r}: mac_limit must be a MacLimit, got {mac_limit!r}")
    if train_epochs is not None and (isinstance(train_epochs, bool) or not isinstance(train_epochs, int) or train_epochs < 1):
        raise ValueError(f"supernet {name!r}: train_epochs must be a positive int or None, got {train_epochs!r}")

    def add(make: F | str) -> F | str:
        if isinstance(make, str):
            if not _FACTORY_PATH.fullmatch(make):
                raise ValueError(f"supernet {name!r}: a factory named by a string must be 'module:function', got {make!r}")
            if description is None:
                raise TypeError(f"register_supernet({name!r}) of a factory named by a string needs a description")
        elif not callable(make):
            raise TypeError(f"supernet {name!r}: the factory must be callable or 'module:function', got {make!r}")
        if name in _REGISTRY:
            raise ValueError(f"supernet {name!r} is already registered, by {_REGISTRY[name].origin}; pick another name")
        _REGISTRY[name] = SupernetEntry(
            name=name,
            maker=make,
            defaults=MappingProxyType(copy.deepcopy(dict(defaults))),
            description=description if description is not None else (make.__doc__ or "").strip().split("\n", 1)[0],
            origin=make.split(":")[0] if isinstance(make, str) else make.__module__,
            family=family,
            scale=scale,
            mac_limit=mac_limit,
            train_epochs=train_epochs,
        )
        return make

    return add if factory is None else add(factory)


def registered_supernets() -> Mapping[str, SupernetEntry]:
    """Every registered supernet by name, in registration order (read-only)."""
    return MappingProxyType(_REGISTRY)


def supernet_entry(name: str) -> SupernetEntry:
    """The entry registered as ``name``; an unknown name is an error listing the registered ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown supernet {name!r}; available: {', '.join(available())}") from None


def available() -> list[str]:
    """Names of all registered supernets, sorted."""
    return sorted(_REGISTRY)


def default_config(name: str) -> dict[str, Any]:
    """A fresh copy of the defaults of the supernet registered as ``name``."""
    return supernet_entry(name).config()


def get_supernet(name: str, **overrides: Any) -> Supernet:
    """Build the registered supernet ``name`` with its defaults updated by ``overrides``."""
    entry = supernet_entry(name)
    unknown = sorted(set(overrides) - set(entry.defaults))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for supernet {name!r}; "
            f"valid: {', '.join(sorted(entry.defaults))}"
        )
    config = {**entry.config(), **copy.deepcopy(overrides)}
    net = entry.factory(**config)
    net.spec = SupernetSpec(name, config)
    return net

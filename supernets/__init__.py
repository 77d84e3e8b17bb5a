"""Weight-sharing supernets with the paper's search spaces and CPU-sized variants.

Importing the package imports no torch: the registry and the built-in spaces are plain data, and
the torch classes (``Supernet``, ``ChoiceBlock``, ``Arch``) load from ``supernets.base`` on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from supernets.registry import (
    FAMILIES,
    PAPER_MAC_LIMIT,
    SCALES,
    MacLimit,
    SupernetEntry,
    SupernetSpec,
    available,
    default_config,
    get_supernet,
    register_supernet,
    registered_supernets,
    supernet_entry,
)
from supernets import spaces  # noqa: F401  (register the built-in spaces)

if TYPE_CHECKING:
    from supernets.base import Arch, ChoiceBlock, Supernet

_FROM_BASE = ("Arch", "ChoiceBlock", "Supernet")


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module("supernets.base"), name)
    raise AttributeError(f"module 'supernets' has no attribute {name!r}")

# The embedded default for CPU runs: plain convolutions are 2.5-4x faster per MAC than the
# depthwise-heavy blocks on a 2-core CPU, which keeps a full comparison within minutes.
DEFAULT_SUPERNET = "conv-tiny"

__all__ = [
    "DEFAULT_SUPERNET",
    "FAMILIES",
    "PAPER_MAC_LIMIT",
    "SCALES",
    "Arch",
    "ChoiceBlock",
    "MacLimit",
    "Supernet",
    "SupernetEntry",
    "SupernetSpec",
    "available",
    "default_config",
    "get_supernet",
    "register_supernet",
    "registered_supernets",
    "supernet_entry",
]

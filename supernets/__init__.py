"""Weight-sharing supernets with the paper's search spaces and CPU-sized variants."""

from supernets.base import Arch, ChoiceBlock, Supernet, SupernetSpec
from supernets.registry import (
    FAMILIES,
    PAPER_MAC_LIMIT,
    SCALES,
    MacLimit,
    SupernetEntry,
    available,
    default_config,
    get_supernet,
    register_supernet,
    registered_supernets,
    supernet_entry,
)
from supernets import convnet, mobilenet, shufflenet  # noqa: F401  (register the families)

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

"""Weight-sharing supernets with the paper's search spaces and CPU-sized variants."""

from supernets.base import (
    Arch,
    ChoiceBlock,
    Supernet,
    SupernetSpec,
    available,
    default_config,
    describe,
    get_supernet,
    register_supernet,
)
from supernets import convnet, mobilenet, shufflenet  # noqa: F401  (register the families)

# The embedded default for CPU runs: plain convolutions are 2.5-4x faster per MAC than the
# depthwise-heavy blocks on a 2-core CPU, which keeps a full comparison within minutes.
DEFAULT_SUPERNET = "conv-tiny"

__all__ = [
    "DEFAULT_SUPERNET",
    "Arch",
    "ChoiceBlock",
    "Supernet",
    "SupernetSpec",
    "available",
    "default_config",
    "describe",
    "get_supernet",
    "register_supernet",
]

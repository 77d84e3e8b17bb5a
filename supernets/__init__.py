"""Weight-sharing supernets with the paper's search spaces and CPU-sized variants."""

from supernets.base import (
    PAPER_MAC_LIMIT,
    Arch,
    ChoiceBlock,
    MacLimit,
    Supernet,
    SupernetSpec,
    available,
    default_config,
    describe,
    get_supernet,
    register_supernet,
)
from supernets import convnet, mobilenet, shufflenet  # noqa: F401  (register the families)

# Per-supernet default search limit (MACs per image); spaces without a paper family have none.
MAC_LIMITS: dict[str, MacLimit] = {**shufflenet.MAC_LIMITS, **mobilenet.MAC_LIMITS}
# Per-supernet training epochs where TrainConfig's default does not fit the CPU budget.
TRAIN_EPOCHS: dict[str, int] = {**shufflenet.TRAIN_EPOCHS, **mobilenet.TRAIN_EPOCHS}

# The embedded default for CPU runs: plain convolutions are 2.5-4x faster per MAC than the
# depthwise-heavy blocks on a 2-core CPU, which keeps a full comparison within minutes.
DEFAULT_SUPERNET = "conv-tiny"

__all__ = [
    "DEFAULT_SUPERNET",
    "MAC_LIMITS",
    "PAPER_MAC_LIMIT",
    "TRAIN_EPOCHS",
    "Arch",
    "ChoiceBlock",
    "MacLimit",
    "Supernet",
    "SupernetSpec",
    "available",
    "default_config",
    "describe",
    "get_supernet",
    "register_supernet",
]

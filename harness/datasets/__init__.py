"""Named datasets as fixed, normalised tensors, and the seeded calibration batches drawn from them.

Every dataset comes back as a :class:`DatasetSplits` (``splits``) from :func:`load_dataset`, which
looks its loader up in the registry (``registry``); the built-in loaders (``loaders``) register on
import of this package, and the default, ``fashion16``, ships inside it (``fashion16.npz``, beside
these modules). A plugin registers its own with :func:`register_dataset`. The calibration
batches are drawn by the protocol that defines them (``EvalProtocol.calibration_batches``,
through ``calibration``).
"""

from harness.datasets.registry import (
    DEFAULT_DATASET,
    DatasetEntry,
    available_datasets,
    dataset_entry,
    dataset_options,
    load_dataset,
    register_dataset,
    registered_datasets,
)
from harness.datasets.splits import DatasetSplits, arrays_sha256, channel_stats, stratified_split
from harness.datasets import loaders  # noqa: F401  (registers the built-in datasets)  # isort: skip

__all__ = [
    "DEFAULT_DATASET",
    "DatasetEntry",
    "DatasetSplits",
    "arrays_sha256",
    "available_datasets",
    "channel_stats",
    "dataset_entry",
    "dataset_options",
    "load_dataset",
    "register_dataset",
    "registered_datasets",
    "stratified_split",
]

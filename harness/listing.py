"""What `pcfes list` shows: each registered searcher, supernet and dataset with its roles, its
default settings and where it came from (built in, or which plugin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import searchers
import supernets
from harness import config as cfg
from harness import plugins
from harness.datasets import available_datasets, dataset_options

LIST_KINDS = ("searchers", "supernets", "datasets")
LEGEND = (
    "[default]: used when no --searcher, --supernet or --dataset is given; [compare]: in pcfes compare's default set; "
    "[baseline]: what savings are measured against"
)


def registered(kinds: Sequence[str] = ()) -> str:
    """The listing of ``kinds`` (default: all of LIST_KINDS), one aligned section each, then the legend."""
    unknown = [k for k in kinds if k not in LIST_KINDS]
    if unknown:
        raise ValueError(f"cannot list {', '.join(unknown)}; choose from {', '.join(LIST_KINDS)}")
    rows = {
        "searchers": [("searcher", n, _searcher_facts(n) + _settings(searchers.searcher_defaults(n))) for n in searchers.available()],
        "supernets": [("supernet", n, _supernet_facts(n) + _settings(supernets.default_config(n))) for n in supernets.available()],
        "datasets": [("dataset", n, _dataset_facts(n) + _settings(dataset_options(n))) for n in available_datasets()],
    }
    lines = []
    for section in kinds or LIST_KINDS:
        table = [(name, plugins.origin(kind, name), settings) for kind, name, settings in rows[section]]
        width = [max(len(row[i]) for row in table) for i in (0, 1)]
        lines.append(f"{section}:")
        lines += [f"  {name:<{width[0]}}  {origin:<{width[1]}}  {settings}".rstrip() for name, origin, settings in table]
    return "\n".join([*lines, LEGEND])


def _searcher_facts(name: str) -> str:
    """A searcher's roles from its registry entry, e.g. ``[baseline, compare] ``."""
    entry = searchers.searcher_entry(name)
    roles = (
        ("default", name == cfg.RunConfig().searcher),
        ("baseline", entry.baseline),
        ("freezing", entry.freezing),
        ("compare", entry.in_default_compare),
    )
    return _bracketed([role for role, held in roles if held])


def _supernet_facts(name: str) -> str:
    """A supernet's paper family, scale and search limit from its registry entry, e.g. ``[spos, cpu, <= 412,352 MACs] ``."""
    entry = supernets.supernet_entry(name)
    limit = f"<= {entry.mac_limit.macs:,} MACs" if entry.mac_limit else None
    default = "default" if name == supernets.DEFAULT_SUPERNET else None
    return _bracketed([fact for fact in (default, entry.family, entry.scale, limit) if fact])


def _dataset_facts(name: str) -> str:
    """``[default] `` for the dataset a run uses when none is given."""
    return _bracketed(["default"] if name == cfg.EvalProtocol().dataset else [])


def _bracketed(facts: list[str]) -> str:
    return f"[{', '.join(facts)}] " if facts else ""


def _settings(defaults: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in defaults.items())

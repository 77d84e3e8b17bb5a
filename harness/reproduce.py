"""The paper's experiment matrix and its sensitivity sweeps (`pcfes reproduce`), as data.

Each plan is a sweep file in ``harness/plans/`` (``reproduce-<scale>.toml`` and
``reproduce-<scale>-<sweep>.toml``, the format of ``examples/sweep.toml``), run by the sweep
machinery, so it is idempotent and can use ``--jobs``. A sweep runs in its scale's regime: the
main plan's ``[base]`` (e.g. its protocol) lies under the sweep's own. A user's run settings
(``--config``, ``--set``, flags: protocol, reuse, searcher parameters such as
``max_initial_freeze``) are laid over the plan's ``[base]``, and the matrix builder passes them to
every searcher that takes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from harness.config import load_toml, merge
from harness.matrix import Matrix
from harness.sweep import SweepConfig, sweep_from_dict

Scale = Literal["cpu", "gpu"]
SCALES: tuple[Scale, ...] = ("cpu", "gpu")
SWEEPS = ("threshold", "monitor", "rate")
PLANS_DIR = Path(__file__).resolve().parent / "plans"


def plan_path(scale: Scale, sweep: str | None = None) -> Path:
    """The plan file of a scale (and sweep)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if sweep is not None and sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose one of {', '.join(SWEEPS)}")
    return PLANS_DIR / (f"reproduce-{scale}.toml" if sweep is None else f"reproduce-{scale}-{sweep}.toml")


def load_plan(
    scale: Scale,
    sweep: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    seeds: Sequence[int] | None = None,
    supernets: Sequence[str] | None = None,
) -> SweepConfig:
    """The plan with the user's run settings over its base, and optionally other seeds or supernets."""
    data = load_toml(plan_path(scale, sweep))
    if sweep is not None:
        data = {**data, "base": merge(load_toml(plan_path(scale)).get("base", {}), data.get("base", {}))}
    plan = sweep_from_dict(data, overrides)
    if scale == "gpu" and not plan.base.data_root:
        raise ValueError("--scale gpu needs --dataset (cifar10 or imagefolder) and --data-root FOLDER")
    matrix: Matrix = plan.matrix
    if seeds is not None:
        matrix = dataclasses.replace(matrix, seeds=tuple(seeds))
    if supernets:
        matrix = dataclasses.replace(matrix, supernets=tuple(supernets))
    return dataclasses.replace(plan, matrix=matrix)

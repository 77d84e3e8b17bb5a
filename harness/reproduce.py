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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.config import load_toml, merge
from harness.matrix import Matrix
from harness.sweep import Outcome, SweepConfig, run_sweep, sweep_from_dict

if TYPE_CHECKING:
    from harness.retrain import RetrainRecipe

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



def reuse_plans(plan: SweepConfig) -> str:
    """Before a real-scale matrix starts: the bytes a stored prefix node needs at each depth, and whether they fit."""
    import torch

    from harness import checkpoints
    from harness.datasets import load_dataset
    from harness.evaluation import format_reuse_plan, resolve_budget, reuse_plan

    base = plan.base
    splits = load_dataset(base.protocol.dataset, root=base.data_root or None)
    budget = resolve_budget(base.reuse, torch.device(base.protocol.device))
    lines = []
    for supernet in plan.matrix.supernets or (base.supernet,):
        net = checkpoints.build_supernet(dataclasses.replace(base, supernet=supernet))
        lines.append(f"{supernet}: " + format_reuse_plan(reuse_plan(net, base.protocol, budget, val_images=len(splits.val_x)), budget))
    return "\n".join(lines)

@dataclass(frozen=True)
class Reproduction:
    """What one `pcfes reproduce` did: its runs' folder and outcomes, the rank checks it wrote, its report."""

    out: Path
    outcomes: Sequence[Outcome]
    rank_checks: Sequence[Path]
    report: Path

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def run_reproduction(
    plan: SweepConfig,
    out: Path,
    report_dir: Path,
    *,
    sweep: str | None = None,
    recipe: RetrainRecipe | None = None,
    standalone: Path,
    jobs: int = 1,
    formats: Sequence[str] = ("png",),
    progress: bool = True,
) -> Reproduction:
    """Run a plan's missing runs, then (main plan) its rank checks and, given a ``recipe``, the stand-alone
    retrains of every answer and rank sample into ``standalone``; then its report."""
    from harness import rank_check, retrain, store
    from harness.report import sweep_report, write_report

    out, outcomes = run_sweep(plan, out, jobs=jobs, progress=progress)
    if sweep is not None:
        return Reproduction(out, outcomes, (), sweep_report([out], report_dir, sweep, formats=formats))
    records = store.load_records([out], skip_bad=True)
    checks = rank_check.write_checks(records, out)  # split-half reliability: one cheap pass per supernet
    if recipe is not None:
        retrain.retrain_all(rank_check.retrain_jobs(records, [out], recipe), standalone, workers=jobs, progress=progress)
    report = write_report(
        [out], report_dir, formats=formats, standalone=standalone if standalone.is_dir() else None, progress=progress
    )
    return Reproduction(out, outcomes, checks, report)

"""The paper's experiment matrix and sweeps as run configs."""

from __future__ import annotations

import pytest

from harness import reproduce, workflow
from harness.config import RunConfig


def test_main_plan_runs_every_searcher_on_every_space_with_the_paper_presets():
    plan = reproduce.main_plan(RunConfig(), reproduce.SUPERNETS["cpu"], [0, 1])
    assert len(plan.groups) == 3 and len(plan.runs) == 3 * 5 * 2
    resolved = {(c.supernet, c.searcher, c.seed): workflow.resolve(c) for c in plan.runs}
    assert resolved["fairnas-tiny", "pcf-es", 1].searcher_params == {"threshold": 0.4, "monitor": 2}
    assert resolved["greedynas-tiny", "pcf-es-is", 0].searcher_params == {"threshold": 0.4, "monitor": 3}
    assert resolved["spos-tiny", "cf-es", 0].searcher_params == {"threshold": 0.7}
    assert resolved["spos-tiny", "evolution", 0].searcher_params == {}


@pytest.mark.parametrize(("sweep", "values"), [("threshold", 4), ("monitor", 4), ("rate", 5)])
def test_sweep_plan_varies_one_parameter_beside_the_evolution_baseline(sweep, values):
    plan = reproduce.sweep_plan(RunConfig(), "spos-tiny", sweep, [0])
    searchers = [c.searcher for c in plan.runs]
    assert searchers.count("evolution") == 1 and len(searchers) == 1 + values
    varied = sorted(c.searcher_params[sweep] for c in plan.runs if c.searcher != "evolution")
    assert varied == sorted(reproduce.SWEEPS[sweep][1])


def test_gpu_scale_needs_a_dataset_folder():
    with pytest.raises(ValueError, match="--data-root"):
        reproduce.base_config("gpu", RunConfig(), "cifar10")
    config = reproduce.base_config("gpu", RunConfig(data_root="/data/cifar"), "cifar10")
    assert (config.protocol.calib_batches, config.protocol.calib_batch_size, config.protocol.device) == (200, 128, "cuda")

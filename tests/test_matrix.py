"""The one run-matrix builder (harness/matrix.py) behind compare, reproduce, sweep and bench."""

from __future__ import annotations

import pytest

from harness import reproduce, sweep
from harness.config import ReuseConfig, RunConfig
from harness.matrix import Matrix, build
from harness.resolution import resolve


def test_compare_matrix_gives_random_the_evolution_budget_and_freezing_searchers_their_presets():
    base = RunConfig(supernet="conv-tiny", searcher_params={"population": 10, "generations": 4, "threshold": 0.6})
    configs = [r.config for r in build(base, Matrix(searchers=("random", "evolution", "pcf-es"), seeds=(0, 1)))]
    assert [(c.searcher, c.seed) for c in configs] == [
        ("random", 0), ("evolution", 0), ("pcf-es", 0), ("random", 1), ("evolution", 1), ("pcf-es", 1)
    ]
    assert configs[0].searcher_params == {"budget": 40, "batch_size": 10}
    assert configs[1].searcher_params == {"population": 10, "generations": 4}  # threshold is not evolution's
    assert configs[2].searcher_params == {"population": 10, "generations": 4, "threshold": 0.6, "monitor": 3}


def test_reuse_levels_per_searcher_and_runs_kept_once():
    base = RunConfig(supernet="spos-tiny", reuse=ReuseConfig(level="prefix", budget_bytes=0))
    matrix = Matrix(searchers=("evolution", "pcf-es", "random"), seeds=(0,), grid={"threshold": (0.5, 0.7)},
                    reuse={"evolution": ("none", "prefix"), "pcf-es": ("frozen",)})
    runs = build(base, matrix)
    got = sorted((r.config.searcher, r.config.reuse.level, r.config.searcher_params.get("threshold")) for r in runs)
    # evolution and random take no threshold: one run each per level, not one per grid point
    assert got == [("evolution", "none", None), ("evolution", "prefix", None), ("pcf-es", "frozen", 0.5),
                   ("pcf-es", "frozen", 0.7), ("random", "prefix", None)]
    assert all(r.config.reuse.budget_bytes == 0 for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (dict(searchers=("evolution", "evolution"), seeds=(0,)), "evolution listed twice in searchers"),
        (dict(searchers=("evolution",), seeds=(1, 1)), "1 listed twice in seeds"),
        (dict(searchers=("",), seeds=(0,)), "hold an empty name"),
        (dict(searchers=(), seeds=(0,)), "at least one searcher and one seed"),
        (dict(searchers=("evolution",), seeds=(0,), grid={"threshold": ()}), "grid threshold must be a non-empty list"),
    ],
)
def test_bad_matrices_say_what_is_wrong(matrix, message):
    with pytest.raises(ValueError, match=message):
        Matrix(**matrix)


def test_a_parameter_no_searcher_takes_is_an_error():
    with pytest.raises(ValueError, match=r"no searcher of evolution, random takes parameter\(s\) rate"):
        build(RunConfig(), Matrix(searchers=("evolution", "random"), seeds=(0,), grid={"rate": (0.2,)}))


def test_reproduce_passes_the_users_searcher_parameters_through():
    plan = reproduce.load_plan("cpu", overrides={"searcher_params": {"max_initial_freeze": 0.5}})
    runs = [r.config for r in sweep.expand(plan)]
    freezing = [c for c in runs if c.searcher in ("cf-es", "pcf-es", "pcf-es-is")]
    assert freezing and all(c.searcher_params["max_initial_freeze"] == 0.5 for c in freezing)
    assert all("max_initial_freeze" not in c.searcher_params for c in runs if c not in freezing)


def test_reproduce_main_plan_is_every_searcher_on_every_space_with_five_seeds_and_both_pairings():
    plan = reproduce.load_plan("cpu")
    runs = [r.config for r in sweep.expand(plan)]
    assert {c.supernet for c in runs} == {"spos-cpu", "fairnas-cpu", "greedynas-cpu"} and {c.seed for c in runs} == set(range(5))
    combos = {(c.searcher, c.reuse.level) for c in runs}
    assert combos == {("evolution", "none"), ("evolution", "prefix"), ("cf-es", "frozen"), ("pcf-es", "frozen"),
                      ("pcf-es", "prefix"), ("pcf-es-is", "frozen"), ("random", "prefix")}
    assert len(runs) == 3 * 5 * len(combos)
    resolved = {(c.supernet, c.searcher, c.reuse.level, c.seed): c for c in runs}
    assert resolved["fairnas-cpu", "pcf-es", "frozen", 1].searcher_params == {"threshold": 0.4, "monitor": 2}
    assert resolved["greedynas-cpu", "pcf-es-is", "frozen", 0].searcher_params == {"threshold": 0.4, "monitor": 3}
    assert resolved["spos-cpu", "cf-es", "frozen", 0].searcher_params == {"threshold": 0.7}
    assert resolved["spos-cpu", "evolution", "none", 0].searcher_params == {}


@pytest.mark.parametrize(("name", "searcher", "values"), [("threshold", "pcf-es", 4), ("monitor", "pcf-es", 4), ("rate", "pcf-es-is", 5)])
def test_reproduce_sweeps_vary_one_parameter_beside_the_evolution_baseline(name, searcher, values):
    runs = [r.config for r in sweep.expand(reproduce.load_plan("cpu", name, seeds=[0]))]
    assert sum(c.searcher == "evolution" for c in runs) == 1 and sum(c.searcher == searcher for c in runs) == values
    assert len({c.searcher_params[name] for c in runs if c.searcher == searcher}) == values


@pytest.mark.parametrize("sweep_name", [None, *reproduce.SWEEPS])
def test_cpu_plans_score_with_fewer_larger_batches_and_a_user_protocol_wins(sweep_name):
    protocol = reproduce.load_plan("cpu", sweep_name).base.protocol
    assert (protocol.calib_batches, protocol.calib_batch_size, protocol.val_size, protocol.eval_batch_size) == (2, 256, 2000, 1000)
    mine = reproduce.load_plan("cpu", sweep_name, overrides={"protocol": {"val_size": 500}}).base.protocol
    assert (mine.calib_batches, mine.val_size) == (2, 500)


@pytest.mark.parametrize("sweep_name", [None, *reproduce.SWEEPS])
def test_gpu_plans_need_a_dataset_folder_and_use_the_spos_protocol(sweep_name):
    with pytest.raises(ValueError, match="--data-root"):
        reproduce.load_plan("gpu", sweep_name, overrides={"protocol": {"dataset": "cifar10"}})
    plan = reproduce.load_plan("gpu", sweep_name, overrides={"data_root": "/data/cifar", "protocol": {"dataset": "cifar10"}})
    protocol = plan.base.protocol
    assert (protocol.calib_batches, protocol.calib_batch_size, protocol.bn_mode, protocol.device) == (200, 128, "ema", "cuda")
    assert plan.resources.num_gpus == 1


def test_presets_come_from_the_searcher_and_supernet_entries():
    base = RunConfig(supernet="fairnas-cpu")
    configs = {r.config.searcher: r.config for r in build(base, Matrix(searchers=("cf-es", "pcf-es", "pcf-es-is", "evolution"), seeds=(0,)))}
    # Table 1: CF-ES on FairNAS uses H = 0.5 (one initial freeze, no monitor); PCF-ES H = 0.4, f = 2.
    assert configs["cf-es"].searcher_params == {"threshold": 0.5}
    assert configs["pcf-es"].searcher_params == configs["pcf-es-is"].searcher_params == {"threshold": 0.4, "monitor": 2}
    assert configs["evolution"].searcher_params == {}
    # A given value wins over the preset.
    given = resolve(RunConfig(supernet="fairnas-cpu", searcher="cf-es", searcher_params={"threshold": 0.9}))
    assert given.config.searcher_params == {"threshold": 0.9}


def test_a_user_searcher_with_a_matched_budget_gets_it_through_build(monkeypatch):
    from dataclasses import dataclass

    from searchers import RandomSearcher, registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @dataclass(frozen=True)
    class SampledParams:
        trials: int = 1
        per_batch: int = 1

    def trials_of(baseline, given):
        return {} if "trials" in given else {"trials": 2 * baseline["population"] * baseline["generations"], "per_batch": 7}

    @registry.register_searcher("user-sampled", matched_budget=trials_of)
    class Sampled(RandomSearcher):
        Params = SampledParams

    base = RunConfig(supernet="conv-tiny", searcher_params={"population": 5, "generations": 3})
    configs = build(base, Matrix(searchers=("user-sampled", "evolution"), seeds=(0,)))
    assert configs[0].config.searcher_params == {"trials": 30, "per_batch": 7}
    assert configs[1].config.searcher_params == {"population": 5, "generations": 3}
    given = build(RunConfig(supernet="conv-tiny", searcher_params={"trials": 4}), Matrix(searchers=("user-sampled",), seeds=(0,)))
    assert given[0].config.searcher_params == {"trials": 4}

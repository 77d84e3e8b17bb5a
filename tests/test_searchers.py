"""Searchers: SPOS evolution, CF-ES / PCF-ES freezing, random search, operators, registry, resume."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import searchers
from searchers import (
    ConstraintError,
    GenerationalSearcher,
    Hints,
    SearchSpace,
    Searcher,
    available,
    freeze_depth,
    get_searcher,
    register_searcher,
    searcher_entry,
)
from searchers import registry
from searchers.base import generation_diagnostics

BUILTIN = ("cf-es", "evolution", "pcf-es", "pcf-es-is", "random")
FREEZING = ("cf-es", "pcf-es", "pcf-es-is")
N_BLOCKS, N_CHOICES = 20, 4


def weight_table(seed: int, first: float, last: float) -> np.ndarray:
    """Random per-(block, choice) gains; shallow blocks weigh ``first``, deep ones ``last``."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N_BLOCKS, N_CHOICES)) * np.geomspace(first, last, N_BLOCKS)[:, None]


def additive_score(weights: np.ndarray):
    rows = np.arange(len(weights))
    return lambda arch: float(weights[rows, list(arch)].sum())


# Shallow blocks matter most, as in the paper: evolution converges, PCF-ES freezes step by step.
PROGRESSIVE = additive_score(weight_table(3, 2.0, 0.5))
# A steep table: the whole arch converges fast and one freeze covers every block.
STEEP = additive_score(weight_table(2, 8.0, 0.25))


@dataclass
class Trace:
    asks: list[list[tuple[int, ...]]]
    hints: list[Hints]
    searcher: Searcher


def run(searcher: Searcher, score, max_generations: int | None = None) -> Trace:
    """Drive the runner's loop: hints -> ask -> score -> tell, until done."""
    asks, hints = [], []
    while not searcher.done() and (max_generations is None or searcher.generation < max_generations):
        assert len(asks) < 100, "the search did not end within 100 generations"
        hints.append(searcher.hints())
        batch = searcher.ask()
        assert batch, "ask() may return [] only when done()"
        asks.append(batch)
        searcher.tell([(arch, score(arch)) for arch in batch])
    return Trace(asks, hints, searcher)


def space() -> SearchSpace:
    return SearchSpace([N_CHOICES] * N_BLOCKS)


# --- a user-defined searcher, registered into a private copy of the registry ------------------


@dataclass(frozen=True)
class HillClimbParams:
    rounds: int = 4
    width: int = 6


class HillClimb(GenerationalSearcher):
    """Test searcher: random start, then mutants of the best arch so far."""

    Params = HillClimbParams
    params: HillClimbParams

    def propose(self) -> list[tuple[int, ...]]:
        if self.generation >= self.params.rounds:
            return []
        batch: dict[tuple[int, ...], None] = {}
        if self.generation == 0:
            draw = lambda: self.space.sample(self.rng)  # noqa: E731
        else:
            draw = lambda: self.space.mutate(self.rng, self.best()[0], 0.3)  # noqa: E731
        self.draw_new(draw, self.params.width, batch)
        return list(batch)


@pytest.fixture(autouse=True)
def user_registry(monkeypatch):
    """Register ``HillClimb`` as 'user-hillclimb' without leaking it into other test modules."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_searcher("user-hillclimb", HillClimb)


# --- registry --------------------------------------------------------------------------------


def test_available_lists_builtins_and_user_searcher():
    assert available() == sorted((*BUILTIN, "user-hillclimb"))


def test_user_registered_searcher_is_found_and_runs():
    searcher = get_searcher("user-hillclimb", space(), seed=1, rounds=3)
    assert isinstance(searcher, HillClimb) and searcher.name == "user-hillclimb"
    trace = run(searcher, PROGRESSIVE)
    assert [len(b) for b in trace.asks] == [6, 6, 6]
    with pytest.raises(ValueError, match="already registered"):
        register_searcher("user-hillclimb", HillClimb)


def test_decorator_registration():
    @register_searcher("user-decorated")
    class Decorated(HillClimb):
        pass

    assert type(get_searcher("user-decorated", space(), seed=0)) is Decorated


def test_registering_a_non_searcher_or_mutable_params_fails():
    with pytest.raises(TypeError, match="Searcher subclasses"):
        register_searcher("bad", dict)

    class Mutable(HillClimb):
        @dataclass
        class Params:
            rounds: int = 1

    with pytest.raises(TypeError, match="frozen dataclass"):
        register_searcher("bad", Mutable)


def test_unknown_searcher_name_lists_available():
    with pytest.raises(ValueError, match=r"unknown searcher 'pcfes'; available: cf-es, evolution, pcf-es"):
        get_searcher("pcfes", space(), seed=0)


def test_unknown_parameter_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"searcher 'cf-es' has no parameter 'monitor'; valid parameters: "
                       r"population, top_k, generations, mutation_num, mutation_prob, crossover_num, "
                       r"threshold, block_ratio, max_initial_freeze$"):
        get_searcher("cf-es", space(), seed=0, monitor=3)
    with pytest.raises(ValueError, match="has no parameter 'generation'.*valid parameters: budget, batch_size"):
        get_searcher("random", space(), seed=0, generation=3)


@pytest.mark.parametrize("threshold", [0, -0.5, float("inf"), float("nan")])
def test_threshold_must_be_finite_and_positive(threshold):
    with pytest.raises(ValueError, match=r"threshold must be a finite number in \(0.0, inf\)"):
        get_searcher("pcf-es", space(), seed=0, threshold=threshold)


@pytest.mark.parametrize("monitor", [0, -1, 1.5, True])
def test_monitor_must_be_a_positive_int(monitor):
    with pytest.raises(ValueError, match="monitor must be an integer >= 1"):
        get_searcher("pcf-es", space(), seed=0, monitor=monitor)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("pcf-es-is", {"rate": 0.0}, r"rate must be a finite number in \(0.0, 1.0\]"),
        ("pcf-es-is", {"rate": 1.5}, r"rate must be a finite number in \(0.0, 1.0\]"),
        ("cf-es", {"block_ratio": 1.0}, r"block_ratio must be a finite number in \[0.0, 1.0\)"),
        ("evolution", {"top_k": 0}, "top_k must be an integer >= 1"),
        ("evolution", {"mutation_prob": 1.1}, "mutation_prob must be a finite number"),
        ("evolution", {"mutation_num": 30}, r"mutation_num \+ crossover_num \(30 \+ 25\) must not exceed"),
        ("random", {"budget": 0}, "budget must be an integer >= 1"),
        ("pcf-es", {"max_initial_freeze": 0.0}, r"max_initial_freeze must be a finite number in \(0.0, 1.0\]"),
    ],
)
def test_invalid_parameters_are_rejected(name, params, message):
    with pytest.raises(ValueError, match=message):
        get_searcher(name, space(), seed=0, **params)


def test_seed_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        get_searcher("random", space(), seed=-1)


def test_presets_follow_the_paper():
    progressive = {
        "spos": {"threshold": 0.7, "monitor": 3},
        "fairnas": {"threshold": 0.4, "monitor": 2},
        "greedynas": {"threshold": 0.4, "monitor": 3},
    }
    for name in ("pcf-es", "pcf-es-is"):
        assert {family: dict(values) for family, values in searcher_entry(name).presets.items()} == progressive
        assert searcher_entry(name).preset("fairnas") == progressive["fairnas"]
        # A space outside the paper's families gets the SPOS settings, the paper's main setting.
        assert searcher_entry(name).preset(None) == searcher_entry(name).preset("other") == progressive["spos"]
    # Table 1: CF-ES runs with H = 0.5 on FairNAS (PCF-ES with 0.4) and has no monitoring window.
    cf = searcher_entry("cf-es")
    assert [cf.preset(f) for f in ("spos", "fairnas", "greedynas", None)] == [
        {"threshold": 0.7}, {"threshold": 0.5}, {"threshold": 0.4}, {"threshold": 0.7},
    ]
    assert searcher_entry("evolution").preset("fairnas") == searcher_entry("random").preset("spos") == {}
    searcher_entry("pcf-es").preset("spos")["threshold"] = 0.1  # a copy: the entry must not change
    assert searcher_entry("pcf-es").presets["spos"]["threshold"] == 0.7
    assert get_searcher("pcf-es", space(), seed=0, **searcher_entry("pcf-es").preset("greedynas")).params.monitor == 3


# --- freeze rule -----------------------------------------------------------------------------


def rule(shares, depth=0, threshold=0.75, block_ratio=0.5, monitor=3, max_initial=None):
    return freeze_depth(
        shares, depth, threshold=threshold, block_ratio=block_ratio, monitor=monitor, max_initial=max_initial
    )


def test_initial_freeze_takes_the_longest_passing_prefix():
    # Prefix 1..4: mean (1 + 1 + 0.5 + 1) / 4 = 0.875 > 0.75, 3/4 blocks > 0.75 -> passes.
    assert rule([1.0, 1.0, 0.5, 1.0, 0.25, 0.25]) == 4
    # Block 1 is below H, yet the prefix passes on its mean and block ratio.
    assert rule([0.5, 1.0, 1.0, 1.0]) == 4
    assert rule([0.5, 1.0]) == 0  # mean 0.75 is not > 0.75
    assert rule([0.25, 0.5, 0.5]) == 0
    assert rule([]) == 0


def test_initial_freeze_can_be_capped_and_progressive_steps_are_not():
    converged = [1.0] * 6
    assert rule(converged) == 6
    assert rule(converged, max_initial=3) == 3
    assert rule([1.0, 1.0, 0.5, 0.5, 1.0], max_initial=4) == 3  # the longest passing prefix within the cap
    assert rule(converged, depth=3, max_initial=1) == 6  # monitor 3, not the cap, bounds later steps
    with pytest.raises(ValueError, match="max_initial must be an integer >= 1"):
        rule(converged, max_initial=0)


@pytest.mark.parametrize("name", ["cf-es", "pcf-es"])
def test_capped_initial_freeze_keeps_the_search_going(name):
    trace = run(get_searcher(name, space(), seed=2, max_initial_freeze=0.5), STEEP)
    depths = [len(h.frozen) for h in trace.hints]
    assert next(d for d in depths if d) <= N_BLOCKS // 2
    uncapped = run(get_searcher(name, space(), seed=2, max_initial_freeze=1.0), STEEP)
    same = run(get_searcher(name, space(), seed=2), STEEP)
    assert uncapped.asks == same.asks  # 1.0 is the paper's rule
    assert len(trace.asks) > len(same.asks)  # the full freeze ended the uncapped search early


def test_mean_equal_to_threshold_does_not_pass():
    # j = 3: mean exactly 0.75 (not > H) although 2/3 blocks exceed H; j = 2 passes.
    assert rule([0.875, 0.875, 0.5]) == 2


def test_block_ratio_must_be_strictly_exceeded():
    # j = 2: mean 0.8 > 0.75 but Br = 1/2 is not > 0.5; j = 1 passes.
    assert rule([1.0, 0.6]) == 1
    assert rule([1.0, 0.6], block_ratio=0.49) == 2
    # A share equal to H does not count as above it: j = 4 has Br = 2/4, j = 3 has 2/3.
    assert rule([1.0, 1.0, 0.75, 0.75]) == 3


def test_progressive_freeze_takes_the_largest_passing_window():
    frozen = [1.0, 1.0]
    assert rule(frozen + [0.9, 0.9, 0.1, 0.9], depth=2) == 4  # x = 3 fails (mean 0.63), x = 2 passes
    assert rule(frozen + [0.9, 0.9, 0.9, 0.9], depth=2) == 5  # window limited to monitor = 3
    assert rule(frozen + [0.9, 0.9, 0.9, 0.9], depth=2, monitor=1) == 3
    assert rule(frozen + [0.1, 0.9, 0.9], depth=2) == 2  # only windows starting right after the prefix
    assert rule(frozen + [0.5, 0.9], depth=3) == 4  # window limited to the N - k blocks left
    assert rule(frozen + [0.9], depth=3) == 3  # all frozen: nothing to add


def test_monitor_zero_never_grows_an_existing_freeze():
    assert rule([1.0, 1.0, 0.9, 0.9], depth=2, monitor=0) == 2
    assert rule([1.0, 1.0, 0.9, 0.9], depth=0, monitor=0) == 4  # the initial freeze still happens


def test_freeze_rule_rejects_a_depth_beyond_the_blocks():
    with pytest.raises(ValueError, match="frozen_depth must be in 0..2 for 2 shares, got 3"):
        rule([1.0, 1.0], depth=3)


# --- evolution, CF-ES, PCF-ES on a synthetic score --------------------------------------------


@pytest.mark.parametrize("name", ["cf-es", "pcf-es", "pcf-es-is"])
def test_threshold_above_one_reproduces_evolution_exactly(name):
    evolution = run(get_searcher("evolution", space(), seed=3), PROGRESSIVE)
    never = run(get_searcher(name, space(), seed=3, threshold=1.5), PROGRESSIVE)
    assert never.asks == evolution.asks
    assert never.searcher.best() == evolution.searcher.best()
    assert [len(b) for b in evolution.asks] == [50] * 20
    assert never.hints == evolution.hints  # the same parents hinted for reuse
    assert all(h.frozen == () and h.importance_rate is None for h in never.hints)
    # The same seed and score with H = 0.7 does freeze, so the equality above is not vacuous.
    frozen = run(get_searcher(name, space(), seed=3, threshold=0.7), PROGRESSIVE)
    assert frozen.asks[:4] == evolution.asks[:4] and frozen.asks[4] != evolution.asks[4]


def test_evolution_hints_its_parents_for_reuse():
    trace = run(get_searcher("evolution", space(), seed=0), PROGRESSIVE, max_generations=3)
    searcher = trace.searcher
    assert trace.hints[0].reuse_from == ()  # nothing told yet
    told = [arch for batch in trace.asks for arch in batch]
    parents = sorted(told, key=lambda a: (-PROGRESSIVE(a), told.index(a)))[: searcher.params.top_k]
    assert searcher.hints().reuse_from == tuple(parents) and len(parents) == 10


def test_evolution_follows_spos():
    trace = run(get_searcher("evolution", space(), seed=0), PROGRESSIVE)
    searcher = trace.searcher
    asked = [arch for batch in trace.asks for arch in batch]
    assert len(asked) == len(set(asked)) == 1000 and searcher.generation == 20
    scores = {arch: PROGRESSIVE(arch) for arch in asked}
    best = max(asked, key=scores.get)
    assert searcher.best() == (best, scores[best])
    top = searcher.state_dict()["top"]
    assert [tuple(a) for a in top] == sorted(asked, key=scores.get, reverse=True)[:10]
    # Evolution improves on the random generation 0.
    assert scores[best] > max(scores[a] for a in trace.asks[0]) + 1.0
    assert searcher.ask() == [] and searcher.done()


def test_generation_is_mutants_then_crossovers_of_the_top_k():
    searcher = get_searcher("evolution", space(), seed=0)
    run(searcher, PROGRESSIVE, max_generations=3)
    parents = [tuple(a) for a in searcher.state_dict()["top"]]
    batch = searcher.ask()
    assert len(batch) == 50

    def hamming(a, b):
        return sum(x != y for x, y in zip(a, b))

    def crossed(child):
        return any(all(g in (x, y) for g, x, y in zip(child, p, q)) for p in parents for q in parents)

    # 25 mutants (per-gene prob 0.1: a few genes off one parent), then 25 crossovers;
    # a uniform arch differs from every parent in ~15 of 20 genes.
    assert all(min(hamming(c, p) for p in parents) <= 8 for c in batch[:25])
    assert all(crossed(c) for c in batch[25:])


def test_draw_attempts_are_bounded_like_spos():
    searcher = get_searcher("user-hillclimb", space(), seed=0)
    calls = 0

    def same_arch():
        nonlocal calls
        calls += 1
        return (0,) * N_BLOCKS

    batch: dict = {}
    assert searcher.draw_new(same_arch, 5, batch) == 1
    assert calls == 50 and list(batch) == [(0,) * N_BLOCKS]


def test_pcf_es_freezes_progressively():
    trace = run(get_searcher("pcf-es", space(), seed=3), PROGRESSIVE)
    depths = [len(h.frozen) for h in trace.hints]
    for before, after in zip(trace.hints, trace.hints[1:]):
        assert after.frozen[: len(before.frozen)] == before.frozen  # frozen genes never change
    for hint, batch in zip(trace.hints, trace.asks):
        assert all(arch[: len(hint.frozen)] == hint.frozen for arch in batch)
        assert hint.importance_rate is None
    growth = [b - a for a, b in zip(depths, depths[1:]) if b > a]
    assert depths[0] == 0 and len(growth) >= 3  # an initial freeze, then progressive ones
    assert max(growth[1:]) <= 3  # the monitor f = 3 limits each progressive step
    assert trace.searcher.generation == 20 and trace.searcher.done()
    diag = trace.searcher.diagnostics()
    assert diag is not None and diag.generation == 19 and diag.frozen_depth == depths[-1]


def test_rewritten_parents_are_asked_with_the_children():
    searcher = get_searcher("pcf-es", space(), seed=3)
    told: set[tuple[int, ...]] = set()
    while not searcher.hints().frozen:
        batch = searcher.ask()
        searcher.tell([(a, PROGRESSIVE(a)) for a in batch])
        told.update(batch)
    frozen = searcher.hints().frozen
    parents = [tuple(a) for a in searcher.state_dict()["top"]]
    assert parents and all(p[: len(frozen)] == frozen for p in parents)
    new_parents = [p for p in parents if p not in told]
    batch = searcher.ask()
    assert new_parents and batch[: len(new_parents)] == new_parents
    assert len(batch) == len(new_parents) + 50


def test_cf_es_freezes_exactly_once():
    trace = run(get_searcher("cf-es", space(), seed=3), PROGRESSIVE)
    depths = [len(h.frozen) for h in trace.hints]
    first = next(i for i, d in enumerate(depths) if d)
    assert set(depths[:first]) == {0} and len(set(depths[first:])) == 1
    assert depths[-1] < N_BLOCKS and trace.searcher.generation == 20


@pytest.mark.parametrize("name", ["cf-es", "pcf-es"])
def test_search_stops_once_every_block_is_frozen(name):
    trace = run(get_searcher(name, space(), seed=2), STEEP)
    searcher = trace.searcher
    assert searcher.hints().frozen == searcher.diagnostics().majority
    assert len(searcher.hints().frozen) == N_BLOCKS and searcher.generation < 20
    assert searcher.done() and searcher.ask() == []


def test_pcf_es_is_asks_for_sampling_only_once_frozen():
    trace = run(get_searcher("pcf-es-is", space(), seed=3, rate=0.25), PROGRESSIVE)
    plain = run(get_searcher("pcf-es", space(), seed=3), PROGRESSIVE)
    assert trace.asks == plain.asks
    assert [h.importance_rate for h in trace.hints] == [0.25 if h.frozen else None for h in trace.hints]
    assert any(h.frozen for h in trace.hints)


def test_constraint_is_respected_by_every_searcher():
    limit = 2 * N_BLOCKS  # the sum of choices may not exceed half its maximum
    constrained = SearchSpace([N_CHOICES] * N_BLOCKS, lambda a: sum(a) <= limit)
    for name in BUILTIN:
        params = {"threshold": 0.4} if name in FREEZING else {}
        trace = run(get_searcher(name, constrained, seed=5, **params), PROGRESSIVE)
        asked = [arch for batch in trace.asks for arch in batch]
        assert asked and all(sum(a) <= limit for a in asked), name
        assert len(asked) == len(set(asked)), name


@pytest.mark.parametrize("name", ["evolution", "pcf-es", "random"])
def test_an_exhausted_space_ends_the_search_instead_of_looping(name):
    tiny = SearchSpace([2, 3])  # 6 archs
    start = time.perf_counter()
    trace = run(get_searcher(name, tiny, seed=0), lambda a: float(a[0] + a[1]))
    asked = [arch for batch in trace.asks for arch in batch]
    assert sorted(asked) == sorted(set(asked)) and len(asked) <= 6
    assert trace.searcher.done() and trace.searcher.ask() == []
    assert time.perf_counter() - start < 5.0


# --- random search ---------------------------------------------------------------------------


def test_random_spends_the_evolution_budget_50_at_a_time():
    trace = run(get_searcher("random", space(), seed=4), PROGRESSIVE)
    asked = [arch for batch in trace.asks for arch in batch]
    assert [len(b) for b in trace.asks] == [50] * 20
    assert len(set(asked)) == 1000
    assert trace.searcher.best() == max(((a, PROGRESSIVE(a)) for a in asked), key=lambda p: p[1])


def test_random_budget_is_respected_with_a_short_last_batch():
    trace = run(get_searcher("random", space(), seed=4, budget=120), PROGRESSIVE)
    assert [len(b) for b in trace.asks] == [50, 50, 20]
    assert trace.searcher.generation == 3 and trace.searcher.done()


# --- ask / tell contract, diagnostics --------------------------------------------------------


def test_ask_tell_contract_errors():
    searcher = get_searcher("evolution", space(), seed=0, population=4, mutation_num=2, crossover_num=2)
    with pytest.raises(RuntimeError, match=r"tell\(\) without a pending ask"):
        searcher.tell([])
    with pytest.raises(RuntimeError, match=r"best\(\) before any tell"):
        searcher.best()
    batch = searcher.ask()
    with pytest.raises(RuntimeError, match=r"ask\(\) called again before tell"):
        searcher.ask()
    with pytest.raises(RuntimeError, match="checkpoint after tell"):
        searcher.state_dict()
    with pytest.raises(ValueError, match="exactly the 4 archs of the last ask"):
        searcher.tell([(a, 0.5) for a in batch[:3]])
    with pytest.raises(ValueError, match="must be a finite number, got nan"):
        searcher.tell([(a, float("nan")) for a in batch])
    with pytest.raises(ValueError, match="told twice"):
        searcher.tell([(batch[0], 0.5)] * 4)
    # Tell order does not matter: history follows ask order.
    searcher.tell([(a, 0.5) for a in reversed(batch)])
    assert searcher.best() == (batch[0], 0.5)  # ties go to the first asked


def test_diagnostics_majority_share_and_ties():
    archs = [(0, 2, 1), (1, 2, 0), (1, 2, 1), (0, 1, 2)]
    diag = generation_diagnostics(7, archs, (2, 3, 3), frozen_depth=1)
    assert diag.majority == (0, 2, 1)  # block 0: 0 and 1 tie 2-2 -> the smaller choice
    assert diag.share == (0.5, 0.75, 0.5)
    assert (diag.generation, diag.unique_archs, diag.frozen_depth) == (7, 4, 1)


def test_searcher_diagnostics_describe_the_last_told_generation():
    searcher = get_searcher("random", space(), seed=1, batch_size=8)
    assert searcher.diagnostics() is None
    batch = searcher.ask()
    searcher.tell([(a, 0.0) for a in batch])
    assert searcher.diagnostics() == generation_diagnostics(0, batch, space().choices, 0)


# --- checkpoint / resume ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [*BUILTIN, "user-hillclimb"])
@pytest.mark.parametrize("stop_after", [1, 6])
def test_resume_from_json_state_continues_identically(name, stop_after):
    params = {"threshold": 0.7} if name in FREEZING else {}
    uninterrupted = run(get_searcher(name, space(), seed=11, **params), PROGRESSIVE)
    first = run(get_searcher(name, space(), seed=11, **params), PROGRESSIVE, max_generations=stop_after)
    state = json.loads(json.dumps(first.searcher.state_dict()))
    resumed = get_searcher(name, space(), seed=11, **params)
    resumed.load_state_dict(state)
    assert resumed.generation == first.searcher.generation
    assert resumed.hints() == first.searcher.hints()
    assert resumed.diagnostics() == first.searcher.diagnostics()
    rest = run(resumed, PROGRESSIVE)
    assert first.asks + rest.asks == uninterrupted.asks
    assert first.hints + rest.hints == uninterrupted.hints
    assert resumed.best() == uninterrupted.searcher.best()


def test_pcf_resume_covers_a_frozen_state():
    state = run(get_searcher("pcf-es", space(), seed=11), PROGRESSIVE, max_generations=6).searcher.state_dict()
    assert state["frozen"], "the stop point must lie after the first freeze"


def test_loading_state_of_another_searcher_or_space_fails():
    state = get_searcher("evolution", space(), seed=0).state_dict()
    with pytest.raises(ValueError, match="saved with searcher='evolution'"):
        get_searcher("pcf-es", space(), seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="saved with params="):
        get_searcher("evolution", space(), seed=0, top_k=5).load_state_dict(state)
    with pytest.raises(ValueError, match="saved with choices="):
        get_searcher("evolution", SearchSpace([3] * N_BLOCKS), seed=0).load_state_dict(state)


# --- search space ----------------------------------------------------------------------------


def test_space_validates_choices_and_genes():
    with pytest.raises(ValueError, match="at least one block"):
        SearchSpace([])
    with pytest.raises(ValueError, match=r"choices\[1\] must be an integer >= 1, got 0"):
        SearchSpace([4, 0])
    s = SearchSpace([2, 3])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"frozen prefix \(0, 1, 0\) has 3 genes; this space needs at most 2"):
        s.sample(rng, frozen=(0, 1, 0))
    with pytest.raises(ValueError, match=r"frozen prefix \(2,\): gene 0 is 2, not a choice in 0..1"):
        s.sample(rng, frozen=(2,))
    with pytest.raises(ValueError, match=r"parent \(0,\) has 1 genes; this space needs 2"):
        s.mutate(rng, (0,), 0.1)
    with pytest.raises(ValueError, match="mutation prob must be a finite number"):
        s.mutate(rng, (0, 0), 1.5)
    assert s.contains((1, 2)) and not s.contains((1, 3)) and not s.contains((1,)) and not s.contains((1, True))


def test_unsatisfiable_constraint_fails_fast_at_construction():
    calls = 0

    def never(arch):
        nonlocal calls
        calls += 1
        return False

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"constraint rejected all 200 random archs.*unsatisfiable"):
        SearchSpace([N_CHOICES] * N_BLOCKS, never, max_attempts=200)
    assert calls == 200 and time.perf_counter() - start < 2.0
    with pytest.raises(ConstraintError, match="rejected all 1000"):
        SearchSpace([N_CHOICES] * N_BLOCKS, lambda a: False)


def test_constraint_unsatisfiable_for_a_frozen_prefix_raises_from_sample():
    s = SearchSpace([2, 2, 2], lambda a: a[0] == 0, max_attempts=50)
    start = time.perf_counter()
    with pytest.raises(ConstraintError, match=r"no arch with frozen prefix \(1,\) met the constraint in 50 draws"):
        s.sample(np.random.default_rng(0), frozen=(1,))
    assert time.perf_counter() - start < 1.0


@st.composite
def space_cases(draw):
    """A space with a separable constraint (banned choice per block), a valid frozen prefix and a seed."""
    choices = draw(st.lists(st.integers(1, 5), min_size=1, max_size=8))
    banned = [draw(st.integers(0, c - 1)) if c > 1 and draw(st.booleans()) else None for c in choices]
    k = draw(st.integers(0, len(choices)))
    frozen = tuple(
        draw(st.integers(0, c - 1).filter(lambda v, b=b: v != b)) for c, b in zip(choices[:k], banned[:k])
    )
    constrained = draw(st.booleans())

    def allowed(arch):
        return all(b is None or g != b for g, b in zip(arch, banned))

    space_ = SearchSpace(choices, allowed if constrained else None, max_attempts=20_000)
    return space_, frozen, draw(st.integers(0, 2**32 - 1))


def check_arch(space_: SearchSpace, frozen, arch) -> None:
    assert isinstance(arch, tuple) and all(type(g) is int for g in arch)
    assert space_.contains(arch)  # length, range and constraint
    assert arch[: len(frozen)] == frozen


@settings(max_examples=60, deadline=None)
@given(space_cases())
def test_sample_property(case):
    space_, frozen, seed = case
    arch = space_.sample(np.random.default_rng(seed), frozen)
    check_arch(space_, frozen, arch)
    assert space_.sample(np.random.default_rng(seed), frozen) == arch


@settings(max_examples=60, deadline=None)
@given(space_cases(), st.floats(0.0, 0.5))
def test_mutate_property(case, prob):
    space_, frozen, seed = case
    rng = np.random.default_rng(seed)
    parent = space_.sample(rng)  # valid but need not share the frozen prefix
    child = space_.mutate(rng, parent, prob, frozen)
    check_arch(space_, frozen, child)
    again = np.random.default_rng(seed)
    assert space_.mutate(again, space_.sample(again), prob, frozen) == child
    if prob == 0.0:
        assert child == tuple(frozen) + parent[len(frozen):]


@settings(max_examples=60, deadline=None)
@given(space_cases())
def test_crossover_property(case):
    space_, frozen, seed = case
    rng = np.random.default_rng(seed)
    a, b = space_.sample(rng), space_.sample(rng)
    child = space_.crossover(rng, a, b, frozen)
    check_arch(space_, frozen, child)
    assert all(g in (x, y) for g, x, y in list(zip(child, a, b))[len(frozen):])
    again = np.random.default_rng(seed)
    assert space_.crossover(again, space_.sample(again), space_.sample(again), frozen) == child


def test_package_exports():
    assert set(searchers.__all__) >= {
        "Arch", "Hints", "GenerationDiagnostics", "SearchSpace", "Searcher",
        "register_searcher", "get_searcher", "available", "SearcherEntry", "searcher_entry",
    }


def test_a_searcher_keeps_the_colour_it_declares_and_none_when_it_declares_none():
    @register_searcher("optuna")
    class Optuna(HillClimb):
        pass

    assert searcher_entry("optuna").colour is None  # the report's style gives it a free one
    # The built-ins keep the colours they had before the registry.
    assert [searcher_entry(n).colour for n in ("evolution", "random", "cf-es", "pcf-es", "pcf-es-is")] == [
        "#000000", "#999999", "#E69F00", "#0072B2", "#D55E00",
    ]


def test_duplicate_names_are_errors_naming_the_origin():
    with pytest.raises(ValueError, match=r"searcher 'pcf-es' is already registered, by searchers\.pcf; pick another name"):
        register_searcher("pcf-es", HillClimb)
    with pytest.raises(ValueError, match=r"cannot be the baseline: 'evolution' is \(searchers\.evolution\)"):
        register_searcher("user-baseline", HillClimb, baseline=True)


def test_entries_carry_the_roles_of_the_builtins():
    entries = registry.registered_searchers()
    assert searchers.baseline_name() == "evolution"
    assert [n for n, e in entries.items() if e.freezing] == list(FREEZING)
    assert searchers.default_compare() == ("random", "evolution", "pcf-es", "pcf-es-is")
    assert [n for n, e in entries.items() if e.matched_budget is not None] == ["random"]
    assert sorted(entries, key=searchers.display_rank)[:5] == ["evolution", "random", "cf-es", "pcf-es", "pcf-es-is"]
    assert searchers.display_rank("never-registered") == len(entries) + 1
    with pytest.raises(ValueError, match="unknown searcher 'nope'; available: cf-es, evolution"):
        searcher_entry("nope")


def test_presets_are_checked_against_the_params():
    with pytest.raises(ValueError, match=r"searcher 'user-bad': presets for 'spos' set threshold, which HillClimbParams lacks"):
        register_searcher("user-bad", type("Bad", (HillClimb,), {}), presets={"spos": {"threshold": 0.7}})

"""Evaluator: scores are bit-identical at every reuse level; work is counted exactly and deterministically."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch

import supernets
from harness.config import EvalProtocol, ReuseConfig
from harness.datasets import DatasetSplits, load_dataset
from harness.evaluation import CANDIDATE_PHASES, PREPARE_PHASES, EvaluationError, Evaluator, WorkPhase
from harness.evaluation.work import SEARCH_WORK_PHASES
from searchers.base import Hints
from supernets.train import TrainConfig, train_supernet

SMALL = dict(calib_batches=2, calib_batch_size=32, val_size=120, eval_batch_size=50, dataset="fashion16")
NARROW = {"widths": [8, 16, 32], "stem_width": 8, "last_width": 64}
LARGE = 10**9  # bytes: every node of these tests fits
LEVELS = {
    "none": ReuseConfig("none"),
    "frozen": ReuseConfig("frozen", LARGE),
    "prefix": ReuseConfig("prefix", LARGE),
    "prefix-streaming": ReuseConfig("prefix", 0),
}


@functools.cache
def _trained(name: str) -> tuple[dict, DatasetSplits]:
    """A narrow tiny supernet trained briefly on fashion16: candidates' accuracies really differ."""
    splits = load_dataset("fashion16")
    net = supernets.get_supernet(name, **NARROW)
    train_supernet(net, splits.train_x[:4000], splits.train_y[:4000],
                   TrainConfig(epochs=4, batch_size=64, device="cpu"), progress=False)
    return copy.deepcopy(net.state_dict()), splits


def _net(name: str) -> tuple[supernets.Supernet, DatasetSplits]:
    state, splits = _trained(name)
    net = supernets.get_supernet(name, **NARROW)
    net.load_state_dict(state)
    return net, splits


def _evaluators(name: str, protocol: EvalProtocol, levels=LEVELS) -> dict[str, Evaluator]:
    net, splits = _net(name)  # one network shared by all: a walk must leave no BN state behind
    return {level: Evaluator(net, splits, protocol, reuse) for level, reuse in levels.items()}


def _random_archs(net: supernets.Supernet, n: int, seed: int, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [prefix + tuple(int(rng.integers(c)) for c in net.choices[len(prefix):]) for _ in range(n)]


def _mutant(net: supernets.Supernet, arch: tuple[int, ...], keep: int) -> tuple[int, ...]:
    """``arch`` with every gene after the first ``keep`` moved to the next choice."""
    return arch[:keep] + tuple((c + 1) % k for c, k in zip(arch[keep:], net.choices[keep:]))


def _generations(net: supernets.Supernet, seed: int = 0) -> list[tuple[tuple[int, ...], list[tuple[int, ...]]]]:
    """(frozen prefix, archs) per generation: a growing freeze, random archs and mutants that share prefixes."""
    n = net.num_blocks
    base = _random_archs(net, 1, seed)[0]
    plan = []
    for g, depth in enumerate((0, 0, 1, n // 4, n // 2, n // 2, n)):
        fresh = _random_archs(net, 4, seed + 10 + g, base[:depth])
        mutants = [_mutant(net, a, max(depth, keep)) for a, keep in zip(fresh, (n - 1, n // 2, 2))]
        plan.append((base[:depth], fresh + mutants + fresh[:1]))  # the repeat is a memo hit
    return plan


def _run(evaluator: Evaluator, plan, rate: float | None = None):
    results = []
    for frozen, archs in plan:
        evaluator.prepare(Hints(frozen=frozen, importance_rate=rate if frozen else None), [frozen + archs[0][len(frozen):]])
        results += evaluator.evaluate(archs)
    return results


def _scores(results) -> list[float]:
    return [r.score for r in results]


@pytest.mark.parametrize("name", ["conv-tiny", *(pytest.param(n, marks=pytest.mark.slow) for n in ("spos-tiny", "mbv2-tiny"))])
@pytest.mark.parametrize("bn_mode", ["ema", "exact"])
def test_scores_are_bit_identical_at_every_reuse_level(name, bn_mode):
    evaluators = _evaluators(name, EvalProtocol(**SMALL, bn_mode=bn_mode))
    plan = _generations(evaluators["none"].net)
    runs = {level: _run(ev, plan) for level, ev in evaluators.items()}
    expected = _scores(runs["none"])
    for level, results in runs.items():
        assert _scores(results) == expected, level
        assert [r.arch for r in results] == [r.arch for r in runs["none"]]
    assert len(set(expected)) >= 5, "candidates should differ, or the equality above proves little"
    macs = {level: ev.work.search_macs() for level, ev in evaluators.items()}
    assert macs["prefix"] < macs["prefix-streaming"] < macs["none"] and macs["prefix"] < macs["frozen"] < macs["none"]
    assert any(r.reused_depth > 0 for r in runs["prefix-streaming"])
    assert evaluators["prefix-streaming"].store.peak_bytes == 0


@pytest.mark.parametrize("channels_last", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_channels_last_on_and_off_give_identical_scores_and_stored_features(channels_last):
    evaluators = _evaluators("spos-tiny", EvalProtocol(**SMALL, channels_last=channels_last))
    plan = _generations(evaluators["none"].net, seed=3)
    runs = {level: _scores(_run(ev, plan)) for level, ev in evaluators.items()}
    assert runs["prefix"] == runs["frozen"] == runs["prefix-streaming"] == runs["none"]
    ev = evaluators["frozen"]
    ev.reset()
    frozen = _random_archs(ev.net, 1, seed=2)[0][:5]
    ev.prepare(Hints(frozen=frozen[:2]))
    ev.prepare(Hints(frozen=frozen))  # extended from the stored depth-2 node
    with torch.inference_mode():
        for chunk, features in zip(ev._set.chunks, ev.store.get(frozen).outputs.val):
            assert torch.equal(ev.net(chunk, frozen, 0, 5), features)


def test_importance_sampled_scores_are_identical_at_every_level():
    evaluators = _evaluators("conv-tiny", EvalProtocol(**SMALL))
    plan = _generations(evaluators["none"].net, seed=5)
    runs = {level: _run(ev, plan, rate=0.4) for level, ev in evaluators.items()}
    assert all(_scores(r) == _scores(runs["none"]) for r in runs.values())
    subsets = {level: ev.subset for level, ev in evaluators.items()}
    assert len(set(subsets.values())) == 1 and subsets["none"].size == int(0.4 * SMALL["val_size"])
    assert {r.sample_size for r in runs["prefix"][-5:]} == {subsets["none"].size}


def test_executed_plus_avoided_equals_level_none_per_phase_and_unit():
    evaluators = _evaluators("conv-tiny", EvalProtocol(**SMALL))
    plan = _generations(evaluators["none"].net, seed=6)
    for ev in evaluators.values():
        _run(ev, plan, rate=0.5)
    none = evaluators["none"].work
    for level, ev in evaluators.items():
        for phase in SEARCH_WORK_PHASES:
            total = [e + a for e, a in zip(ev.work.block_macs[phase], ev.work.avoided_block_macs(phase))]
            assert total == none.block_macs[phase], (level, phase)
        assert ev.work.search_macs() + ev.work.search_avoided_macs() == none.search_macs()
        # images count scored passes, which reuse does not change
        assert ev.work.images["calibration"] == none.images["calibration"]
        assert ev.work.images["validation"] == none.images["validation"]
    assert all(v == 0 for p in SEARCH_WORK_PHASES for v in none.avoided_block_macs(p))
    assert evaluators["prefix"].work.avoided_macs("cache_build") < 0  # the frozen node is work "none" never does


def test_work_of_a_tree_walk_is_attributed_exactly():
    protocol = EvalProtocol(**SMALL)
    ev = _evaluators("conv-tiny", protocol, {"prefix": ReuseConfig("prefix", 0)})["prefix"]
    net = ev.net
    images = protocol.calib_batches * protocol.calib_batch_size + protocol.val_size
    a = (0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)
    b = a[:5] + (3,) * 7
    c = (1,) + a[1:]
    results = ev.evaluate([a, b, a, c])
    assert [r.arch for r in results] == [a, b, a, c]
    assert [r.memo_hit for r in results] == [False, False, True, False]
    assert [r.reused_depth for r in results] == [0, 5, 0, 0]  # b shares a's first 5 blocks; c only the stem
    assert results[0].executed_macs == net.macs(a) * images
    assert results[1].executed_macs == net.macs(b, 5) * images
    assert results[3].executed_macs == (net.macs(c) - net.stem_macs) * images
    assert sum(r.executed_macs for r in results) == ev.work.macs["calibration"] + ev.work.macs["validation"]
    assert ev.work.block_images["validation"][0] == protocol.val_size  # the stem ran once
    assert ev.work.block_images["validation"][1] == 2 * protocol.val_size  # block 0: choices 0 and 1



def test_a_snapshot_difference_is_the_work_in_between():
    protocol = EvalProtocol(**SMALL)
    ev = _evaluators("conv-tiny", protocol, {"prefix": LEVELS["prefix"]})["prefix"]
    a = (0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3)
    ev.evaluate([a])
    before = ev.snapshot()
    b, c = a[:5] + (3,) * 7, a[:11] + (0,)
    results = ev.evaluate([a, b, b, c])  # a is a memo hit; b once, then a repeat
    after = ev.snapshot()
    done = after - before
    assert done.candidates == 2 == sum(not r.memo_hit for r in results)
    assert done.macs(CANDIDATE_PHASES) == sum(r.executed_macs for r in results) > 0
    assert done.macs() == done.macs(CANDIDATE_PHASES) and done.macs(PREPARE_PHASES) == 0
    images = protocol.calib_batches * protocol.calib_batch_size + protocol.val_size
    assert done.images(CANDIDATE_PHASES) == 2 * images  # one pass per new arch, reuse or not
    assert done.avoided_macs() == (ev.net.macs(b) + ev.net.macs(c)) * images - done.macs() > 0  # what "none" runs
    assert done.phases[WorkPhase.VALIDATION] == after.phases[WorkPhase.VALIDATION] - before.phases[WorkPhase.VALIDATION]
    # Bytes held are levels: the difference keeps the later snapshot's.
    assert (done.store_bytes, done.cache_bytes) == (ev.store.nbytes, ev.cache_bytes) and done.store_bytes > 0
    assert done.store_evictions == 0
    with pytest.raises(ValueError, match="rebuild work has no level-'none' reference"):
        done.avoided_macs([WorkPhase.REBUILD])


def test_stored_nodes_serve_later_requests_and_the_walk_leaves_the_bn_buffers_alone():
    ev = _evaluators("conv-tiny", EvalProtocol(**SMALL), {"prefix": LEVELS["prefix"]})["prefix"]
    bns = [m for m in ev.net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    buffers = [id(bn.running_mean) for bn in bns]
    a = (2,) * 12
    ev.evaluate([a])
    assert [id(bn.running_mean) for bn in bns] == buffers
    [later] = ev.evaluate([a[:11] + (3,)])
    images = SMALL["calib_batches"] * SMALL["calib_batch_size"] + SMALL["val_size"]
    assert later.reused_depth == 11 and later.executed_macs == ev.net.macs(later.arch, 11) * images


def test_a_small_budget_evicts_stays_within_it_and_is_exact():
    protocol = EvalProtocol(**SMALL)
    probe = _evaluators("conv-tiny", protocol, {"p": LEVELS["prefix"]})["p"]
    budget = 3 * probe._node_bytes(1)  # about three shallow nodes
    evaluators = _evaluators("conv-tiny", protocol, {"none": LEVELS["none"], "small": ReuseConfig("prefix", budget)})
    plan = _generations(evaluators["none"].net, seed=7)
    runs = {level: _scores(_run(ev, plan)) for level, ev in evaluators.items()}
    small = evaluators["small"]
    assert runs["small"] == runs["none"]
    assert 0 < small.store.peak_bytes <= budget and small.store.evictions > 0


@pytest.mark.parametrize("hinted", [False, True])
def test_unread_unhinted_nodes_retire_and_captured_read_again_counts_are_exact(hinted):
    evaluators = _evaluators("conv-tiny", EvalProtocol(**SMALL), {"none": LEVELS["none"], "prefix": LEVELS["prefix"]})
    ev = evaluators["prefix"]
    a = (2,) * 12
    b = a[:6] + (1,) * 6
    requests = [[a, b], [a[:11] + (3,), b[:11] + (3,)], [(0,) * 12]]
    hints = [Hints(), Hints(), Hints(reuse_from=(a,) if hinted else ())]
    scores = {level: [] for level in evaluators}
    for level, evaluator in evaluators.items():
        for hint, archs in zip(hints, requests):
            evaluator.prepare(hint)
            scores[level] += evaluator.score(archs)
    assert scores["prefix"] == scores["none"] and evaluators["none"].store.captured == 0
    # Request 1 stores a's prefixes of depth 0..11 (12) and b's of depth 7..11 (5); request 2 reads a[:11] and
    # b[:11] and stores nothing (full archs are scored once); request 3 reads the stem and stores (0,)*k, k = 1..11.
    assert (ev.store.captured, ev.store.read_again) == (12 + 5 + 11, 3)
    # Request 3 retires what request 2 did not read: b[:7..10] and (unless hinted) a[:1..10].
    assert ev.store.evictions == (4 if hinted else 14)
    kept = {(), a[:11], b[:11], *((0,) * k for k in range(1, 12)), *(a[:k] for k in range(1, 11) if hinted)}
    assert len(ev.store) == len(kept) and all(p in ev.store for p in kept)
    assert ev.store.nbytes == sum(ev._node_bytes(len(p)) for p in kept)


@pytest.mark.parametrize("level", ["frozen", "prefix"])
def test_budget_too_small_for_the_frozen_node_records_an_event_and_stays_exact(level):
    evaluators = _evaluators("conv-tiny", EvalProtocol(**SMALL), {"none": LEVELS["none"], level: ReuseConfig(level, 1000)})
    plan = _generations(evaluators["none"].net, seed=8)
    runs = {lv: _scores(_run(ev, plan)) for lv, ev in evaluators.items()}
    ev = evaluators[level]
    assert runs[level] == runs["none"]
    assert "> reuse budget 1000: not stored" in ev.cache_events[0]
    assert ev.cache_bytes == 0 and ev.cache_peak_bytes == 0 and ev.store.peak_bytes <= 1000


def test_frozen_node_is_built_from_its_stored_ancestor_without_a_counted_probe():
    protocol = EvalProtocol(**SMALL)
    images = protocol.calib_batches * protocol.calib_batch_size + protocol.val_size
    ev = _evaluators("conv-tiny", protocol, {"frozen": LEVELS["frozen"]})["frozen"]
    assert ev.work.search_macs() == 0  # building the evaluator (its shape probe) is not search work
    frozen = (2, 0, 1, 3)
    ev.prepare(Hints(frozen=frozen[:2]))
    assert ev.work.macs["cache_build"] == ev.net.macs(frozen, 0, 2) * images
    ev.prepare(Hints(frozen=frozen))
    assert ev.work.macs["cache_build"] == ev.net.macs(frozen, 0, 4) * images  # extended, not recomputed
    assert ev.cache_depth == 4 and ev.cache_bytes == ev.store.nbytes == ev.cache_peak_bytes
    before = ev.work.search_macs()
    ev.prepare(Hints(frozen=frozen))
    assert ev.work.search_macs() == before


@pytest.mark.slow
def test_counts_do_not_depend_on_the_weights_or_the_thread_count():
    protocol = EvalProtocol(**SMALL)
    _, splits = _trained("conv-tiny")
    counts = []
    for seed, threads in ((0, 1), (1, 1), (0, 2)):
        torch.manual_seed(seed)
        net = supernets.get_supernet("conv-tiny", **NARROW)  # untrained, other weights per seed
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            ev = Evaluator(net, splits, protocol, ReuseConfig("prefix", 4 * 10**5))
            _run(ev, _generations(net, seed=9), rate=0.5)
        finally:
            torch.set_num_threads(before)
        state = ev.state_dict()
        counts.append((state["work"], state["store"], ev.subset.size))
    assert counts[0] == counts[1] == counts[2]
    assert counts[0][1]["evictions"] > 0


@pytest.mark.parametrize("level", ["frozen", "prefix"])
def test_a_restored_evaluator_rebuilds_stored_nodes_lazily_and_counts_only_rebuild(level):
    protocol = EvalProtocol(**SMALL)
    reuse = ReuseConfig(level, 8 * 10**5)
    evaluators = _evaluators("conv-tiny", protocol, {"whole": reuse, "first": reuse, "resumed": reuse})
    plan = _generations(evaluators["whole"].net, seed=11)
    cut = 5  # after a freeze: the frozen node and (prefix) other nodes are stored
    whole = _scores(_run(evaluators["whole"], plan))
    first = _scores(_run(evaluators["first"], plan[:cut]))
    resumed = evaluators["resumed"]
    resumed.load_state_dict(evaluators["first"].state_dict())
    assert resumed.store.nbytes > 0 and resumed.work.macs["rebuild"] == 0
    assert first + _scores(_run(resumed, plan[cut:])) == whole
    done, again = evaluators["whole"].state_dict(), resumed.state_dict()
    assert again["store"] == done["store"] and again["memo"] == done["memo"]
    rebuild = again["work"]["macs"].pop("rebuild")
    assert rebuild > 0 and done["work"]["macs"].pop("rebuild") == 0
    assert again["work"]["macs"] == done["work"]["macs"]
    assert again["work"]["reference_block_macs"] == done["work"]["reference_block_macs"]
    for key in ("block_macs", "block_images"):
        assert {p: v for p, v in again["work"][key].items() if p != "rebuild"} == {
            p: v for p, v in done["work"][key].items() if p != "rebuild"
        }


def test_host_location_gives_the_same_scores():
    evaluators = _evaluators("conv-tiny", EvalProtocol(**SMALL), {
        "none": LEVELS["none"], "host": ReuseConfig("prefix", LARGE, "host")})
    plan = _generations(evaluators["none"].net, seed=12)
    assert _scores(_run(evaluators["host"], plan)) == _scores(_run(evaluators["none"], plan))


def test_bad_archs_and_prefixes_are_clear_errors():
    ev = _evaluators("conv-tiny", EvalProtocol(**SMALL), {"prefix": LEVELS["prefix"]})["prefix"]
    with pytest.raises(ValueError, match="has 12 blocks"):
        ev.score([(0, 1)])
    with pytest.raises(ValueError, match="outside 0..3"):
        ev.score([(9,) * ev.net.num_blocks])
    with pytest.raises(ValueError, match="out of range"):
        ev.prepare(Hints(frozen=(7,)))


@pytest.mark.parametrize("level", ["none", "prefix"])
def test_non_finite_outputs_are_a_clear_error(level):
    ev = _evaluators("conv-tiny", EvalProtocol(**SMALL), {level: LEVELS[level]})[level]
    with torch.no_grad():
        for param in ev.net.head.parameters():
            param.fill_(float("nan"))
    with pytest.raises(EvaluationError, match="non-finite"):
        ev.score(_random_archs(ev.net, 2, seed=13))


def test_a_batch_norm_shared_by_two_blocks_is_refused():
    net, splits = _net("conv-tiny")
    net.blocks[1].ops[0] = net.blocks[0].ops[0]
    with pytest.raises(ValueError, match="shared by block 0 and block 1"):
        Evaluator(net, splits, EvalProtocol(**SMALL))


def test_importance_subset_is_recorded_kept_and_refreshed_on_request():
    protocol = EvalProtocol(**SMALL)
    ev = _evaluators("spos-tiny", protocol, {"prefix": LEVELS["prefix"]})["prefix"]
    reference = _random_archs(ev.net, 1, seed=14)[0]
    ev.prepare(Hints(frozen=reference[:3], importance_rate=0.4), [reference])
    subset = ev.subset
    assert subset.size == ev.sample_size == 48 and len(set(subset.indices)) == 48
    assert subset.reference_arch == reference and subset.frozen == reference[:3]
    assert subset.to_dict()["estimator"].startswith("Hajek")
    ev.prepare(Hints(frozen=reference[:5], importance_rate=0.4), [reference])
    assert ev.subset is subset  # growing the prefix keeps the subset unless refresh is asked for
    refreshing = _evaluators("conv-tiny", EvalProtocol(**SMALL, importance_refresh=True), {"p": LEVELS["prefix"]})["p"]
    refreshing.prepare(Hints(frozen=reference[:2], importance_rate=0.5), [reference])
    first = refreshing.subset
    refreshing.evaluate(_random_archs(refreshing.net, 3, seed=15, prefix=reference[:2]))
    stored = refreshing.store.nbytes
    refreshing.prepare(Hints(frozen=reference[:4], importance_rate=0.5), [reference])
    assert refreshing.subset is not first and refreshing.subset.frozen == reference[:4]
    assert stored > refreshing.store.nbytes == refreshing.cache_bytes  # the old scoring set's nodes are gone
    assert "invalidated" in refreshing.cache_events[-1]


def test_a_rate_that_scores_no_image_names_the_smallest_valid_rate():
    ev = _evaluators("conv-tiny", EvalProtocol(**SMALL), {"none": LEVELS["none"]})["none"]
    with pytest.raises(ValueError, match=r"smallest valid rate is 1/120 = 0.00833333"):
        ev.check_importance_rate(0.008)
    assert ev.check_importance_rate(1 / 120) == 1

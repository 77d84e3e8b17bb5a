"""PrefixStore: the budget holds, eviction follows recency then depth, pins stay, the logical state round-trips."""

from __future__ import annotations

import pytest

from harness.evaluation.prefix_store import PrefixStore, capture_order


def _fill(store: PrefixStore, prefixes, nbytes=10):
    return [p for p in prefixes if store.reserve(p, nbytes)]


def test_reserve_never_exceeds_the_budget_and_evicts_least_recent_deepest_first():
    store = PrefixStore(budget_bytes=30)
    store.tick()
    assert _fill(store, [(0,), (0, 1), (0, 1, 2)]) == [(0,), (0, 1), (0, 1, 2)]
    assert not store.reserve((1,), 10)  # nothing older than this tick may go
    store.tick()
    store.touch([(0, 1)])
    # Two evictions for 15 bytes: of the nodes stored at tick 1, the deeper goes first.
    assert store.reserve((2,), 15)
    assert sorted(p for p in [(0,), (0, 1), (0, 1, 2), (2,)] if p in store) == [(0, 1), (2,)]
    assert store.evictions == 2 and store.nbytes == 25 <= store.budget_bytes
    assert store.peak_bytes == 30


def test_a_node_that_cannot_fit_evicts_nothing():
    store = PrefixStore(budget_bytes=25)
    store.tick()
    _fill(store, [(0,), (1,)])
    store.tick()
    assert not store.reserve((2,), 26)
    assert (0,) in store and (1,) in store and store.evictions == 0


def test_pinned_nodes_are_never_evicted():
    store = PrefixStore(budget_bytes=20)
    store.tick()
    _fill(store, [(), (0,)])
    store.pin(())
    store.tick()
    assert store.reserve((1,), 10)
    assert () in store and (0,) not in store
    assert not store.reserve((2,), 15)
    with pytest.raises(ValueError, match="cannot pin prefix"):
        store.pin((3,))
    with pytest.raises(ValueError, match="cannot evict pinned"):
        store.evict(())


def test_budget_zero_stores_nothing():
    store = PrefixStore(budget_bytes=0)
    store.tick()
    assert _fill(store, [(), (0,)], nbytes=1) == []
    assert store.peak_bytes == 0


def test_deepest_finds_the_longest_stored_prefix():
    store = PrefixStore(budget_bytes=100)
    store.tick()
    _fill(store, [(), (1, 2), (1, 2, 3, 0)])
    assert store.deepest((1, 2, 3, 0)).prefix == (1, 2, 3, 0)
    assert store.deepest((1, 2, 3, 0), max_depth=3).prefix == (1, 2)
    assert store.deepest((2, 2, 3, 0)).prefix == ()
    assert PrefixStore(10).deepest((1,)) is None


def test_logical_state_round_trips_without_tensors():
    store = PrefixStore(budget_bytes=40)
    store.tick()
    _fill(store, [(), (0,), (0, 1)])
    store.pin(())
    store.tick()
    store.touch([(0, 1)])
    store.drop_where(lambda p: p == (0,))
    state = store.state_dict()
    again = PrefixStore(budget_bytes=999)  # an "auto" budget resolved differently on resume
    again.load_state_dict(state)
    assert again.state_dict() == state
    assert again.budget_bytes == 40 and again.dropped == 1
    assert again.get((0, 1)).outputs is None and again.is_pinned(())


def test_capture_order_is_shallow_first_then_most_shared_then_by_prefix():
    shares = {(1, 0): 1, (0,): 2, (): 5, (1,): 3, (0, 2): 2, (0, 1): 2}
    assert capture_order(shares) == [(), (1,), (0,), (0, 1), (0, 2), (1, 0)]

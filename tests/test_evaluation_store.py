"""PrefixStore: the budget holds, eviction by value per byte then recency and depth, unread nodes retire, pins stay,
captured / read-again counts are exact, the logical state round-trips."""

from __future__ import annotations

import pytest

from harness.evaluation.prefix_store import IDLE_WALKS, PrefixStore, capture_order


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
    store.expect([(0, 1, 2)])
    state = store.state_dict()
    again = PrefixStore(budget_bytes=999)  # an "auto" budget resolved differently on resume
    again.load_state_dict(state)
    assert again.state_dict() == state
    assert again.budget_bytes == 40 and again.dropped == 1
    assert again.get((0, 1)).outputs is None and again.is_pinned(())
    assert state["expected"] == [[[], 1], [[0], 1], [[0, 1], 1]] and state["captured"] == 3 and state["read_again"] == 1


def test_capture_order_is_shallow_first_then_most_shared_then_by_prefix():
    shares = {(1, 0): 1, (0,): 2, (): 5, (1,): 3, (0, 2): 2, (0, 1): 2}
    assert capture_order(shares) == [(), (1,), (0,), (0, 1), (0, 2), (1, 0)]


def test_eviction_goes_by_value_per_byte_reads_and_hints_then_recency():
    store = PrefixStore(budget_bytes=100)
    store.tick()
    # value per byte = (1 + reads + hinted archs through it) x macs / bytes
    store.reserve((0,), 20, macs=40)  # 2 per byte
    store.reserve((1,), 20, macs=20)  # 1 per byte
    store.reserve((2,), 20, macs=20)  # 1 per byte, read once below: 2
    store.reserve((3,), 20, macs=10)  # 0.5 per byte, hinted twice below: 1.5
    store.reserve((4,), 20, macs=30)  # 1.5 per byte
    store.tick()
    store.touch([(2,)])
    store.expect([(3, 0), (3, 1)])
    store.tick()
    assert store.reserve((5,), 20)  # (1,) is the cheapest per byte
    assert (1,) not in store
    assert store.reserve((6,), 40)  # (3,) and (4,) tie at 1.5 per byte: the older (both) then the deeper / smaller prefix
    assert [p for p in [(0,), (1,), (2,), (3,), (4,), (5,), (6,)] if p in store] == [(0,), (2,), (5,), (6,)]
    assert store.evictions == 3


def test_unread_unhinted_nodes_retire_after_idle_walks_not_ticks():
    store = PrefixStore(budget_bytes=10**6)
    store.tick(walk=True)
    _fill(store, [(), (0,), (1,), (2,)])
    store.pin(())
    store.expect([(1, 3)])
    for _ in range(IDLE_WALKS - 1):
        store.tick()  # a frozen-node build: no walk
        store.tick(walk=True)
        store.touch([(2,)])
        assert store.retire() == 0  # stored within the window
    store.tick(walk=True)
    assert store.retire() == 1  # (0,): unread, unhinted; (1,) hinted, (2,) read, () pinned
    assert (0,) not in store and store.evictions == 1 and store.nbytes == 30
    for _ in range(IDLE_WALKS - 1):
        store.tick(walk=True)
    assert store.retire() == 1 and (2,) not in store
    assert len(store) == 2 and () in store and (1,) in store


def test_captured_and_read_again_count_nodes_once_each():
    store = PrefixStore(budget_bytes=100)
    store.tick()
    _fill(store, [(), (0,), (0, 1)])
    store.touch([(0,)])  # stored this request: not a read
    store.tick()
    store.touch([(0,), (0, 1)])
    store.tick()
    store.touch([(0,)])  # read again by a third request: still one node
    _fill(store, [(1,)])
    assert (store.captured, store.read_again) == (4, 2)
    assert store.get((0,)).reads == 2 and store.get((0, 1)).reads == 1

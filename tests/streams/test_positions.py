"""The offset bookkeeping never lets Redis claim a record it does not hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.positions import OffsetAdvance, PartitionPositions

TP = ("leadpulse.leads", 0)


def test_fresh_partition_starts_just_before_the_earliest_retained_offset() -> None:
    positions = PartitionPositions()
    positions.load({}, {TP: 40})
    advances, seeks = positions.plan({TP: (40, 49)})
    assert advances == {TP: OffsetAdvance(-1, 49, first=40)} and seeks == {}
    assert positions.plan({TP: (60, 69)}) == ({}, {TP: 40})


def test_batch_past_a_hole_seeks_back_instead_of_advancing() -> None:
    positions = PartitionPositions()
    positions.load({TP: 9}, {TP: 0})
    advances, seeks = positions.plan({TP: (20, 29)})
    assert advances == {} and seeks == {TP: 10}


def test_records_fetched_before_the_seek_do_not_ask_for_it_again() -> None:
    positions = PartitionPositions()
    positions.load({TP: 9}, {TP: 0})
    positions.plan({TP: (20, 29)})
    assert positions.plan({TP: (30, 39)}) == ({}, {})
    assert positions.plan({TP: (10, 19)}) == ({TP: OffsetAdvance(9, 19, first=10)}, {})


def test_refused_compare_and_set_adopts_redis_value_and_rereads_after_it() -> None:
    positions = PartitionPositions()
    positions.load({TP: 99}, {TP: 0})
    advances, _ = positions.plan({TP: (100, 149)})
    assert positions.settle(advances, {TP: 80}) == {TP: 81}
    assert positions.known[TP] == 80


def test_replayed_batch_below_the_known_offset_records_nothing() -> None:
    positions = PartitionPositions()
    positions.load({TP: 99}, {TP: 0})
    assert positions.plan({TP: (50, 60)}) == ({}, {})


@settings(max_examples=300, deadline=None)
@given(
    log_size=st.integers(1, 60),
    steps=st.lists(st.tuples(st.integers(1, 8), st.booleans(), st.integers(0, 3)), min_size=1, max_size=80),
)
def test_redis_offset_is_always_backed_by_applied_records(
    log_size: int, steps: list[tuple[int, bool, int]]
) -> None:
    """Simulate a worker against a Redis that loses a suffix of its writes at random.

    Redis's state is (applied records, stored offset), written together per batch; a
    loss rolls both back to an earlier snapshot while the worker reads on. Whatever
    happens, every offset up to the stored one is applied, and the worker gets there.
    """
    applied: set[int] = set()
    stored = -1
    history: list[tuple[frozenset[int], int]] = [(frozenset(), -1)]
    positions = PartitionPositions()
    positions.load({}, {TP: 0})
    read_at = positions.resume_at(TP)  # the rewind on assignment
    for size, lose, depth in steps + [(8, False, 0)] * (3 * log_size + 10):
        if lose:
            applied_snapshot, stored = history[max(0, len(history) - 1 - depth)]
            applied = set(applied_snapshot)
        if read_at >= log_size:
            if stored == log_size - 1:
                break
            read_at = positions.verify({TP: stored}).get(TP, log_size)  # the idle check
            continue
        first, last = read_at, min(read_at + size, log_size) - 1
        read_at = last + 1
        advances, seeks = positions.plan({TP: (first, last)})
        applied |= set(range(first, last + 1))
        refused = {}
        for tp, advance in advances.items():
            if stored == advance.expected:
                stored = advance.new
            else:
                refused[tp] = stored
        seeks.update(positions.settle(advances, refused))
        history.append((frozenset(applied), stored))
        assert set(range(stored + 1)) <= applied
        if TP in seeks:
            read_at = seeks[TP]
    assert set(range(stored + 1)) <= applied
    assert stored == log_size - 1

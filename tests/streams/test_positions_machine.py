"""The offset bookkeeping as the overlapped worker drives it, against a model of Kafka and Redis.

One partition; the worker keeps one batch in Redis while it fetches the next (two in
flight), exactly as `streams.worker.consumer` does. Between its steps anything may
happen: Redis loses a suffix of its writes (AOF `everysec`), another worker takes the
partition and moves its offset on (a zombie's view), a rebalance gives it back. The law:
the offset Redis holds never covers a record Redis has not applied, and once the faults
stop the worker ends up with everything applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streams.positions import OffsetAdvance, PartitionPositions

TP = ("leadpulse.leads", 0)
LOG_SIZE = 60  # records in the partition, offsets 0..59


@dataclass
class Write:
    """One Redis round trip as it landed: the records applied, then the offset (if the CAS held)."""

    records: frozenset[int]
    offset: int | None


class Redis:
    """Applied records and the stored offset, as a sequence of writes an AOF can lose a suffix of."""

    def __init__(self) -> None:
        self.writes: list[Write] = []

    @property
    def applied(self) -> set[int]:
        return set().union(*(w.records for w in self.writes))

    @property
    def offset(self) -> int:
        return max((w.offset for w in self.writes if w.offset is not None), default=-1)

    def apply(self, records: frozenset[int], advance: OffsetAdvance | None) -> int | None:
        """Apply, then compare-and-set; returns the stored offset when the CAS was refused."""
        stored = self.offset
        moved = advance is not None and stored == advance.expected
        self.writes.append(Write(records, advance.new if advance is not None and moved else None))
        return None if advance is None or moved else stored


class OverlappedWorker(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.redis = Redis()
        self.positions = PartitionPositions()
        self.cursor = 0  # the consumer's fetch position
        self.fetched: list[tuple[int, int]] = []  # read, not yet planned (the overlap)
        self.in_redis: tuple[frozenset[int], dict[tuple[str, int], OffsetAdvance]] | None = None

    @initialize()
    def assign(self) -> None:
        self._assign()

    def _assign(self) -> None:
        self.positions.forget({TP})
        self.positions.load({TP: self.redis.offset} if self.redis.offset >= 0 else {}, {TP: 0})
        self.cursor = self.positions.resume_at(TP)

    def _seek(self, seeks: dict[tuple[str, int], int]) -> None:
        if TP in seeks:
            self.cursor = seeks[TP]

    @precondition(lambda self: len(self.fetched) < 1 and self.cursor < LOG_SIZE)
    @rule(size=st.integers(1, 12))
    def fetch(self, size: int) -> None:
        last = min(self.cursor + size, LOG_SIZE) - 1
        self.fetched.append((self.cursor, last))
        self.cursor = last + 1

    @precondition(lambda self: self.fetched and self.in_redis is None)
    @rule()
    def plan_and_send(self) -> None:
        first, last = self.fetched.pop(0)
        advances, seeks = self.positions.plan({TP: (first, last)})
        self._seek(seeks)
        self.in_redis = (frozenset(range(first, last + 1)), advances)

    @precondition(lambda self: self.in_redis is not None)
    @rule()
    def redis_replies(self) -> None:
        assert self.in_redis is not None
        records, advances = self.in_redis
        self.in_redis = None
        refused = self.redis.apply(records, advances.get(TP))
        self._seek(self.positions.settle(advances, {TP: refused} if refused is not None else {}))

    @precondition(lambda self: self.redis.writes)
    @rule(data=st.data())
    def redis_loses_its_last_writes(self, data: st.DataObject) -> None:
        keep = data.draw(st.integers(0, len(self.redis.writes) - 1))
        del self.redis.writes[keep:]

    @rule(upto=st.integers(0, LOG_SIZE - 1))
    def another_worker_applies_and_moves_the_offset_on(self, upto: int) -> None:
        """A new owner while this worker was frozen: everything up to `upto` applied, offset there."""
        if upto > self.redis.offset:
            self.redis.apply(frozenset(range(self.redis.offset + 1, upto + 1)), OffsetAdvance(self.redis.offset, upto))

    @rule()
    def rebalance_gives_the_partition_back(self) -> None:
        self.fetched.clear()  # aiokafka drops buffered records of reassigned partitions
        self._assign()

    @rule()
    def verify_while_idle(self) -> None:
        self._seek(self.positions.verify({TP: self.redis.offset} if self.redis.offset >= 0 else {}))

    @invariant()
    def redis_offset_never_covers_a_record_it_does_not_hold(self) -> None:
        assert set(range(self.redis.offset + 1)) <= self.redis.applied

    def teardown(self) -> None:
        """With the faults over, draining applies the whole partition."""
        for _ in range(4 * LOG_SIZE):
            if self.in_redis is not None:
                self.redis_replies()
            elif self.fetched:
                self.plan_and_send()
            elif self.cursor < LOG_SIZE:
                self.fetch(12)
            elif self.redis.offset < LOG_SIZE - 1:
                self.verify_while_idle()
                if self.cursor >= LOG_SIZE:  # nothing to re-read: a lost tail needs the verify's seek
                    break
            else:
                break
        assert self.redis.offset == LOG_SIZE - 1
        assert self.redis.applied == set(range(LOG_SIZE))


OverlappedWorker.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_offset_bookkeeping_with_two_batches_in_flight_keeps_redis_honest = OverlappedWorker.TestCase

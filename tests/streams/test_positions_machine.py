"""The offset bookkeeping as the overlapped worker drives it, against a model of Kafka and Redis.

One partition; the worker keeps one batch in Redis while it fetches the next (two in
flight), exactly as `streams.worker.consumer` does. Redis is shards, each with its own
offsets (as on a Cluster, where each may live on another node). Between its steps
anything may happen: one node or all lose a suffix of their writes (AOF `everysec`, a
failover), another worker takes the partition and moves its offset on (a zombie's
view), a rebalance gives it back. The law: no shard's offset covers a record that shard
has not applied, and once the faults stop the worker ends up with everything applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from streams.positions import OffsetAdvance, PartitionPositions

TP = ("leadpulse.leads", 0)
LOG_SIZE = 60  # records in the partition, offsets 0..59


SHARDS = 3  # a record belongs to shard `offset % SHARDS`; each shard may sit on its own node


@dataclass
class Write:
    """One shard's part of a round trip as it landed: its records, then its offset (if it moved)."""

    records: frozenset[int]
    offset: int | None


class Shard:
    """Applied records and the stored offset of one shard, as writes an AOF or a failover loses a suffix of."""

    def __init__(self) -> None:
        self.writes: list[Write] = []

    @property
    def applied(self) -> set[int]:
        return set().union(*(w.records for w in self.writes))

    @property
    def offset(self) -> int:
        return max((w.offset for w in self.writes if w.offset is not None), default=-1)

    def apply(self, records: frozenset[int], advance: OffsetAdvance | None) -> int | None:
        """Apply, then offsets.lua: move if the shard holds `expected` or more; the stored offset when refused."""
        stored = self.offset
        moved = advance is not None and stored >= advance.expected
        self.writes.append(Write(records, max(stored, advance.new) if advance is not None and moved else None))
        return None if advance is None or moved else stored


class Redis:
    """The shards of one Redis or Redis Cluster, as `aggregates.store` reads and writes them."""

    def __init__(self) -> None:
        self.shards = [Shard() for _ in range(SHARDS)]

    @property
    def writes(self) -> list[Write]:
        return [w for shard in self.shards for w in shard.writes]

    @property
    def applied(self) -> set[int]:
        return set().union(*(shard.applied for shard in self.shards))

    @property
    def offset(self) -> int:
        """What `read_offsets` answers: the least offset of the shards."""
        return min(shard.offset for shard in self.shards)

    def apply(self, records: frozenset[int], advance: OffsetAdvance | None) -> int | None:
        """Every shard's records and offset; refused: the least offset a refusing shard holds."""
        refusals = [
            shard.apply(frozenset(r for r in records if r % SHARDS == i), advance) for i, shard in enumerate(self.shards)
        ]
        return min((r for r in refusals if r is not None), default=None)


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
    def a_node_loses_its_last_writes(self, data: st.DataObject) -> None:
        """A restart or a failover: one shard's node (all of them, on one server) loses a suffix."""
        for shard in self.redis.shards if data.draw(st.booleans()) else [data.draw(st.sampled_from(self.redis.shards))]:
            if shard.writes:
                del shard.writes[data.draw(st.integers(0, len(shard.writes) - 1)) :]

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
    def no_shard_offset_covers_a_record_it_does_not_hold(self) -> None:
        for i, shard in enumerate(self.redis.shards):
            assert {r for r in range(shard.offset + 1) if r % SHARDS == i} <= shard.applied

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

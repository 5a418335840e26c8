"""Which Kafka offsets Redis is known to hold, so a crash of either side loses nothing.

Redis (AOF `everysec`) can lose its last second of writes while Kafka already holds a
committed offset past them, and Faust may commit offsets of a batch still in flight.
So Kafka's committed offset is only a hint: the truth is the per-partition offset
stored in Redis in the same round trip as the aggregates (in each shard, next to its
counters). A worker advances that offset only over a contiguous run of applied records,
and only where Redis holds at least the value it last saw, and seeks back whenever
Redis holds less than the stream it is reading.
Replaying is always safe because applying an event twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetAdvance:
    """Move Redis's offset of one partition from `expected` (-1: none stored) to `new`.

    `first` is the batch's first offset of the partition: where a shard that held none
    of it starts holding it, kept so `leadpulse verify` knows which records the
    aggregates were built from (the log may have started later than offset 0).
    """

    expected: int
    new: int
    first: int = 0


@dataclass(slots=True)
class PartitionPositions:
    """Per partition: the last offset Redis holds (-1: none) and where reading must resume."""

    known: dict[TopicPartition, int] = field(default_factory=dict)
    #: offset just before the earliest one Kafka still retains: nothing older can be re-read
    floor: dict[TopicPartition, int] = field(default_factory=dict)
    #: seeks already asked for: records fetched before a seek still arrive and must
    #: not trigger the same seek again.
    pending: dict[TopicPartition, int] = field(default_factory=dict)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop partitions after a rebalance; they are re-read from Redis when assigned."""
        for tp in partitions:
            self.known.pop(tp, None)
            self.floor.pop(tp, None)
            self.pending.pop(tp, None)

    def load(self, stored: Mapping[TopicPartition, int], earliest: Mapping[TopicPartition, int]) -> None:
        """Take Redis's offsets and Kafka's earliest retained offsets for assigned partitions."""
        for tp, first_retained in earliest.items():
            self.known[tp] = stored.get(tp, -1)
            self.floor[tp] = first_retained - 1

    def resume_at(self, tp: TopicPartition) -> int:
        """The next offset to read so that Redis ends up holding everything retained."""
        return max(self.known.get(tp, -1), self.floor.get(tp, -1)) + 1

    def plan(
        self, spans: Mapping[TopicPartition, tuple[int, int]]
    ) -> tuple[dict[TopicPartition, OffsetAdvance], dict[TopicPartition, int]]:
        """Split a batch's (first, last) offsets into advances to record and seeks to make.

        A partition whose batch starts past `resume_at` left a hole that Redis does not
        hold (lost writes, or Kafka committed ahead of Redis): its offset is not
        advanced and the consumer must seek back.
        """
        advances: dict[TopicPartition, OffsetAdvance] = {}
        seeks: dict[TopicPartition, int] = {}
        for tp, (first, last) in spans.items():
            resume = self.resume_at(tp)
            if first > resume:
                if self.pending.get(tp) != resume:
                    seeks[tp] = self.pending[tp] = resume
                continue
            self.pending.pop(tp, None)
            if last > self.known[tp]:
                advances[tp] = OffsetAdvance(self.known[tp], last, first)
        return advances, seeks

    def settle(
        self, advances: Mapping[TopicPartition, OffsetAdvance], refused: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        """Record what Redis accepted; return seeks for partitions whose CAS was refused.

        A refused advance means some shard holds less than this worker last saw (Redis
        restarted, or a Cluster master failed over, and lost writes): adopt the least
        value Redis holds and re-read from just after it.
        """
        seeks: dict[TopicPartition, int] = {}
        for tp, advance in advances.items():
            self.known[tp] = refused.get(tp, advance.new)
            if self.known[tp] < advance.new:
                seeks[tp] = self.pending[tp] = self.resume_at(tp)
        return seeks

    def verify(self, stored: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Seeks for partitions where Redis holds less than this worker recorded.

        Run on a timer: without new records no compare-and-set would notice that
        Redis restarted without its last second of writes.
        """
        seeks: dict[TopicPartition, int] = {}
        for tp, known in self.known.items():
            held = stored.get(tp, -1)
            if held < known:
                self.known[tp] = held
                seeks[tp] = self.pending[tp] = self.resume_at(tp)
        return seeks

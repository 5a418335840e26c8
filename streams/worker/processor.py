"""What the worker does with one batch: rejects out, events and offsets into Redis in one trip.

Order of a batch: rejected records are produced (and acknowledged) to
`leadpulse.rejected` first, then the valid events and the batch's offsets go to Redis
in one round trip. A crash anywhere replays the batch, which the idempotent aggregates
absorb; a rejected record may then appear twice on the rejected topic, never zero times.

Kafka I/O is behind `KafkaSide` and Redis behind `BatchStore`, so this module holds
the offset bookkeeping's use and nothing of either client (`streams.worker.consumer`
owns those).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar

from aggregates.errors import TRANSIENT_ERRORS
from aggregates.store import ApplyOutcome, EncodedBatch
from streams.events import Event, Rejection
from streams.positions import OffsetAdvance, PartitionPositions, TopicPartition
from streams.worker.batches import Batch, Record

log = logging.getLogger(__name__)

#: Retry delays while Redis is unreachable: short first so a restart costs little,
#: capped so a long outage does not hammer it.
REDIS_RETRY_DELAYS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

T = TypeVar("T")


class BatchStore(Protocol):
    """What the worker needs of the aggregates layer (an `AsyncAggregateStore`)."""

    def encode(self, events: Sequence[Event]) -> EncodedBatch: ...

    async def apply(
        self,
        events: Sequence[Event] | EncodedBatch,
        offsets: dict[TopicPartition, OffsetAdvance],
        rejected: Counter[str],
    ) -> ApplyOutcome: ...

    async def read_offsets(self) -> dict[TopicPartition, int]: ...


class KafkaSide(Protocol):
    """What the worker needs of Kafka: its assignment, seeks, retained offsets, the rejected topic."""

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    async def earliest_offsets(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def send_rejects(self, rejects: Sequence[tuple[Record, Rejection]]) -> None: ...


class BatchProcessor:
    """Turns batches of Kafka records into one Redis round trip each, keeping `positions` true."""

    def __init__(self, kafka: KafkaSide, store: BatchStore) -> None:
        self.kafka = kafka
        self.store = store
        self.positions = PartitionPositions()

    async def assign(self, partitions: Collection[TopicPartition]) -> None:
        """Start newly assigned partitions right after what Redis holds (or the earliest retained)."""
        self.positions.forget(set(partitions))  # another worker may have moved them on
        await self._load(partitions)
        for tp in partitions:
            self.kafka.seek(tp, self.positions.resume_at(tp))

    def revoke(self, partitions: Collection[TopicPartition]) -> None:
        """Forget revoked partitions; whoever gets them next starts from Redis's offsets."""
        self.positions.forget(set(partitions))

    async def send_rejects(self, batch: Batch) -> None:
        """Produce the batch's rejects and wait for Kafka's acks (before its offsets may move)."""
        if batch.rejects:
            await self.kafka.send_rejects(batch.rejects)
            log.info("rejected %d records", len(batch.rejects))

    async def apply(self, batch: Batch, encoded: EncodedBatch) -> None:
        """Apply a batch whose rejects are acknowledged; plan its offsets only now.

        Planning reads `positions` as the previous batch's reply left them, so it must
        wait for that reply; everything before (decode, encode, rejects) need not.
        Events of a partition no longer assigned are applied all the same (harmless: the
        join is idempotent) but move no offset: the partition's new owner reads from
        what Redis holds.
        """
        assigned = self.kafka.assignment()
        spans = {tp: span for tp, span in batch.spans.items() if tp in assigned}
        missing = [tp for tp in spans if tp not in self.positions.known]
        if missing:
            await self._load(missing)
        spans = {tp: span for tp, span in spans.items() if tp in self.positions.known}
        # No await from here to plan(): a rebalance cannot forget these partitions in between.
        advances, seeks = self.positions.plan(spans)
        outcome = await self._retry(lambda: self.store.apply(encoded, advances, batch.rejected_per_topic))
        seeks.update(self.positions.settle(advances, outcome.refused))
        self._seek(seeks)

    async def verify(self) -> None:
        """Catch a Redis that restarted without its last writes while no records arrive."""
        if self.positions.known:
            stored = await self._retry(self.store.read_offsets)
            self._seek(self.positions.verify(stored))

    def _seek(self, seeks: dict[TopicPartition, int]) -> None:
        assigned = self.kafka.assignment()
        for tp, offset in seeks.items():
            if tp not in assigned:
                continue  # moved to another worker meanwhile, which starts from Redis's offset
            log.warning("Redis does not hold %s[%d] from offset %d on: re-reading from there", tp[0], tp[1], offset)
            self.kafka.seek(tp, offset)

    async def _load(self, partitions: Collection[TopicPartition]) -> None:
        """Take Redis's applied offsets and Kafka's earliest retained offsets of `partitions`."""
        stored = await self._retry(self.store.read_offsets)
        earliest = await self.kafka.earliest_offsets(partitions)
        for tp in partitions:
            log.info("%s[%d]: Redis holds offsets up to %d", tp[0], tp[1], stored.get(tp, -1))
        self.positions.load(stored, earliest)

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()` until Redis answers: an outage pauses the worker, never stops it.

        Only connection trouble and a Cluster's failover or slot migration are retried;
        anything else Redis answers (a script error, a layout mismatch) raises, and the
        worker exits with it.
        """
        attempt = 0
        while True:
            try:
                return await call()
            except TRANSIENT_ERRORS as exc:
                delay = REDIS_RETRY_DELAYS_S[min(attempt, len(REDIS_RETRY_DELAYS_S) - 1)]
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                attempt += 1

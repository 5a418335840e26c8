"""The worker's agent: validate a batch, route rejects, apply the rest to Redis in one trip.

Order of a batch: rejected records are produced (and acknowledged) to
`leadpulse.rejected` first, then the valid events and the batch's offsets go to Redis
in one round trip. A crash anywhere replays the batch, which the idempotent aggregates
absorb; a rejected record may then appear twice on the rejected topic, never zero times.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Collection, Protocol, Sequence

import faust
from faust.types import TP, EventT
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aggregates.store import ApplyOutcome
from streams.events import Event, Rejection, parse_record
from streams.positions import OffsetAdvance, PartitionPositions, TopicPartition
from streams.kafka.rejected import rejection_headers
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings

log = logging.getLogger(__name__)

#: Retry delays while Redis is unreachable: short first so a restart costs little,
#: capped so a long outage does not hammer it.
REDIS_RETRY_DELAYS_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: How often an idle worker checks that Redis still holds what it wrote: Redis with
#: AOF `everysec` loses at most about a second, so a few seconds bound the staleness.
VERIFY_INTERVAL_S = 5.0


class BatchStore(Protocol):
    """What the agent needs of the aggregates layer (an async `AggregateStore`)."""

    async def apply(
        self,
        events: Sequence[Event],
        advances: dict[TopicPartition, OffsetAdvance],
        rejected: Counter[str],
    ) -> ApplyOutcome: ...

    async def read_offsets(self) -> dict[TopicPartition, int]: ...


class BatchProcessor:
    """Turns batches of Kafka records into one Redis round trip each."""

    def __init__(self, app: faust.App, store: BatchStore) -> None:
        self.app = app
        self.store = store
        self.positions = PartitionPositions()
        self.rejected_topic = app.topic(REJECTED_TOPIC, key_serializer="raw", value_serializer="raw")

    async def on_rebalance_complete(self, sender: Any, *_: Any, signal: Any = None, **__: Any) -> None:
        """Rewind Kafka's committed offsets of our partitions to what Redis holds.

        Faust seeks to the committed offsets right after this signal, so the worker
        starts exactly after the last batch Redis kept, even when Redis lost writes
        that Kafka had already committed.
        """
        assigned = {(tp.topic, tp.partition) for tp in self.app.consumer.assignment() if tp.topic in INPUT_TOPICS}
        stored, earliest = await self._fetch_positions(assigned)
        self.positions.forget(set(self.positions.known))  # another worker may have moved them on
        self.positions.load(stored, earliest)
        if assigned:
            # Faust's public commit() only commits acked offsets; rewinding needs _commit.
            consumer: Any = self.app.consumer
            await consumer._commit({TP(*tp): self.positions.resume_at(tp) for tp in assigned})

    async def verify(self) -> None:
        """Catch a Redis that restarted without its last writes while no records arrive."""
        if not self.positions.known:
            return
        stored = await self._retry(self.store.read_offsets)
        await self._seek(self.positions.verify(stored))

    async def process(self, batch: Sequence[EventT]) -> None:
        now_ms = int(time.time() * 1000)
        valid: list[Event] = []
        rejects: list[tuple[Any, Rejection]] = []
        spans: dict[TopicPartition, tuple[int, int]] = {}
        for record in batch:
            message = record.message
            tp = (message.topic, message.partition)
            first, _ = spans.get(tp, (message.offset, message.offset))
            spans[tp] = (min(first, message.offset), message.offset)
            parsed = parse_record(message.value or b"", now_ms)
            if isinstance(parsed, Rejection):
                rejects.append((message, parsed))
            else:
                valid.append(parsed)
        await self._send_rejects(rejects)
        missing = {tp for tp in spans if tp not in self.positions.known}
        if missing:
            stored, earliest = await self._fetch_positions(missing)
            self.positions.load(stored, earliest)
        # No await since the load: a rebalance cannot forget these partitions before plan().
        advances, seeks = self.positions.plan(spans)
        outcome = await self._apply(valid, advances, Counter(m.topic for m, _ in rejects))
        seeks.update(self.positions.settle(advances, outcome.refused))
        await self._seek(seeks)

    async def _seek(self, seeks: dict[TopicPartition, int]) -> None:
        assigned = self.app.consumer.assignment()
        for (topic, partition), offset in seeks.items():
            if TP(topic, partition) not in assigned:
                continue  # moved to another worker meanwhile, which starts from Redis's offset
            log.warning("Redis does not hold %s[%d] from offset %d on: re-reading from there", topic, partition, offset)
            await self.app.consumer.seek(TP(topic, partition), offset)

    async def _fetch_positions(
        self, partitions: Collection[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Redis's applied offsets and Kafka's earliest retained offsets of `partitions`."""
        stored = await self._retry(self.store.read_offsets)
        earliest = await self.app.consumer.earliest_offsets(*(TP(*tp) for tp in partitions))
        for tp in partitions:
            log.info("%s[%d]: Redis holds offsets up to %d", tp[0], tp[1], stored.get(tp, -1))
        return stored, {(tp.topic, tp.partition): offset for tp, offset in earliest.items()}

    async def _send_rejects(self, rejects: list[tuple[Any, Rejection]]) -> None:
        if not rejects:
            return
        pending = [
            await self.rejected_topic.send(
                key=message.key,
                value=message.value,
                headers=rejection_headers(rejection, f"{message.topic}/{message.partition}@{message.offset}"),
            )
            for message, rejection in rejects
        ]
        await asyncio.gather(*pending)
        log.info("rejected %d records", len(rejects))

    async def _apply(
        self, valid: list[Event], advances: dict[TopicPartition, OffsetAdvance], rejected: Counter[str]
    ) -> ApplyOutcome:
        return await self._retry(lambda: self.store.apply(valid, advances, rejected))

    async def _retry(self, call: Any) -> Any:
        """Await `call()` until Redis answers: an outage pauses the worker, never stops it."""
        attempt = 0
        while True:
            try:
                return await call()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                delay = REDIS_RETRY_DELAYS_S[min(attempt, len(REDIS_RETRY_DELAYS_S) - 1)]
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                attempt += 1


def register_agents(app: faust.App, settings: Settings, store: BatchStore) -> BatchProcessor:
    """Attach the aggregation agent to `app`; one agent, concurrency 1 (see app.py)."""
    processor = BatchProcessor(app, store)
    source = app.topic(*INPUT_TOPICS, key_serializer="raw", value_serializer="raw")
    app.on_rebalance_complete.connect(processor.on_rebalance_complete)  # type: ignore[arg-type]  # mode's stub rejects bound async methods
    app.timer(VERIFY_INTERVAL_S)(processor.verify)

    @app.agent(source, name="leadpulse.aggregate", concurrency=1)
    async def aggregate(stream: faust.StreamT) -> None:
        # take_events exists on faust.Stream but is missing from the StreamT interface
        batches = stream.take_events(settings.batch_size, within=settings.batch_wait_ms / 1000)  # type: ignore[attr-defined]
        async for batch in batches:
            await processor.process(batch)

    return processor

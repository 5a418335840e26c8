"""The worker's Kafka side: a Faust service that reads batches with aiokafka and overlaps them with Redis.

Faust's own consumer delivers records one at a time (two futures and an `asyncio.wait`
per record, then the conductor and the stream), which cost more than the aggregation
itself. Here Faust runs the worker's lifecycle (signals, logging, start and stop) and
this service owns a plain `AIOKafkaConsumer` of the consumer group:

- `getmany(max_records=batch_size)` hands over whole batches;
- auto-commit is off: the applied offsets live in Redis (`streams.positions`); on
  assignment every partition is sought to just after what Redis holds, the pattern
  aiokafka's `ConsumerRebalanceListener` describes for offsets kept in an external
  store; Kafka's committed offsets are written back only as a hint for tools
  (`kafka-consumer-groups`), never read;
- while batch N is in Redis, batch N+1 is fetched, decoded, encoded and its rejects
  produced; only its offset planning waits for N's reply (see `BatchProcessor.apply`);
- on revocation the in-flight batch is awaited before the partitions are let go.

Lead and deal partitions of one number need not land on one worker: the aggregates are
a function of the set of events, in any order, so aiokafka's default assignor is fine.

The worker either works or exits: Redis connection trouble pauses it (retried), but
anything else that stops a batch (an error reply such as MOVED, a layout mismatch, a
Kafka authentication failure) ends the process non-zero with the reason as its last
log line, so a supervisor restarts it. SIGTERM stops it within `STOP_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from contextlib import suppress
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition as KafkaPartition
from mode import Service

from streams.events import Rejection
from streams.kafka.clients import client_options
from streams.kafka.rejected import rejection_headers
from streams.positions import TopicPartition
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings
from streams.worker.batches import Record, split_batch
from streams.worker.processor import BatchProcessor, BatchStore

log = logging.getLogger(__name__)

#: How often an idle worker checks that Redis still holds what it wrote: Redis with
#: AOF `everysec` loses at most about a second, so a few seconds bound the staleness.
VERIFY_INTERVAL_S: Final = 5.0
#: Kafka's committed offsets are only a hint for tools: once a second is plenty.
COMMIT_INTERVAL_S: Final = 1.0
#: The in-flight batch gets this long to finish on SIGTERM; cancelling it is safe
#: (its offsets move only with it), so the worker is gone well within 30 s.
STOP_TIMEOUT_S: Final = 10.0
#: Event-loop turns given to a new batch's task before this loop reads on. Records
#: already fetched come back from `getmany` without a turn of the loop, so without these
#: the batch would reach Redis only when the loop next waits, after the next batch's
#: decoding; a batch of ~0.5 MB may take the socket a few turns to write.
SEND_TURNS: Final = 5


def _tp(partition: KafkaPartition) -> TopicPartition:
    return (partition.topic, partition.partition)


class _KafkaSide:
    """`KafkaSide` over one aiokafka consumer and producer."""

    def __init__(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        self.consumer = consumer
        self.producer = producer

    def assignment(self) -> set[TopicPartition]:
        return {_tp(p) for p in self.consumer.assignment()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.consumer.seek(KafkaPartition(*tp), offset)

    async def earliest_offsets(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        found = await self.consumer.beginning_offsets([KafkaPartition(*tp) for tp in partitions])
        return {_tp(p): offset for p, offset in found.items()}

    async def send_rejects(self, rejects: Sequence[tuple[Record, Rejection]]) -> None:
        sent = [
            await self.producer.send(
                REJECTED_TOPIC,
                value=record.value,
                key=record.key,
                headers=rejection_headers(rejection, f"{record.topic}/{record.partition}@{record.offset}"),
            )
            for record, rejection in rejects
        ]
        await asyncio.gather(*sent)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no stubs
    def __init__(self, owner: BatchConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[KafkaPartition]) -> None:
        await self.owner.drain()
        self.owner.processor.revoke({_tp(p) for p in revoked})

    async def on_partitions_assigned(self, assigned: list[KafkaPartition]) -> None:
        partitions = {_tp(p) for p in assigned}
        try:
            if partitions:
                await self.owner.processor.assign(partitions)
        except Exception as exc:  # aiokafka would log and carry on unsought: stop instead
            await self.owner.fail(exc)


class BatchConsumer(Service):
    """Reads the input topics in batches and applies them, one batch in Redis while the next is read."""

    def __init__(self, settings: Settings, store: BatchStore, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.store = store
        self._clients: tuple[AIOKafkaConsumer, AIOKafkaProducer] | None = None
        self._processor: BatchProcessor | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def processor(self) -> BatchProcessor:
        assert self._processor is not None, "started"
        return self._processor

    async def on_start(self) -> None:
        """Create the clients (aiokafka binds them to the running loop) and join the group."""
        settings = self.settings
        options = client_options(settings).kwargs()  # address, TLS and SASL, as every client
        consumer = AIOKafkaConsumer(
            **options,
            client_id="leadpulse-worker",
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A crashed worker's partitions wait this long before another worker takes them.
            session_timeout_ms=int(settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, settings.session_timeout_s / 3) * 1000),
        )
        producer = AIOKafkaProducer(**options, client_id="leadpulse-worker", acks="all")
        self._clients = (consumer, producer)
        self._processor = BatchProcessor(_KafkaSide(consumer, producer), self.store)
        await producer.start()
        await consumer.start()
        consumer.subscribe(list(INPUT_TOPICS), listener=_Rebalance(self))
        log.info("consuming %s as group %r", ", ".join(INPUT_TOPICS), settings.consumer_group)

    async def on_started(self) -> None:
        self._loop_task = asyncio.ensure_future(self._guarded())

    async def on_stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._loop_task, STOP_TIMEOUT_S)
        for client in self._clients or ():
            with suppress(Exception):
                await asyncio.wait_for(client.stop(), STOP_TIMEOUT_S)

    async def drain(self) -> None:
        """Wait for the batch in Redis, if any (its failure is the loop's to report)."""
        inflight = self._inflight
        if inflight is not None:
            with suppress(Exception):
                await asyncio.shield(inflight)

    async def fail(self, exc: Exception) -> None:
        """End the worker with `exc`: the process exits non-zero, the reason its last log line."""
        log.error("worker stopped: %s: %s", type(exc).__name__, exc)
        await self.crash(exc)

    async def _guarded(self) -> None:
        try:
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the process ends with it: a supervisor restarts the worker
            await self.fail(exc)

    async def _consume(self) -> None:
        assert self._clients is not None, "started"
        consumer = self._clients[0]
        batch_size, wait_ms = self.settings.batch_size, self.settings.batch_wait_ms
        idle_since = committed_at = time.monotonic()
        while True:
            fetched = await consumer.getmany(timeout_ms=wait_ms, max_records=batch_size)
            now = time.monotonic()
            if not fetched:
                if self._inflight is None and now - idle_since >= VERIFY_INTERVAL_S:
                    await self.processor.verify()
                    idle_since = now
                await self._finish_inflight()
                continue
            idle_since = now
            batch = split_batch(fetched, int(time.time() * 1000))
            encoded = self.store.encode(batch.events)
            await self.processor.send_rejects(batch)  # overlaps the previous batch's Redis trip
            await self._finish_inflight()
            self._inflight = asyncio.ensure_future(self.processor.apply(batch, encoded))
            for _ in range(SEND_TURNS):  # the batch goes to Redis now, which works on it while this loop reads on
                await asyncio.sleep(0)
            if now - committed_at >= COMMIT_INTERVAL_S:
                await self._commit_hint(consumer)
                committed_at = now

    async def _finish_inflight(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    async def _commit_hint(self, consumer: AIOKafkaConsumer) -> None:
        """Tell Kafka what Redis holds, for tools that read committed offsets."""
        assigned = self.processor.kafka.assignment()
        offsets = {
            KafkaPartition(*tp): self.processor.positions.resume_at(tp)
            for tp in self.processor.positions.known
            if tp in assigned
        }
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # a rebalance in progress: the next hint will do
                log.debug("offset hint not committed: %s", exc)


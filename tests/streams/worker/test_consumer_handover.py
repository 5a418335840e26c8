"""`BatchConsumer` hands each batch to Redis before it decodes the next (a unit test, no services).

aiokafka answers `getmany` from records it already fetched without a turn of the event
loop, so nothing but the consumer's own hand-over starts the batch's Redis trip before
the next batch's decoding: the fakes here answer the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import orjson
from aiokafka.structs import TopicPartition as KafkaPartition

from aggregates.store import ApplyOutcome, EncodedBatch
from streams.events import Event, Rejection
from streams.positions import OffsetAdvance, TopicPartition
from streams.settings import LEADS_TOPIC, Settings
from streams.worker.batches import Record
from streams.worker.consumer import BatchConsumer
from streams.worker.processor import BatchProcessor


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _BufferedConsumer:
    """`getmany` as aiokafka answers from records already fetched: at once, without a turn of the loop."""

    def __init__(self, batches: list[dict[KafkaPartition, list[_Record]]]) -> None:
        self.batches = batches

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[KafkaPartition, list[_Record]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(3600)
        return {}


class _Kafka:
    def __init__(self, partitions: set[TopicPartition]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[TopicPartition]:
        return self.partitions

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def earliest_offsets(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in partitions}

    async def send_rejects(self, rejects: Sequence[tuple[Record, Rejection]]) -> None:
        pass


class _Redis:
    """A store that notes when each batch is encoded and when it reaches Redis."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def encode(self, events: Sequence[Event]) -> EncodedBatch:
        self.log.append(f"encoded {events[0].event_id}")
        return EncodedBatch({0: events[0].event_id.encode()})

    async def apply(self, events: object, offsets: dict[TopicPartition, OffsetAdvance], rejected: object) -> ApplyOutcome:
        assert isinstance(events, EncodedBatch)
        self.log.append(f"in redis {events.per_shard[0].decode()}")
        await asyncio.sleep(0.02)  # Redis at work: the loop is free meanwhile
        return ApplyOutcome({"applied": 1, "duplicate": 0, "rejected": 0})

    async def read_offsets(self) -> dict[TopicPartition, int]:
        return {}


def test_each_batch_reaches_redis_before_the_next_one_is_decoded() -> None:
    created = {"type": "lead.created", "occurred_at": "2026-11-01T10:00:00Z", "lead_id": "L1", "source": "web"}
    batches = [
        {KafkaPartition(LEADS_TOPIC, 0): [_Record(LEADS_TOPIC, 0, n, b"L1", orjson.dumps({**created, "event_id": f"e{n}"}))]}
        for n in range(3)
    ]
    store = _Redis()
    consumer = BatchConsumer(Settings(), store)
    consumer._clients = (_BufferedConsumer(batches), None)  # type: ignore[assignment]
    consumer._processor = BatchProcessor(_Kafka({(LEADS_TOPIC, 0)}), store)

    async def run() -> None:
        task = asyncio.ensure_future(consumer._consume())
        while sum(line.startswith("in redis") for line in store.log) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(run(), 10))
    assert store.log == ["encoded e0", "in redis e0", "encoded e1", "in redis e1", "encoded e2", "in redis e2"]

"""One fetched batch split into what the worker does with it: events, rejects, offset spans.

Pure: the consumer hands over what `getmany` returned, this decides nothing about
Kafka or Redis, and the tests build batches without either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streams.decoding import decode_record
from streams.events import Event, Rejection
from streams.positions import TopicPartition


class Record(Protocol):
    """What the worker reads of a Kafka record (aiokafka's `ConsumerRecord` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(slots=True)
class Batch:
    """A batch's valid events, its rejected records with their reasons, and each partition's offsets."""

    events: list[Event] = field(default_factory=list)
    rejects: list[tuple[Record, Rejection]] = field(default_factory=list)
    #: (first, last) offset read of every partition in the batch
    spans: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)

    @property
    def rejected_per_topic(self) -> Counter[str]:
        return Counter(record.topic for record, _ in self.rejects)


def split_batch(fetched: Mapping[object, Sequence[Record]], now_ms: int) -> Batch:
    """Decode every record of a `getmany` result (records of a partition come in offset order)."""
    batch = Batch()
    events, rejects = batch.events, batch.rejects
    for records in fetched.values():
        if not records:
            continue
        first, last = records[0], records[-1]
        batch.spans[(first.topic, first.partition)] = (first.offset, last.offset)
        for record in records:
            parsed = decode_record(record.value or b"", now_ms)
            if isinstance(parsed, Event):
                events.append(parsed)
            else:
                rejects.append((record, parsed))
    return batch

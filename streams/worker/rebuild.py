"""`leadpulse rebuild`: recompute the aggregates from the topics, for a fresh Redis or new rules.

Reads every input partition from its earliest retained offset up to the end it had
when the rebuild started, through the same validation and the same batch apply as the
workers, and leaves the applied offsets in Redis so restarted workers go on from there.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from rich.console import Console
from rich.progress import Progress

from aggregates.connect import redis_client
from aggregates.errors import REDIS_ERRORS
from aggregates.store import AggregateStore
from streams.events import Event, Rejection, parse_record
from streams.kafka.clients import client_options
from streams.kafka.diagnose import diagnose_sync
from streams.positions import PartitionPositions
from streams.settings import INPUT_TOPICS, Settings

log = logging.getLogger(__name__)

POLL_RECORDS = 5000


class RebuildRefused(Exception):
    """The rebuild cannot run now; the message says what the operator should do."""


def rebuild(settings: Settings) -> int:
    """Run the rebuild; the exit status is 0 only when every partition was read to its end."""
    try:
        records, rejected = _rebuild(settings)
    except (RebuildRefused, *REDIS_ERRORS) as exc:
        log.error("rebuild failed: %s", exc)
        return 1
    except KafkaError as exc:
        cause = diagnose_sync(client_options(settings), INPUT_TOPICS, settings.consumer_group)
        log.error("rebuild failed: %s", cause or exc)
        return 1
    log.info("rebuilt from %d records (%d rejected)", records, rejected)
    return 0


def _rebuild(settings: Settings) -> tuple[int, int]:
    _refuse_if_workers_run(settings)
    consumer = KafkaConsumer(
        **client_options(settings).kwargs(),
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=30_000,
    )
    try:
        partitions = [
            TopicPartition(topic, p) for topic in INPUT_TOPICS for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise RebuildRefused(f"no input topics on {settings.kafka_bootstrap}: run `leadpulse stack up` first")
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        store = AggregateStore(redis_client(settings), settings)
        cleared = store.clear()
        log.info("cleared %d keys with prefix %r", cleared, settings.key_prefix)
        return replay(consumer, store, starts, ends)
    finally:
        consumer.close()


#: Group states in which no consumer is a member (KIP-848 and classic groups alike).
IDLE_GROUP_STATES = frozenset({"Empty", "Dead"})


def _refuse_if_workers_run(settings: Settings) -> None:
    admin = KafkaAdminClient(**client_options(settings).kwargs(), request_timeout_ms=15_000)
    try:
        groups = {g["group_id"]: g["group_state"] for g in admin.list_groups()}
    finally:
        admin.close()
    state = groups.get(settings.consumer_group, "Dead")
    if state not in IDLE_GROUP_STATES:
        raise RebuildRefused(
            f"workers of consumer group {settings.consumer_group!r} are running (group {state}): "
            "stop them, rebuild, then start them again"
        )


#: Whether to apply an event read at (topic, partition, offset): all of them by default.
Keep = Callable[[str, int, int, Event], bool]


def replay(
    consumer: KafkaConsumer,
    store: AggregateStore,
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    keep: Keep | None = None,
    label: str = "rebuilding",
) -> tuple[int, int]:
    """Apply the records of each assigned partition from `starts` up to `ends` (exclusive)
    through the workers' validation and batch apply; `leadpulse verify` recounts with it.

    Returns the records read and how many of them were rejected.
    """
    positions = PartitionPositions()
    positions.load({}, {(tp.topic, tp.partition): offset for tp, offset in starts.items()})
    remaining = {tp for tp, end in ends.items() if end > starts[tp]}
    for tp in consumer.assignment():
        if tp in remaining:
            consumer.seek(tp, starts[tp])
            consumer.resume(tp)
        else:
            consumer.pause(tp)
    total = sum(ends[tp] - starts[tp] for tp in remaining)
    records = rejected = 0
    console = Console(stderr=True)  # a bar on a terminal only
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(label, total=total)
        while remaining:
            now_ms = int(time.time() * 1000)
            valid: list[Event] = []
            rejects: Counter[str] = Counter()
            spans: dict[tuple[str, int], tuple[int, int]] = {}
            for tp, batch in consumer.poll(timeout_ms=1000, max_records=POLL_RECORDS).items():
                batch = [r for r in batch if r.offset < ends[tp]]
                if not batch:
                    continue
                spans[(tp.topic, tp.partition)] = (batch[0].offset, batch[-1].offset)
                for record in batch:
                    parsed = parse_record(record.value or b"", now_ms)
                    if isinstance(parsed, Rejection):
                        rejects[tp.topic] += 1
                    elif keep is None or keep(tp.topic, tp.partition, record.offset, parsed):
                        valid.append(parsed)
                if batch[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            advances, _ = positions.plan(spans)
            store.apply(valid, advances, rejects)
            positions.settle(advances, {})
            count = sum(last - first + 1 for first, last in spans.values())
            records += count
            rejected += sum(rejects.values())
            progress.advance(task, count)
    return records, rejected

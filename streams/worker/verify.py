"""`leadpulse verify`: recount the aggregates from the topics and compare them with the live ones.

The recount goes into a scratch key prefix through `replay`, the batch apply path of
`rebuild` and the workers, so there is no second implementation to disagree with.
It is taken at the offsets the live aggregates had applied, while the workers keep
running: each shard is read by one script (atomic), and a shard's counters, lead
state and offsets only ever change together (docs/keys.md), so what a shard holds is
exactly its leads' records up to the offsets read with it (docs/operations.md, Verify):

1. per shard, its offsets A and its lead state buckets (all, or a `--sample`);
2. per shard, its offsets B and its series (skipped by `--sample`);
3. recount every shard's records up to A, compare lead state;
4. recount on from A up to B, compare every series of `report --json`.

The scratch prefix is deleted whatever happens (finally, and SIGTERM/SIGHUP end the
process through it). Each run's result is kept in Redis (`<prefix>:verify`) for the
exporter to publish (`leadpulse_verify_*`), so a run from cron and `--every` look alike.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Final

import click
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPartition
from kafka.errors import KafkaError

from aggregates.connect import SyncRedis, redis_client
from aggregates.errors import REDIS_ERRORS, AggregateError
from aggregates.keys import ALL, VERIFY_FIELDS, KeyLayout, segment_field, verify_key
from aggregates.leads import read_buckets
from aggregates.read import ShardOffsets, read_series, read_snapshot
from aggregates.reconcile import LeadMismatch, Mismatch, compare_leads, compare_series
from aggregates.store import AggregateStore
from streams.events import Event
from streams.kafka.clients import client_options
from streams.kafka.diagnose import diagnose_sync
from streams.positions import TopicPartition
from streams.settings import INPUT_TOPICS, Settings
from streams.worker.rebuild import Keep, replay

log = logging.getLogger(__name__)

#: Exit statuses: every series and lead matched; some differ; no verdict could be reached.
MATCHED, DIFFERS, FAILED = 0, 1, 2


class VerifyRefused(Exception):
    """Verify cannot reach a verdict now; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run found: the differing series and leads, and how much it compared."""

    series: list[Mismatch]
    leads: list[LeadMismatch]
    compared_series: int
    compared_leads: int
    checked_events: int

    @property
    def differing(self) -> int:
        return len(self.series) + len(self.leads)

    def summary(self, sampled: bool) -> str:
        series = "" if sampled else f"{len(self.series)} of {self.compared_series} series and "
        return (
            f"verify: {series}{len(self.leads)} of {self.compared_leads} leads differ "
            f"({self.checked_events} events recounted up to the applied offsets)"
        )


def unrecountable(
    held: Iterable[tuple[ShardOffsets, ShardOffsets]], starts: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]
) -> str | None:
    """Why the topics no longer hold every record the aggregates were built from, or None.

    `held` is each shard's last and first applied offsets (`parse_offsets`; no first
    offset, as written before this version: from 0). The records from a shard's first to
    its last offset must all still be there.
    """
    highest: dict[TopicPartition, int] = {}
    lowest: dict[TopicPartition, int] = {}
    for applied, began in held:
        for tp, offset in applied.items():
            highest[tp] = max(offset, highest.get(tp, -1))
            lowest[tp] = min(began.get(tp, 0), lowest.get(tp, offset + 1))
    for (topic, partition), last in sorted(highest.items()):
        where, tp = f"{topic}[{partition}]", (topic, partition)
        if tp not in ends:
            return (f"{where} no longer exists but the aggregates hold its records up to offset {last} "
                    "(a deleted topic): only `leadpulse rebuild` can make them match the topics again")  # fmt: skip
        if last >= ends[tp]:
            return (f"{where} ends at offset {ends[tp]} but the aggregates hold records up to {last} "
                    "(the topic was deleted and created again): run `leadpulse rebuild`")  # fmt: skip
        if starts[tp] > lowest[tp]:
            return (f"{where} now starts at offset {starts[tp]} but the aggregates hold records from {lowest[tp]} on: "
                    "retention or delete_records removed them, so they cannot be recounted; keep the input topics' "
                    "retention.ms at -1 (LEADPULSE_TOPIC_RETENTION_MS) for verify")  # fmt: skip
    return None


def verify(settings: Settings, sample: int | None = None, rng: random.Random | None = None) -> Outcome:
    """Recount into a scratch prefix and compare; the scratch prefix is gone when this returns."""
    scratch = settings.model_copy(update={"key_prefix": f"{settings.key_prefix}-verify-{secrets.token_hex(4)}"})
    client = redis_client(settings)
    consumer = KafkaConsumer(
        **client_options(settings).kwargs(), group_id=None, enable_auto_commit=False, request_timeout_ms=30_000
    )
    store = AggregateStore(client, scratch)
    try:
        return _Run(settings, scratch, client, consumer, store).compare(sample, rng or random.Random())
    finally:
        try:
            store.clear()
        finally:
            consumer.close()
            client.close()


class _Run:
    """One verify run's clients and snapshots."""

    def __init__(
        self, settings: Settings, scratch: Settings, client: SyncRedis, consumer: KafkaConsumer, store: AggregateStore
    ) -> None:
        self.settings, self.scratch, self.client, self.consumer, self.store = settings, scratch, client, consumer, store
        self.layout = KeyLayout.from_settings(settings)
        self.kept = 0

    def compare(self, sample: int | None, rng: random.Random) -> Outcome:
        as_of = self.settings.today()
        # Both sides are read as of one instant, the end of day T: the follow-up series that
        # depend on the clock (ages, overdue leads) would differ between two reads minutes apart.
        live_view, scratch_view = (s.model_copy(update={"as_of": as_of}) for s in (self.settings, self.scratch))
        chosen = self._buckets(sample, rng)
        first = read_buckets(self.client, self.layout, chosen)  # 1. offsets A and lead state
        held = {shard: offsets[0] for shard, (offsets, _) in first.items()}
        since = {shard: offsets[1] for shard, (offsets, _) in first.items()}
        live, second = read_snapshot(self.client, live_view, as_of) if sample is None else ([], [])  # 2. B
        starts, ends = self._extent()
        problem = unrecountable([*(offsets for offsets, _ in first.values()), *second], starts, ends)
        if problem:
            raise VerifyRefused(problem)
        for shard, (offsets, _) in enumerate(second):
            if any(offsets.get(tp, -1) < last for tp, last in held[shard].items()):
                raise VerifyRefused(f"shard {shard}'s offsets moved back while verify read them (Redis lost writes?): run verify again")
        wanted = {shard: set(buckets) for shard, buckets in chosen.items()}

        def up_to_a(topic: str, partition: int, offset: int, event: Event) -> bool:  # 3.
            shard, bucket = self.layout.place(event.lead_id)
            tp = (topic, partition)
            return bucket in wanted[shard] and since[shard].get(tp, 0) <= offset <= held[shard].get(tp, -1) and self._count()

        self._replay(starts, held.values(), up_to_a)
        recounted = read_buckets(self.client, self.store.layout, chosen)
        leads = [m for shard in chosen for m in compare_leads(first[shard][1], recounted[shard][1])]
        compared_leads = len(set().union(*(buckets.leads().keys() for _, buckets in (*first.values(), *recounted.values()))))
        if sample is not None:
            return Outcome([], leads, 0, compared_leads, self.kept)

        def a_to_b(topic: str, partition: int, offset: int, event: Event) -> bool:  # 4.
            shard = self.layout.place(event.lead_id)[0]
            tp = (topic, partition)
            after = max(held[shard].get(tp, -1), second[shard][1].get(tp, 0) - 1)
            return after < offset <= second[shard][0].get(tp, -1) and self._count()

        resume = {tp: max(start, min(h.get(tp, -1) for h in held.values()) + 1) for tp, start in starts.items()}
        self._replay(resume, [offsets for offsets, _ in second], a_to_b)
        series = compare_series(live, read_series(self.client, scratch_view, as_of))
        return Outcome(series, leads, len(live), compared_leads, self.kept)

    def _count(self) -> bool:
        self.kept += 1
        return True

    def _buckets(self, sample: int | None, rng: random.Random) -> dict[int, list[int]]:
        """Every bucket of every shard, or random buckets holding about `sample` leads in all."""
        layout = self.layout
        if sample is None:
            return {shard: list(range(layout.buckets)) for shard in range(layout.shards)}
        total = layout.shards * layout.buckets
        everything = segment_field(ALL, ALL)
        leads = sum(int(self.client.hget(layout.segments(shard), everything) or 0) for shard in range(layout.shards))
        picks = rng.sample(range(total), min(total, math.ceil(sample / max(1.0, leads / total))))
        chosen: dict[int, list[int]] = {}
        for pick in sorted(picks):
            chosen.setdefault(pick // layout.buckets, []).append(pick % layout.buckets)
        return chosen

    def _extent(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Each input partition's earliest retained offset and its end; the consumer assigned to all."""
        consumer = self.consumer
        partitions = [KafkaPartition(t, p) for t in INPUT_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        starts, ends = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        return {(tp.topic, tp.partition): starts[tp] for tp in partitions}, {(tp.topic, tp.partition): ends[tp] for tp in partitions}

    def _replay(self, starts: Mapping[TopicPartition, int], held: Iterable[ShardOffsets], keep: Keep) -> None:
        """Read every partition from `starts` up to the highest offset a shard of `held` holds."""
        highest: dict[TopicPartition, int] = {}
        for offsets in held:
            for tp, last in offsets.items():
                highest[tp] = max(last, highest.get(tp, -1))
        begin = {KafkaPartition(*tp): start for tp, start in starts.items()}
        end = {KafkaPartition(*tp): max(start, highest.get(tp, -1) + 1) for tp, start in starts.items()}
        replay(self.consumer, self.store, begin, end, keep, "recounting")


def record(settings: Settings, outcome: Outcome) -> None:
    """Keep the run's result where the exporter reads it (`leadpulse_verify_*`)."""
    client = redis_client(settings)
    try:
        figures = (outcome.differing, outcome.checked_events, f"{time.time():.3f}")
        client.hset(verify_key(settings.key_prefix), mapping=dict(zip(VERIFY_FIELDS, figures)))
    finally:
        client.close()


def run_verify(settings: Settings, sample: int | None) -> int:
    """One run: the differing series and leads, a summary line, the exit status."""
    try:
        outcome = verify(settings, sample)
        record(settings, outcome)
    except (VerifyRefused, AggregateError, *REDIS_ERRORS) as exc:
        click.echo(f"verify failed: {exc}", err=True)
        return FAILED
    except KafkaError as exc:
        cause = diagnose_sync(client_options(settings), INPUT_TOPICS, settings.consumer_group)
        click.echo(f"verify failed: {cause or exc}", err=True)
        return FAILED
    for line in (*outcome.series, *outcome.leads):
        click.echo(str(line))
    click.echo(outcome.summary(sample is not None))
    return DIFFERS if outcome.differing else MATCHED


def run_every(settings: Settings, every_s: float, sample: int | None) -> None:
    """Verify, then wait `every_s`, until stopped; a failed run is reported and retried next time."""
    while True:
        run_verify(settings, sample)
        time.sleep(every_s)


#: Signals that end a run through its `finally` (which deletes the scratch prefix).
STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGHUP)


def exit_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, so cleanup runs as on Ctrl-C."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)

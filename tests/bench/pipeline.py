"""Pipeline throughput and freshness: the Kafka ceiling, a naive worker, the leadpulse worker and two peers side by side.

On the bench stack (its own Kafka and Redis, started empty) a synthetic feed of LEADS
leads (~506k records: shuffled, 5% re-sent, 1% malformed; `tests.feeds`) is published
to the input topics, untimed. Then ROUNDS rounds, each of
  (a) raw aiokafka `getmany` of every input partition from the beginning, counting
      records only: the ceiling of any Python consumer;
  (b) the naive worker (`tests.bench.naive`: one event at a time, one EVALSHA each) on
      the first NAIVE_EVENTS records, at most NAIVE_MAX_S seconds: at a few thousand
      events/s the whole feed would take minutes per round;
  (c) `leadpulse worker` with a fresh consumer group and key prefix: the records it
      applied (the offsets Redis stores in `<prefix>:offsets`) between its first
      applied batch and catching up, over that time;
  (quix), (kstreams) the peers (`tests.bench.peers`): the same core job, per-source
      leads and customers with per-lead state in RocksDB, done with Quix Streams and
      with Kafka Streams, each with a fresh consumer group: the records it read between
      its first progress line and caught up, over that time. Their counts are checked
      against the feed's (`tests.bench.peers.job`).
Rounds interleave a, b, the peers and c so the machine's other load touches all alike;
each round gives its own c/a, c/b, c/quix and c/kstreams.

Freshness: with the last worker caught up, records are offered at OFFERED_RATE/s for
FRESHNESS_S seconds. Kafka's ack gives each record's partition and offset; a poller
reads the stored offsets every POLL_S, and a record is visible once its partition's
stored offset reaches its own. Its latency runs from the send call to that poll's reply.
"""

from __future__ import annotations

import asyncio
import bisect
import shutil
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
import redis.asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from aiokafka.structs import TopicPartition as KafkaPartition

from aggregates.connect import redis_client
from aggregates.keys import KeyLayout
from aggregates.store import AggregateStore, AsyncAggregateStore
from streams.positions import TopicPartition
from streams.settings import DEALS_TOPIC, INPUT_TOPICS, LEADS_TOPIC, Settings
from tests.bench.common import (
    REPO,
    BenchError,
    Figure,
    Section,
    Target,
    percentile,
    progress,
    span,
)
from tests.bench.peers import run as peers
from tests.bench.peers.job import expected_counts
from tests.feeds import synthetic_feed
from tests.pipeline import Pipeline

LEADS: Final = 125_000  # ~4 records a lead: a little over 500k records
ROUNDS: Final = 3
NAIVE_EVENTS: Final = 50_000
NAIVE_MAX_S: Final = 25.0
#: Far above what the worker needs for 500k records on 2 busy cores (~1 min), short enough to give up.
CATCH_UP_TIMEOUT_S: Final = 300.0
OFFERED_RATE: Final = 2000
FRESHNESS_S: Final = 20.0
FRESHNESS_ROUNDS: Final = 2
FRESHNESS_LEADS: Final = 14_000  # ~4 records a lead: enough for OFFERED_RATE * FRESHNESS_S
#: Freshness poll interval: adds at most this much to a latency, costs Redis ~500 HGETALLs/s.
POLL_S: Final = 0.002
#: Caught-up poll interval of (c): 10 ms in a run of ~50 s is 0.02% of error.
CATCH_UP_POLL_S: Final = 0.01
#: Publish batches: large enough that the feed goes out in seconds, under Kafka's 1 MiB limit.
PUBLISH_BATCH_BYTES: Final = 512 * 1024

TARGET_CEILING_RATIO: Final = Target(0.5, at_least=True)
TARGET_NAIVE_RATIO: Final = Target(10, at_least=True)
TARGET_PEER_RATIO: Final = Target(2, at_least=True)
TARGET_FRESHNESS_P99_MS: Final = Target(250, at_least=False)


@dataclass(frozen=True)
class Freshness:
    """One freshness run: publish-to-visible latencies (ms, sorted) and what was offered."""

    latencies_ms: list[float]
    missing: int  # acknowledged records never seen applied within FRESHNESS_S of the last send
    offered_rate: float  # records/s the sender achieved

    def quantile(self, q: float) -> float:
        return percentile(self.latencies_ms, q) if self.latencies_ms else float("inf")


def run(settings: Settings) -> Section:
    """The whole pipeline benchmark on a running, empty bench stack (see `common.bench_stack`)."""
    peers.check_installed()
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    now_ms = int(time.time() * 1000)
    feed = synthetic_feed(LEADS, now_ms, seed=3, tag="bench")
    expected = expected_counts(feed)  # the feed's order is each partition's order
    progress(f"publishing {len(feed):,} records to {', '.join(INPUT_TOPICS)} (untimed)")
    asyncio.run(publish(settings, feed))
    ends = asyncio.run(input_ends(settings))
    total = sum(ends.values())

    ceiling, naive, naive_events, worker, fresh = [], [], [], [], []
    peer_rates: dict[str, list[float]] = {name: [] for name in peers.PEERS}
    wrong: list[str] = []  # "round N: peer" whose counts differ from the feed's
    pipe: Pipeline | None = None
    try:
        for round_ in range(1, ROUNDS + 1):
            if pipe is not None:  # the last round's worker, idle, would still poll Kafka
                retire(pipe)
                pipe = None
            progress(f"round {round_}/{ROUNDS}: (a) raw getmany, (b) naive worker, peers "
                     f"{', '.join(peers.PEERS)}, (c) leadpulse worker")  # fmt: skip
            ceiling.append(asyncio.run(raw_rate(settings, ends)))
            events, rate = naive_rate(settings, logs)
            naive_events.append(events)
            naive.append(rate)
            for name in peers.PEERS:
                result = peer_rate(name, settings, logs, total)
                peer_rates[name].append(result.rate)
                exact = result.counts == expected
                if not exact:
                    wrong.append(f"round {round_}: {name}")
                progress(f"{name}: {result.rate:,.0f} events/s, counts {'equal to' if exact else 'DIFFER from'} the feed's")
            pipe = Pipeline(settings, logs)
            worker.append(worker_rate(pipe, ends))
            progress(f"(c) leadpulse worker: {worker[-1]:,.0f} events/s")
        assert pipe is not None  # ROUNDS >= 1
        for round_ in range(1, FRESHNESS_ROUNDS + 1):
            progress(f"freshness {round_}/{FRESHNESS_ROUNDS}: {OFFERED_RATE:,} records/s for {FRESHNESS_S:g} s")
            records = synthetic_feed(FRESHNESS_LEADS, now_ms, seed=10 + round_, tag=f"fresh{round_}")
            fresh.append(asyncio.run(freshness(settings, pipe.settings, records[: int(OFFERED_RATE * FRESHNESS_S)])))
    finally:
        if pipe is not None:
            retire(pipe)

    load = f"at {OFFERED_RATE:,} events/s"
    figures = [
        Figure("(a) raw aiokafka getmany (ceiling)", "events/s", tuple(ceiling)),
        Figure("(b) naive: 1 Faust event, 1 EVALSHA", "events/s", tuple(naive)),
        Figure("(c) leadpulse worker", "events/s", tuple(worker)),
        Figure("c/a", "", tuple(c / a for c, a in zip(worker, ceiling)), TARGET_CEILING_RATIO),
        Figure("c/b", "", tuple(c / b for c, b in zip(worker, naive)), TARGET_NAIVE_RATIO),
        Figure("(quix) Quix Streams peer", "events/s", tuple(peer_rates["quix"])),
        Figure("(kstreams) Kafka Streams peer", "events/s", tuple(peer_rates["kstreams"])),
        *(Figure(f"c/{name}", "", tuple(c / p for c, p in zip(worker, peer_rates[name])), TARGET_PEER_RATIO)
          for name in peers.PEERS),
        Figure(f"freshness p50 {load}", "ms", tuple(f.quantile(0.5) for f in fresh)),
        Figure(f"freshness p99 {load}", "ms", tuple(f.quantile(0.99) for f in fresh), TARGET_FRESHNESS_P99_MS),
        Figure(f"freshness max {load}", "ms", tuple(f.quantile(1.0) for f in fresh)),
    ]
    notes = [
        f"{total:,} records on {len(ends)} partitions ({LEADS:,} leads, 5% re-sent, 1% malformed); "
        f"{ROUNDS} rounds of a, b, the peers and c, ratios per round; worker batches of {settings.batch_size:,} "
        f"or {settings.batch_wait_ms} ms",
        f"(b) ran on the first {span(naive_events)} records of each round (at most {NAIVE_EVENTS:,} or "
        f"{NAIVE_MAX_S:g} s), not all {total:,}: at its rate all would take "
        f"~{total / statistics.median(naive) / 60:.0f} min",
        "peers: per-source leads and customers only (docs/bench.md says what each does and does not do); "
        + (f"their counts DIFFER from the feed's in {', '.join(wrong)}" if wrong
           else f"their counts equal the feed's in every round ({len(expected)} sources)"),
        f"freshness: {FRESHNESS_ROUNDS} runs of {span([len(f.latencies_ms) + f.missing for f in fresh])} records, "
        f"offered at {span([f.offered_rate for f in fresh])}/s, stored offsets polled every {POLL_S * 1000:g} ms; "
        f"{sum(f.missing for f in fresh)} never became visible",
    ]
    return Section("pipeline", "Kafka -> worker -> Redis", figures, notes)


def route(raw: bytes, index: int, partitions: int) -> tuple[str, int, bytes | None]:
    """Topic, partition and key as a CRM connector would pick them: a lead's records on one partition.

    crc32 rather than Kafka's murmur2 only because it is fast in Python; which
    partition a lead lands on does not matter, that its records share one does.
    Records without a usable lead id (malformed ones) go round robin.
    """
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        decoded = None
    fields = decoded if isinstance(decoded, dict) else {}
    topic = DEALS_TOPIC if str(fields.get("type", "")).startswith("deal.") else LEADS_TOPIC
    lead = fields.get("lead_id")
    if not isinstance(lead, str):
        return topic, index % partitions, None
    key = lead.encode()
    return topic, zlib.crc32(key) % partitions, key


async def publish(settings: Settings, records: Sequence[bytes]) -> None:
    """Send `records` as large per-partition batches; returns when Kafka acknowledged all."""
    grouped: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for index, raw in enumerate(records):
        topic, partition, key = route(raw, index, settings.topic_partitions)
        grouped[(topic, partition)].append((key, raw))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all",
        max_batch_size=PUBLISH_BATCH_BYTES, max_request_size=2 * PUBLISH_BATCH_BYTES,
    )  # fmt: skip
    await producer.start()
    try:
        pending = []
        for (topic, partition), items in grouped.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def input_ends(settings: Settings) -> dict[TopicPartition, int]:
    """The end offset of every input partition (the bench stack created them all, starting at 0)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [KafkaPartition(t, p) for t in INPUT_TOPICS for p in range(settings.topic_partitions)]
        return {(tp.topic, tp.partition): end for tp, end in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def raw_rate(settings: Settings, ends: dict[TopicPartition, int]) -> float:
    """(a) Records per second of a plain consumer reading every input partition to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [KafkaPartition(*tp) for tp, end in ends.items() if end > 0]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining, records = set(partitions), 0
        started = time.perf_counter()
        while remaining:
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                records += len(batch)
                if batch[-1].offset + 1 >= ends[(tp.topic, tp.partition)]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return records / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def naive_rate(settings: Settings, logs: Path) -> tuple[int, float]:
    """(b) Records and records per second of the naive worker (`tests.bench.naive`)."""
    pipe = Pipeline(settings, logs)
    result = logs / f"naive-{pipe.tag}.json"
    command = [sys.executable, "-m", "tests.bench.naive", str(result), str(NAIVE_EVENTS), str(NAIVE_MAX_S)]
    with (logs / f"naive-{pipe.tag}.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=pipe.env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        process.wait(timeout=NAIVE_MAX_S + 120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if not result.exists():
        raise BenchError(f"the naive worker wrote no result; see {logs / f'naive-{pipe.tag}.log'}")
    figures = orjson.loads(result.read_bytes())
    _clear(pipe.settings)
    return figures["events"], figures["events"] / figures["seconds"]


def peer_rate(name: str, settings: Settings, logs: Path, total: int) -> peers.PeerRun:
    """A peer's rate and counts over all `total` input records, with a fresh group and state."""
    tag = uuid.uuid4().hex[:8]
    state = settings.home / "peers" / f"{name}-{tag}"
    command = peers.command(name, settings.kafka_bootstrap, f"bench-{name}-{tag}", state)
    try:
        return peers.run_peer(name, command, logs / f"{name}-{tag}.log", total, CATCH_UP_TIMEOUT_S)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def worker_rate(pipe: Pipeline, ends: dict[TopicPartition, int], workers: int = 1) -> float:
    """(c) Start `workers` workers on `pipe` and time them from the first applied batch to caught up.

    The workers stay up (caught up) for the freshness run; `retire` stops them. Redis is
    whatever `pipe`'s settings name, one server or a Cluster.
    """
    last = {tp: end - 1 for tp, end in ends.items() if end > 0}
    with redis_client(pipe.settings) as client:
        store = AggregateStore(client, pipe.settings)
        started_workers = [pipe.start_worker() for _ in range(workers)]
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        first: tuple[float, dict[TopicPartition, int]] | None = None
        while True:
            stored = store.read_offsets()
            now = time.perf_counter()
            if first is None and stored:
                first = (now, stored)
            if all(stored.get(tp, -1) >= offset for tp, offset in last.items()):
                break
            if any(w.poll() is not None for w in started_workers) or time.monotonic() > deadline:
                raise BenchError(f"a worker exited or they did not catch up in {CATCH_UP_TIMEOUT_S:g} s; see {pipe.logs}")
            time.sleep(CATCH_UP_POLL_S)
    assert first is not None
    started, before = first
    applied = sum(stored[tp] - before.get(tp, -1) for tp in last)
    return applied / (now - started)


async def freshness(settings: Settings, pipe: Settings, records: Sequence[bytes]) -> Freshness:
    """Offer `records` at OFFERED_RATE to the caught-up worker of `pipe` and time each to visible."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    client = redis.asyncio.from_url(settings.redis_url)
    seen: dict[TopicPartition, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    last_acked: dict[TopicPartition, int] = {}  # filled once every record is acknowledged
    store = AsyncAggregateStore(client, pipe)

    async def poll() -> None:
        """Note, per partition, each new stored offset and when it was first seen."""
        while True:
            stored = await store.read_offsets()
            now = time.perf_counter()
            for tp, value in stored.items():
                offsets, times = seen[tp]
                if not offsets or value > offsets[-1]:
                    offsets.append(value)
                    times.append(now)
            if last_acked and all(seen[tp][0] and seen[tp][0][-1] >= end for tp, end in last_acked.items()):
                return
            await asyncio.sleep(POLL_S)

    await producer.start()
    try:
        poller = asyncio.create_task(poll())
        loop = asyncio.get_running_loop()
        offers = []
        started = loop.time()
        for index, raw in enumerate(records):
            delay = started + index / OFFERED_RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            topic, partition, key = route(raw, index, settings.topic_partitions)
            offers.append((time.perf_counter(), await producer.send(topic, raw, key=key, partition=partition)))
        offered_rate = len(records) / (loop.time() - started)
        acked: list[tuple[float, RecordMetadata]] = [(sent, await future) for sent, future in offers]
        for _, meta in acked:
            tp = (meta.topic, meta.partition)
            last_acked[tp] = max(last_acked.get(tp, -1), meta.offset)
        try:
            await asyncio.wait_for(poller, FRESHNESS_S)
        except asyncio.TimeoutError:
            pass
    finally:
        await producer.stop()
        await client.aclose()
    latencies = [(seen_at - sent) * 1000 for sent, meta in acked if (seen_at := _visible(seen, meta)) is not None]
    return Freshness(sorted(latencies), len(acked) - len(latencies), offered_rate)


def _visible(seen: dict[TopicPartition, tuple[list[int], list[float]]], meta: RecordMetadata) -> float | None:
    """When the poller first saw the stored offset of `meta`'s partition reach `meta`'s offset."""
    offsets, times = seen[(meta.topic, meta.partition)]
    index = bisect.bisect_left(offsets, meta.offset)
    return times[index] if index < len(offsets) else None


def retire(pipe: Pipeline) -> None:
    """Stop a pipeline's workers and drop its keys, so old rounds cost Redis nothing."""
    pipe.stop_workers()
    _clear(pipe.settings)


def _clear(settings: Settings) -> None:
    with redis_client(settings) as client:
        AggregateStore(client, settings).clear()

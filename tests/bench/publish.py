"""`leadpulse publish` events/s beside the raw ceilings of three Kafka clients, and its peak memory.

On the bench stack, a synthetic feed of LEADS leads (`tests.feeds`, ~405k records, 1%
malformed) is written to a JSON Lines file. Each of ROUNDS rounds, one after the other:
  publish      `streams.ingest.publish.publish` on the file, in this process: reading,
               validation (the msgspec fast path), routing, acks=all, every delivery
               report counted;
  kafka-python `KafkaProducer.send` per record, then `flush`, on the first
               KAFKA_PYTHON_RECORDS records (the whole feed takes half a minute);
  confluent    confluent-kafka `Producer.produce` per record, idempotent, then `flush`;
  aiokafka     `create_batch` / `send_batch`, one batch per partition at a time, the
               partition from aiokafka's own murmur2 partitioner, then every batch's future.
The three ceilings send the feed's bytes as they are, keyed by `lead_id` (keys extracted
beforehand, untimed), with acks=all, to a topic of their own with the input topics'
partition count: nothing else, so each is that client's upper bound for `publish`.

Peak memory: `leadpulse publish` as a subprocess on a quarter of the feed and on the feed
repeated REPEAT times; the peak RSS of each (its VmHWM) shows whether memory grows with the
file. Their wall time, start-up included, gives the command's own events/s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Final

import orjson

from streams.ingest.publish import publish
from streams.settings import Settings
from streams.stack.probes import kafka_admin
from tests.bench.common import REPO, BenchError, Figure, Section, Target, progress
from tests.feeds import synthetic_feed

LEADS: Final = 100_000
ROUNDS: Final = 3
KAFKA_PYTHON_RECORDS: Final = 40_000
CEILING_TOPIC: Final = "bench.publish-ceiling"
PARTITIONS: Final = 6  # the input topics' count (`streams.stack`)
REPEAT: Final = 4
#: aiokafka batches: as large as Kafka's default 1 MiB request allows with headroom.
BATCH_BYTES: Final = 512 * 1024

TARGET_PUBLISH: Final = Target(100_000, at_least=True)

Keyed = list[tuple[bytes | None, bytes]]


def run(settings: Settings) -> Section:
    """The publish benchmark on a running bench stack (see `common.bench_stack`)."""
    feed = synthetic_feed(LEADS, int(time.time() * 1000), seed=5, tag="bench-publish")
    path = settings.home / "publish-feed.jsonl"
    path.write_bytes(b"\n".join(feed) + b"\n")
    keyed = [(_lead_id(raw), raw) for raw in feed]
    _create_ceiling_topic(settings)
    rates: dict[str, list[float]] = defaultdict(list)
    for round_ in range(1, ROUNDS + 1):
        progress(f"publish round {round_}/{ROUNDS}: publish, kafka-python, confluent-kafka, aiokafka ({len(feed):,} records)")
        rates["publish"].append(_timed_publish(path, settings, len(feed)))
        rates["kafka-python"].append(_kafka_python(settings, keyed[:KAFKA_PYTHON_RECORDS]))
        rates["confluent"].append(_confluent(settings, keyed))
        rates["aiokafka"].append(asyncio.run(_aiokafka(settings, keyed)))
    progress(f"publish: peak memory of `leadpulse publish` on 1/4 of the feed and on the feed x{REPEAT}")
    small, large = settings.home / "publish-small.jsonl", settings.home / "publish-large.jsonl"
    small.write_bytes(b"\n".join(feed[: len(feed) // 4]) + b"\n")
    large.write_bytes((b"\n".join(feed) + b"\n") * REPEAT)
    small_rss, _ = _command(small, settings)
    large_rss, large_s = _command(large, settings)
    figures = [
        Figure("publish (validation included), events/s", "", tuple(rates["publish"]), TARGET_PUBLISH),
        Figure("kafka-python send per record, events/s", "", tuple(rates["kafka-python"])),
        Figure("confluent-kafka produce per record, events/s", "", tuple(rates["confluent"])),
        Figure("aiokafka send_batch, events/s", "", tuple(rates["aiokafka"])),
        Figure(f"`leadpulse publish` on {len(feed) * REPEAT:,} records, start-up included, events/s", "", (len(feed) * REPEAT / large_s,)),
        Figure(f"peak RSS, {len(feed) // 4:,} records ({small.stat().st_size / 2**20:.0f} MiB)", "MiB", (small_rss,)),
        Figure(f"peak RSS, {len(feed) * REPEAT:,} records ({large.stat().st_size / 2**20:.0f} MiB)", "MiB", (large_rss,)),
    ]
    notes = [
        f"{len(feed):,} records of {LEADS:,} leads, acks=all, keyed by lead_id, one local broker",
        f"kafka-python on the first {KAFKA_PYTHON_RECORDS:,} records; the ceilings send to {CEILING_TOPIC}",
    ]
    for scratch in (path, small, large):
        scratch.unlink()
    return Section("publish", "leadpulse publish against the raw producer ceilings", figures, notes)


def _lead_id(raw: bytes) -> bytes | None:
    try:
        lead_id = orjson.loads(raw).get("lead_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return lead_id.encode() if isinstance(lead_id, str) else None


def _create_ceiling_topic(settings: Settings) -> None:
    from kafka.admin import NewTopic

    admin = kafka_admin(settings, 10.0)
    try:
        if CEILING_TOPIC not in admin.list_topics():
            admin.create_topics([NewTopic(CEILING_TOPIC, PARTITIONS, 1)])
    finally:
        admin.close()


def _timed_publish(path: Path, settings: Settings, records: int) -> float:
    started = time.perf_counter()
    summary = publish([str(path)], settings)
    elapsed = time.perf_counter() - started
    if not summary.ok or summary.sent + summary.rejected != records:
        raise BenchError(f"publish did not get every record acknowledged: {summary}")
    return records / elapsed


def _kafka_python(settings: Settings, keyed: Keyed) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    try:
        started = time.perf_counter()
        for key, value in keyed:
            producer.send(CEILING_TOPIC, value, key=key)
        producer.flush()
        return len(keyed) / (time.perf_counter() - started)
    finally:
        producer.close()


def _confluent(settings: Settings, keyed: Keyed) -> float:
    from confluent_kafka import Producer

    failed = 0

    def delivered(error: object, _: object) -> None:
        nonlocal failed
        failed += error is not None

    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20,
         "partitioner": "murmur2_random", "queue.buffering.max.messages": 100_000, "on_delivery": delivered}
    )  # fmt: skip
    started = time.perf_counter()
    for key, value in keyed:
        while True:
            try:
                producer.produce(CEILING_TOPIC, value, key)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush()
    elapsed = time.perf_counter() - started
    if failed:
        raise BenchError(f"confluent-kafka: {failed} records not acknowledged")
    return len(keyed) / elapsed


async def _aiokafka(settings: Settings, keyed: Keyed) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, max_batch_size=BATCH_BYTES
    )
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(CEILING_TOPIC))
        partitioner = producer._partitioner  # the one `send` uses: murmur2 of the key
        started = time.perf_counter()
        batches = {p: producer.create_batch() for p in partitions}
        futures = []
        for key, value in keyed:
            partition = partitioner(key, partitions, partitions)
            batch = batches[partition]
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, CEILING_TOPIC, partition=partition))
                batches[partition] = batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            futures.append(await producer.send_batch(batch, CEILING_TOPIC, partition=partition))
        await asyncio.gather(*futures)
        return len(keyed) / (time.perf_counter() - started)
    finally:
        await producer.stop()


#: `leadpulse ARGS`, then its peak RSS (VmHWM: this process's own, unlike `ru_maxrss`,
#: which counts the forking parent's) as the last line on stderr.
_PEAK_RSS = """
import atexit, sys
from streams.cli import main
atexit.register(lambda: print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0], file=sys.stderr))
sys.argv[0] = "leadpulse"
main()
"""


def _command(path: Path, settings: Settings) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time (s) of `leadpulse publish path`."""
    env = {**os.environ, "LEADPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, "publish", str(path)], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"leadpulse publish {path.name} exited {done.returncode}: {done.stderr.strip()}")
    return int(done.stderr.split()[-2]) / 1024, elapsed

"""Drive the real pipeline from tests: workers as processes, records on the real topics.

A `Pipeline` has its own Redis key prefix and consumer group on the shared test stack,
so its workers start from the beginning of the topics. The expected numbers are the
reference model applied to everything the topics hold, which is exactly what the
contract says the aggregates are a function of.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from aiokafka.structs import TopicPartition as AioPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from aggregates.connect import redis_client
from aggregates.errors import REDIS_ERRORS
from aggregates.series import Series
from aggregates.store import AggregateStore
from streams.events import Event, parse_record
from streams.kafka.clients import client_options
from streams.kafka.diagnose import run_private
from streams.settings import DEALS_TOPIC, INPUT_TOPICS, LEADS_TOPIC, Settings
from tests.aggregates.reference import reference_series

LEADPULSE = str(Path(sys.executable).with_name("leadpulse"))


@dataclass
class Pipeline:
    base: Settings
    logs: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: False keeps the base settings' consumer group: the one a secured broker's ACLs name.
    own_group: bool = True

    @property
    def settings(self) -> Settings:
        update = {"key_prefix": f"w{self.tag}"} | ({"consumer_group": f"g{self.tag}"} if self.own_group else {})
        return self.base.model_copy(update=update)

    def env(self) -> dict[str, str]:
        """The environment of this pipeline's commands: every setting that says where and how to connect."""
        s = self.settings
        env = {
            **os.environ,
            "LEADPULSE_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
            "LEADPULSE_REDIS_URL": s.redis_url,
            "LEADPULSE_REDIS_CLUSTER": str(s.redis_cluster).lower(),
            "LEADPULSE_KEY_PREFIX": s.key_prefix,
            "LEADPULSE_CONSUMER_GROUP": s.consumer_group,
            "LEADPULSE_HOME": str(s.home),
            "LEADPULSE_KAFKA_SECURITY_PROTOCOL": s.kafka_security_protocol,
            "LEADPULSE_KAFKA_SASL_MECHANISM": s.kafka_sasl_mechanism,
        }
        optional = {
            "LEADPULSE_KAFKA_SASL_USERNAME": s.kafka_sasl_username,
            "LEADPULSE_KAFKA_SASL_PASSWORD": s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None,
            "LEADPULSE_KAFKA_SSL_CAFILE": s.kafka_ssl_cafile,
            "LEADPULSE_KAFKA_SSL_CERTFILE": s.kafka_ssl_certfile,
            "LEADPULSE_KAFKA_SSL_KEYFILE": s.kafka_ssl_keyfile,
        }
        for name, value in optional.items():
            env.pop(name, None)
            if value is not None:
                env[name] = str(value)
        return env

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{self.tag}-{len(self.workers)}.log").open("wb")
        worker = subprocess.Popen([LEADPULSE, "worker"], env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(worker)
        return worker

    def stop_workers(self, sig: signal.Signals = signal.SIGTERM) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(sig)
        for worker in self.workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def publish_raw(self, records: list[bytes]) -> None:
        """Write records straight to the input topics, as any producer might (no validation)."""
        producer = KafkaProducer(**client_options(self.settings).kwargs(), acks="all", linger_ms=5)
        for i, raw in enumerate(records):
            try:
                decoded = orjson.loads(raw)
            except orjson.JSONDecodeError:
                decoded = None
            is_deal = isinstance(decoded, dict) and str(decoded.get("type", "")).startswith("deal.")
            lead = decoded.get("lead_id") if isinstance(decoded, dict) else None
            key = lead.encode() if isinstance(lead, str) else None
            # Deals to the deals topic, leads to the leads topic; records with no readable
            # type alternate, so both topics carry bad records.
            topic = DEALS_TOPIC if is_deal else LEADS_TOPIC if key is not None else INPUT_TOPICS[i % 2]
            producer.send(topic, raw, key=key)
        producer.flush(60)
        producer.close()

    def records_up_to(self, last: dict[tuple[str, int], int]) -> list[bytes]:
        """The input records at or below each partition's `last` offset."""
        return [r.value for r in read_up_to(self.settings, last)]

    def stored_offsets(self) -> dict[tuple[str, int], int]:
        with redis_client(self.settings) as client:
            return AggregateStore(client, self.settings).read_offsets()

    def wait_caught_up(self, timeout: float = 120) -> None:
        """Until Redis's stored offsets reach the end every non-empty partition has now."""
        consumer = KafkaConsumer(**client_options(self.settings).kwargs())
        partitions, starts, ends = _extent(consumer)
        consumer.close()
        last = {(tp.topic, tp.partition): ends[tp] - 1 for tp in partitions if ends[tp] > starts[tp]}
        deadline = time.monotonic() + timeout
        stored: dict[tuple[str, int], int] = {}
        while time.monotonic() < deadline:
            try:
                stored = self.stored_offsets()
            except REDIS_ERRORS:
                stored = {}
            if all(stored.get(tp, -1) >= offset for tp, offset in last.items()):
                return
            time.sleep(0.1)  # one small Redis read: the test goes on as soon as the worker is there
        raise AssertionError(f"workers did not catch up in {timeout}s: stored {stored}, want {last}")

    def report(self, as_of: date | None = None) -> list[Series]:
        """`leadpulse report --json` of this pipeline (as of today, or `as_of`), as the operator
        would run it (workers stopped)."""
        out = subprocess.run(
            [LEADPULSE, "report", "--json", "--as-of", (as_of or self.settings.today()).isoformat()],
            env=self.env(), check=True, capture_output=True, timeout=60,
        ).stdout
        return [Series(s["name"], s["labels"], s["value"]) for s in orjson.loads(out)]

    def expected(self) -> list[Series]:
        """The reference model over every valid record Redis says it has applied.

        Call with the workers stopped, so the aggregates and the offsets stand still
        even when other producers keep writing to the shared topics.
        """
        now_ms = int(time.time() * 1000)
        records = self.records_up_to(self.stored_offsets())
        events = [e for e in (parse_record(r, now_ms) for r in records) if isinstance(e, Event)]
        s = self.settings
        return reference_series(events, s.today(), s.window_days, s.max_segments, s.attribute_keys)


def _extent(consumer: KafkaConsumer) -> tuple[list[TopicPartition], dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The input partitions with their earliest retained and end offsets."""
    partitions = [TopicPartition(t, p) for t in INPUT_TOPICS for p in consumer.partitions_for_topic(t) or ()]
    return partitions, consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)


def read_up_to(settings: Settings, last: Mapping[tuple[str, int], int], timeout_s: float = 300) -> list[ConsumerRecord]:
    """Every record of the partitions in `last`, from the earliest retained up to its `last` offset.

    Read with aiokafka: it decodes record batches in C, about ten times as fast as
    kafka-python, and the tests read whole shared topics many times a session.
    """
    return run_private(_read_up_to(settings, last, timeout_s))


async def _read_up_to(settings: Settings, last: Mapping[tuple[str, int], int], timeout_s: float) -> list[ConsumerRecord]:
    # Assigned partitions start from the earliest record by themselves: an explicit
    # `seek_to_beginning` can lose the race with the reset `assign` starts, and stay at the end.
    consumer = AIOKafkaConsumer(**client_options(settings).kwargs(), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [AioPartition(topic, partition) for topic, partition in last]
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        remaining = {tp for tp in partitions if last[(tp.topic, tp.partition)] >= starts[tp]}
        consumer.pause(*(set(partitions) - remaining))
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while remaining:
            assert time.monotonic() < deadline, f"records up to {dict(last)} not read in {timeout_s}s"
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                end = last[(tp.topic, tp.partition)]
                records += [r for r in batch if r.offset <= end]
                if batch and batch[-1].offset >= end:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return records
    finally:
        await consumer.stop()

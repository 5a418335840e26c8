"""A local stack of three Kafka brokers (KRaft, replication 3, `min.insync.replicas=2`) through a broker's death.

The brokers start once for the module, under a home of their own and on free ports;
Redis is the test stack's. What `publish` had acknowledged (`acks=all`) must all be
counted, once, after one broker is SIGKILLed in mid-stream and restarted; the same for
what the ingest API accepted (2xx).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams import stack
from streams.events import Event, parse_record
from streams.ingest.api import create_app
from streams.settings import Settings
from streams.stack.probes import kafka_admin
from tests import services
from tests.aggregates.reference import assert_same_series, reference_series
from tests.feeds import synthetic_feed
from tests.pipeline import LEADPULSE, Pipeline
from tests.streams.ingest.test_api import NDJSON, SECRET, RunningApi

pytestmark = pytest.mark.integration

BROKERS = 3
#: Three JVMs formatted and started one after the other, and a quorum to elect, on 2 busy cores.
START_TIMEOUT_S = 300.0
#: How long a broker may take to learn the topics another broker created (busy 2 cores).
METADATA_WAIT_S = 30.0


@pytest.fixture(scope="module")
def brokers(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("brokers")
    bootstrap = ",".join(f"127.0.0.1:{services.free_port()}" for _ in range(BROKERS))
    settings = stack_settings.model_copy(
        update={"home": home, "kafka_bootstrap": bootstrap, "kafka_controller_port": services.free_port_run(BROKERS)}
    )
    try:
        stack.up(settings, ["kafka"], timeout=START_TIMEOUT_S)
        yield settings
    finally:
        stack.down(settings)


def test_stack_up_makes_topics_with_three_replicas_and_two_in_sync_needed(brokers: Settings) -> None:
    admin = kafka_admin(brokers, 10.0)
    try:
        # Each broker learns new topics from the controller in its own time: a broker
        # other than the one `stack up` asked may still answer without partitions.
        deadline = time.monotonic() + METADATA_WAIT_S
        while True:
            topics = admin.describe_topics(list(stack.TOPICS))
            if all(t["partitions"] for t in topics) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        configs = admin.describe_configs([_topic_config(t) for t in stack.TOPICS])
    finally:
        admin.close()
    assert {len(p["replica_nodes"]) for t in topics for p in t["partitions"]} == {BROKERS}
    assert {topic: values["min.insync.replicas"]["value"] for topic, values in configs["topic"].items()} == dict.fromkeys(stack.TOPICS, "2")


def test_publish_and_two_workers_through_a_broker_sigkill_and_restart_lose_and_double_nothing(
    brokers: Settings, tmp_path: Path
) -> None:
    pipe = Pipeline(brokers, tmp_path)
    now_ms = int(time.time() * 1000)
    feed = synthetic_feed(3000, now_ms, seed=41, tag=pipe.tag)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"\n".join(feed[: len(feed) // 2]) + b"\n")
    second.write_bytes(b"\n".join(feed[len(feed) // 2 :]) + b"\n")
    stack.up(brokers, ["kafka"], timeout=START_TIMEOUT_S)  # all three, whatever an earlier test left
    try:
        pipe.start_worker(), pipe.start_worker()
        assert _publish(pipe, first).returncode == 0
        publishing = subprocess.Popen([LEADPULSE, "publish", str(second)], env=pipe.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # mid-stream: records in flight to every broker
        stack.kill_service(brokers, "kafka-2")
        output, _ = publishing.communicate(timeout=180)
        assert publishing.returncode == 0, output.decode()  # every valid record acknowledged by the in-sync replicas
        stack.start_service(brokers, "kafka-2")
        pipe.wait_caught_up(timeout=180)
        assert all(w.poll() is None for w in pipe.workers), "the workers carried on through the broker's death"
        pipe.stop_workers()
        events = [e for e in (parse_record(r, now_ms) for r in feed) if isinstance(e, Event)]
        s = pipe.settings
        assert_same_series(pipe.report(), reference_series(events, s.today(), s.window_days, s.max_segments, s.attribute_keys))
    finally:
        pipe.stop_workers()


def test_the_api_through_a_broker_sigkill_loses_no_acknowledged_record_and_doubles_nothing(
    brokers: Settings, tmp_path: Path
) -> None:
    pipe = Pipeline(brokers, tmp_path)
    feed = synthetic_feed(1500, int(time.time() * 1000), seed=42, tag=pipe.tag)
    chunks = [feed[i : i + 100] for i in range(0, len(feed), 100)]
    stack.up(brokers, ["kafka"], timeout=START_TIMEOUT_S)  # all three, whatever an earlier test left
    api = RunningApi(create_app(pipe.settings.model_copy(update={"ingest_secret": SecretStr(SECRET)})))
    try:
        pipe.start_worker()
        for n, chunk in enumerate(chunks):
            if n == len(chunks) // 3:
                stack.kill_service(brokers, "kafka-2")
            # A CRM retries what was not acknowledged; re-sent records count once.
            while (answer := api.post("/v1/events", b"\n".join(chunk) + b"\n", NDJSON)).status // 100 != 2:
                assert answer.status == 503, answer.body
                time.sleep(1.0)
        stack.start_service(brokers, "kafka-2")
        pipe.wait_caught_up(timeout=180)
        pipe.stop_workers()
    finally:
        pipe.stop_workers()
        api.close()
    # The topics also hold the previous test's feed: the reference reads what Redis says it applied.
    assert_same_series(pipe.report(), pipe.expected())


def _publish(pipe: Pipeline, path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([LEADPULSE, "publish", str(path)], env=pipe.env(), capture_output=True, timeout=180)


def _topic_config(topic: str) -> object:
    from kafka.admin import ConfigResource, ConfigResourceType

    return ConfigResource(ConfigResourceType.TOPIC, topic)

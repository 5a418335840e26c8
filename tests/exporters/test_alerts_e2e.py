"""A conversion drop travels the whole way: publish -> Kafka -> worker -> Redis -> exporter
-> Prometheus (the shipped rules) -> Alertmanager (the shipped route) -> a webhook.

Everything is real and started by this module on its own ports, except Kafka and Redis,
which are the test stack's. Only timings differ from production: 1 s scrape and rule
evaluation, `for: 2s`, 1 s Alertmanager grouping (see tests/monitoring.py).
The worker's offsets are seeded at the topics' current ends, so it reads only what
this test publishes (and whatever other tests publish meanwhile), not the backlog.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from aggregates.store import AggregateStore
from exporters.lag import EndOffsets
from streams.kafka.clients import client_options
from streams.settings import Settings
from tests.monitoring import (
    LEADPULSE,
    Prometheus,
    WebhookReceiver,
    alertmanager,
    conversion_feed,
    exporter,
    prometheus,
    running,
    wait_until,
)

pytestmark = pytest.mark.integration

PIPELINE_TIMEOUT = 120.0  # worker start (~15 s on 2 busy cores) + apply + scrape + rules + notification


@pytest.fixture(scope="module")
def tag() -> str:
    return f"e2e{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def settings(stack_settings: Settings, tag: str) -> Iterator[Settings]:
    """This pipeline's settings, its offsets seeded at the ends of the shared topics."""
    ours = stack_settings.model_copy(update={"key_prefix": tag, "consumer_group": tag})
    reader = EndOffsets(client_options(ours), timeout_s=10)
    ends = reader.read()
    reader.close()
    assert ends, "the test stack's Kafka did not answer"
    with redis.Redis.from_url(ours.redis_url) as client:
        client.hset(f"{tag}:offsets", mapping={f"{topic}|{partition}": end - 1 for (topic, partition), end in ends.items()})
        yield ours
        AggregateStore(client, ours).clear()


@pytest.fixture(scope="module")
def pipeline(settings: Settings, tag: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, WebhookReceiver]]:
    """Webhook, Alertmanager, exporter, Prometheus and a worker, all running; then the feed is published."""
    workdir = tmp_path_factory.mktemp("e2e")
    env = {
        "LEADPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LEADPULSE_REDIS_URL": settings.redis_url,
        "LEADPULSE_KEY_PREFIX": settings.key_prefix,
        "LEADPULSE_CONSUMER_GROUP": settings.consumer_group,
    }
    receiver = WebhookReceiver()
    with (
        receiver.serving() as webhook,
        alertmanager(workdir, webhook) as alertmanager_port,
        exporter(env, workdir) as metrics,
        prometheus(workdir, metrics, alertmanager_port) as prom,
        running([str(LEADPULSE), "worker"], workdir / "worker.log", lambda: True, env, cwd=workdir),
    ):
        publish(feed(tag), workdir, env)
        yield prom, receiver


def feed(tag: str) -> list[dict[str, Any]]:
    """`<tag>_dropping` converts 25% of 400 leads, then 5 of its last 100; `<tag>_steady` 25% throughout."""
    now = datetime.now(timezone.utc)
    return conversion_feed(now, tag, f"{tag}_dropping", (400, 100), (100, 5)) + conversion_feed(
        now, tag, f"{tag}_steady", (400, 100), (100, 25)
    )


def publish(events: list[dict[str, Any]], workdir: Path, env: dict[str, str]) -> None:
    path = workdir / "feed.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    done = subprocess.run([str(LEADPULSE), "publish", str(path)], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert f"sent {len(events)}, rejected 0" in done.stdout + done.stderr


def test_a_real_drop_reaches_the_webhook_as_a_critical_lead_conversion_drop(
    pipeline: tuple[Prometheus, WebhookReceiver], tag: str
) -> None:
    _, receiver = pipeline
    labels = {"alertname": "LeadConversionDrop", "dimension": "source", "segment": f"{tag}_dropping"}
    alert = wait_until(lambda: receiver.alerts(**labels), PIPELINE_TIMEOUT, f"{labels} at the webhook")[0]
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == "critical"  # 25% -> 5%: an 80% drop
    assert alert["annotations"]["summary"] == f"source={tag}_dropping: period conversion 80% below its baseline"
    assert "Last 7 days 5% against 25%" in alert["annotations"]["description"]


def test_the_steady_segment_of_the_same_feed_raises_nothing(pipeline: tuple[Prometheus, WebhookReceiver], tag: str) -> None:
    prom, receiver = pipeline
    wait_until(lambda: receiver.alerts(segment=f"{tag}_dropping"), PIPELINE_TIMEOUT, "the dropping segment's alert")
    steady = prom.query(f'segment:leadpulse_period_conversion_ratio:recent7d{{segment="{tag}_steady"}}')
    assert [float(s["value"][1]) for s in steady] == [0.25]  # evaluated by the same rules...
    assert not [a for a in prom.alerts() if a["labels"].get("segment") == f"{tag}_steady"]  # ...and quiet
    assert not receiver.alerts(segment=f"{tag}_steady")

"""The Faust application of a worker: lifecycle, signals and logging, no Faust consumer.

The batch consumer (`streams.worker.consumer`) reads Kafka itself, so Faust's own
consumer, producer and web server stay off; exactness does not rest on Faust at all:
the aggregates are idempotent and the applied offsets live in Redis (`streams.positions`).
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.app.base import BootStrategy

from streams.kafka.clients import client_options
from streams.settings import Settings


class _LifecycleOnly(BootStrategy):
    """Start no Kafka client and no web server of Faust's: the worker's service owns its clients."""

    enable_kafka = False
    enable_web = False


class WorkerApp(faust.App):
    BootStrategy = _LifecycleOnly


def create_app(settings: Settings, datadir: Path, *, faust_consumer: bool = False) -> faust.App:
    """The worker's app; ``faust_consumer`` keeps Faust's record-at-a-time consumer (the naive bench's).

    Faust creates its data directory at start even though the worker keeps no table
    (``memory://``); left to its default, that is ``<consumer group>-data`` in the working
    directory, so the caller names a scratch ``datadir`` of its own.
    """
    app_class = faust.App if faust_consumer else WorkerApp
    kafka = client_options(settings)
    return app_class(
        settings.consumer_group,
        broker=f"kafka://{kafka.bootstrap}",
        broker_credentials=kafka.faust_credentials(),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        web_enabled=False,
        datadir=datadir,
    )

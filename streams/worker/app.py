"""The Faust application: one consumer group over the lead and deal topics.

Faust gives partition assignment, rebalancing and batching (`take_events`); exactness
does not rest on it: the aggregates are idempotent and the applied offsets live in
Redis (see `streams.positions`), so Faust's own commits are only a starting hint.
"""

from __future__ import annotations

import faust

from streams.kafka.clients import client_options
from streams.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired to the configured broker; no web server, no changelog tables."""
    kafka = client_options(settings)
    return faust.App(
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
        # A crashed worker's partitions wait this long before another worker takes
        # them; Faust's 60 s default would stall the pipeline for a minute.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        # A worker holds at most a few batches in memory; larger buffers only delay
        # the seek back after Redis lost writes.
        stream_buffer_maxsize=max(4096, 2 * settings.batch_size),
        stream_wait_empty=False,
        web_enabled=False,
        # Concurrency 1 per agent: with more, Faust commits past in-flight messages
        # (faust-streaming issue 606).
        agent_supervisor="mode.OneForOneSupervisor",
    )

"""Start one Faust worker with the aggregation agent and its Redis store."""

from __future__ import annotations

import faust
import redis.asyncio

from aggregates.store import AsyncAggregateStore
from streams.worker.agents import register_agents
from streams.worker.app import create_app
from streams.kafka.clients import KafkaAccessError, client_options
from streams.kafka.diagnose import diagnose_sync
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; a SIGKILL loses nothing (see streams.positions).

    Raises `KafkaAccessError` first if Kafka refuses this worker (credentials,
    certificates, ACLs) or cannot be reached, so its supervisor sees an exit status
    and the reason instead of a worker retrying silently.
    """
    kafka = client_options(settings)
    cause = diagnose_sync(kafka, [*INPUT_TOPICS, REJECTED_TOPIC], settings.consumer_group)
    if cause is not None:
        raise KafkaAccessError(cause)
    app = create_app(settings)
    store = AsyncAggregateStore(redis.asyncio.from_url(settings.redis_connect_url), settings)
    register_agents(app, settings, store)
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()

"""Start one worker: the Faust app running the batch consumer with its Redis store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import faust

from aggregates.connect import async_redis_client, note_cluster_nodes
from aggregates.store import AsyncAggregateStore
from streams.kafka.clients import KafkaAccessError, client_options
from streams.kafka.diagnose import diagnose_sync
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings
from streams.worker.app import create_app
from streams.worker.consumer import BatchConsumer


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
    note_cluster_nodes(settings)
    # Nothing lasting goes in Faust's data directory: a temporary one, removed on exit.
    with tempfile.TemporaryDirectory(prefix="leadpulse-worker-") as datadir:
        app = create_app(settings, Path(datadir))
        store = AsyncAggregateStore(async_redis_client(settings), settings)
        # Faust starts instances as well as classes (App._prepare_subservice).
        app.service(BatchConsumer(settings, store, loop=app.loop, beacon=app.beacon))  # type: ignore[arg-type]
        faust.Worker(app, loglevel=loglevel).execute_from_commandline()

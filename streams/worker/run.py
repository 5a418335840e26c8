"""Start one worker: the Faust app running the batch consumer with its Redis store."""

from __future__ import annotations

import faust
import redis.asyncio

from aggregates.store import AsyncAggregateStore
from streams.settings import Settings
from streams.worker.app import create_app
from streams.worker.consumer import BatchConsumer


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; a SIGKILL loses nothing (see streams.positions)."""
    app = create_app(settings)
    store = AsyncAggregateStore(redis.asyncio.from_url(settings.redis_url), settings)
    # Faust starts instances as well as classes (App._prepare_subservice).
    app.service(BatchConsumer(settings, store, loop=app.loop, beacon=app.beacon))  # type: ignore[arg-type]
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()

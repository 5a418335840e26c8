"""Start one Faust worker with the aggregation agent and its Redis store."""

from __future__ import annotations

import faust
import redis.asyncio

from aggregates.store import AsyncAggregateStore
from streams.worker.agents import register_agents
from streams.worker.app import create_app
from streams.settings import Settings


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM/SIGINT; a SIGKILL loses nothing (see streams.positions)."""
    app = create_app(settings)
    store = AsyncAggregateStore(redis.asyncio.from_url(settings.redis_url), settings)
    register_agents(app, settings, store)
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()

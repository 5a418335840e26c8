"""The naive worker of the pipeline benchmark (b): one Faust event at a time, one Redis call each.

    python -m tests.bench.naive RESULT.json MAX_EVENTS MAX_SECONDS   (settings from LEADPULSE_*)

Faust's own record-at-a-time consumer (`create_app(faust_consumer=True)`), the same
parsing and Lua script, but `async for value in stream` and `AsyncAggregateStore.apply([event])` per
event: one EVALSHA round trip per event, which is what batching is measured against.
Invalid records are skipped without a Redis call. After MAX_EVENTS records or
MAX_SECONDS from the first one it writes `{"events": n, "seconds": s}` to RESULT.json
and stops itself.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import faust
import orjson
import redis.asyncio

from aggregates.store import AsyncAggregateStore
from streams.worker.app import create_app
from streams.events import Event, parse_record
from streams.settings import INPUT_TOPICS, Settings


def main(result: Path, max_events: int, max_seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="leadpulse-naive-") as datadir:
        run(result, max_events, max_seconds, Path(datadir))


def run(result: Path, max_events: int, max_seconds: float, datadir: Path) -> None:
    settings = Settings()
    app = create_app(settings, datadir, faust_consumer=True)
    store = AsyncAggregateStore(redis.asyncio.from_url(settings.redis_url), settings)
    source = app.topic(*INPUT_TOPICS, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="bench.naive")
    async def naive(stream: faust.StreamT) -> None:
        events, started = 0, 0.0
        async for value in stream:
            if not events:
                started = time.perf_counter()
            event = parse_record(value, int(time.time() * 1000))
            if isinstance(event, Event):
                await store.apply([event])
            events += 1
            elapsed = time.perf_counter() - started
            if events >= max_events or elapsed >= max_seconds:
                result.write_bytes(orjson.dumps({"events": events, "seconds": elapsed}))
                os.kill(os.getpid(), signal.SIGTERM)  # the Faust worker's graceful shutdown
                return

    faust.Worker(app, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))

"""The ingest API: events/s accepted and request latency at batch sizes 1, 100 and 1,000.

Runs `leadpulse api` as its own process (as in production, so server and load generator
do not share one event loop) against the bench stack's Kafka, then posts signed JSON
Lines batches of fresh `lead.created` events from CONCURRENCY clients for
SECONDS_PER_SIZE per size, ROUNDS times. A request counts only when answered 202 with
every event accepted, i.e. after Kafka acknowledged them all. The events (ids and leads
`bench-<run>-...`, source `bench`) do reach the bench stack's topics.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Final

import aiohttp

from streams.settings import Settings
from streams.ingest.signing import SIGNATURE_HEADER, sign
from tests.bench.common import REPO, BenchError, Figure, Section, Target, percentile, progress
from tests.services import free_port

SIZES: Final = (1, 100, 1000)
SECONDS_PER_SIZE: Final = 3.0
ROUNDS: Final = 3
#: Enough requests in flight to keep the server busy, few enough for 2 cores.
CONCURRENCY: Final = 8
START_TIMEOUT_S: Final = 30.0
#: Events/s accepted at the largest batch: what a bulk sender should get from one API process.
TARGET_BULK: Final = Target(80_000, at_least=True)


@dataclass(frozen=True)
class Measurement:
    """One batch size for SECONDS_PER_SIZE; latencies are whole requests (sign, send, Kafka acks, answer)."""

    batch_size: int
    events_per_second: float
    p50_ms: float
    p99_ms: float


def run(settings: Settings) -> Section:
    """Start the API on a free port, measure each batch size ROUNDS times, stop the API."""
    secret = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "LEADPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "LEADPULSE_INGEST_SECRET": secret}
    command = [sys.executable, "-m", "streams.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    progress(f"ingest API: {ROUNDS} rounds of {SECONDS_PER_SIZE:g} s per batch size")
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        results = asyncio.run(_measure_all(f"http://127.0.0.1:{port}", secret.encode()))
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures = []
    for size in SIZES:
        mine = [r for r in results if r.batch_size == size]
        figures += [
            Figure(
                f"batch {size:,}: accepted",
                "events/s",
                tuple(r.events_per_second for r in mine),
                TARGET_BULK if size == max(SIZES) else None,
            ),
            Figure(f"batch {size:,}: p50 latency", "ms", tuple(r.p50_ms for r in mine)),
            Figure(f"batch {size:,}: p99 latency", "ms", tuple(r.p99_ms for r in mine)),
        ]
    notes = [f"{CONCURRENCY} concurrent clients, signed JSON Lines, 202 only after Kafka acks=all"]
    return Section("api", "ingest API against the bench Kafka", figures, notes)


async def _measure_all(url: str, secret: bytes) -> list[Measurement]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await _wait_healthy(session, url)
        return [await _measure(session, url, secret, size) for _ in range(ROUNDS) for size in SIZES]


async def _wait_healthy(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            async with session.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"the API at {url} did not become healthy (is Kafka up?)")
        await asyncio.sleep(0.2)


async def _measure(session: aiohttp.ClientSession, url: str, secret: bytes, size: int) -> Measurement:
    run_id = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    counter = iter(range(sys.maxsize))
    end = time.perf_counter() + SECONDS_PER_SIZE

    async def client() -> None:
        while time.perf_counter() < end:
            body = b"\n".join(_event(run_id, next(counter)) for _ in range(size))
            headers = {"Content-Type": "application/x-ndjson", SIGNATURE_HEADER: sign(secret, body)}
            started = time.perf_counter()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
                answer = await response.json()
            if response.status != 202 or answer["accepted"] != size:
                raise BenchError(f"batch of {size}: HTTP {response.status} {answer}")
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Measurement(size, len(latencies) * size / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99))


def _event(run_id: str, n: int) -> bytes:
    return (
        b'{"event_id":"bench-%s-%d","type":"lead.created","occurred_at":"2026-11-02T10:00:00Z",'
        b'"lead_id":"bench-%s-%d","source":"bench"}' % (run_id.encode(), n, run_id.encode(), n)
    )

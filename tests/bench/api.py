"""Benchmark of the ingest API: events/s accepted and request latency at batch sizes 1, 100 and 1,000.

Runs `leadpulse api` as its own process (as in production, so server and load generator
do not share one event loop) against a real Kafka, then posts signed JSON Lines batches
of fresh `lead.created` events from CONCURRENCY clients for a few seconds per size.
A request counts only when answered 202 with every event accepted, i.e. after Kafka
acknowledged them all. The events (ids and leads `bench-<run>-...`, source `bench`) do
reach the topics: point it at a test stack, not at one whose aggregates matter.

    python -m streams.bench_api --bootstrap 127.0.0.1:19092
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Final

import aiohttp
import click

from streams.settings import Settings
from streams.signing import SIGNATURE_HEADER, sign

SIZES: Final = (1, 100, 1000)
SECONDS_PER_SIZE: Final = 4.0
#: Enough requests in flight to keep the server busy, few enough for 2 cores.
CONCURRENCY: Final = 8
START_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class BenchResult:
    """One batch size's figures; latencies are whole-request times (sign, send, Kafka acks, answer)."""

    batch_size: int
    requests: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def __str__(self) -> str:
        return (
            f"batch {self.batch_size:>5}: {self.events_per_second:>9,.0f} events/s accepted"
            f"  ({self.requests:,} requests, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms)"
        )


def run(bootstrap: str, sizes: tuple[int, ...] = SIZES, seconds: float = SECONDS_PER_SIZE) -> list[BenchResult]:
    """Start the API on a free port, measure each batch size for `seconds`, stop the API."""
    secret = secrets.token_hex(16)
    port = _free_port()
    env = {**os.environ, "LEADPULSE_KAFKA_BOOTSTRAP": bootstrap, "LEADPULSE_INGEST_SECRET": secret}
    command = [sys.executable, "-m", "streams.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return asyncio.run(_measure_all(f"http://127.0.0.1:{port}", secret.encode(), sizes, seconds))
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _measure_all(url: str, secret: bytes, sizes: tuple[int, ...], seconds: float) -> list[BenchResult]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await _wait_healthy(session, url)
        return [await _measure(session, url, secret, size, seconds) for size in sizes]


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
            raise click.ClickException(f"the API at {url} did not become healthy (is Kafka up?)")
        await asyncio.sleep(0.2)


async def _measure(session: aiohttp.ClientSession, url: str, secret: bytes, size: int, seconds: float) -> BenchResult:
    run_id = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    counter = iter(range(sys.maxsize))
    end = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < end:
            body = b"\n".join(_event(run_id, next(counter)) for _ in range(size))
            headers = {"Content-Type": "application/x-ndjson", SIGNATURE_HEADER: sign(secret, body)}
            started = time.perf_counter()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
                answer = await response.json()
            if response.status != 202 or answer["accepted"] != size:
                raise click.ClickException(f"batch of {size}: HTTP {response.status} {answer}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return BenchResult(
        batch_size=size,
        requests=len(latencies),
        events=len(latencies) * size,
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


def _event(run_id: str, n: int) -> bytes:
    return (
        b'{"event_id":"bench-%s-%d","type":"lead.created","occurred_at":"2026-11-02T10:00:00Z",'
        b'"lead_id":"bench-%s-%d","source":"bench"}' % (run_id.encode(), n, run_id.encode(), n)
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@click.command()
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: LEADPULSE_KAFKA_BOOTSTRAP)")
@click.option("--seconds", type=float, default=SECONDS_PER_SIZE, show_default=True, help="duration per batch size")
def main(bootstrap: str | None, seconds: float) -> None:
    """Measure the ingest API's accepted events/s and latency at batch sizes 1, 100 and 1,000."""
    bootstrap = bootstrap or Settings().kafka_bootstrap
    click.echo(f"ingest API against Kafka at {bootstrap}, {CONCURRENCY} concurrent clients, {seconds:g} s per size")
    for result in run(bootstrap, seconds=seconds):
        click.echo(str(result))


if __name__ == "__main__":
    main()

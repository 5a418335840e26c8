"""What a scrape costs: ms per scrape and per 1,000 series at about 1k, 10k and 50k series.

For each size, a fresh key prefix on a private Redis is filled through `AggregateStore`
(as the worker would) with leads spread over 90 days and over as many sources and
campaigns as the size needs; then whole scrapes (`exporters.exposition.render` over the
collector, as /metrics renders them: Redis reads, series, families and text) are timed,
and the Redis read + series part (`read_series`) alone. Target: <= 10 ms per 1,000 series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Final

import redis
from prometheus_client import CollectorRegistry

from aggregates.keys import KeyLayout
from aggregates.read import read_series
from aggregates.store import AggregateStore
from exporters.collector import LeadpulseCollector
from exporters.exposition import render
from streams.events import Event
from streams.settings import Settings
from tests.bench.common import Figure, Section, Target, apply_all, progress
from tests.feeds import DAY_MS
from tests.services import private_redis

#: Segments per dimension (sources = campaigns) giving about 1k, 10k and 50k series:
#: a segment with leads in every published cohort and window carries ~230 series.
SIZES: Final = {"1k": 4, "10k": 28, "50k": 186}
LEADS_PER_SEGMENT: Final = 100
BATCH: Final = 2000
SCRAPES: Final = 5
TARGET_MS_PER_1000: Final = Target(10, at_least=False)


def synthetic_events(segments: int, now_ms: int) -> Iterator[Event]:
    """Leads over 90 days, every fourth a customer 0-40 days later, every fifth an mql."""
    for n in range(segments * LEADS_PER_SEGMENT):
        lead = f"B{n:08d}"
        created = now_ms - (n * 7919 % (90 * DAY_MS // 1000)) * 1000
        yield Event(f"c{n}", "lead.created", created, lead, source=f"source_{n % segments}", campaign=f"campaign_{n // segments % segments}")
        if n % 5 == 0:
            yield Event(f"q{n}", "lead.qualified", created + DAY_MS, lead, stage="mql")
        if n % 4 == 0:
            yield Event(f"w{n}", "deal.won", min(now_ms, created + n % 41 * DAY_MS), lead, deal_id=f"D{n}", amount=100.0 * (n % 50))


def measure(client: redis.Redis, settings: Settings, size: str) -> list[Figure]:
    """Time SCRAPES whole scrapes and as many `read_series` calls of one filled prefix.

    Beside wall time, each scrape's CPU time: this process's and the private Redis's
    (`INFO cpu`), which other work on the machine disturbs less than the wall clock.
    """
    registry = CollectorRegistry()
    registry.register(LeadpulseCollector(client, settings))
    text = render(registry.collect()).decode()  # warm-up, and the series count
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    scrapes, cpu, reads = [], [], []
    for _ in range(SCRAPES):
        redis_cpu = redis_cpu_s(client)
        started, started_cpu = time.perf_counter(), time.process_time()
        render(registry.collect())
        scrapes.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu + redis_cpu_s(client) - redis_cpu) * 1000)
        started = time.perf_counter()
        read_series(client, settings, settings.today())
        reads.append((time.perf_counter() - started) * 1000)
    return [
        Figure(f"{size}: ms per scrape ({series:,} series)", "ms", tuple(scrapes)),
        Figure(f"{size}: of which read_series", "ms", tuple(reads)),
        Figure(f"{size}: CPU ms per 1,000 series (client + Redis)", "ms", tuple(ms * 1000 / series for ms in cpu)),
        Figure(f"{size}: ms per 1,000 series", "ms", tuple(ms * 1000 / series for ms in scrapes), TARGET_MS_PER_1000),
    ]


def redis_cpu_s(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used so far (user + system, all its threads)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run() -> Section:
    """Fill and measure one prefix per size on a private Redis."""
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    figures: list[Figure] = []
    with private_redis() as client:
        for size, segments in SIZES.items():
            progress(f"scrape cost at ~{size} series")
            settings = Settings(key_prefix=f"scrape{size}")
            apply_all(AggregateStore(client, settings), list(synthetic_events(segments, now_ms)), BATCH)
            figures += measure(client, settings, size)
    shards = KeyLayout.from_settings(Settings()).shards
    notes = [f"{SCRAPES} scrapes per size; {shards} shard(s), windows 7/30/90, {LEADS_PER_SEGMENT} leads per segment"]
    return Section("scrape", "cost of one /metrics scrape (private redis-server)", figures, notes)

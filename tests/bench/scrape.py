"""What a scrape costs: ms per scrape and per 1,000 series at about 1k, 10k and 50k series.

    python -m exporters.bench_scrape [--redis-url redis://127.0.0.1:16379/0] [--repeat 5]

For each size, fills a fresh key prefix through `AggregateStore` (as the worker would)
with leads spread over 90 days and over as many sources and campaigns as the size
needs, then times whole scrapes (`generate_latest` over the collector: Redis reads,
series, families and text), and the Redis read + series part alone. The prefix is
cleared afterwards. Target: <= 10 ms per 1,000 series. `make bench` calls `run`.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
from prometheus_client import CollectorRegistry, generate_latest

from aggregates.read import read_series
from aggregates.store import AggregateStore
from exporters.collector import LeadpulseCollector
from streams.events import Event
from streams.settings import Settings

DAY_MS = 86_400_000
#: Segments per dimension (sources = campaigns) giving about 1k, 10k and 50k series:
#: a segment with leads in every published cohort and window carries ~230 series.
SIZES = {"1k": 4, "10k": 28, "50k": 186}
LEADS_PER_SEGMENT = 100
BATCH = 2000


@dataclass(frozen=True)
class ScrapeCost:
    size: str
    series: int
    scrape_ms: float  # median of whole scrapes
    read_ms: float  # median of read_series alone

    @property
    def ms_per_1000_series(self) -> float:
        return self.scrape_ms * 1000 / self.series


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


def measure(client: redis.Redis, settings: Settings, size: str, repeat: int) -> ScrapeCost:
    registry = CollectorRegistry()
    registry.register(LeadpulseCollector(client, settings))
    text = generate_latest(registry).decode()  # warm-up, and the series count
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    scrapes, reads = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        generate_latest(registry)
        scrapes.append(time.perf_counter() - started)
        started = time.perf_counter()
        read_series(client, settings, settings.today())
        reads.append(time.perf_counter() - started)
    return ScrapeCost(size, series, statistics.median(scrapes) * 1000, statistics.median(reads) * 1000)


def run(redis_url: str, repeat: int = 5, sizes: Sequence[str] = tuple(SIZES)) -> list[ScrapeCost]:
    """Fill, measure and clear one prefix per size on the Redis at `redis_url`."""
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    results = []
    with redis.Redis.from_url(redis_url) as client:
        for size in sizes:
            settings = Settings(redis_url=redis_url, key_prefix=f"bench{uuid.uuid4().hex[:8]}")
            store = AggregateStore(client, settings)
            try:
                events = list(synthetic_events(SIZES[size], now_ms))
                for start in range(0, len(events), BATCH):
                    store.apply(events[start : start + BATCH])
                results.append(measure(client, settings, size, repeat))
            finally:
                store.clear()
    return results


def report(results: Sequence[ScrapeCost]) -> str:
    lines = [f"{'size':>5} {'series':>7} {'ms/scrape':>10} {'of which Redis+series':>22} {'ms/1k series':>13}"]
    for r in results:
        lines.append(f"{r.size:>5} {r.series:>7} {r.scrape_ms:>10.1f} {r.read_ms:>22.1f} {r.ms_per_1000_series:>13.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=Settings().redis_url, help="a Redis to fill under fresh prefixes [LEADPULSE_REDIS_URL]")
    parser.add_argument("--repeat", type=int, default=5, help="scrapes timed per size (the median is reported)")
    args = parser.parse_args()
    print("scrape cost (target <= 10 ms per 1,000 series)")
    print(report(run(args.redis_url, args.repeat)))


if __name__ == "__main__":
    main()

"""Measure Redis memory per lead and apply throughput on a synthetic feed (not a test).

    python tests/aggregates/bench_memory.py --leads 100000
    python tests/aggregates/bench_memory.py --leads 200000 --attributes persona,region

Starts a private `redis-server` (so nothing else moves its memory), applies a realistic
mix in worker-sized batches through `AggregateStore`, and prints events/s and bytes per
lead: the whole dataset's `used_memory` growth, and the lead state keys alone.
The mix: 8 sources (skewed), 30 campaigns, 180 days of history, 45% reach MQL, 18% SQL,
12% disqualified, ~8% customers, 2% of events re-sent, arrival order roughly by time.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone

import redis

from aggregates.read import read_series
from aggregates.store import AggregateStore
from streams.events import Event
from streams.settings import Settings

DAY_MS = 86_400_000
AS_OF = date(2026, 6, 15)
NOW_MS = int(datetime(2026, 6, 15, 12, tzinfo=timezone.utc).timestamp() * 1000)
SOURCES = ("organic_search", "paid_search", "referral", "email", "social", "partners", "events", "direct")
SOURCE_WEIGHTS = (30, 25, 10, 10, 10, 6, 5, 4)
PERSONAS = ("cto", "cfo", "engineer", "founder", "marketer")
REGIONS = ("emea", "amer", "apac")


def lead_events(rng: random.Random, n: int, uuid_ids: bool) -> list[Event]:
    """One lead's events; lead and deal ids look like a CRM's (18 chars)."""
    lead = f"00Q{n:015d}"
    created = NOW_MS - rng.randrange(180 * DAY_MS)
    attributes = {"persona": rng.choice(PERSONAS), "region": rng.choice(REGIONS)}

    def event_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128))) if uuid_ids else f"e{rng.getrandbits(40):012x}"

    out = [
        Event(
            event_id=event_id(),
            type="lead.created",
            occurred_ms=created,
            lead_id=lead,
            source=rng.choices(SOURCES, SOURCE_WEIGHTS)[0],
            campaign=f"campaign_{rng.randrange(30):02d}",
            attributes=attributes,
        )
    ]

    def later(after: int, max_days: int) -> int:
        return min(NOW_MS, after + rng.randrange(1, max_days * DAY_MS))

    def event(kind: str, ms: int, **fields: object) -> Event:
        return Event(event_id=event_id(), type=kind, occurred_ms=ms, lead_id=lead, **fields)  # type: ignore[arg-type]

    if rng.random() < 0.12:
        out.append(event("lead.disqualified", later(created, 5), reason="junk"))
    elif rng.random() < 0.51:
        mql = later(created, 10)
        out.append(event("lead.qualified", mql, stage="mql"))
        if rng.random() < 0.4:
            sql = later(mql, 20)
            out.append(event("lead.qualified", sql, stage="sql"))
            deal = f"006{n:015d}"
            out.append(event("deal.created", later(sql, 5), deal_id=deal, amount=float(rng.randrange(1, 500) * 100)))
            if rng.random() < 0.85:
                closed = later(sql, 60)
                if rng.random() < 0.45:
                    out.append(event("deal.won", closed, deal_id=deal, amount=float(rng.randrange(1, 500) * 100)))
                else:
                    out.append(event("deal.lost", closed, deal_id=deal))
    return out


def synthetic_stream(leads: int, uuid_ids: bool = True, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    events = [e for n in range(leads) for e in lead_events(rng, n, uuid_ids)]
    events += rng.sample(events, len(events) // 50)  # re-sent
    # Roughly by time, as topics deliver: sort, then jitter by up to an hour's worth.
    return sorted(events, key=lambda e: e.occurred_ms + rng.randrange(3_600_000))


def batches(events: list[Event], size: int) -> Iterator[list[Event]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def private_server() -> tuple[subprocess.Popen[bytes], int, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="leadpulse-bench-")
    server = shutil.which("redis-server") or "redis-server"
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    return process, port, workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--attributes", default="", help="attribute dimensions, e.g. persona,region")
    parser.add_argument("--short-event-ids", action="store_true", help="13-char event ids instead of UUIDs")
    args = parser.parse_args()

    events = synthetic_stream(args.leads, uuid_ids=not args.short_event_ids)
    process, port, workdir = private_server()
    try:
        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        settings = Settings(key_prefix="lp", shards=args.shards, attribute_dimensions=args.attributes)
        store = AggregateStore(client, settings)
        store.apply([])  # load scripts, stamp the layout
        baseline = int(client.info("memory")["used_memory"])
        client.config_resetstat()
        started = time.perf_counter()
        counts = {"applied": 0, "duplicate": 0}
        for batch in batches(events, args.batch):
            outcome = store.apply(batch)
            for name in counts:
                counts[name] += outcome.counts[name]
        elapsed = time.perf_counter() - started
        lua_usec = int(client.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))
        used = int(client.info("memory")["used_memory"]) - baseline
        sample = [client.memory_usage(k) or 0 for k in client.scan_iter(match="lp:{lp:*}:l:*", count=1000)]
        started = time.perf_counter()
        series = read_series(client, settings, AS_OF)
        read_s = time.perf_counter() - started
        print(f"events {len(events)} ({counts['applied']} applied, {counts['duplicate']} duplicate), "
              f"leads {args.leads}, batch {args.batch}, shards {args.shards}, attributes {args.attributes or '-'}, "
              f"event ids {'short' if args.short_event_ids else 'UUID'}")
        print(f"apply: {elapsed:.1f} s = {len(events) / elapsed:,.0f} events/s end to end; "
              f"Lua {lua_usec / 1e6:.1f} s = {len(events) / (lua_usec / 1e6):,.0f} events/s inside Redis")
        print(f"memory: {used / args.leads:.0f} bytes/lead in total (used_memory growth {used / 2**20:.1f} MiB); "
              f"lead state keys {sum(sample) / len(sample):.0f} bytes each (MEMORY USAGE, {len(sample)} keys)")
        print(f"read_series: {len(series)} series in {read_s * 1000:.0f} ms")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

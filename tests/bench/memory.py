"""Redis bytes per lead and apply throughput, on a private `redis-server` (so nothing else moves its memory).

A realistic mix applied in worker-sized batches through `AggregateStore`: 8 sources
(skewed), 30 campaigns, 180 days of history, 45% reach MQL, 18% SQL, 12% disqualified,
~8% customers, 2% of events re-sent, arrival order roughly by time; lead and deal ids
look like a CRM's (18 characters), event ids are UUIDs. Bytes per lead are the whole
dataset's `used_memory` growth over the leads, and the MEMORY USAGE of the lead state
keys (`l:`) alone over the leads; docs/keys.md explains where they go.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Final

import redis

from aggregates.keys import LEAD_PART, KeyLayout
from aggregates.read import read_series
from aggregates.store import AggregateStore
from streams.events import Event
from streams.settings import Settings
from tests.bench.common import Figure, Section, Target, apply_all, progress
from tests.feeds import DAY_MS
from tests.services import private_redis

LEADS: Final = 100_000
BATCH: Final = 2000
ROUNDS: Final = 3
AS_OF: Final = date(2026, 6, 15)
NOW_MS: Final = int(datetime(2026, 6, 15, 12, tzinfo=timezone.utc).timestamp() * 1000)
SOURCES: Final = ("organic_search", "paid_search", "referral", "email", "social", "partners", "events", "direct")
SOURCE_WEIGHTS: Final = (30, 25, 10, 10, 10, 6, 5, 4)
PERSONAS: Final = ("cto", "cfo", "engineer", "founder", "marketer")
REGIONS: Final = ("emea", "amer", "apac")
TARGET_BYTES_PER_LEAD: Final = Target(200, at_least=False)


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


@dataclass(frozen=True)
class Round:
    """One apply of the whole stream on a fresh Redis."""

    counts: dict[str, int]
    apply_rate: float  # events/s, end to end from Python
    lua_rate: float  # events/s of EVALSHA time inside Redis
    bytes_per_lead: float
    lead_state_bytes: float  # MEMORY USAGE of the `l:` keys, per lead
    series: int
    read_ms: float


def run(leads: int = LEADS, shards: int = 0, attributes: str = "", uuid_ids: bool = True) -> Section:
    """ROUNDS rounds, each on a fresh private Redis; the keyword arguments are the knobs docs/keys.md compares."""
    events = synthetic_stream(leads, uuid_ids)
    settings = Settings(key_prefix="lp", shards=shards, attribute_dimensions=attributes)
    rounds = []
    for round_ in range(1, ROUNDS + 1):
        progress(f"round {round_}/{ROUNDS}: applying {len(events):,} events to a private Redis")
        with private_redis() as client:
            rounds.append(_measure(client, settings, events, leads))
    counts = rounds[0].counts

    def figure(name: str, unit: str, key: str, target: Target | None = None) -> Figure:
        return Figure(name, unit, tuple(getattr(r, key) for r in rounds), target)

    figures = [
        figure("apply, end to end from Python", "events/s", "apply_rate"),
        figure("apply, inside Redis (Lua)", "events/s", "lua_rate"),
        figure("Redis bytes per lead (used_memory growth)", "bytes", "bytes_per_lead", TARGET_BYTES_PER_LEAD),
        figure("of which lead state (MEMORY USAGE of l: keys)", "bytes", "lead_state_bytes"),
        figure(f"read_series ({rounds[0].series:,} series)", "ms", "read_ms"),
    ]
    notes = [
        f"{len(events):,} events ({counts['applied']:,} applied, {counts['duplicate']:,} duplicate), {leads:,} leads, "
        f"batch {BATCH:,}, {KeyLayout.from_settings(settings).shards} shards, attributes {attributes or '-'}, event ids {'UUID' if uuid_ids else 'short'}"
    ]
    return Section("memory", "Redis bytes per lead and apply throughput (private redis-server)", figures, notes)


def _measure(client: redis.Redis, settings: Settings, events: list[Event], leads: int) -> Round:
    store = AggregateStore(client, settings)
    store.apply([])  # load scripts, stamp the layout
    baseline = int(client.info("memory")["used_memory"])
    client.config_resetstat()
    started = time.perf_counter()
    counts = apply_all(store, events, BATCH)
    elapsed = time.perf_counter() - started
    lua_s = int(client.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)) / 1e6
    used = int(client.info("memory")["used_memory"]) - baseline
    started = time.perf_counter()
    series = read_series(client, settings, AS_OF)
    read_s = time.perf_counter() - started
    return Round(
        counts=counts,
        apply_rate=len(events) / elapsed,
        lua_rate=len(events) / lua_s,
        bytes_per_lead=used / leads,
        lead_state_bytes=sum(_memory_usage(client, f"lp:{{lp:*}}:{LEAD_PART}*")) / leads,
        series=len(series),
        read_ms=read_s * 1000,
    )


def _memory_usage(client: redis.Redis, pattern: str) -> list[int]:
    """MEMORY USAGE of every key matching `pattern`, a thousand per round trip."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    sizes: list[int] = []
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key)
        sizes += [size or 0 for size in pipe.execute()]
    return sizes

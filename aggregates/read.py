"""Read the aggregates back: business series for the exporter and `report`, and health.

One pipeline round trip per call: HGETALL of each shard's published cohort hashes, the
day hashes of the longest window, its segment hash and its health hash. Parsing and
summing over shards is `parse_counters` (pure); the series themselves are built by
`aggregates.series.build_series` (pure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import redis

from aggregates.keys import ORPHANS_FIELD, KeyLayout, as_text
from aggregates.rules import published_cohorts, window_day_range
from aggregates.series import RawCounters, Series, Vectors, add_vector, build_series
from streams.settings import Settings

__all__ = ["Health", "Series", "parse_counters", "parse_health", "read_health", "read_series"]

Hash = Mapping[Any, Any]  # an HGETALL reply: bytes or str, as the client decodes


@dataclass(frozen=True, slots=True)
class Health:
    """Pipeline health: `leadpulse_events_total` and `leadpulse_last_event_timestamp_seconds`."""

    events: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (topic, type, outcome)
    last_event_seconds: dict[str, float] = field(default_factory=dict)  # topic -> newest applied


def read_series(client: redis.Redis, settings: Settings, as_of: date) -> list[Series]:
    """Every business series of CONTRACT section 3 as of day T, summed over shards."""
    layout = KeyLayout.from_settings(settings)
    cohorts = [label for _, label in published_cohorts(as_of)]
    days = list(window_day_range(as_of, max(settings.window_days, default=1)))
    keys: list[str] = []
    for shard in range(layout.shards):
        keys += [layout.cohort(shard, label) for label in cohorts]
        keys += [layout.day(shard, day) for day in days]
        keys += [layout.segments(shard), layout.health(shard)]
    raw = parse_counters(_hgetall(client, keys), cohorts, days)
    return build_series(raw, as_of, settings.window_days, settings.max_segments)


def read_health(client: redis.Redis, settings: Settings) -> Health:
    """Event counts by (topic, type, outcome) and the newest applied event time by topic."""
    layout = KeyLayout.from_settings(settings)
    return parse_health(_hgetall(client, [layout.health(shard) for shard in range(layout.shards)]))


def parse_counters(hashes: Sequence[Hash], cohorts: Sequence[str], days: Sequence[int]) -> RawCounters:
    """Sum shards' hashes, fetched per shard in the order cohorts, days, segments, health."""
    raw = RawCounters()
    per_shard = len(cohorts) + len(days) + 2
    for start in range(0, len(hashes), per_shard):
        chunk = hashes[start : start + per_shard]
        for label, stored in zip(cohorts, chunk):
            _add_vectors(raw.cohorts.setdefault(label, {}), stored)
        for day, stored in zip(days, chunk[len(cohorts) :]):
            _add_vectors(raw.days.setdefault(day, {}), stored)
        for name, leads in chunk[-2].items():
            segment = _segment(name)
            raw.segment_leads[segment] = raw.segment_leads.get(segment, 0) + int(leads)
        raw.orphans += int(_get(chunk[-1], ORPHANS_FIELD) or 0)
    return raw


def parse_health(hashes: Sequence[Hash]) -> Health:
    """Sum the shards' event counters; the newest event time is the max over shards."""
    health = Health()
    for stored in hashes:
        for name, value in stored.items():
            kind, _, rest = as_text(name).partition("|")
            if kind == "events":
                topic, event_type, outcome = rest.rsplit("|", 2)
                key = (topic, event_type, outcome)
                health.events[key] = health.events.get(key, 0) + int(value)
            elif kind == "last":
                seconds = int(value) / 1000
                health.last_event_seconds[rest] = max(seconds, health.last_event_seconds.get(rest, seconds))
    return health


def _hgetall(client: redis.Redis, keys: Sequence[str]) -> list[Hash]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return pipe.execute()


def _add_vectors(into: Vectors, stored: Hash) -> None:
    for name, text in stored.items():
        add_vector(into, _segment(name), [int(x) if x else 0 for x in as_text(text).split(",")])


def _segment(name: bytes | str) -> tuple[str, str]:
    dimension, _, segment = as_text(name).partition("|")
    return dimension, segment


def _get(stored: Hash, name: str) -> Any:
    return stored.get(name, stored.get(name.encode()))


"""Read the aggregates back: business series for the exporter and `report`, and health.

`read_aggregates` (behind `read_series`) is one pipeline round trip: per shard one
`EVAL read.lua` returning the non-empty hashes among its published cohort hashes, the
day and lag hashes of the days the windows, the matured cohorts and the checks reach
back to (T-180 .. T with the defaults), its segment hash and its health hash. Summing
over shards is `parse_counters` (pure); the series themselves are built by
`aggregates.series.build_series` (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from operator import add
from typing import Final, TypeVar

from redis.client import NEVER_DECODE

from aggregates.checks import HISTORY_DAYS
from aggregates.connect import SyncRedis, queue
from aggregates.keys import ORPHANS_FIELD, KeyLayout
from aggregates.matured import span
from aggregates.rules import published_cohorts, window_day_range
from aggregates.series import RawCounters, Segment, Series, build_series
from streams.settings import DEALS_TOPIC, Settings

__all__ = ["Health", "Series", "parse_counters", "parse_health", "read_aggregates", "read_health", "read_series"]

Flat = Sequence[bytes]  # an HGETALL reply as Redis sends it: field, value, field, value...

_READ_SCRIPT: Final = resources.files("aggregates").joinpath("read.lua").read_text(encoding="utf-8")
_ORPHANS: Final = ORPHANS_FIELD.encode()
_EMPTY: Final[Flat] = ()
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Health:
    """Pipeline health: `leadpulse_events_total` and `leadpulse_last_event_timestamp_seconds`."""

    events: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (topic, type, outcome)
    last_event_seconds: dict[str, float] = field(default_factory=dict)  # topic -> newest applied


def read_aggregates(client: SyncRedis, settings: Settings, as_of: date) -> tuple[list[Series], Health]:
    """Every business series of CONTRACT section 3 as of day T, and the health, in one round trip."""
    layout = KeyLayout.from_settings(settings)
    cohorts = [label for _, label in published_cohorts(as_of)]
    windows, ages = settings.window_days, settings.maturity_days
    days = list(window_day_range(as_of, max(max(windows, default=1), span(windows, ages), HISTORY_DAYS) + 1))
    shards = _hgetall(
        client,
        [
            [
                *layout.cohorts(shard, cohorts),
                *layout.days(shard, days),
                *layout.lags(shard, days),
                layout.segments(shard),
                layout.health(shard),
            ]
            for shard in range(layout.shards)
        ],
        paired=(len(cohorts) + 1, len(days)),  # a day without leads has no lags (read.lua)
    )
    raw = parse_counters(shards, cohorts, days)
    health = parse_health([hashes[-1] for hashes in shards])
    newest_deal = health.last_event_seconds.get(DEALS_TOPIC)
    fresh_day = None if newest_deal is None else int(newest_deal // 86_400)
    return build_series(raw, as_of, windows, settings.max_segments, ages, fresh_day), health


def read_series(client: SyncRedis, settings: Settings, as_of: date) -> list[Series]:
    """Every business series as of day T, summed over shards: what `report` and /metrics publish."""
    return read_aggregates(client, settings, as_of)[0]


def read_health(client: SyncRedis, settings: Settings) -> Health:
    """Event counts by (topic, type, outcome) and the newest applied event time by topic."""
    layout = KeyLayout.from_settings(settings)
    shards = _hgetall(client, [[layout.health(shard)] for shard in range(layout.shards)])
    return parse_health([hashes[0] for hashes in shards])


def _hgetall(client: SyncRedis, groups: Sequence[Sequence[str]], paired: tuple[int, int] = (0, 0)) -> list[list[Flat]]:
    """HGETALL of every key, one `EVAL read.lua` per group (a group's keys share one slot).

    `paired` is read.lua's (first, count): the hashes it skips come back empty. Replies
    stay raw bytes whatever the client decodes: parsing splits bytes, and only the few
    distinct field names are ever decoded.
    """
    pipe = client.pipeline(transaction=False)
    for keys in groups:
        queue(pipe, client, "EVAL", _READ_SCRIPT, len(keys), *keys, *paired, **{NEVER_DECODE: True})
    shards: list[list[Flat]] = []
    for keys, reply in zip(groups, pipe.execute()):
        hashes: list[Flat] = [_EMPTY] * len(keys)
        for i, text in zip(reply[::2], reply[1::2]):
            hashes[i - 1] = text.split(b";")
        shards.append(hashes)
    return shards


def parse_counters(shards: Sequence[Sequence[Flat]], cohorts: Sequence[str], days: Sequence[int]) -> RawCounters:
    """Sum the shards' replies, each the flat hashes of the cohorts, the days, the lags of the
    same days, segments, health.

    Vectors are summed per raw field name first and named once at the end, and each
    distinct vector text is parsed once (`_sum_vectors`): the bench's 50k-series scrape
    reads ~83,000 vectors, ~6,000 of them distinct.
    """
    sums: list[dict[bytes, Sequence[int]]] = [{} for _ in range(len(cohorts) + 2 * len(days))]
    parsed: dict[bytes, tuple[int, ...]] = {}
    leads: dict[bytes, int] = {}
    orphans = 0
    for hashes in shards:
        for into, flat in zip(sums, hashes):
            if flat:  # most day hashes of a small pipeline are empty
                _sum_vectors(into, flat, parsed)
        segments, health = hashes[-2], hashes[-1]
        for i in range(0, len(segments), 2):
            leads[segments[i]] = leads.get(segments[i], 0) + int(segments[i + 1])
        for i in range(0, len(health), 2):
            if health[i] == _ORPHANS:
                orphans += int(health[i + 1])
    names: dict[bytes, Segment] = {}
    vectors = [_named({name: list(v) for name, v in summed.items()}, names) for summed in sums]
    return RawCounters(
        cohorts=dict(zip(cohorts, vectors)),
        days=dict(zip(days, vectors[len(cohorts) :])),
        lags={day: lags for day, lags in zip(days, vectors[len(cohorts) + len(days) :]) if lags},
        segment_leads=_named(leads, names),
        orphans=orphans,
    )


def parse_health(hashes: Sequence[Flat]) -> Health:
    """Sum the shards' event counters; the newest event time is the max over shards."""
    health = Health()
    for flat in hashes:
        for i in range(0, len(flat), 2):
            kind, _, rest = flat[i].decode().partition("|")
            if kind == "events":
                topic, event_type, outcome = rest.rsplit("|", 2)
                key = (topic, event_type, outcome)
                health.events[key] = health.events.get(key, 0) + int(flat[i + 1])
            elif kind == "last":
                seconds = int(flat[i + 1]) / 1000
                health.last_event_seconds[rest] = max(seconds, health.last_event_seconds.get(rest, seconds))
    return health


def _named(sums: dict[bytes, V], names: dict[bytes, Segment]) -> dict[Segment, V]:
    """`sums` keyed by (dimension, segment); `names` caches each field name's decoding."""
    out = {}
    for name, value in sums.items():
        segment = names.get(name)
        if segment is None:
            dimension, _, label = name.decode().partition("|")
            segment = names[name] = (dimension, label)
        out[segment] = value
    return out


def _sum_vectors(into: dict[bytes, Sequence[int]], flat: Flat, parsed: dict[bytes, tuple[int, ...]]) -> None:
    """Add a hash's comma-separated vectors (zeros empty, trailing zeros dropped) into `into`.

    A field seen in one shard only (most of them) keeps the shared parsed tuple; a sum
    is a new list, so no parsed tuple is ever changed.
    """
    for name, text in zip(flat[::2], flat[1::2]):
        vector = parsed.get(text)
        if vector is None:
            vector = parsed[text] = tuple([int(x) if x else 0 for x in text.split(b",")])
        current = into.get(name)
        if current is None:
            into[name] = vector
        elif len(current) == len(vector):  # the common case, without a call
            into[name] = list(map(add, current, vector))
        else:
            into[name] = add_vectors(current, vector)


def add_vectors(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The slot-wise sum of two vectors of any lengths (missing slots are zeros)."""
    if len(a) < len(b):
        a, b = b, a
    return [*map(add, a, b), *a[len(b) :]]

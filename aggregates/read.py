"""Read the aggregates back: business series for the exporter and `report`, and health.

`read_aggregates` (behind `read_series`) is one pipeline round trip: per shard one
`EVAL read.lua` returning the non-empty hashes among its published cohort hashes, the
day and lag hashes of the days the windows, the matured cohorts, the checks and the
stalled leads reach back to (T-364 .. T), the awaiting lists of the follow-up horizon's
days, its segment hash and its health hash. Summing
over shards is `parse_counters` (pure); the series themselves are built by
`aggregates.series.build_series` (pure).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from operator import add
from typing import Final

from redis.client import NEVER_DECODE

from aggregates.checks import HISTORY_DAYS
from aggregates.connect import SyncRedis, queue
from aggregates.follow_up import STALL_HORIZON_DAYS, FollowUpView
from aggregates.keys import FIRST_PREFIX, ORPHANS_FIELD, VERIFY_FIELDS, KeyLayout, verify_key
from aggregates.matured import span
from aggregates.rules import DAY_MS, day_number, published_cohorts, window_day_range
from aggregates.series import RawCounters, Segment, Series, Vectors, build_series
from streams.positions import TopicPartition
from streams.settings import DEALS_TOPIC, Settings

__all__ = [
    "Health", "Series", "ShardOffsets", "parse_counters", "parse_health", "parse_offsets", "parse_verified", "read_aggregates", "read_health",
    "read_series", "read_snapshot",
]  # fmt: skip

Flat = Sequence[bytes]  # an HGETALL reply as Redis sends it: field, value, field, value...
ShardOffsets = dict[TopicPartition, int]  # one shard's last applied offset per partition

_READ_SCRIPT: Final = resources.files("aggregates").joinpath("read.lua").read_text(encoding="utf-8")
_ORPHANS: Final = ORPHANS_FIELD.encode()
_EMPTY: Final[Flat] = ()


@dataclass(frozen=True, slots=True)
class Health:
    """Pipeline health: `leadpulse_events_total` and `leadpulse_last_event_timestamp_seconds`."""

    events: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (topic, type, outcome)
    last_event_seconds: dict[str, float] = field(default_factory=dict)  # topic -> newest applied
    #: the last `leadpulse verify` run's figures by `VERIFY_FIELDS` name (empty: none ran)
    verified: dict[str, float] = field(default_factory=dict)


def read_aggregates(client: SyncRedis, settings: Settings, as_of: date) -> tuple[list[Series], Health]:
    """Every business series of CONTRACT section 3 as of day T, and the health, in one round trip."""
    series, health, _ = _read(client, settings, as_of, with_offsets=False)
    return series, health


def read_snapshot(
    client: SyncRedis, settings: Settings, as_of: date
) -> tuple[list[Series], list[tuple[ShardOffsets, ShardOffsets]]]:
    """The series as of day T and each shard's last and first applied offsets (`parse_offsets`),
    each shard read by one script.

    One script per shard is atomic, and a shard's counters and offsets only ever change
    together (docs/keys.md): the shard's share of the series is exactly that of the
    records up to its offsets, however busy the workers are (`leadpulse verify`).
    """
    series, _, offsets = _read(client, settings, as_of, with_offsets=True)
    return series, offsets


def _read(
    client: SyncRedis, settings: Settings, as_of: date, with_offsets: bool
) -> tuple[list[Series], Health, list[tuple[ShardOffsets, ShardOffsets]]]:
    layout = KeyLayout.from_settings(settings)
    cohorts = [label for _, label in published_cohorts(as_of)]
    windows, ages = settings.window_days, settings.maturity_days
    reach = max(max(windows, default=1), span(windows, ages), HISTORY_DAYS, STALL_HORIZON_DAYS)
    days = list(window_day_range(as_of, reach + 1))
    view = follow_up_view(settings, as_of)
    horizon = list(window_day_range(as_of, settings.follow_up_horizon_days))
    shards = _hgetall(
        client,
        [
            [
                *layout.cohorts(shard, cohorts),
                *layout.days(shard, days),
                *layout.lags(shard, days),
                *layout.awaiting(shard, horizon),
                layout.segments(shard),
                layout.health(shard),
                *([layout.offsets(shard)] if with_offsets else []),
            ]
            for shard in range(layout.shards)
        ]
        + [[verify_key(settings.key_prefix)]],
        paired=(len(cohorts) + 1, len(days)),  # a day without leads has no lags (read.lua)
    )
    (verified,) = shards.pop()
    offsets = [parse_offsets(hashes.pop()) for hashes in shards] if with_offsets else []
    raw = parse_counters(shards, cohorts, days, horizon)
    health = parse_health([hashes[-1] for hashes in shards])
    health.verified.update(parse_verified(verified))
    newest_deal = health.last_event_seconds.get(DEALS_TOPIC)
    fresh_day = None if newest_deal is None else int(newest_deal // 86_400)
    return build_series(raw, as_of, windows, settings.max_segments, ages, fresh_day, view), health, offsets


def follow_up_view(settings: Settings, as_of: date) -> FollowUpView:
    """Evaluated at the end of day T when it is pinned (or in the past), else now."""
    end_of_t = (day_number(as_of) + 1) * DAY_MS
    now = time.time_ns() // 1_000_000
    return FollowUpView(
        min(now, end_of_t) if settings.as_of is None else end_of_t,
        settings.follow_up_clock,
        settings.follow_up_horizon_days,
        (settings.stall_days_mql, settings.stall_days_sql),
    )


def parse_offsets(flat: Flat) -> tuple[ShardOffsets, ShardOffsets]:
    """A shard's offsets hash as the last and the first applied offset of each partition
    (fields `topic|partition` and `from|topic|partition`, see aggregates/keys.py)."""
    last: ShardOffsets = {}
    first: ShardOffsets = {}
    for name, value in zip(flat[::2], flat[1::2]):
        text = name.decode()
        into = first if text.startswith(FIRST_PREFIX) else last
        topic, _, partition = text.removeprefix(FIRST_PREFIX).rpartition("|")
        into[(topic, int(partition))] = int(value)
    return last, first


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


def parse_counters(
    shards: Sequence[Sequence[Flat]], cohorts: Sequence[str], days: Sequence[int], awaiting_days: Sequence[int] = ()
) -> RawCounters:
    """Sum the shards' replies, each the flat hashes of the cohorts, the days, the lags of the
    same days, the awaiting lists of `awaiting_days`, segments, health.

    Each distinct field name is decoded once and each distinct vector text parsed once
    (the bench's 50k-series scrape reads ~30,000 vectors, ~5,000 of them distinct), and a
    hash's first shard (its only one on a single server) is taken without summing.
    """
    sums: list[Vectors] = [{} for _ in range(len(cohorts) + 2 * len(days))]
    names, parsed = _Names(), _Parsed()
    leads: dict[Segment, int] = {}
    awaiting: dict[int, Vectors] = {}
    first_list = len(cohorts) + 2 * len(days)
    orphans = 0
    for hashes in shards:
        for day, flat in zip(awaiting_days, hashes[first_list:]):
            lists = awaiting.setdefault(day, {})
            for segment, text in zip(map(names.__getitem__, flat[::2]), flat[1::2]):
                lists.setdefault(segment, []).extend(map(int, text.split(b",")))
        for into, flat in zip(sums, hashes):
            if flat:  # most day hashes of a small pipeline are empty
                _sum_vectors(into, map(names.__getitem__, flat[::2]), map(parsed.__getitem__, flat[1::2]))
        segments, health = hashes[-2], hashes[-1]
        for segment, count in zip(map(names.__getitem__, segments[::2]), segments[1::2]):
            leads[segment] = leads.get(segment, 0) + int(count)
        for i in range(0, len(health), 2):
            if health[i] == _ORPHANS:
                orphans += int(health[i + 1])
    return RawCounters(
        cohorts=dict(zip(cohorts, sums)),
        days=dict(zip(days, sums[len(cohorts) :])),
        lags={day: lags for day, lags in zip(days, sums[len(cohorts) + len(days) :]) if lags},
        segment_leads=leads,
        orphans=orphans,
        awaiting={day: lists for day, lists in awaiting.items() if lists},
    )


def parse_verified(flat: Flat) -> dict[str, float]:
    """The `<prefix>:verify` hash as figures by `VERIFY_FIELDS` name."""
    stored = {name.decode(): float(value) for name, value in zip(flat[::2], flat[1::2])}
    return {name: stored[name] for name in VERIFY_FIELDS if name in stored}


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


class _Names(dict[bytes, Segment]):
    """The (dimension, segment) of each field name, decoded on first use."""

    def __missing__(self, name: bytes) -> Segment:
        dimension, _, label = name.decode().partition("|")
        self[name] = segment = (dimension, label)
        return segment


class _Parsed(dict[bytes, tuple[int, ...]]):
    """Each stored vector text (comma-separated, zeros empty, trailing zeros dropped) parsed on first use."""

    def __missing__(self, text: bytes) -> tuple[int, ...]:
        self[text] = vector = tuple([int(x) if x else 0 for x in text.split(b",")])
        return vector


def _sum_vectors(into: Vectors, segments: Iterable[Segment], vectors: Iterable[Sequence[int]]) -> None:
    """Add a hash's vectors into `into`, each a new list: the parsed tuples are shared."""
    if not into:  # the hash's first shard: nothing to add to
        into.update(zip(segments, map(list, vectors)))
        return
    for segment, vector in zip(segments, vectors):
        current = into.get(segment)
        if current is None:
            into[segment] = list(vector)
        elif len(current) == len(vector):  # the common case, without a call
            into[segment] = list(map(add, current, vector))
        else:
            into[segment] = add_vectors(current, vector)


def add_vectors(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """The slot-wise sum of two vectors of any lengths (missing slots are zeros)."""
    if len(a) < len(b):
        a, b = b, a
    return [*map(add, a, b), *a[len(b) :]]

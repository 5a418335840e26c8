"""Apply events to Redis: one pipeline round trip per batch, sync and async alike.

The logic lives once, in `StoreSteps`, as generators that yield the commands of one
round trip and receive their replies (sans-I/O); `AggregateStore` (redis.Redis) and
`AsyncAggregateStore` (redis.asyncio.Redis) only run those round trips.

A batch is one EVALSHA of `apply.lua` per touched shard, the rejected counts, then the
compare-and-set of the Kafka offsets (`offsets.lua`) - all in one pipeline, offsets
last: Redis executes a connection's commands in order and an AOF loses only a suffix,
so offsets that survived imply their batch did. Both scripts run by EVALSHA, so after a
Redis restart (empty script cache) every script of the batch fails NOSCRIPT alike and
the offsets cannot move without the aggregates; the failed commands are then retried
after SCRIPT LOAD, which is safe because applying an event twice changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, TypeVar

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from aggregates.errors import AggregateError, LayoutMismatch
from aggregates.keys import (
    CALENDAR_NAME,
    COHORT_PART,
    DAY_PART,
    INVALID_TYPE,
    LAG_DAYS,
    LAG_PART,
    LEAD_BUCKETS,
    LEAD_PART,
    NAMES_NAME,
    SEGMENTS_NAME,
    KeyLayout,
    as_text,
    health_field,
)
from aggregates.rules import TTC_BOUNDS, epoch_day, iso_week_label, month_label
from streams.events import UNKNOWN_SEGMENT, Event
from streams.positions import OffsetAdvance, TopicPartition
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, Settings

#: Amounts are summed as integer cents; Lua numbers are doubles, exact up to 2**53.
#: Capping one deal at 10**15 cents (10 trillion) keeps absurd inputs from failing a
#: batch, and leaves room for 9 such deals per counter before precision is lost.
MAX_AMOUNT_CENTS: Final = 10**15
#: SCAN/DEL chunk of `clear`: big enough to be quick, small enough not to stall Redis.
CLEAR_CHUNK: Final = 1000

_STAGE = {"mql": "1", "sql": "2"}

Command = tuple[Any, ...]
T = TypeVar("T")
Steps = Generator[list[Command], list[Any], T]


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What one `apply` did: events per outcome, and offsets Redis refused to move.

    `counts` has `applied`, `duplicate` and `rejected`. "duplicate" means the event
    changed nothing: a re-sent event, or one superseded by what its lead already holds
    (an `mql` after `sql`, a later `lead.created`, an older outcome of a deal).
    `refused` maps a partition whose compare-and-set failed to the offset Redis holds.
    """

    counts: dict[str, int]
    refused: dict[TopicPartition, int] = field(default_factory=dict)


def encode_event(event: Event, attribute_keys: Sequence[str], bucket: int) -> list[str]:
    """The ARGV fields of one event of a lead in `bucket`, for apply.lua (its header is the format)."""
    ms = str(event.occurred_ms)
    kind = event.type
    if kind == "deal.created":
        return ["d", ms]
    lead = [str(bucket), event.lead_id, ms]
    if kind == "lead.created":
        attributes = [event.attributes.get(k, UNKNOWN_SEGMENT) for k in attribute_keys]
        week, month = iso_week_label(event.occurred_ms), month_label(event.occurred_ms)
        return ["c", *lead, event.event_id, week, month, event.source, event.campaign, *attributes]
    if kind == "lead.qualified":
        return ["q", *lead, _STAGE[event.stage or "mql"]]
    if kind == "lead.disqualified":
        return ["x", *lead]
    deal = event.deal_id or ""
    if kind == "deal.won":
        cents = min(round((event.amount or 0.0) * 100), MAX_AMOUNT_CENTS)
        return ["w", *lead, deal, str(cents)]
    return ["l", *lead, deal]


def utc_today() -> int:
    """The UTC epoch day by this machine's clock: the day lead state records as its last change.

    Retention counts from it, so it is the wall clock, never the pinned `as_of`.
    """
    return epoch_day(time.time_ns() // 1_000_000)


def _script(name: str) -> tuple[str, str]:
    body = resources.files("aggregates").joinpath(name).read_text(encoding="utf-8")
    return body, hashlib.sha1(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch's events as apply.lua's arguments per shard.

    Encoding is pure CPU work: the worker does it for the next batch while the previous
    one is still in Redis.
    """

    per_shard: dict[int, list[str]]


class StoreSteps:
    """Every store operation as round trips of commands: shared by both executors."""

    def __init__(self, settings: Settings) -> None:
        self.layout = KeyLayout.from_settings(settings)
        self._apply_body, self._apply_sha = _script("apply.lua")
        self._offsets_body, self._offsets_sha = _script("offsets.lua")
        retention = str(settings.lead_retention_days)
        parts = [LEAD_PART, COHORT_PART, DAY_PART, SEGMENTS_NAME, NAMES_NAME, CALENDAR_NAME, LAG_PART]
        bounds = ",".join(str(bound * 1000) for bound in TTC_BOUNDS)
        attributes = ",".join(self.layout.attribute_keys)
        self._headers = [
            [self.layout.base(shard), retention, str(LEAD_BUCKETS), *parts, LEADS_TOPIC, DEALS_TOPIC, bounds, attributes, str(LAG_DAYS)]
            for shard in range(self.layout.shards)
        ]
        self._ready = False

    def encode(self, events: Sequence[Event]) -> EncodedBatch:
        """The events' script arguments, grouped by the shard of their lead."""
        layout, keys = self.layout, self.layout.attribute_keys
        per_shard: dict[int, list[str]] = {}
        for event in events:
            shard, bucket = layout.place(event.lead_id)
            per_shard.setdefault(shard, []).extend(encode_event(event, keys, bucket))
        return EncodedBatch(per_shard)

    def apply(
        self,
        events: Sequence[Event] | EncodedBatch,
        offsets: Mapping[TopicPartition, OffsetAdvance] | None = None,
        rejected: Mapping[str, int] | None = None,
    ) -> Steps[ApplyOutcome]:
        """Apply `events` (or their encoding), count `rejected` records per topic, then move `offsets`."""
        if not self._ready:
            yield from self._prepare()
        layout = self.layout
        per_shard = (events if isinstance(events, EncodedBatch) else self.encode(events)).per_shard
        today = str(utc_today())
        commands: list[Command] = [
            ("EVALSHA", self._apply_sha, 1, layout.health(shard), *self._headers[shard], today, *args)
            for shard, args in sorted(per_shard.items())
        ]
        rejected = {topic: n for topic, n in (rejected or {}).items() if n}
        commands += [
            ("HINCRBY", layout.health(0), health_field(topic, INVALID_TYPE, "rejected"), n)
            for topic, n in sorted(rejected.items())
        ]
        triples = [
            arg
            for (topic, partition), move in sorted((offsets or {}).items())
            for arg in (f"{topic}|{partition}", move.expected, move.new)
        ]
        if triples:
            commands.append(("EVALSHA", self._offsets_sha, 1, layout.offsets, *triples))
        replies = yield from self._run_scripts(commands)
        counts = {"applied": 0, "duplicate": 0, "rejected": sum(rejected.values())}
        for reply in replies[: len(per_shard)]:
            counts["applied"] += int(reply[0])
            counts["duplicate"] += int(reply[1])
        refused: dict[TopicPartition, int] = {}
        if triples:
            flat = replies[-1]
            for name, stored in zip(flat[::2], flat[1::2]):
                topic, _, partition = as_text(name).rpartition("|")
                refused[(topic, int(partition))] = int(stored)
        return ApplyOutcome(counts, refused)

    def read_offsets(self) -> Steps[dict[TopicPartition, int]]:
        """The last applied offset of every partition Redis holds one for."""
        replies = yield [("HGETALL", self.layout.offsets)]
        _raise_first_error(replies)
        (stored,) = replies
        result: dict[TopicPartition, int] = {}
        for name, offset in stored.items():
            topic, _, partition = as_text(name).rpartition("|")
            result[(topic, int(partition))] = int(offset)
        return result

    def clear(self) -> Steps[int]:
        """Delete every key of this prefix (and only those); returns how many went."""
        layout = self.layout
        (deleted,) = yield [("DEL", layout.offsets, layout.layout_stamp)]
        cursor: Any = 0
        while True:
            ((cursor, keys),) = yield [("SCAN", cursor, "MATCH", layout.shard_key_pattern, "COUNT", CLEAR_CHUNK)]
            if keys:
                (removed,) = yield [("UNLINK", *keys)]
                deleted += removed
            if int(cursor) == 0:
                break
        self._ready = False
        return int(deleted)

    def _prepare(self) -> Steps[None]:
        """Load both scripts and stamp (or check) the layout the stored state depends on."""
        stamp = self.layout.fingerprint
        replies = yield [
            ("SCRIPT LOAD", self._apply_body),
            ("SCRIPT LOAD", self._offsets_body),
            ("SET", self.layout.layout_stamp, stamp, "NX"),
            ("GET", self.layout.layout_stamp),
        ]
        _raise_first_error(replies)
        if as_text(replies[3]) != stamp:
            raise LayoutMismatch(
                f"Redis prefix {self.layout.prefix!r} holds aggregates of layout {as_text(replies[3])!r}, "
                f"these settings need {stamp!r}; run `leadpulse rebuild` after changing shards "
                "or attribute dimensions, or after an upgrade that changed the key layout"
            )
        self._ready = True

    def _run_scripts(self, commands: list[Command]) -> Steps[list[Any]]:
        replies = yield commands
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            self._ready = False
            yield from self._prepare()
            retried = yield [commands[i] for i in missing]
            for i, reply in zip(missing, retried):
                replies[i] = reply
        _raise_first_error(replies)
        return replies


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise AggregateError(f"Redis refused an aggregates command: {reply}") from reply


class AggregateStore:
    """The aggregates of one pipeline on a synchronous `redis.Redis`."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._steps = StoreSteps(settings)

    @property
    def layout(self) -> KeyLayout:
        return self._steps.layout

    def apply(
        self,
        events: Sequence[Event] | EncodedBatch,
        offsets: Mapping[TopicPartition, OffsetAdvance] | None = None,
        rejected: Mapping[str, int] | None = None,
    ) -> ApplyOutcome:
        return self._run(self._steps.apply(events, offsets, rejected))

    def read_offsets(self) -> dict[TopicPartition, int]:
        return self._run(self._steps.read_offsets())

    def clear(self) -> int:
        return self._run(self._steps.clear())

    def _run(self, steps: Steps[T]) -> T:
        try:
            commands = next(steps)
            while True:
                pipe = self._client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)
                commands = steps.send(pipe.execute(raise_on_error=False))
        except StopIteration as done:
            return done.value


class AsyncAggregateStore:
    """The same aggregates on a `redis.asyncio.Redis` (the Faust worker's)."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self._client = client
        self._steps = StoreSteps(settings)

    @property
    def layout(self) -> KeyLayout:
        return self._steps.layout

    def encode(self, events: Sequence[Event]) -> EncodedBatch:
        return self._steps.encode(events)

    async def apply(
        self,
        events: Sequence[Event] | EncodedBatch,
        offsets: Mapping[TopicPartition, OffsetAdvance] | None = None,
        rejected: Mapping[str, int] | None = None,
    ) -> ApplyOutcome:
        return await self._run(self._steps.apply(events, offsets, rejected))

    async def read_offsets(self) -> dict[TopicPartition, int]:
        return await self._run(self._steps.read_offsets())

    async def clear(self) -> int:
        return await self._run(self._steps.clear())

    async def _run(self, steps: Steps[T]) -> T:
        try:
            commands = next(steps)
            while True:
                async with self._client.pipeline(transaction=False) as pipe:
                    for command in commands:
                        pipe.execute_command(*command)
                    replies = await pipe.execute(raise_on_error=False)
                commands = steps.send(replies)
        except StopIteration as done:
            return done.value

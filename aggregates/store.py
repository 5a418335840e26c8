"""Apply events to Redis: one pipeline round trip per batch, sync and async alike.

The logic lives once, in `StoreSteps`, as generators that yield the commands of one
round trip and receive their replies (sans-I/O); `AggregateStore` and
`AsyncAggregateStore` only run those round trips, on one server or a Redis Cluster
(where redis-py's pipeline sends them as one batch per master, by hash slot).

A batch is one pipeline: the rejected counts, then one EVALSHA of `apply.lua` per touched
shard, which applies the shard's events and then advances the shard's Kafka offsets (its
own `o` key) in the same atomic call, then `offsets.lua` for every untouched shard. A
shard's offsets share its slot, so they sit on the same server as the counters they
cover, and since they move in the same script no reader (`leadpulse verify`'s snapshot)
and no lost suffix of an AOF or a promoted replica ever separates them: offsets that
survived imply their shard's share of the batch did (docs/keys.md). Both scripts run by
EVALSHA, so after a restart or a failover (empty script cache) they fail NOSCRIPT and
are retried after SCRIPT LOAD, which is safe because applying an event twice changes
nothing.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, TypeVar

import msgspec
import redis
import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import MovedError, NoScriptError

from aggregates.connect import AsyncRedis, SyncRedis, async_cluster_moving_slots, cluster_moving_slots, primaries, queue
from aggregates.errors import CLUSTER_RECOVERY_ERRORS, CONNECTION_ERRORS, REDIS_ERRORS, TRANSIENT_ERRORS, AggregateError, LayoutMismatch, ReshardingInProgress
from aggregates.business_hours import FollowUpClock
from aggregates.keys import (
    AWAITING_PART,
    CALENDAR_NAME,
    COHORT_PART,
    FIRST_PREFIX,
    DAY_PART,
    INVALID_TYPE,
    LAG_DAYS,
    LAG_PART,
    LEAD_PART,
    NAMES_NAME,
    SEGMENTS_NAME,
    KeyLayout,
    as_text,
    health_field,
)
from aggregates.rules import TOUCH_BOUNDS, TTC_BOUNDS, epoch_day, iso_week_label, month_label
from streams.events import UNKNOWN_SEGMENT, Event
from streams.positions import OffsetAdvance, TopicPartition
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, Settings

#: Amounts are summed as integer cents; Lua numbers are doubles, exact up to 2**53.
#: Capping one deal at 10**15 cents (10 trillion) keeps absurd inputs from failing a
#: batch, and leaves room for 9 such deals per counter before precision is lost.
MAX_AMOUNT_CENTS: Final = 10**15
#: SCAN/DEL chunk of `clear`: big enough to be quick, small enough not to stall Redis.
CLEAR_CHUNK: Final = 1000

_STAGE = {"mql": 1, "sql": 2}
_PACK: Final = msgspec.msgpack.Encoder().encode

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


#: A canonical lowercase UUID, the event id lead state keeps as its 16 bytes (docs/keys.md).
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: msgpack's array of one element, then a str of 16 bytes (Redis's cmsgpack reads no bin).
_PACKED_UUID: Final = b"\x91\xb0"


def stored_event_id(event_id: str) -> str | msgspec.Raw:
    """The event id as lead state stores it: a canonical UUID as {its 16 bytes}, any other as sent.

    Packed here rather than in apply.lua: matching and packing 36 characters in Lua cost
    Redis ~10% of its work per event on a feed of UUIDs, where the worker has time to spare.
    """
    if len(event_id) == 36 and _UUID.fullmatch(event_id):
        return msgspec.Raw(_PACKED_UUID + bytes.fromhex(event_id.replace("-", "")))
    return event_id


def encode_event(
    event: Event, attribute_keys: Sequence[str], bucket: str, clock: FollowUpClock
) -> list[str | int | msgspec.Raw]:
    """The fields of one event of a lead in `bucket` (as text: the script makes a key of it), for apply.lua.

    A `lead.created` carries its touch deadline (as ms after it), so business-hours
    calendar maths stays in Python (`aggregates.business_hours`), like the cohort labels.
    """
    ms = event.occurred_ms
    kind = event.type
    lead: list[str | int | msgspec.Raw] = [bucket, event.lead_id, ms]
    if kind == "deal.created":
        return ["d", *lead]
    if kind == "lead.created":
        attributes = [event.attributes.get(k, UNKNOWN_SEGMENT) for k in attribute_keys]
        week, month, deadline = iso_week_label(ms), month_label(ms), clock.deadline_ms(ms) - ms
        return ["c", *lead, stored_event_id(event.event_id), week, month, deadline, event.source, event.campaign, *attributes]
    if kind == "lead.contacted":
        return ["t", *lead]
    if kind == "lead.qualified":
        return ["q", *lead, _STAGE[event.stage or "mql"]]
    if kind == "lead.disqualified":
        return ["x", *lead]
    deal = event.deal_id or ""
    if kind == "deal.won":
        # Capped before rounding: an amount near the float maximum is infinite in cents.
        return ["w", *lead, deal, round(min((event.amount or 0.0) * 100, MAX_AMOUNT_CENTS))]
    return ["l", *lead, deal]


def utc_today() -> int:
    """The UTC epoch day by this machine's clock: the day lead state records as its last change.

    Retention counts from it, so it is the wall clock, never the pinned `as_of`.
    """
    return epoch_day(time.time_ns() // 1_000_000)


def _script(*names: str) -> tuple[str, str]:
    """A script's body (its files, concatenated: one chunk, so locals carry over) and SHA1."""
    body = "".join(resources.files("aggregates").joinpath(name).read_text(encoding="utf-8") for name in names)
    return body, hashlib.sha1(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A batch's events as apply.lua's argument per shard: one msgpack array of every field.

    Encoding is pure CPU work: the worker does it for the next batch while the previous
    one is still in Redis. One packed argument instead of ~10 per event: redis-py packed
    each argument in Python (a fifth of the worker's time), and Redis made a string of
    each; the script unpacks the array in C (cmsgpack), numbers already numbers.
    """

    per_shard: dict[int, bytes]


class StoreSteps:
    """Every store operation as round trips of commands: shared by both executors."""

    def __init__(self, settings: Settings) -> None:
        self.layout = KeyLayout.from_settings(settings)
        self._transient = TRANSIENT_ERRORS if settings.redis_cluster else CONNECTION_ERRORS
        self._apply_body, self._apply_sha = _script(
            "apply.lua", "advance.lua", "apply_follow_up.lua", "apply_events.lua", "apply_writes.lua"
        )
        self._offsets_body, self._offsets_sha = _script("advance.lua", "offsets.lua")
        retention = str(settings.lead_retention_days)
        parts = [LEAD_PART, COHORT_PART, DAY_PART, SEGMENTS_NAME, NAMES_NAME, CALENDAR_NAME, LAG_PART]
        bounds = ",".join(str(bound * 1000) for bound in TTC_BOUNDS)
        touch_bounds = ",".join(str(bound * 1000) for bound in TOUCH_BOUNDS)
        attributes = ",".join(self.layout.attribute_keys)
        self._clock = settings.follow_up_clock
        self._headers = [
            [
                self.layout.base(shard), retention, str(self.layout.buckets), *parts, LEADS_TOPIC, DEALS_TOPIC,
                bounds, attributes, str(LAG_DAYS), touch_bounds, AWAITING_PART,
            ]
            for shard in range(self.layout.shards)
        ]
        self._ready = False

    def encode(self, events: Sequence[Event]) -> EncodedBatch:
        """The events' script arguments, grouped by the shard of their lead."""
        layout, keys = self.layout, self.layout.attribute_keys
        per_shard: dict[int, list[str | int | msgspec.Raw]] = {}
        for event in events:
            shard, bucket = layout.place(event.lead_id)
            per_shard.setdefault(shard, []).extend(encode_event(event, keys, str(bucket), self._clock))
        return EncodedBatch({shard: _PACK(fields) for shard, fields in per_shard.items()})

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
        rejected = {topic: n for topic, n in (rejected or {}).items() if n}
        commands: list[Command] = [
            ("HINCRBY", layout.health(0), health_field(topic, INVALID_TYPE, "rejected"), n)
            for topic, n in sorted(rejected.items())
        ]
        quads = [
            arg
            for (topic, partition), move in sorted((offsets or {}).items())
            for arg in (f"{topic}|{partition}", move.expected, move.new, move.first)
        ]
        commands += [
            ("EVALSHA", self._apply_sha, 2, layout.health(shard), layout.offsets(shard), *self._headers[shard], today, packed, *quads)
            for shard, packed in sorted(per_shard.items())
        ]
        if quads:  # every shard, touched or not: a partition's offset is the least of its shards'
            commands += [
                ("EVALSHA", self._offsets_sha, 1, layout.offsets(shard), *quads)
                for shard in range(layout.shards)
                if shard not in per_shard
            ]
        replies = (yield from self._run_scripts(commands))[len(rejected) :]
        counts = {"applied": 0, "duplicate": 0, "rejected": sum(rejected.values())}
        for reply in replies[: len(per_shard)]:
            counts["applied"] += int(reply[0])
            counts["duplicate"] += int(reply[1])
        moves = [reply[2] for reply in replies[: len(per_shard)]] + replies[len(per_shard) :]
        return ApplyOutcome(counts, _refused(offsets or {}, moves))

    def read_offsets(self) -> Steps[dict[TopicPartition, int]]:
        """Per partition, the last offset whose records every shard holds (absent: none stored)."""
        layout = self.layout
        replies = yield [("HGETALL", layout.offsets(shard)) for shard in range(layout.shards)]
        self._raise_first_error(replies)
        held = [{_partition(name): int(offset) for name, offset in stored.items() if not _is_first(name)} for stored in replies]
        return {tp: min(shard[tp] for shard in held) for tp in held[0] if all(tp in shard for shard in held)}

    def forget_layout(self) -> Steps[int]:
        """Delete the layout stamp: the first step of `clear`, before each node's `clear_keys`."""
        (deleted,) = yield [("DEL", self.layout.layout_stamp)]
        self._ready = False
        return int(deleted)

    def clear_keys(self) -> Steps[int]:
        """Delete every shard key of this prefix (and only those) one server holds.

        SCAN visits one server, so on a Cluster this runs once per master; keys are
        unlinked per shard because a multi-key command must stay within one slot.
        """
        deleted = 0
        cursor: Any = 0
        while True:
            ((cursor, keys),) = yield [("SCAN", cursor, "MATCH", self.layout.shard_key_pattern, "COUNT", CLEAR_CHUNK)]
            by_shard: dict[str, list[Any]] = {}
            for key in keys:
                by_shard.setdefault(as_text(key).partition("}")[0], []).append(key)
            if by_shard:
                removed = yield [("UNLINK", *group) for group in by_shard.values()]
                self._raise_first_error(removed)
                deleted += sum(removed)
            if int(cursor) == 0:
                return deleted

    def _raise_first_error(self, replies: list[Any]) -> None:
        """Raise what the worker waits out as it is; anything else as `AggregateError`."""
        for reply in replies:
            if isinstance(reply, self._transient):
                raise reply
            if isinstance(reply, Exception):
                hint = "" if self._transient is TRANSIENT_ERRORS or not _from_a_cluster(reply) else (
                    " (a Redis Cluster node? set LEADPULSE_REDIS_CLUSTER=true)"
                )
                raise AggregateError(f"Redis refused an aggregates command: {reply}{hint}") from reply

    def _prepare(self) -> Steps[None]:
        """Load both scripts and stamp (or check) the layout the stored state depends on."""
        stamp = self.layout.fingerprint
        replies = yield [
            ("SCRIPT LOAD", self._apply_body),
            ("SCRIPT LOAD", self._offsets_body),
            ("SET", self.layout.layout_stamp, stamp, "NX"),
            ("GET", self.layout.layout_stamp),
        ]
        self._raise_first_error(replies)
        if as_text(replies[3]) != stamp:
            raise LayoutMismatch(
                f"Redis prefix {self.layout.prefix!r} holds aggregates of layout {as_text(replies[3])!r}, "
                f"these settings need {stamp!r}; run `leadpulse rebuild` after changing shards, "
                "attribute dimensions or the follow-up SLA settings (LEADPULSE_FOLLOW_UP_SLA, LEADPULSE_BUSINESS_*), "
                "or after an upgrade that changed the key layout"
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
        self._raise_first_error(replies)
        return replies


def _is_first(name: bytes | str) -> bool:
    """Whether an offsets field is a partition's first applied offset (`from|topic|partition`)."""
    return as_text(name).startswith(FIRST_PREFIX)


def _partition(name: bytes | str) -> TopicPartition:
    topic, _, partition = as_text(name).rpartition("|")
    return topic, int(partition)


def _refused(offsets: Mapping[TopicPartition, OffsetAdvance], replies: Sequence[Any]) -> dict[TopicPartition, int]:
    """Per partition some shard refused to advance: the least offset a refusing shard holds."""
    refused: dict[TopicPartition, int] = {}
    for flat in replies:
        for name, stored in zip(flat[::2], flat[1::2]):
            tp = _partition(name)
            refused[tp] = min(int(stored), refused.get(tp, offsets[tp].new))
    return refused


#: Commands without a key, for every master: outside the pipeline, which routes by slot.
#: They come first in their round trip (`_prepare`), so running them first keeps order.
FAN_OUT: Final = frozenset({"SCRIPT LOAD"})


def _from_a_cluster(error: Exception) -> bool:
    return isinstance(error, (*CLUSTER_RECOVERY_ERRORS, MovedError))


def _fans_out(command: Command) -> bool:
    return command[0] in FAN_OUT


def _reply(execute: Callable[..., Any], command: Command) -> Any:
    """The reply of one command sent alone, or its error as a pipeline would give it."""
    try:
        return execute(*command)
    except REDIS_ERRORS as exc:
        return exc


async def _async_reply(execute: Callable[..., Awaitable[Any]], command: Command) -> Any:
    try:
        return await execute(*command)
    except REDIS_ERRORS as exc:
        return exc


def refuse_resharding(layout: KeyLayout, moving: set[int], applied: bool) -> None:
    """Raise if a slot of the layout's shards is moving: before a batch (nothing written)
    or after it (the batch may have met moved keys half-way: only a rebuild is sure)."""
    shards = {key_slot(layout.health(shard).encode()): shard for shard in range(layout.shards)}
    hit = sorted(slot for slot in moving if slot in shards)
    if not hit:
        return
    which = ", ".join(f"slot {slot} (shard {shards[slot]})" for slot in hit)
    if applied:
        raise ReshardingInProgress(
            f"a resharding of the Redis Cluster began while a batch was in Redis ({which} moving): its writes "
            "may be partial; when the resharding is done, run `leadpulse rebuild` (docs/operations.md, Resharding)")
    raise ReshardingInProgress(
        f"{which} of the aggregates is moving between Redis Cluster masters: stop the workers while "
        "resharding, start them when it is done (docs/operations.md, Resharding)")


class AggregateStore:
    """The aggregates of one pipeline on a synchronous `redis.Redis` or `RedisCluster`.

    On a Cluster, redis-py's pipeline sends a round trip's commands as one batch per
    node (by each command's hash slot), in their order, and re-sends in order what a
    failover or a slot migration answered with MOVED, ASK or a dropped connection.
    """

    def __init__(self, client: SyncRedis, settings: Settings) -> None:
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
        """Apply a batch; on a Cluster, refused while a slot of the shards is being resharded."""
        refuse_resharding(self.layout, cluster_moving_slots(self._client), applied=False)
        outcome = self._run(self._steps.apply(events, offsets, rejected))
        refuse_resharding(self.layout, cluster_moving_slots(self._client), applied=True)
        return outcome

    def read_offsets(self) -> dict[TopicPartition, int]:
        return self._run(self._steps.read_offsets())

    def clear(self) -> int:
        """Delete every key of this prefix, on every master; returns how many went."""
        deleted = self._run(self._steps.forget_layout())
        return deleted + sum(self._run(self._steps.clear_keys(), node) for node in primaries(self._client))

    def _run(self, steps: Steps[T], client: SyncRedis | None = None) -> T:
        client = self._client if client is None else client
        try:
            commands = next(steps)
            while True:
                replies = [_reply(client.execute_command, c) if _fans_out(c) else None for c in commands]
                pipe = client.pipeline(transaction=False)
                keyed = [i for i, command in enumerate(commands) if not _fans_out(command)]
                for i in keyed:
                    queue(pipe, client, *commands[i])
                for i, reply in zip(keyed, pipe.execute(raise_on_error=False)):
                    replies[i] = reply
                commands = steps.send(replies)
        except StopIteration as done:
            return done.value


class AsyncAggregateStore:
    """The same aggregates on a `redis.asyncio.Redis` or `RedisCluster` (the worker's)."""

    def __init__(self, client: AsyncRedis, settings: Settings) -> None:
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
        """Apply a batch; on a Cluster, refused while a slot of the shards is being resharded."""
        refuse_resharding(self.layout, await async_cluster_moving_slots(self._client), applied=False)
        outcome = await self._run(self._steps.apply(events, offsets, rejected))
        refuse_resharding(self.layout, await async_cluster_moving_slots(self._client), applied=True)
        return outcome

    async def read_offsets(self) -> dict[TopicPartition, int]:
        return await self._run(self._steps.read_offsets())

    async def _run(self, steps: Steps[T]) -> T:
        client = self._client
        try:
            commands = next(steps)
            while True:
                replies = [await _async_reply(client.execute_command, c) if _fans_out(c) else None for c in commands]
                pipe = client.pipeline(transaction=False)
                keyed = [i for i, command in enumerate(commands) if not _fans_out(command)]
                for i in keyed:
                    pipe.execute_command(*commands[i])
                for i, reply in zip(keyed, await pipe.execute(raise_on_error=False)):
                    replies[i] = reply
                commands = steps.send(replies)
        except StopIteration as done:
            return done.value

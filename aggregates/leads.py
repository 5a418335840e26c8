"""Read each lead's creation and conversion time back from the lead state `apply.lua` keeps.

The counters say how many of a cohort's leads are customers *now*; how that number
grew with the cohort's age (the review's cohort heatmap) needs each lead's own times.
They sit in the per-lead state: field `c<lead_id>` of the bucket hashes holds two
bytes of last-change day, then the msgpack array `{mql, dq, conv|false, deals, sql,
touch, dealt, created ms, event_id, segment ids..., deadline}` (see `apply.lua`).
Leads without a `lead.created` yet are skipped, as the counters skip them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import Final, NamedTuple

import msgpack
from redis.client import NEVER_DECODE

from aggregates.connect import SyncRedis, queue
from aggregates.keys import KeyLayout
from aggregates.read import ShardOffsets, parse_offsets
from aggregates.reconcile import Buckets
from streams.settings import Settings

_CONVERSION, _CREATED = 2, 7  # positions in the msgpack core
_KEYS_PER_ROUND_TRIP: Final = 512
_BUCKETS_SCRIPT: Final = resources.files("aggregates").joinpath("buckets.lua").read_text(encoding="utf-8")


class LeadTimes(NamedTuple):
    """Epoch milliseconds of a lead's earliest `lead.created` and earliest `deal.won` (or None)."""

    created_ms: int
    converted_ms: int | None


def decode_core(value: bytes) -> LeadTimes | None:
    """The times in one stored core; None for a lead known only from its deals."""
    core = msgpack.unpackb(value[2:], raw=True, strict_map_key=False)
    if len(core) <= _CREATED:
        return None
    converted = core[_CONVERSION]
    return LeadTimes(int(core[_CREATED]), None if converted is False else int(converted))


def read_lead_times(client: SyncRedis, settings: Settings) -> Iterator[LeadTimes]:
    """Every created lead's times, a few hundred bucket hashes per round trip."""
    layout = KeyLayout.from_settings(settings)
    keys = [layout.leads(shard, bucket) for shard in range(layout.shards) for bucket in range(layout.buckets)]
    for first in range(0, len(keys), _KEYS_PER_ROUND_TRIP):
        pipe = client.pipeline(transaction=False)
        for key in keys[first : first + _KEYS_PER_ROUND_TRIP]:
            pipe.execute_command("HGETALL", key, **{NEVER_DECODE: True})
        for flat in pipe.execute():
            for field, value in _pairs(flat):
                if field[:1] == b"c" and (times := decode_core(value)) is not None:
                    yield times


def _pairs(reply: object) -> Iterator[tuple[bytes, bytes]]:
    """HGETALL's reply as (field, value) pairs, whether it arrived as a flat list or a dict."""
    if isinstance(reply, dict):
        yield from reply.items()
    elif isinstance(reply, list):
        yield from zip(reply[::2], reply[1::2])


def read_buckets(
    client: SyncRedis, layout: KeyLayout, chosen: Mapping[int, Sequence[int]]
) -> dict[int, tuple[tuple[ShardOffsets, ShardOffsets], Buckets]]:
    """Per shard of `chosen` (shard -> bucket numbers): its last and first applied offsets
    (`parse_offsets`) and the lead state of those buckets, read by one script per shard (atomic: what a shard holds is
    exactly the records up to the offsets read with it, docs/keys.md)."""
    shards = sorted(chosen)
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        keys = [layout.offsets(shard), layout.names(shard), *(layout.leads(shard, b) for b in chosen[shard])]
        queue(pipe, client, "EVAL", _BUCKETS_SCRIPT, len(keys), *keys, **{NEVER_DECODE: True})
    read: dict[int, tuple[tuple[ShardOffsets, ShardOffsets], Buckets]] = {}
    for shard, (offsets, names, *flats) in zip(shards, pipe.execute()):
        read[shard] = parse_offsets(offsets), Buckets(dict(zip(names[::2], names[1::2])), flats)
    return read

"""The workers' decoder: a typed msgspec fast path for well-formed records, `parse_record` for the rest.

`parse_record` decodes to a dict with orjson and then checks every field by hand, about
6 µs a record. Most records of a real feed are well-formed, and for those one typed
msgspec decode straight into the fields does the work of both steps in about a third of
the time. Anything the fast path is not sure of, it hands to `parse_record` untouched, so
the rules of CONTRACT section 1 (and every rejection reason) live in one place:
`tests/streams/test_decoding.py` checks, on arbitrary and mutated bytes, that
`decode_record` and `parse_record` always give the same answer.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Final

import msgspec

from streams.events import (
    DEAL_TYPES,
    EVENT_TYPES,
    FUTURE_TOLERANCE_MS,
    MAX_ID_CHARS,
    MAX_RECORD_BYTES,
    MISSING_CAMPAIGN,
    STAGES,
    UNKNOWN_SEGMENT,
    Event,
    Rejection,
    normalise_segment,
    parse_record,
    parse_timestamp_ms,
)


#: What msgspec checks in C while it decodes; anything else fails the decode and goes to `parse_record`.
_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]


class _Record(msgspec.Struct, gc=False):
    """The shape of a well-formed record; unknown fields are ignored, as the contract says.

    No garbage-collector tracking (its fields never refer back to it): one is made per record.
    """

    event_id: _Identifier
    type: str
    occurred_at: str
    lead_id: _Identifier
    source: str | None = None
    campaign: str | None = None
    attributes: dict[str, str] | None = None
    stage: str | None = None
    reason: str | None = None
    deal_id: str | None = None
    amount: int | float | None = None
    channel: str | None = None


_DECODER: Final = msgspec.json.Decoder(_Record)
#: A feed repeats a few sources, campaigns and attribute values: each is normalised once.
_segment: Final = functools.lru_cache(maxsize=4096)(normalise_segment)
_MAX_AMOUNT: Final = sys.float_info.max


def decode_record(raw: bytes, now_ms: int) -> Event | Rejection:
    """The same result as `parse_record(raw, now_ms)`, faster for well-formed records."""
    # Escapes may hide lone surrogates, which the two decoders treat differently. Most
    # records hold no backslash, and looking for one byte is a fraction of looking for two.
    if len(raw) > MAX_RECORD_BYTES or (b"\\" in raw and b"\\u" in raw):
        return parse_record(raw, now_ms)
    if not raw.isascii():  # msgspec skips unknown keys unchecked: bad UTF-8 there must still reject
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return parse_record(raw, now_ms)
    try:
        record = _DECODER.decode(raw)
    except msgspec.DecodeError:
        return parse_record(raw, now_ms)
    event = _event(record, now_ms)
    return event if event is not None else parse_record(raw, now_ms)


def _event(r: _Record, now_ms: int) -> Event | None:
    """The event of a record that passes every rule, else None (the slow path decides why not)."""
    kind = r.type
    if kind not in EVENT_TYPES:
        return None
    occurred_ms = parse_timestamp_ms(r.occurred_at)
    if isinstance(occurred_ms, Rejection) or occurred_ms > now_ms + FUTURE_TOLERANCE_MS:
        return None
    if kind == "lead.created" and r.source is None:
        return None
    if kind == "lead.qualified" and r.stage not in STAGES:
        return None
    if kind in DEAL_TYPES and (r.deal_id is None or not 0 < len(r.deal_id) <= MAX_ID_CHARS):
        return None
    amount = r.amount
    if amount is not None and not 0 <= amount <= _MAX_AMOUNT:
        return None
    attributes = r.attributes
    return Event(
        event_id=r.event_id,
        type=kind,
        occurred_ms=occurred_ms,
        lead_id=r.lead_id,
        source=_segment(r.source) if r.source is not None else UNKNOWN_SEGMENT,
        campaign=_segment(r.campaign) if r.campaign is not None else MISSING_CAMPAIGN,
        # map and zip rather than a comprehension, whose frame cost more than the one pair it usually holds
        attributes=dict(zip(map(_segment, attributes), map(_segment, attributes.values()))) if attributes else {},
        stage=r.stage if kind == "lead.qualified" else None,
        reason=r.reason,
        deal_id=r.deal_id if kind in DEAL_TYPES else None,
        amount=float(amount) if amount is not None else None,
        channel=(_segment(r.channel) if r.channel is not None else UNKNOWN_SEGMENT) if kind == "lead.contacted" else None,
    )

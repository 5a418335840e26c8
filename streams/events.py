"""The event model of CONTRACT section 1: parse, validate and normalise one record.

Pure and total: every input, however broken, yields either an `Event` or a `Rejection`
with a reason from the fixed set `REASONS`, so no record can stop a worker. `publish`,
the ingest API and the workers all call `parse_record`, so they agree on what is valid.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Mapping

import msgspec
import orjson

from streams.settings import DEALS_TOPIC, LEADS_TOPIC

MAX_RECORD_BYTES: Final = 64 * 1024
MAX_ID_CHARS: Final = 128
MAX_SEGMENT_CHARS: Final = 64
FUTURE_TOLERANCE_MS: Final = 24 * 3600 * 1000

LEAD_TYPES: Final = frozenset({"lead.created", "lead.qualified", "lead.disqualified", "lead.contacted"})
DEAL_TYPES: Final = frozenset({"deal.created", "deal.won", "deal.lost"})
EVENT_TYPES: Final = LEAD_TYPES | DEAL_TYPES
STAGES: Final = frozenset({"mql", "sql"})

#: Every rejection reason code, with what it means (docs/events.md repeats this table).
REASONS: Final[Mapping[str, str]] = {
    "too_large": f"record is over {MAX_RECORD_BYTES} bytes",
    "not_utf8": "record bytes are not UTF-8",
    "invalid_json": "record is not valid JSON",
    "not_an_object": "record is JSON but not an object",
    "missing_field": "a field the event type requires is absent or null",
    "invalid_field": "a field has the wrong type, length or value",
    "unknown_type": "`type` is not one of the seven event types",
    "invalid_timestamp": "`occurred_at` is not RFC 3339 with an offset",
    "future_timestamp": "`occurred_at` is more than 24 h in the future",
}

UNKNOWN_SEGMENT: Final = "unknown"
MISSING_CAMPAIGN: Final = "none"

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_OUTSIDE_SEGMENT_ALPHABET = re.compile(r"[^a-z0-9_.-]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record is not an event: a code from `REASONS` and the offending detail."""

    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


class Event(msgspec.Struct, frozen=True, gc=False):
    """A valid event with its segments already normalised and its time in UTC epoch ms.

    A msgspec Struct rather than a frozen dataclass: a worker builds one per record, and a
    frozen dataclass's `__init__` (one `object.__setattr__` per field) cost ~3 µs of it.
    No garbage-collector tracking: its fields (strings, numbers, a dict of strings) can
    never refer back to it.
    """

    event_id: str
    type: str
    occurred_ms: int
    lead_id: str
    source: str = UNKNOWN_SEGMENT
    campaign: str = MISSING_CAMPAIGN
    attributes: Mapping[str, str] = msgspec.field(default_factory=dict)
    stage: str | None = None
    reason: str | None = None
    deal_id: str | None = None
    amount: float | None = None
    #: How sales reached out (`lead.contacted` only; normalised, `unknown` when absent).
    channel: str | None = None

    @property
    def topic(self) -> str:
        return LEADS_TOPIC if self.type in LEAD_TYPES else DEALS_TOPIC


def normalise_segment(value: str) -> str:
    """Segment label value: trimmed, lower-cased, runs outside [a-z0-9_.-] become `_`."""
    cleaned = _OUTSIDE_SEGMENT_ALPHABET.sub("_", value.strip().lower())[:MAX_SEGMENT_CHARS]
    return cleaned or UNKNOWN_SEGMENT


def parse_timestamp_ms(value: object) -> int | Rejection:
    """RFC 3339 with an explicit offset to UTC epoch milliseconds: `strict_timestamp_ms`, from its pieces.

    The grammar cuts every timestamp at fixed places into three pieces that are valid or not
    on their own and whose milliseconds add up: date and hour (`2026-11-02T10`), minutes and
    seconds (`:04:05`), fraction and offset (`.250Z`). A feed repeats each piece endlessly
    (a few thousand hours, 3,600 minute-seconds, a handful of offsets), so each is judged
    once, by `strict_timestamp_ms` in a template, and looked up after that: half the cost of
    the regex and the `datetime` arithmetic per record. tests/streams/test_events.py checks
    that both always agree.
    """
    if isinstance(value, str) and len(value) >= _SHORTEST:
        hour, clock, rest = _HOURS[value[:13]], _CLOCKS[value[13:19]], _RESTS[value[19:]]
        if hour is not None and clock is not None and rest is not None:
            return hour + clock + rest
    return strict_timestamp_ms(value)


def strict_timestamp_ms(value: object) -> int | Rejection:
    """The rule itself: the RFC 3339 grammar, then `datetime`'s calendar, clock and offset checks."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return Rejection("invalid_timestamp", repr(value)[:80])
    try:
        moment = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        return Rejection("invalid_timestamp", repr(value)[:80])
    return (moment - _EPOCH) // _ONE_MS  # exact: float timestamp() * 1000 can land 1 ms low


class _PieceMs(dict[str, "int | None"]):
    """Each timestamp piece seen, with its milliseconds (None: invalid), judged once in `template`."""

    def __init__(self, template: str) -> None:
        super().__init__()
        self.template = template

    def __missing__(self, piece: str) -> int | None:
        ms = strict_timestamp_ms(self.template.format(piece))
        if len(self) >= _MAX_PIECES:
            self.clear()  # a stream of garbage cannot grow it without bound
        self[piece] = result = None if isinstance(ms, Rejection) else ms
        return result


_SHORTEST: Final = len("2026-11-02T10:04:05Z")
_MAX_PIECES: Final = 1 << 15
_HOURS: Final = _PieceMs("{}:00:00Z")
_CLOCKS: Final = _PieceMs("1970-01-01T00{}Z")
_RESTS: Final = _PieceMs("1970-01-01T00:00:00{}")


def parse_record(raw: bytes | str, now_ms: int) -> Event | Rejection:
    """Decode one Kafka message value (or one JSON Lines line) into an event."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_RECORD_BYTES:
        return Rejection("too_large", f"{len(raw)} bytes")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"byte {exc.start}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("invalid_json", str(exc)[:120])
    return validate(obj, now_ms)


def validate(obj: Any, now_ms: int) -> Event | Rejection:
    """Check a decoded record against CONTRACT section 1 and normalise its segments."""
    if not isinstance(obj, dict):
        return Rejection("not_an_object", type(obj).__name__)
    event_id = _identifier(obj, "event_id")
    if isinstance(event_id, Rejection):
        return event_id
    kind = obj.get("type")
    if kind is None:
        return Rejection("missing_field", "type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        return Rejection("unknown_type", repr(kind)[:80])
    if obj.get("occurred_at") is None:
        return Rejection("missing_field", "occurred_at")
    occurred_ms = parse_timestamp_ms(obj["occurred_at"])
    if isinstance(occurred_ms, Rejection):
        return occurred_ms
    if occurred_ms > now_ms + FUTURE_TOLERANCE_MS:
        return Rejection("future_timestamp", obj["occurred_at"])
    lead_id = _identifier(obj, "lead_id")
    if isinstance(lead_id, Rejection):
        return lead_id
    segments = _segments(obj, required_source=kind == "lead.created")
    if isinstance(segments, Rejection):
        return segments
    source, campaign, attributes = segments
    reason = _optional_string(obj, "reason")
    if isinstance(reason, Rejection):
        return reason
    stage = obj.get("stage")
    if kind == "lead.qualified":
        if stage is None:
            return Rejection("missing_field", "stage")
        if not isinstance(stage, str) or stage not in STAGES:
            return Rejection("invalid_field", f"stage {stage!r}"[:80])
    deal_id = _identifier(obj, "deal_id") if kind in DEAL_TYPES else None
    if isinstance(deal_id, Rejection):
        return deal_id
    channel = _optional_string(obj, "channel") if kind == "lead.contacted" else None
    if isinstance(channel, Rejection):
        return channel
    amount = obj.get("amount")
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 <= amount <= sys.float_info.max
    ):
        return Rejection("invalid_field", f"amount {amount!r}"[:80])
    return Event(
        event_id=event_id,
        type=kind,
        occurred_ms=occurred_ms,
        lead_id=lead_id,
        source=source,
        campaign=campaign,
        attributes=attributes,
        stage=stage if kind == "lead.qualified" else None,
        reason=reason,
        deal_id=deal_id,
        amount=float(amount) if amount is not None else None,
        channel=_channel(channel) if kind == "lead.contacted" else None,
    )


def _channel(value: str | None) -> str:
    """A touch's channel is labelled like a segment, so a report can group by it safely."""
    return normalise_segment(value) if value is not None else UNKNOWN_SEGMENT


def _identifier(obj: dict[str, Any], name: str) -> str | Rejection:
    value = obj.get(name)
    if value is None:
        return Rejection("missing_field", name)
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        return Rejection("invalid_field", f"{name} must be a string of 1-{MAX_ID_CHARS} characters")
    return value


def _optional_string(obj: dict[str, Any], name: str) -> str | None | Rejection:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        return Rejection("invalid_field", f"{name} must be a string")
    return value


def _segments(obj: dict[str, Any], required_source: bool) -> tuple[str, str, dict[str, str]] | Rejection:
    source = obj.get("source")
    if source is None and required_source:
        return Rejection("missing_field", "source")
    campaign = obj.get("campaign")
    for name, value in (("source", source), ("campaign", campaign)):
        if value is not None and not isinstance(value, str):
            return Rejection("invalid_field", f"{name} must be a string")
    attributes = obj.get("attributes")
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        return Rejection("invalid_field", "attributes must be an object of string to string")
    return (
        normalise_segment(source) if source is not None else UNKNOWN_SEGMENT,
        normalise_segment(campaign) if campaign is not None else MISSING_CAMPAIGN,
        {normalise_segment(k): normalise_segment(v) for k, v in attributes.items()},
    )

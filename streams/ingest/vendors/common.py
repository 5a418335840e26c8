"""What every vendor hook shares: the request a signature covers, the mapper type, id and time helpers.

A vendor module holds a pure mapper (one notification to contract event objects, or a
`Rejection`), a `recognise` check (is this body the vendor's at all?) and its signature
check. `map_notifications` turns a whole body into the records the API sends; `parse_record`
then judges each mapped event exactly as it judges a posted one.

Pure: no I/O; the clock comes in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import orjson

from streams.events import MAX_RECORD_BYTES, Event, Rejection, parse_record
from streams.ingest.records import Record

#: One notification and the receive time (epoch ms) to the contract event objects it means
#: ([] when it means nothing to leadpulse), or why it cannot be mapped.
Mapper = Callable[[dict[str, Any], int], list[dict[str, Any]] | Rejection]
#: A body to None when it is the vendor's shape, else the reason it is not (answered 400).
Recogniser = Callable[[Any], str | None]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SignedRequest:
    """What a vendor's signature may cover: method, the URL the vendor called, headers, raw body."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    now_s: float


def map_notifications(mapper: Mapper, body: Any, now_ms: int) -> tuple[list[Record], int]:
    """The records of a webhook body (one notification or an array of them) and how many were ignored.

    A record's `line` is its notification's index in the body. A valid event is sent as
    the mapped event; a rejected one as the notification it came from, so the rejected
    topic shows what the vendor actually sent.
    """
    records: list[Record] = []
    ignored = 0
    for index, note in enumerate(notifications(body)):
        original = orjson.dumps(note)[:MAX_RECORD_BYTES]
        mapped = mapper(note, now_ms) if isinstance(note, dict) else Rejection("not_an_object", type(note).__name__)
        if isinstance(mapped, Rejection):
            records.append(Record(original, mapped, index))
            continue
        ignored += not mapped
        for obj in mapped:
            raw = orjson.dumps(obj)
            result = parse_record(raw, now_ms)
            records.append(Record(raw if isinstance(result, Event) else original, result, index))
    return records, ignored


def notifications(body: Any) -> list[Any]:
    """A body is one notification or a JSON array of them."""
    return body if isinstance(body, list) else [body]


def any_note_has(body: Any, test: Callable[[dict[str, Any]], bool]) -> bool:
    """Whether the body is empty or one of its notifications passes `test` (the vendor's own marks)."""
    notes = notifications(body)
    return not notes or any(isinstance(note, dict) and test(note) for note in notes)


def text_id(value: object) -> object:
    """Vendor ids come as numbers or strings; the contract wants strings (other types stay, for validation to reject)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def join_id(*parts: object) -> str:
    """An event id from the sender's own ids, so a re-delivered notification keeps it."""
    return ":".join(str(part) for part in parts)


def rfc3339_from_ms(epoch_ms: object) -> object:
    """Vendor epoch milliseconds as RFC 3339 UTC; anything else stays for validation to reject."""
    if not isinstance(epoch_ms, int) or isinstance(epoch_ms, bool):
        return epoch_ms
    try:
        moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    except OverflowError:
        return epoch_ms
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""What every vendor hook shares: a body to records, vendor times and ids."""

from __future__ import annotations

from typing import Any

import orjson

from streams.events import Rejection
from streams.ingest.vendors.common import any_note_has, join_id, map_notifications, rfc3339_from_ms, text_id
from tests.streams.ingest.vendors.mapping import NOW_MS


def echo(note: dict[str, Any], now_ms: int) -> list[dict[str, Any]] | Rejection:
    """A mapper that passes `events` through, ignores `{}` and rejects anything else."""
    if note == {}:
        return []
    return note["events"] if "events" in note else Rejection("missing_field", "events")


GOOD = {"event_id": "e1", "type": "lead.created", "occurred_at": "2026-11-02T10:00:00Z", "lead_id": "L", "source": "x"}


def test_each_notification_gives_its_events_its_rejection_or_counts_as_ignored() -> None:
    bad_event = {"event_id": "e2", "type": "lead.created"}
    body = [{"events": [GOOD, bad_event]}, {}, {"other": 1}, "text"]
    records, ignored = map_notifications(echo, body, NOW_MS)
    assert ignored == 1
    assert [(r.line, str(r.result) if isinstance(r.result, Rejection) else "event", r.raw) for r in records] == [
        (0, "event", orjson.dumps(GOOD)),
        (0, "missing_field: occurred_at", orjson.dumps(body[0])),  # sent as the vendor sent it
        (2, "missing_field: events", b'{"other":1}'),
        (3, "not_an_object: str", b'"text"'),
    ]


def test_one_object_is_a_body_of_one_notification() -> None:
    assert map_notifications(echo, {"events": [GOOD]}, NOW_MS)[0][0].line == 0


def test_vendor_times_ids_and_marks() -> None:
    assert rfc3339_from_ms(1_793_613_600_000) == "2026-11-02T10:00:00.000Z"
    assert rfc3339_from_ms("2026-11-02") == "2026-11-02" and rfc3339_from_ms(True) is True
    assert rfc3339_from_ms(10**20) == 10**20  # beyond datetime: left for validation to reject
    assert (text_id(123), text_id("a"), text_id(False)) == ("123", "a", False)
    assert join_id("hubspot", 1, "x") == "hubspot:1:x"
    assert any_note_has([], lambda n: False) and any_note_has([1, {"a": 1}], lambda n: "a" in n)
    assert not any_note_has({"b": 1}, lambda n: "a" in n)

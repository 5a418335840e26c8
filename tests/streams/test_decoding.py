"""The fast decoder against `parse_record`: the same answer for every input, differential."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.decoding import decode_record
from streams.events import Event, Rejection, parse_record
from streams.ingest.records import row_object
from tests.streams.test_events import NOW_MS, event_shaped, json_values, valid_events

records = st.one_of(event_shaped, valid_events, json_values)


def encodings(obj: Any) -> list[bytes]:
    """The ways a producer may write `obj`: orjson's compact form, stdlib JSON with and without escapes."""
    out = [json.dumps(obj).encode(), json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")]
    try:
        out.append(orjson.dumps(obj))
    except TypeError:  # an int beyond 64 bits: orjson does not write it, other producers do
        pass
    return out


def assert_same(raw: bytes) -> None:
    assert decode_record(raw, NOW_MS) == parse_record(raw, NOW_MS)


@settings(max_examples=1500)
@given(records)
def test_the_fast_decoder_agrees_with_parse_record_on_any_json(obj: Any) -> None:
    for raw in encodings(obj):
        assert_same(raw)


def mutated(obj: dict[str, Any], data: st.DataObject) -> bytes:
    """`obj` as JSON with one to four bytes flipped, inserted or deleted: records just off the valid ones."""
    raw = bytearray(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        elif raw and at < len(raw):
            if action == "delete":
                del raw[at]
            else:
                raw[at] = data.draw(st.integers(0, 255))
    return bytes(raw)


@settings(max_examples=1500)
@given(valid_events, st.data())
def test_the_fast_decoder_agrees_with_parse_record_on_mutated_bytes(obj: dict[str, Any], data: st.DataObject) -> None:
    assert_same(mutated(obj, data))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_the_fast_decoder_agrees_with_parse_record_on_any_bytes(raw: bytes) -> None:
    assert_same(raw)


def test_duplicate_keys_decide_as_parse_record_does_the_last_one_wins() -> None:
    body = b'{"event_id":"e","type":"deal.won","type":"lead.created","occurred_at":"2026-11-02T10:00:00Z","lead_id":"l","source":"a","source":"B"}'
    result = decode_record(body, NOW_MS)
    assert result == parse_record(body, NOW_MS)
    assert isinstance(result, Event) and result.type == "lead.created" and result.source == "b"


def test_bad_utf8_in_an_unknown_key_is_rejected_as_parse_record_rejects_it() -> None:
    raw = b'{"event_id": "0", "type": "deal.created", "occurred_at": "2000-01-01T00:00:00+00:00", "lead_id": "0", "deal_id": "0", "\x80ttributes": {}}'
    assert decode_record(raw, NOW_MS) == parse_record(raw, NOW_MS) == Rejection("not_utf8", "byte 119")


def test_a_well_formed_record_takes_the_fast_path() -> None:
    """The point of the module: a valid record never reaches parse_record's dict walk."""
    from unittest import mock

    raw = orjson.dumps({"event_id": "e", "type": "deal.won", "occurred_at": "2026-11-02T10:00:00Z", "lead_id": "l", "deal_id": "d", "amount": 12})
    with mock.patch("streams.decoding.parse_record", side_effect=AssertionError("slow path")):
        result = decode_record(raw, NOW_MS)
    assert isinstance(result, Event) and result.amount == 12.0


CSV_COLUMNS = ["event_id", "type", "occurred_at", "lead_id", "source", "campaign", "stage", "reason", "deal_id",
               "amount", "attributes.persona", "attributes.region", "note"]  # fmt: skip
CSV_CELLS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["lead.created", "lead.qualified", "deal.won", "deal.lost", "mql", "2026-11-02T10:00:00Z",
                     "2026-11-02 10:00:00+01:00", "12.50", "-3", "1e400", "L-1", "Paid Search", ""]),
)  # fmt: skip


@settings(max_examples=300)
@given(st.data())
def test_the_fast_decoder_agrees_with_parse_record_on_csv_rows(data: st.DataObject) -> None:
    """`publish` validates CSV rows as the JSON objects `row_object` makes of them."""
    columns = data.draw(st.lists(st.sampled_from(CSV_COLUMNS), min_size=1, max_size=len(CSV_COLUMNS), unique=True))
    cells = data.draw(st.lists(CSV_CELLS, min_size=len(columns), max_size=len(columns)))
    try:
        raw = orjson.dumps(row_object(columns, cells))
    except orjson.JSONEncodeError:  # a lone surrogate: `read_csv` rejects it as not_utf8 before validation
        return
    assert_same(raw)

"""The compiled route check against `parse_record`: the same verdict on every input, differential.

`route` may leave any record to `parse_record`, but when it answers, the record must be
valid with that topic and key; and it must answer for the well-formed records a feed is
made of, or the ingest paths lose their speed.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams._native import Router
from streams.events import FUTURE_TOLERANCE_MS, Event, Rejection, parse_record
from streams.ingest.routes import Route, route_record
from streams.settings import DEALS_TOPIC, LEADS_TOPIC
from tests.streams.test_decoding import encodings, mutated, records
from tests.streams.test_events import NOW_MS, timestamp_like, valid_events

route = Router(LEADS_TOPIC, DEALS_TOPIC).route


def assert_same(raw: bytes, now_ms: int = NOW_MS) -> None:
    """`route_record` says what `parse_record` says, and the compiled check never says more."""
    expected = parse_record(raw, now_ms)
    if isinstance(expected, Event):
        assert route_record(raw, now_ms) == Route(expected.topic, expected.lead_id)
        assert route(raw, now_ms) in (None, Route(expected.topic, expected.lead_id))
    else:
        assert route(raw, now_ms) is None
        assert route_record(raw, now_ms) == expected


@settings(max_examples=1500)
@given(records)
def test_the_route_agrees_with_parse_record_on_any_json(obj: Any) -> None:
    for raw in encodings(obj):
        assert_same(raw)


@settings(max_examples=1500)
@given(valid_events, st.data())
def test_the_route_agrees_with_parse_record_on_mutated_bytes(obj: dict[str, Any], data: st.DataObject) -> None:
    assert_same(mutated(obj, data))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_the_route_agrees_with_parse_record_on_any_bytes(raw: bytes) -> None:
    assert_same(raw)


@settings(max_examples=1000)
@given(valid_events, timestamp_like | st.text(st.sampled_from("0123456789٣-:.TtZz+ "), max_size=36))
def test_the_route_reads_any_timestamp_text_as_the_rule_does(obj: dict[str, Any], occurred_at: str) -> None:
    for raw in encodings({**obj, "occurred_at": occurred_at}):
        assert_same(raw)


@settings(max_examples=500)
@given(valid_events)
def test_a_well_formed_record_is_routed_by_the_compiled_check_however_it_is_written(obj: dict[str, Any]) -> None:
    for raw in encodings(obj):  # compact, and stdlib JSON with \u escapes and without
        assert route(raw, NOW_MS) is not None


LONE_SURROGATES = [r"\ud800", r"\udfff", r"\ud83dx", r"\ude00\ud83d"]


@pytest.mark.parametrize("escape", LONE_SURROGATES)
@pytest.mark.parametrize("place", ["lead_id", "event_id", "source", "attributes", "key", "unknown"])
def test_a_lone_surrogate_anywhere_is_judged_as_parse_record_judges_it(place: str, escape: str) -> None:
    fields = {"event_id": '"e"', "type": '"lead.created"', "occurred_at": '"2026-11-02T10:00:00Z"', "lead_id": '"l"', "source": '"s"'}
    text = f'"x{escape}"'
    if place == "attributes":
        fields["attributes"] = f'{{"k": {text}}}'
    elif place == "key":
        fields[f"x{escape}"] = "1"
    elif place == "unknown":
        fields["note"] = f"[{text}]"
    else:
        fields[place] = text
    raw = ("{" + ",".join(f'"{name}":{value}' for name, value in fields.items()) + "}").encode()
    assert_same(raw)
    assert isinstance(parse_record(raw, NOW_MS), Rejection)


def test_an_escaped_surrogate_pair_is_one_character_as_in_python() -> None:
    raw = b'{"event_id":"e","type":"lead.contacted","occurred_at":"2026-11-02T10:00:00Z","lead_id":"\\ud83d\\ude00"}'
    assert route(raw, NOW_MS) == route_record(raw, NOW_MS) == Route(LEADS_TOPIC, "\U0001f600")


def test_a_field_given_twice_is_left_to_parse_record_where_the_last_one_wins() -> None:
    raw = b'{"event_id":"e","type":"deal.won","type":"lead.created","occurred_at":"2026-11-02T10:00:00Z","lead_id":"l","source":"a"}'
    assert route(raw, NOW_MS) is None
    assert route_record(raw, NOW_MS) == Route(LEADS_TOPIC, "l")


def test_the_future_tolerance_ends_where_parse_record_ends_it() -> None:
    deal = {"event_id": "e", "type": "deal.won", "occurred_at": "2026-11-02T10:00:00Z", "lead_id": "l", "deal_id": "d"}
    raw = orjson.dumps(deal)
    at_limit = 1_793_613_600_000 - FUTURE_TOLERANCE_MS
    assert route(raw, at_limit) == route_record(raw, at_limit) == Route(DEALS_TOPIC, "l")
    assert route(raw, at_limit - 1) is None
    assert route_record(raw, at_limit - 1) == Rejection("future_timestamp", "2026-11-02T10:00:00Z")


def test_escaped_text_is_unescaped_in_the_key() -> None:
    raw = b'{"event_id":"e","type":"lead.contacted","occurred_at":"2026-11-02T10:00:00Z","lead_id":"a\\"b\\\\c"}'
    assert route(raw, NOW_MS) == Route(LEADS_TOPIC, 'a"b\\c')


def test_numbers_orjson_cannot_read_anywhere_in_a_record_leave_it_to_parse_record() -> None:
    raw = b'{"event_id":"e","type":"lead.contacted","occurred_at":"2026-11-02T10:00:00Z","lead_id":"l","x":[1e400]}'
    assert route(raw, NOW_MS) is None and isinstance(route_record(raw, NOW_MS), Rejection)


def test_a_route_equals_only_a_route_to_the_same_topic_and_key_and_shows_both() -> None:
    assert Route(LEADS_TOPIC, "l") == Route(LEADS_TOPIC, "l")
    assert Route(LEADS_TOPIC, "l") != Route(DEALS_TOPIC, "l") and Route(LEADS_TOPIC, "l") != Route(LEADS_TOPIC, "m")
    assert Route(LEADS_TOPIC, "l") != (LEADS_TOPIC, "l")
    assert repr(Route(LEADS_TOPIC, "l")) == "Route(topic='leadpulse.leads', lead_id='l')"

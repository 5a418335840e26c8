"""The event model against CONTRACT section 1: totality, round trips, normalisation, each rule."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import (
    DEAL_TYPES,
    EVENT_TYPES,
    MAX_RECORD_BYTES,
    REASONS,
    Event,
    Rejection,
    normalise_segment,
    parse_record,
    parse_timestamp_ms,
    strict_timestamp_ms,
    validate,
)
from streams.settings import DEALS_TOPIC, LEADS_TOPIC
from tests import REPO

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SEGMENT = re.compile(r"[a-z0-9_.-]{1,64}")

LEAD_CREATED = {
    "event_id": "e-1",
    "type": "lead.created",
    "occurred_at": "2026-11-02T10:00:00Z",
    "lead_id": "lead-1",
    "source": "Paid Search",
}


def event(*, drop: str = "", **changes: Any) -> dict[str, Any]:
    """A valid `lead.created` with `changes` applied and the field `drop` left out."""
    return {k: v for k, v in {**LEAD_CREATED, **changes}.items() if k != drop}


def check(obj: Any) -> Event | Rejection:
    """`obj` as a record: stdlib JSON, which (unlike orjson) writes ints of any size."""
    return parse_record(json.dumps(obj, ensure_ascii=False).encode(), NOW_MS)


def rejected_with(obj: Any, code: str) -> Rejection:
    result = check(obj)
    assert isinstance(result, Rejection), result
    assert result.code == code, result
    return result


# --- totality -------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ids = st.text(min_size=1, max_size=128)
rfc3339 = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2026, 11, 3),
    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]),
).map(lambda moment: moment.isoformat())


def either(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values, sometimes anything: reaches every branch of `validate`."""
    return st.one_of(valid, valid, json_values)


event_shaped = st.fixed_dictionaries(
    {},
    optional={
        "event_id": either(ids),
        "type": either(st.sampled_from(sorted(EVENT_TYPES))),
        "occurred_at": either(rfc3339),
        "lead_id": either(ids),
        "source": either(st.text()),
        "campaign": either(st.text()),
        "attributes": either(st.dictionaries(st.text(), st.text(), max_size=3)),
        "stage": either(st.sampled_from(["mql", "sql"])),
        "reason": either(st.text()),
        "deal_id": either(ids),
        "amount": either(st.floats(min_value=0, allow_infinity=False)),
        "channel": either(st.text()),
    },
)


def assert_total(result: object) -> None:
    assert isinstance(result, (Event, Rejection))
    if isinstance(result, Rejection):
        assert result.code in REASONS


@settings(max_examples=300)
@given(json_values | event_shaped)
def test_any_json_value_is_an_event_or_a_known_rejection(obj: Any) -> None:
    assert_total(validate(obj, NOW_MS))
    assert_total(check(obj))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_are_an_event_or_a_known_rejection(raw: bytes) -> None:
    assert_total(parse_record(raw, NOW_MS))


@given(st.integers(min_value=10**309))
def test_an_amount_beyond_float_range_is_rejected_not_an_overflow(amount: int) -> None:
    result = validate(event(type="deal.won", deal_id="d", amount=amount), NOW_MS)
    assert isinstance(result, Rejection) and result.code == "invalid_field"


# --- valid events round-trip ----------------------------------------------------------

valid_events = st.builds(
    lambda kind, event_id, lead_id, deal_id, occurred, extras: {
        "event_id": event_id,
        "type": kind,
        "occurred_at": occurred,
        "lead_id": lead_id,
        **({"deal_id": deal_id} if kind in DEAL_TYPES else {}),
        **({"stage": "sql"} if kind == "lead.qualified" else {}),
        **({"source": "Organic Search"} if kind == "lead.created" else {}),
        **extras,
    },
    st.sampled_from(sorted(EVENT_TYPES)),
    ids,
    ids,
    ids,
    rfc3339,
    st.fixed_dictionaries(
        {},
        optional={
            "campaign": st.text(),
            "attributes": st.dictionaries(st.text(), st.text(), max_size=3),
            "reason": st.text(),
            "channel": st.text(),
            "amount": st.integers(min_value=0, max_value=10**12) | st.floats(min_value=0, max_value=1e12),
            "x-unknown": json_values,
        },
    ),
)


@settings(max_examples=200)
@given(valid_events)
def test_valid_events_round_trip(obj: dict[str, Any]) -> None:
    result = check(obj)
    assert isinstance(result, Event), result
    moment = datetime.fromisoformat(obj["occurred_at"])
    assert result.occurred_ms == (moment - EPOCH) // timedelta(milliseconds=1)
    assert (result.event_id, result.type, result.lead_id) == (obj["event_id"], obj["type"], obj["lead_id"])
    assert result.deal_id == obj.get("deal_id")
    assert result.stage == obj.get("stage")
    assert result.reason == obj.get("reason")
    assert result.amount == obj.get("amount")
    assert result.source == normalise_segment(obj.get("source", ""))
    assert result.campaign == (normalise_segment(obj["campaign"]) if "campaign" in obj else "none")
    attributes = obj.get("attributes", {})
    assert result.attributes == {normalise_segment(k): normalise_segment(v) for k, v in attributes.items()}
    assert result.topic == (DEALS_TOPIC if obj["type"] in DEAL_TYPES else LEADS_TOPIC)
    contacted = obj["type"] == "lead.contacted"
    assert result.channel == (normalise_segment(obj.get("channel", "")) if contacted else None)
    assert parse_record(json.dumps(obj), NOW_MS) == result  # str and bytes agree


# --- normalisation --------------------------------------------------------------------


@given(st.text())
def test_normalisation_is_idempotent_and_within_the_alphabet(value: str) -> None:
    once = normalise_segment(value)
    assert SEGMENT.fullmatch(once)
    assert normalise_segment(once) == once


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Paid Search", "paid_search"),
        ("  Organic Search\t", "organic_search"),
        ("Google Ads™ / Brand", "google_ads_brand"),
        ("partner.co-op_2026", "partner.co-op_2026"),
        ("", "unknown"),
        ("   ", "unknown"),
        ("x" * 100, "x" * 64),
    ],
)
def test_normalisation_examples(value: str, expected: str) -> None:
    assert normalise_segment(value) == expected


def test_missing_segments_become_unknown_and_none() -> None:
    result = check(event(type="deal.created", deal_id="d", drop="source"))
    assert isinstance(result, Event)
    assert (result.source, result.campaign) == ("unknown", "none")
    result = check(event(source=" ", campaign=""))
    assert isinstance(result, Event)
    assert (result.source, result.campaign) == ("unknown", "unknown")


def test_a_touch_goes_to_the_leads_topic_with_its_channel_normalised_or_unknown() -> None:
    result = check(event(type="lead.contacted", drop="source", channel=" Phone Call "))
    assert isinstance(result, Event)
    assert (result.topic, result.channel) == (LEADS_TOPIC, "phone_call")
    result = check(event(type="lead.contacted", drop="source"))
    assert isinstance(result, Event) and result.channel == "unknown"


def test_a_channel_that_is_not_a_string_rejects_a_touch_and_is_ignored_elsewhere() -> None:
    result = check(event(type="lead.contacted", channel=3))
    assert isinstance(result, Rejection) and (result.code, result.detail) == ("invalid_field", "channel must be a string")
    result = check(event(channel=3))
    assert isinstance(result, Event) and result.channel is None


def test_attributes_keys_and_values_are_normalised() -> None:
    result = check(event(attributes={"Persona": "Head of Marketing", "region": ""}))
    assert isinstance(result, Event)
    assert result.attributes == {"persona": "head_of_marketing", "region": "unknown"}


# --- one example per rejection reason -------------------------------------------------

REASON_EXAMPLES: dict[str, bytes] = {
    "too_large": orjson.dumps(event(padding="x" * MAX_RECORD_BYTES)),
    "not_utf8": b'{"event_id": "\xff"}',
    "invalid_json": b'{"event_id": ',
    "not_an_object": b'[{"event_id": "e-1"}]',
    "missing_field": orjson.dumps(event(drop="source")),
    "invalid_field": orjson.dumps(event(lead_id=42)),
    "unknown_type": orjson.dumps(event(type="lead.deleted")),
    "invalid_timestamp": orjson.dumps(event(occurred_at="2026-11-02T10:00:00")),
    "future_timestamp": orjson.dumps(event(occurred_at="2026-11-04T10:00:00Z")),
}


def test_every_reason_has_an_example() -> None:
    assert set(REASON_EXAMPLES) == set(REASONS)


@pytest.mark.parametrize(("code", "raw"), sorted(REASON_EXAMPLES.items()))
def test_reason_codes(code: str, raw: bytes) -> None:
    result = parse_record(raw, NOW_MS)
    assert isinstance(result, Rejection) and result.code == code, result


def test_docs_list_every_reason() -> None:
    docs = (REPO / "docs" / "events.md").read_text()
    for code, meaning in REASONS.items():
        assert f"| `{code}` | {meaning} |" in docs


def test_rejection_says_which_field() -> None:
    assert str(rejected_with(event(drop="source"), "missing_field")) == "missing_field: source"


def test_record_size_limit_is_inclusive() -> None:
    base = orjson.dumps(event(padding=""))
    at_limit = orjson.dumps(event(padding="x" * (MAX_RECORD_BYTES - len(base))))
    assert len(at_limit) == MAX_RECORD_BYTES
    assert isinstance(parse_record(at_limit, NOW_MS), Event)
    rejected_with(event(padding="x" * (MAX_RECORD_BYTES - len(base) + 1)), "too_large")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"type": "lead.qualified"}, "missing_field"),  # no stage
        ({"type": "lead.qualified", "stage": "customer"}, "invalid_field"),
        ({"type": "lead.qualified", "stage": ["mql"]}, "invalid_field"),
        ({"type": "deal.won"}, "missing_field"),  # no deal_id
        ({"type": ["lead.created"]}, "unknown_type"),
        ({"type": None}, "missing_field"),
        ({"occurred_at": None}, "missing_field"),
        ({"source": None}, "missing_field"),
        ({"source": 7}, "invalid_field"),
        ({"campaign": ["spring"]}, "invalid_field"),
        ({"attributes": {"persona": 1}}, "invalid_field"),
        ({"attributes": ["persona"]}, "invalid_field"),
        ({"reason": 3}, "invalid_field"),
    ],
)
def test_field_rules(changes: dict[str, Any], code: str) -> None:
    rejected_with(event(**changes), code)


# --- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred_at", "utc"),
    [
        ("2026-11-02T10:00:00+01:00", datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)),
        ("2026-11-02T10:00:00Z", datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)),
        ("2026-11-02t10:00:00.250z", datetime(2026, 11, 2, 10, 0, 0, 250_000, tzinfo=timezone.utc)),
        ("2026-11-02T04:30:00-05:30", datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)),
        # float timestamp() * 1000 made this 1 ms low
        ("1978-07-17T08:26:07.812Z", datetime(1978, 7, 17, 8, 26, 7, 812_000, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_with_an_offset_are_accepted_in_utc(occurred_at: str, utc: datetime) -> None:
    result = check(event(occurred_at=occurred_at))
    assert isinstance(result, Event), result
    assert result.occurred_ms == (utc - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-02T10:00:00",  # naive
        "2026-11-02",  # date only
        "2026-11-02T10:00Z",  # no seconds
        "2026-11-02T25:00:00Z",
        "02/11/2026 10:00",
        "٢٠٢٦-١١-٠٢T10:00:00Z",  # non-ASCII digits
        1793613600,
    ],
)
def test_timestamps_without_an_offset_or_malformed_are_rejected(occurred_at: object) -> None:
    rejected_with(event(occurred_at=occurred_at), "invalid_timestamp")


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (timedelta(hours=23), True),
        (timedelta(hours=24), True),
        (timedelta(hours=24, seconds=1), False),
        (timedelta(days=400), False),
    ],
)
def test_future_tolerance_is_24_hours(ahead: timedelta, accepted: bool) -> None:
    result = check(event(occurred_at=(NOW + ahead).isoformat()))
    assert isinstance(result, Event) == accepted, result
    if not accepted:
        assert isinstance(result, Rejection) and result.code == "future_timestamp"


def numeral(width: int, top: int) -> st.SearchStrategy[str]:
    """A field's digits: in and a little past its range, or any digits (some not ASCII)."""
    return st.integers(0, top).map(lambda n: f"{n:0{width}d}") | st.text("0123456789٣", min_size=width, max_size=width)


timestamp_like = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}".format,
    numeral(4, 9999), numeral(2, 13), numeral(2, 32), st.sampled_from("Tt x"), numeral(2, 24), numeral(2, 60),
    numeral(2, 61), st.just("") | st.text("0123456789٣", max_size=11).map(".{}".format),
    st.sampled_from(["Z", "z", "", "+00:00"]) | st.builds("{}{}:{}".format, st.sampled_from("+-"), numeral(2, 24), numeral(2, 60)),
)  # fmt: skip


@settings(max_examples=600)
@given(timestamp_like | st.text(st.sampled_from("0123456789٣-:.TtZz+ "), max_size=36) | st.text())
def test_the_timestamp_fast_path_agrees_with_the_rule_on_any_text(value: str) -> None:
    """Read from its cached pieces or not, a timestamp means what `strict_timestamp_ms` says."""
    assert parse_timestamp_ms(value) == strict_timestamp_ms(value)
    assert parse_timestamp_ms(value) == strict_timestamp_ms(value)  # its pieces now cached


def test_a_timestamp_whose_pieces_were_seen_skips_the_rule() -> None:
    from unittest import mock

    assert parse_timestamp_ms("2026-11-02T10:04:05.250Z") == 1793613845250
    with mock.patch("streams.events.strict_timestamp_ms", side_effect=AssertionError("slow path")):
        assert parse_timestamp_ms("2026-11-02T10:04:05.250Z") == 1793613845250


def test_distinct_garbage_does_not_grow_the_piece_cache_without_bound() -> None:
    from streams.events import _MAX_PIECES, _RESTS

    for n in range(_MAX_PIECES + 100):
        parse_timestamp_ms(f"2026-11-02T10:04:05{n}")
    assert len(_RESTS) <= _MAX_PIECES


# --- ids, amounts, extras -------------------------------------------------------------


@pytest.mark.parametrize("name", ["event_id", "lead_id", "deal_id"])
@pytest.mark.parametrize(
    ("value", "accepted"),
    [("x", True), ("x" * 128, True), ("", False), ("x" * 129, False), (12, False), (["x"], False)],
)
def test_ids_are_strings_of_1_to_128_chars(name: str, value: object, accepted: bool) -> None:
    result = check(event(type="deal.won", deal_id="d-1") | {name: value})
    assert isinstance(result, Event) == accepted, result
    if not accepted:
        assert isinstance(result, Rejection) and result.code == "invalid_field"


@pytest.mark.parametrize(
    ("amount", "accepted"),
    [(0, True), (1200, True), (99.5, True), (-0.01, False), (True, False), ("1200", False), ({"eur": 1}, False)],
)
def test_amount_is_a_number_at_least_zero(amount: object, accepted: bool) -> None:
    result = check(event(type="deal.won", deal_id="d-1", amount=amount))
    assert isinstance(result, Event) == accepted, result
    if accepted:
        assert isinstance(result, Event) and result.amount == amount


def test_unknown_extra_fields_are_accepted() -> None:
    result = check(event(crm={"id": 7, "tags": ["a"]}, utm_medium="cpc"))
    assert isinstance(result, Event)

"""Segment: its X-Signature checked against an independent HMAC and openssl, its spec's calls mapped.

Pure: no Kafka. tests/streams/ingest/test_api_hooks.py posts the same payloads through the running API.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest.signing import SignatureError
from streams.ingest.vendors import segment
from streams.ingest.vendors.common import SignedRequest
from tests.streams.ingest.vendors import examples as ex
from tests.streams.ingest.vendors.mapping import JSON_VALUES, assert_total, mapped

SECRET = b"segment-shared-secret"
CONFIG = segment.SegmentConfig()


def track(message_id: str, event: str, user: str = "u-1", **properties: Any) -> dict[str, Any]:
    """A track call shaped like the spec's example (examples.SEGMENT_SPEC_TRACK), another event name."""
    return {**ex.SEGMENT_SPEC_TRACK, "messageId": message_id, "event": event, "userId": user, "properties": properties}


def signed(body: bytes, signature: str | None) -> SignedRequest:
    headers = {} if signature is None else {segment.SIGNATURE_HEADER: signature}
    return SignedRequest("POST", "https://x/v1/hooks/segment", headers, body, 0.0)


def test_x_signature_is_the_hex_hmac_sha1_of_the_body_as_computed_apart_and_by_openssl() -> None:
    body = b'{"type":"track","event":"Lead Created"}'
    independent = hmac.new(SECRET, body, hashlib.sha1).hexdigest()
    assert segment.signature(SECRET, body) == independent
    if shutil.which("openssl") is not None:
        out = subprocess.run(["openssl", "dgst", "-sha1", "-hmac", SECRET.decode(), "-r"], input=body,
                             capture_output=True, check=True)  # fmt: skip
        assert out.stdout.split()[0].decode() == independent
    segment.verify(SECRET, signed(body, independent))
    segment.verify(SECRET, signed(body, independent.upper()))


@pytest.mark.parametrize(
    "signature, why",
    [
        (None, "missing"),
        ("", "missing"),
        (hmac.new(b"guess", b"{}", hashlib.sha1).hexdigest(), "does not match"),
        (hmac.new(SECRET, b"{} ", hashlib.sha1).hexdigest(), "does not match"),
        (hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest(), "does not match"),
        ("é", "does not match"),
    ],
)
def test_forged_or_missing_signatures_are_refused(signature: str | None, why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        segment.verify(SECRET, signed(b"{}", signature))


def test_the_spec_identify_example_creates_its_users_lead() -> None:
    assert mapped(CONFIG.map, ex.SEGMENT_SPEC_IDENTIFY) == (
        [{"event_id": "segment:022bb90c-bbac-11e4-8dfc-aa07a5b093db", "occurred_at": "2015-02-23T22:28:55.111Z",
          "lead_id": "97980cfea0067", "type": "lead.created", "source": "unknown"}],
        [], 0,
    )  # fmt: skip


def test_the_spec_track_example_is_ignored_as_it_has_no_funnel_meaning() -> None:
    assert mapped(CONFIG.map, ex.SEGMENT_SPEC_TRACK) == ([], [], 1)


def test_funnel_track_events_map_with_utm_parameters_from_the_context() -> None:
    lead = track("m-1", "Lead Created") | {"context": {"campaign": ex.SEGMENT_SPEC_CAMPAIGN}}
    body = [
        lead,
        track("m-2", "Lead Qualified"),
        track("m-3", "Lead Sales Qualified"),
        track("m-4", "Opportunity Created", deal_id="d-9"),
        track("m-5", "Opportunity Won", deal_id="d-9", revenue=1200),
        track("m-6", "Opportunity Lost"),
        track("m-7", "Lead Disqualified", "u-2", reason="student"),
    ]
    events, rejected, ignored = mapped(CONFIG.map, body)
    assert (rejected, ignored) == ([], 0)
    assert events[0] == {
        "event_id": "segment:m-1", "occurred_at": "2015-12-12T19:11:01.249Z", "lead_id": "u-1", "type": "lead.created",
        "source": "Newsletter", "campaign": "TPS Innovation Newsletter",
        "attributes": {"utm_source": "Newsletter", "utm_medium": "email", "utm_campaign": "TPS Innovation Newsletter",
                       "utm_term": "tps reports", "utm_content": "image link"},
    }  # fmt: skip
    assert [(e["type"], e.get("stage"), e.get("deal_id"), e.get("amount"), e.get("reason")) for e in events[1:]] == [
        ("lead.qualified", "mql", None, None, None),
        ("lead.qualified", "sql", None, None, None),
        ("deal.created", None, "d-9", None, None),
        ("deal.won", None, "d-9", 1200, None),
        ("deal.lost", None, "segment-user-u-1", None, None),
        ("lead.disqualified", None, None, None, "student"),
    ]


def test_a_lead_contacted_track_is_a_touch_with_its_channel_and_owner() -> None:
    body = [track("m-8", "Lead Contacted", channel="Call", owner="ana"), track("m-9", "Lead Contacted")]
    events, rejected, ignored = mapped(CONFIG.map, body)
    assert (rejected, ignored) == ([], 0)
    assert events == [
        {"event_id": "segment:m-8", "occurred_at": "2015-12-12T19:11:01.249Z", "lead_id": "u-1", "type": "lead.contacted",
         "channel": "Call", "attributes": {"owner": "ana"}},
        {"event_id": "segment:m-9", "occurred_at": "2015-12-12T19:11:01.249Z", "lead_id": "u-1", "type": "lead.contacted"},
    ]  # fmt: skip


def test_the_touch_event_name_and_its_properties_are_configurable() -> None:
    config = segment.SegmentConfig({"Call Logged": "lead.contacted"}, True, {"channel": "medium", "owner": "rep"})
    body = [track("m-1", "Call Logged", medium="phone", rep="bo"), track("m-2", "Lead Contacted")]
    events, _, ignored = mapped(config.map, body)
    assert [(e["type"], e["channel"], e["attributes"]) for e in events] == [("lead.contacted", "phone", {"owner": "bo"})]
    assert ignored == 1


def test_event_names_identify_and_property_names_are_configurable() -> None:
    config = segment.SegmentConfig({"Signed Up": "lead.created", "Closed": "deal.won"}, False,
                                   {"source": "channel", "deal_id": "opportunity"})  # fmt: skip
    body = [
        track("m-1", "Signed Up", channel="Webinar"),
        track("m-2", "Closed", opportunity="o-1", amount=50),
        track("m-3", "Lead Created"),
        ex.SEGMENT_SPEC_IDENTIFY,
    ]
    events, _, ignored = mapped(config.map, body)
    assert [(e["type"], e.get("source"), e.get("deal_id"), e.get("amount")) for e in events] == [
        ("lead.created", "Webinar", None, None),
        ("deal.won", None, "o-1", 50),
    ]
    assert ignored == 2


def test_a_retried_message_keeps_its_event_id() -> None:
    first, _, _ = mapped(CONFIG.map, track("m-1", "Lead Created"))
    again, _, _ = mapped(CONFIG.map, track("m-1", "Lead Created") | {"sentAt": "2015-12-12T20:00:00Z"})
    assert first == again


def test_a_call_without_user_or_message_id_is_rejected_with_the_reason() -> None:
    anonymous = {key: value for key, value in track("m-1", "Lead Created").items() if key != "userId"}
    no_id = {key: value for key, value in track("m-1", "Lead Created").items() if key != "messageId"}
    assert [r[1] for r in mapped(CONFIG.map, [anonymous, no_id])[1]] == ["missing_field: userId", "missing_field: messageId"]


def test_invalid_configuration_names_the_setting() -> None:
    with pytest.raises(ValueError, match="LEADPULSE_SEGMENT_EVENTS: unknown meaning 'deal.closed'"):
        segment.SegmentConfig({"X": "deal.closed"})
    with pytest.raises(ValueError, match="LEADPULSE_SEGMENT_PROPERTIES: unknown field 'colour'"):
        segment.SegmentConfig(properties={"colour": "x"})


def test_a_body_of_another_vendor_is_not_recognised_as_segment() -> None:
    assert segment.recognise(ex.SEGMENT_SPEC_TRACK) is None and segment.recognise([ex.SEGMENT_SPEC_IDENTIFY]) is None
    assert segment.recognise({"email": "a@b.c"}) == "not a Segment message: no call has a type and a messageId"


SEGMENT_LIKE = st.fixed_dictionaries(
    {key: JSON_VALUES | st.just(value) for key, value in track("m", "Opportunity Won", deal_id="d").items()}
)


@settings(max_examples=200, deadline=None)
@given(body=JSON_VALUES | st.lists(SEGMENT_LIKE, max_size=3) | SEGMENT_LIKE)
def test_mapping_is_total_any_json_gives_events_a_rejection_or_ignored(body: Any) -> None:
    assert_total(CONFIG.map, body)

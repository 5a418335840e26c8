"""HubSpot: its published signature examples reproduced, v3's window and URI rules, and its notifications mapped.

Pure: no Kafka. tests/streams/ingest/test_api_hooks.py posts the same payloads through the running API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest.signing import SignatureError
from streams.ingest.vendors import hubspot
from streams.ingest.vendors.common import SignedRequest
from tests.streams.ingest.vendors import examples as ex
from tests.streams.ingest.vendors.mapping import JSON_VALUES, T1, T2, assert_total, mapped

NOW_S = 1_794_268_800.0
URL = "https://leads.example.com/v1/hooks/hubspot"


def hubspot_note(event_id: int, kind: str, contact: int = 123, **extra: Any) -> dict[str, Any]:
    """One notification of a HubSpot webhook subscription batch, as HubSpot sends it."""
    return {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": T1,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": contact,
        "changeFlag": "NEW" if kind == "contact.creation" else "UPDATED",
        **extra,
    }


def lifecycle(event_id: int, stage: str) -> dict[str, Any]:
    change: dict[str, Any] = {"propertyName": "lifecyclestage", "propertyValue": stage, "changeSource": "CRM_UI"}
    return hubspot_note(event_id, "contact.propertyChange", **change) | {"occurredAt": T2}


HUBSPOT_BATCH = [
    hubspot_note(1001, "contact.creation", changeSource="FORM"),
    lifecycle(1002, "marketingqualifiedlead"),
    lifecycle(1003, "salesqualifiedlead"),
    lifecycle(1004, "customer"),
    hubspot_note(1005, "contact.propertyChange", 124, propertyName="hs_lead_status", propertyValue="UNQUALIFIED"),
]
HUBSPOT_EVENTS = [
    {"event_id": "hubspot:contact:123:lead.created", "type": "lead.created",
     "occurred_at": "2026-11-02T10:00:00.000Z", "lead_id": "123", "source": "FORM"},
    {"event_id": "hubspot:contact:123:lead.qualified:mql", "type": "lead.qualified",
     "occurred_at": "2026-11-03T10:00:00.000Z", "lead_id": "123", "stage": "mql"},
    {"event_id": "hubspot:contact:123:lead.qualified:sql", "type": "lead.qualified",
     "occurred_at": "2026-11-03T10:00:00.000Z", "lead_id": "123", "stage": "sql"},
    {"event_id": "hubspot:contact:123:deal.won", "type": "deal.won",
     "occurred_at": "2026-11-03T10:00:00.000Z", "lead_id": "123", "deal_id": "hubspot-contact-123"},
    {"event_id": "hubspot:contact:124:lead.disqualified", "type": "lead.disqualified",
     "occurred_at": "2026-11-02T10:00:00.000Z", "lead_id": "124", "reason": "hs_lead_status UNQUALIFIED"},
]  # fmt: skip


def request(body: bytes, headers: dict[str, str], url: str = URL, method: str = "POST") -> SignedRequest:
    return SignedRequest(method, url, headers, body, NOW_S)


def independent_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """v3 as HubSpot's docs state it, written apart from the product code."""
    source = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, source, hashlib.sha256).digest()).decode()


# --- HubSpot's published examples ----------------------------------------------------------


def test_v1_reproduces_the_hash_of_hubspots_docs_example() -> None:
    assert hubspot.signature_v1(ex.HUBSPOT_DOCS_SECRET, ex.HUBSPOT_DOCS_V1_BODY) == ex.HUBSPOT_DOCS_V1_HASH


def test_v2_reproduces_the_hash_of_hubspots_docs_get_example() -> None:
    assert hubspot.signature_v2(ex.HUBSPOT_DOCS_SECRET, "GET", ex.HUBSPOT_DOCS_V2_URI, b"") == ex.HUBSPOT_DOCS_V2_GET_HASH


def test_v1_v2_and_v3_reproduce_the_vectors_of_hubspots_python_client() -> None:
    secret, body, uri = ex.HUBSPOT_DOCS_SECRET, ex.HUBSPOT_SDK_BODY, ex.HUBSPOT_DOCS_V2_URI
    assert hubspot.signature_v1(secret, body) == ex.HUBSPOT_SDK_V1
    assert hubspot.signature_v2(secret, "POST", uri, body) == ex.HUBSPOT_SDK_V2
    assert hubspot.signature_v3(secret, "POST", uri, body, ex.HUBSPOT_SDK_TIMESTAMP) == ex.HUBSPOT_SDK_V3


def test_the_docs_v1_example_request_verifies_and_maps_to_a_lead() -> None:
    headers = {hubspot.SIGNATURE_HEADER: ex.HUBSPOT_DOCS_V1_HASH, hubspot.VERSION_HEADER: "v1"}
    hubspot.verify(ex.HUBSPOT_DOCS_SECRET, request(ex.HUBSPOT_DOCS_V1_BODY, headers))
    body = orjson.loads(ex.HUBSPOT_DOCS_V1_BODY)
    assert hubspot.recognise(body) is None
    assert mapped(hubspot.hubspot, body) == (
        [{"event_id": "hubspot:contact:123:lead.created", "occurred_at": "2019-07-26T04:00:00.000Z",
          "lead_id": "123", "type": "lead.created", "source": "CRM"}],
        [], 0,
    )  # fmt: skip


# --- verification -------------------------------------------------------------------------------


SECRET = b"client-secret"
BODY = b'[{"eventId":1,"subscriptionType":"contact.creation"}]'


def v3_headers(stamp_ms: int, uri: str = URL, body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    return {
        hubspot.SIGNATURE_V3_HEADER: independent_v3(secret, "POST", uri, body, str(stamp_ms)),
        hubspot.TIMESTAMP_HEADER: str(stamp_ms),
    }


NOW_MS = int(NOW_S * 1000)


@pytest.mark.parametrize("age_ms", [0, 1, hubspot.MAX_AGE_MS, -hubspot.MAX_AGE_MS])
def test_v3_within_five_minutes_verifies(age_ms: int) -> None:
    hubspot.verify(SECRET, request(BODY, v3_headers(NOW_MS - age_ms)))


def test_v3_signs_the_uri_with_hubspots_listed_escapes_decoded_and_others_kept() -> None:
    sent = "https://leads.example.com/v1/hooks/hubspot?portal%3A=a%2Cb%20c"
    as_signed = "https://leads.example.com/v1/hooks/hubspot?portal:=a,b%20c"
    headers = v3_headers(NOW_MS, uri=as_signed)
    hubspot.verify(SECRET, request(BODY, headers, url=sent))
    assert hubspot.v3_uri("%2f%2F%40%3b%20") == "//@;%20"


@pytest.mark.parametrize(
    "headers, why",
    [
        ({}, "missing"),
        (v3_headers(NOW_MS - hubspot.MAX_AGE_MS - 1), "minutes from the server's clock"),  # stale
        (v3_headers(NOW_MS + hubspot.MAX_AGE_MS + 1), "minutes from the server's clock"),  # from the future
        ({**v3_headers(NOW_MS), hubspot.TIMESTAMP_HEADER: str(NOW_MS - 1)}, "does not match"),  # timestamp changed
        ({hubspot.SIGNATURE_V3_HEADER: "x"}, "epoch milliseconds"),
        ({**v3_headers(NOW_MS), hubspot.TIMESTAMP_HEADER: "soon"}, "epoch milliseconds"),
        (v3_headers(NOW_MS, secret=b"guess"), "does not match"),
        (v3_headers(NOW_MS, uri="http://leads.example.com/v1/hooks/hubspot"), "does not match"),  # other scheme
        (v3_headers(NOW_MS, body=BODY + b" "), "does not match"),
        ({**v3_headers(NOW_MS), hubspot.SIGNATURE_V3_HEADER: "ü"}, "does not match"),
        # a valid v1 does not rescue a wrong v3: v3 is checked when sent
        ({**v3_headers(NOW_MS, secret=b"guess"), hubspot.SIGNATURE_HEADER: hubspot.signature_v1(SECRET, BODY),
          hubspot.VERSION_HEADER: "v1"}, "does not match"),
        ({hubspot.SIGNATURE_HEADER: hubspot.signature_v1(b"guess", BODY), hubspot.VERSION_HEADER: "v1"},
         "does not match"),
        ({hubspot.SIGNATURE_HEADER: hubspot.signature_v1(SECRET, BODY)}, "must be v1 or v2"),
        ({hubspot.SIGNATURE_HEADER: hubspot.signature_v1(SECRET, BODY), hubspot.VERSION_HEADER: "v2"},
         "does not match"),
    ],
)  # fmt: skip
def test_forged_stale_or_missing_signatures_are_refused_with_the_reason(headers: dict[str, str], why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        hubspot.verify(SECRET, request(BODY, headers))


def test_v1_and_v2_verify_against_independently_computed_hashes() -> None:
    v1 = hashlib.sha256(SECRET + BODY).hexdigest()
    v2 = hashlib.sha256(SECRET + b"POST" + URL.encode() + BODY).hexdigest()
    hubspot.verify(SECRET, request(BODY, {hubspot.SIGNATURE_HEADER: v1.upper(), hubspot.VERSION_HEADER: "v1"}))
    hubspot.verify(SECRET, request(BODY, {hubspot.SIGNATURE_HEADER: v2, hubspot.VERSION_HEADER: "v2"}))


@settings(max_examples=100, deadline=None)
@given(secret=st.binary(min_size=1, max_size=40), body=st.binary(max_size=200), path=st.text(max_size=30))
def test_v3_agrees_with_the_docs_formula_for_any_request(secret: bytes, body: bytes, path: str) -> None:
    uri = "https://h.example/" + path.replace("%", "")  # no escapes: the URI is signed as sent
    assert hubspot.signature_v3(secret, "POST", uri, body, "1") == independent_v3(secret, "POST", uri, body, "1")


# --- mapping ----------------------------------------------------------------------------------


def test_contact_lifecycle_becomes_lead_events_and_a_conversion() -> None:
    assert mapped(hubspot.hubspot, HUBSPOT_BATCH) == (HUBSPOT_EVENTS, [], 0)


def test_a_single_notification_needs_no_array() -> None:
    assert mapped(hubspot.hubspot, HUBSPOT_BATCH[0]) == ([HUBSPOT_EVENTS[0]], [], 0)


def test_a_redelivered_notification_maps_to_the_same_event_ids() -> None:
    retry = [{**note, "attemptNumber": 3} for note in HUBSPOT_BATCH]
    assert mapped(hubspot.hubspot, retry)[0] == HUBSPOT_EVENTS


def test_notifications_without_funnel_meaning_are_ignored_not_rejected() -> None:
    body = [
        hubspot_note(1, "contact.propertyChange", propertyName="firstname", propertyValue="Ada"),
        hubspot_note(2, "contact.propertyChange", propertyName="lifecyclestage", propertyValue="opportunity"),
        hubspot_note(3, "deal.propertyChange", 9, propertyName="dealstage", propertyValue="closedwon"),
        hubspot_note(4, "contact.deletion"),
    ]
    assert mapped(hubspot.hubspot, body) == ([], [], 4)


def test_an_unmappable_notification_is_rejected_with_its_reason_and_sent_as_received() -> None:
    no_contact = {key: value for key, value in HUBSPOT_BATCH[0].items() if key != "objectId"}
    future = {**HUBSPOT_BATCH[0], "occurredAt": 1_794_268_800_000 + 2 * 86_400_000}
    body = [no_contact, future, {"hello": "world"}, [1, 2]]
    assert mapped(hubspot.hubspot, body) == (
        [],
        [
            (0, "missing_field: objectId", orjson.dumps(no_contact)),
            (1, "future_timestamp: 2026-11-12T00:00:00.000Z", orjson.dumps(future)),
            (2, "missing_field: subscriptionType", b'{"hello":"world"}'),
            (3, "not_an_object: list", b"[1,2]"),
        ],
        0,
    )


def test_a_body_of_another_vendor_is_not_recognised_as_hubspot() -> None:
    assert hubspot.recognise([]) is None
    assert hubspot.recognise(HUBSPOT_BATCH) is None
    assert hubspot.recognise(ex.SEGMENT_SPEC_TRACK) == "not a HubSpot webhook: no notification has a subscriptionType"
    assert hubspot.recognise([1, "x"]) is not None


HUBSPOT_LIKE = st.fixed_dictionaries({key: JSON_VALUES | st.just(value) for key, value in HUBSPOT_BATCH[3].items()})


@settings(max_examples=200, deadline=None)
@given(body=JSON_VALUES | st.lists(HUBSPOT_LIKE, max_size=3) | HUBSPOT_LIKE)
def test_mapping_is_total_any_json_gives_events_a_rejection_or_ignored(body: Any) -> None:
    assert_total(hubspot.hubspot, body)
    assert hubspot.recognise(body) is None or isinstance(hubspot.recognise(body), str)

"""The generic form-tool webhook: a flat submission becomes a lead, with its UTM parameters and a stable id.

Pure: no Kafka. tests/streams/ingest/test_api_hooks.py posts submissions through the running API.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest.signing import SignatureError
from streams.ingest.vendors import form
from streams.ingest.vendors.common import SignedRequest
from tests.streams.ingest.vendors import examples as ex
from tests.streams.ingest.vendors.mapping import JSON_VALUES, NOW_MS, assert_total, mapped

SECRET = b"form-secret"
CONFIG = form.FormConfig()
SUBMISSION = {
    "submission_id": "sub-81", "submitted_at": "2026-11-02T10:00:00Z", "email": " Ada@Example.com ",
    "name": "Ada", "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand-keywords", "consent": True,
}  # fmt: skip


def signed(body: bytes, headers: dict[str, str]) -> SignedRequest:
    return SignedRequest("POST", "https://x/v1/hooks/form", headers, body, 0.0)


def test_a_submission_becomes_a_lead_keyed_by_its_email_with_utm_attributes() -> None:
    assert mapped(CONFIG.map, SUBMISSION) == (
        [{"event_id": "form:sub-81", "type": "lead.created", "occurred_at": "2026-11-02T10:00:00Z",
          "lead_id": "ada@example.com", "source": "google", "campaign": "brand-keywords",
          "attributes": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "brand-keywords"}}],
        [], 0,
    )  # fmt: skip


def test_without_an_id_the_event_id_is_a_digest_of_the_submission_so_a_repost_is_a_duplicate() -> None:
    bare = {"email": "bob@example.com", "source": "Webinar", "submitted_at": 1_793_613_600}
    reordered = dict(reversed(list(bare.items())))
    first, _, _ = mapped(CONFIG.map, bare)
    assert first == mapped(CONFIG.map, reordered)[0]
    digest = hashlib.sha256(b'{"email":"bob@example.com","source":"Webinar","submitted_at":1793613600}').hexdigest()
    assert first[0]["event_id"] == f"form:sha256:{digest[:32]}"
    assert first[0]["occurred_at"] == "2026-11-02T10:00:00.000Z"  # epoch seconds
    assert first[0]["source"] == "Webinar" and "attributes" not in first[0]


def test_without_a_time_the_receive_time_counts_and_without_a_source_it_is_form() -> None:
    events, _, _ = mapped(CONFIG.map, {"email": "c@example.com"})
    assert (events[0]["occurred_at"], events[0]["source"]) == ("2026-11-10T00:00:00.000Z", "form")
    assert NOW_MS == 1_794_268_800_000


def test_one_event_id_is_one_content_even_when_the_receive_time_is_the_events_time() -> None:
    """A re-post without a time is another event of the same lead, never the same id with another time."""
    submission = {"email": "c@example.com"}
    first, later = CONFIG.map(submission, NOW_MS), CONFIG.map(submission, NOW_MS + 60_000)
    assert isinstance(first, list) and isinstance(later, list)
    assert first[0]["event_id"] != later[0]["event_id"] and first[0]["lead_id"] == later[0]["lead_id"]
    assert CONFIG.map(submission, NOW_MS) == first
    timed = {**submission, "submitted_at": "2026-11-02T10:00:00Z"}
    assert CONFIG.map(timed, NOW_MS) == CONFIG.map(timed, NOW_MS + 60_000)  # the tool's time: a re-post is a duplicate


def test_field_names_are_configurable() -> None:
    config = form.FormConfig({"lead_id": "Email Address", "event_id": "response_id", "source": "Channel"})
    events, _, _ = mapped(config.map, {"Email Address": "d@example.com", "response_id": 7, "Channel": "Partner"})
    assert (events[0]["lead_id"], events[0]["event_id"], events[0]["source"]) == ("d@example.com", "form:7", "Partner")
    with pytest.raises(ValueError, match="LEADPULSE_FORM_FIELDS: unknown field 'phone'"):
        form.FormConfig({"phone": "tel"})


def test_a_submission_without_an_email_is_rejected_with_the_field_named() -> None:
    assert mapped(CONFIG.map, {"name": "Ada"})[1][0][1] == "missing_field: email"
    assert mapped(CONFIG.map, {"email": "  "})[1][0][1] == "missing_field: email"


def test_the_hmac_header_or_the_bearer_secret_authenticates_and_nothing_else_does() -> None:
    body = b'{"email":"a@b.c"}'
    good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    form.verify(SECRET, signed(body, {form.SIGNATURE_HEADER: good}))
    form.verify(SECRET, signed(body, {"Authorization": "Bearer form-secret"}))
    refused = [
        {},
        {form.SIGNATURE_HEADER: "sha256=" + hmac.new(b"guess", body, hashlib.sha256).hexdigest()},
        {form.SIGNATURE_HEADER: good.removeprefix("sha256=")},
        {"Authorization": "Bearer guess"},
        {"Authorization": "Basic form-secret"},
        {"Authorization": "Bearer é"},
    ]
    for headers in refused:
        with pytest.raises(SignatureError):
            form.verify(SECRET, signed(body, headers))


def test_a_body_that_is_not_one_flat_object_is_not_a_submission() -> None:
    assert form.recognise(SUBMISSION) is None
    assert form.recognise([SUBMISSION]) == "a form submission is one flat JSON object, not a JSON list"
    assert form.recognise(ex.SEGMENT_SPEC_TRACK) == "a form submission is one flat JSON object; field 'context' is nested"


FLAT = st.dictionaries(st.sampled_from([*SUBMISSION, "x"]), st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) |
                       st.floats(allow_nan=False) | st.text(max_size=10), max_size=8)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(body=JSON_VALUES | FLAT)
def test_mapping_is_total_any_json_gives_events_a_rejection_or_ignored(body: Any) -> None:
    assert_total(CONFIG.map, body)

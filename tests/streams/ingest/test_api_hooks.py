"""Vendor hooks of the ingest API against the real Kafka (and the real worker for the aggregates).

Each vendor's payloads, signed the way that vendor signs, reach the topics as the expected
contract events; forged, stale, unsigned, foreign or oversize ones are refused with
nothing sent; a delivery retried 100 times counts once in the aggregates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from streams.ingest.api import MAX_BODY_BYTES, create_app
from streams.ingest.signing import sign
from streams.ingest.vendors import form, hubspot, segment
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, Settings
from tests.aggregates.reference import assert_same_series
from tests.pipeline import Pipeline
from tests.streams.ingest.test_api import SECRET, RunningApi
from tests.streams.ingest.test_publish import TopicTail
from tests.streams.ingest.vendors import examples as ex
from tests.streams.ingest.vendors.test_hubspot import HUBSPOT_BATCH, HUBSPOT_EVENTS
from tests.streams.ingest.vendors.test_salesforce import SALESFORCE_BATCH, SALESFORCE_EVENTS

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://leads.example.com"
HUBSPOT_SECRET, SEGMENT_SECRET, FORM_SECRET = "hubspot-client-secret", "segment-shared-secret", "form-secret"
TOPICS = {"lead": LEADS_TOPIC, "deal": DEALS_TOPIC}


def vendor_settings(base: Settings) -> Settings:
    return base.model_copy(update={
        "ingest_secret": SecretStr(SECRET), "api_public_url": PUBLIC_URL,
        "hubspot_client_secret": SecretStr(HUBSPOT_SECRET), "segment_shared_secret": SecretStr(SEGMENT_SECRET),
        "form_secret": SecretStr(FORM_SECRET),
    })  # fmt: skip


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[RunningApi]:
    running = RunningApi(create_app(vendor_settings(stack_settings)))
    yield running
    running.close()


def hubspot_v3(body: bytes, stamp_ms: int | None = None, url: str = f"{PUBLIC_URL}/v1/hooks/hubspot",
               secret: str = HUBSPOT_SECRET) -> dict[str, str]:  # fmt: skip
    """HubSpot's v3 headers as its docs define them, computed here apart from the product code."""
    stamp = str(int(time.time() * 1000) if stamp_ms is None else stamp_ms)
    digest = hmac.new(secret.encode(), b"POST" + url.encode() + body + stamp.encode(), hashlib.sha256).digest()
    return {hubspot.SIGNATURE_V3_HEADER: base64.b64encode(digest).decode(), hubspot.TIMESTAMP_HEADER: stamp}


def hubspot_v1(body: bytes, secret: str = HUBSPOT_SECRET) -> dict[str, str]:
    return {hubspot.SIGNATURE_HEADER: hashlib.sha256(secret.encode() + body).hexdigest(), hubspot.VERSION_HEADER: "v1"}


def segment_signature(body: bytes, secret: str = SEGMENT_SECRET) -> dict[str, str]:
    return {segment.SIGNATURE_HEADER: hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def form_signature(body: bytes, secret: str = FORM_SECRET) -> dict[str, str]:
    return {form.SIGNATURE_HEADER: "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def leadpulse_signature(body: bytes) -> dict[str, str]:
    return {"X-Leadpulse-Signature": sign(SECRET.encode(), body)}


SIGNERS = {"hubspot": hubspot_v3, "segment": segment_signature, "form": form_signature, "salesforce": leadpulse_signature}


def post(api: RunningApi, hook: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    signed = SIGNERS[hook](body) if headers is None else headers
    return api.post(f"/v1/hooks/{hook}", body, secret=None, **signed)


def fresh(value: Any, old: str, new: str) -> Any:
    """`value` with every `old` replaced by `new`: this run's own ids, so the events are this test's."""
    return orjson.loads(orjson.dumps(value).replace(old.encode(), new.encode()))


def hubspot_examples(tag: str) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """The vendor tests' batch and events for this run's own contacts (event ids are made of contact ids)."""
    contacts = {123: int(f"{tag}1"), 124: int(f"{tag}2")}
    batch = [{**note, "objectId": contacts[note["objectId"]]} for note in HUBSPOT_BATCH]
    return [batch], fresh(fresh(HUBSPOT_EVENTS, "123", f"{tag}1"), "124", f"{tag}2")


def segment_examples(tag: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The spec's identify example, and track calls shaped like its track example, with their events."""
    identify = {**ex.SEGMENT_SPEC_IDENTIFY, "messageId": f"{tag}-1", "userId": f"{tag}-u"}
    won = {**ex.SEGMENT_SPEC_TRACK, "messageId": f"{tag}-2", "userId": f"{tag}-u", "event": "Opportunity Won",
           "properties": {"deal_id": f"{tag}-d", "revenue": 99.5}}  # fmt: skip
    events = [
        {"event_id": f"segment:{tag}-1", "occurred_at": "2015-02-23T22:28:55.111Z", "lead_id": f"{tag}-u",
         "type": "lead.created", "source": "unknown"},
        {"event_id": f"segment:{tag}-2", "occurred_at": "2015-12-12T19:11:01.249Z", "lead_id": f"{tag}-u",
         "type": "deal.won", "deal_id": f"{tag}-d", "amount": 99.5},
    ]  # fmt: skip
    return [identify, won], events


@pytest.mark.parametrize("vendor", ["hubspot v3", "hubspot v1", "segment", "form", "salesforce"])
def test_vendor_payloads_signed_the_vendors_way_reach_the_topics_as_the_expected_events(
    api: RunningApi, kafka_bootstrap: str, vendor: str
) -> None:
    tag = str(uuid.uuid4().int % 10**15)
    hook = vendor.split()[0]
    if hook == "hubspot":
        bodies, expected = hubspot_examples(tag)
    elif hook == "salesforce":
        key = "0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11"
        bodies, expected = [fresh(SALESFORCE_BATCH, key, tag)], fresh(SALESFORCE_EVENTS, key, tag)
    elif hook == "segment":
        calls, expected = segment_examples(tag)
        bodies = calls  # one call per request, as Segment sends them with batching off
    else:
        bodies = [{"submission_id": tag, "email": f"{tag}@example.com", "utm_source": "newsletter"}]
        expected = [{"event_id": f"form:{tag}", "type": "lead.created", "occurred_at": "2026-11-02T10:00:00Z",
                     "lead_id": f"{tag}@example.com", "source": "newsletter",
                     "attributes": {"utm_source": "newsletter"}}]  # fmt: skip
        bodies[0]["submitted_at"] = "2026-11-02T10:00:00Z"
    tail = TopicTail(kafka_bootstrap)
    for body in bodies:
        raw = orjson.dumps(body)
        answer = post(api, hook, raw, hubspot_v1(raw) if vendor == "hubspot v1" else None)
        assert (answer.status, answer.json["rejected"], answer.json["ignored"]) == (202, [], 0), answer.body
    by_id = {orjson.loads(m.value)["event_id"]: (m.topic, m.key, orjson.loads(m.value)) for m in tail.read(tag)}
    assert by_id == {e["event_id"]: (TOPICS[e["type"][:4]], e["lead_id"].encode(), e) for e in expected}


def refusals(marker: str) -> dict[str, tuple[str, bytes, dict[str, str], int, str]]:
    """(hook, body, headers, status, reason fragment) of requests that must be refused with nothing sent."""
    note = orjson.dumps([{**HUBSPOT_BATCH[0], "changeSource": marker}])
    now_ms = int(time.time() * 1000)
    call = orjson.dumps({**ex.SEGMENT_SPEC_IDENTIFY, "userId": marker})
    sub = orjson.dumps({"email": f"{marker}@example.com"})
    return {
        "hubspot unsigned": ("hubspot", note, {}, 401, "missing"),
        "hubspot v3 with another secret": ("hubspot", note, hubspot_v3(note, secret="guess"), 401, "does not match"),
        "hubspot v3 stale": ("hubspot", note, hubspot_v3(note, now_ms - 301_000), 401, "minutes"),
        "hubspot v3 over the server's own URL, not the public one":
            ("hubspot", note, hubspot_v3(note, url="http://127.0.0.1/v1/hooks/hubspot"), 401, "does not match"),
        "hubspot v1 of another body": ("hubspot", note, hubspot_v1(b"[]"), 401, "does not match"),
        "hubspot with leadpulse's signature": ("hubspot", note, leadpulse_signature(note), 401, "missing"),
        "segment unsigned": ("segment", call, {}, 401, "missing"),
        "segment with another secret": ("segment", call, segment_signature(call, "guess"), 401, "does not match"),
        "form unsigned": ("form", sub, {}, 401, "missing"),
        "form with a wrong bearer": ("form", sub, {"Authorization": "Bearer guess"}, 401, "bearer"),
        "a Segment call on the HubSpot hook": ("hubspot", call, hubspot_v3(call), 400, "not a HubSpot webhook"),
        "a HubSpot batch on the Segment hook": ("segment", note, segment_signature(note), 400, "not a Segment message"),
        "a HubSpot batch on the form hook": ("form", note, form_signature(note), 400, "one flat JSON object"),
        "a Segment call on the form hook": ("form", call, form_signature(call), 400, "is nested"),
        "a form submission on the Salesforce hook": ("salesforce", sub, leadpulse_signature(sub), 400, "ChangeEventHeader"),
        "over 1 MiB": ("segment", b"[" + b" " * MAX_BODY_BYTES + call + b"]", {}, 413, "over"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(refusals("x")))
def test_forged_stale_unsigned_foreign_or_oversize_payloads_are_refused_with_nothing_sent(
    api: RunningApi, kafka_bootstrap: str, case: str
) -> None:
    marker = uuid.uuid4().hex
    hook, body, headers, status, why = refusals(marker)[case]
    tail = TopicTail(kafka_bootstrap)
    answer = post(api, hook, body, headers)
    assert answer.status == status and why in answer.json["error"], answer.body
    assert tail.read(marker) == []


def test_a_vendor_without_its_secret_is_not_served_and_an_unknown_hook_is_404(stack_settings: Settings) -> None:
    only_events = RunningApi(create_app(stack_settings.model_copy(update={"ingest_secret": SecretStr(SECRET)})))
    try:
        for hook, setting in [("hubspot", "LEADPULSE_HUBSPOT_CLIENT_SECRET"), ("segment", "LEADPULSE_SEGMENT_SHARED_SECRET"),
                              ("form", "LEADPULSE_FORM_SECRET")]:  # fmt: skip
            answer = only_events.post(f"/v1/hooks/{hook}", b"[]", secret=None)
            assert (answer.status, answer.json["error"]) == (404, f"hook {hook} is not served: {setting} is not set")
        assert only_events.post("/v1/hooks/pipedrive", b"[]").status == 404
        assert only_events.post("/v1/hooks/salesforce", b"[]").json == {"accepted": 0, "rejected": [], "ignored": 0}
    finally:
        only_events.close()


def test_a_hook_takes_only_json(api: RunningApi) -> None:
    body = b"{}"
    assert api.post("/v1/hooks/segment", body, "application/x-ndjson", secret=None, **segment_signature(body)).status == 415


def test_kafka_down_gives_503_and_counts_nothing(stack_settings: Settings) -> None:
    dead = RunningApi(create_app(vendor_settings(stack_settings).model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})))
    try:
        body = orjson.dumps(segment_examples("dead")[0][0])
        answer = post(dead, "segment", body)
        assert (answer.status, answer.headers["Retry-After"]) == (503, "5")
        assert "accepted" not in answer.json
    finally:
        dead.close()


@pytest.fixture
def pipeline(stack_settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(stack_settings, tmp_path)
    yield pipe
    pipe.stop_workers(signal.SIGKILL)


def test_a_retry_storm_of_100_identical_deliveries_counts_once_in_the_aggregates(
    api: RunningApi, pipeline: Pipeline
) -> None:
    """HubSpot and Segment each re-deliver the same conversion 100 times; the worker counts one lead, one customer."""
    tag = uuid.uuid4().hex[:12]
    now_ms = int(time.time() * 1000)
    contact = uuid.uuid4().int % 10**12
    batch = [
        {**HUBSPOT_BATCH[0], "objectId": contact, "changeSource": f"hs-{tag}", "occurredAt": now_ms - 86_400_000},
        {**HUBSPOT_BATCH[3], "objectId": contact, "occurredAt": now_ms - 3_600_000},
    ]
    calls, _ = segment_examples(tag)
    calls[0] = {**calls[0], "traits": {"source": f"sg-{tag}"}, "timestamp": _iso(now_ms - 86_400_000)}
    calls[1] = {**calls[1], "timestamp": _iso(now_ms - 3_600_000)}
    for attempt in range(100):
        retry = [{**note, "attemptNumber": attempt} for note in batch]  # HubSpot counts its attempts
        assert post(api, "hubspot", orjson.dumps(retry)).json["accepted"] == 2
        for call in calls:  # Segment re-sends the same message, re-signed
            assert post(api, "segment", orjson.dumps(call)).json["accepted"] == 1
    pipeline.start_worker()
    pipeline.wait_caught_up()
    pipeline.stop_workers()
    report = pipeline.report()
    for source in (f"hs-{tag}", f"sg-{tag}"):
        mine = {(s.name, s.labels.get("window"), s.labels.get("basis")): s.value for s in report
                if s.labels.get("dimension") == "source" and s.labels.get("segment") == source}  # fmt: skip
        assert mine[("leadpulse_window_leads", "7d", None)] == 1
        assert mine[("leadpulse_window_customers", "7d", "cohort")] == 1
    assert_same_series(report, pipeline.expected())


def _iso(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_ms / 1000))


BODIES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([HUBSPOT_BATCH, SALESFORCE_BATCH, ex.SEGMENT_SPEC_TRACK, ex.SEGMENT_SPEC_IDENTIFY,
                     {"email": "h@example.com"}, [], {}]).map(orjson.dumps),  # fmt: skip
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, hook=st.sampled_from(sorted(SIGNERS)), signed=st.booleans())
def test_any_body_on_any_hook_is_accepted_with_reasons_or_refused_with_a_contracted_status(
    api: RunningApi, body: bytes, hook: str, signed: bool
) -> None:
    answer = post(api, hook, body, None if signed else {})
    assert answer.status in (202, 400, 401), answer.body
    if not signed:
        assert answer.status == 401
    if answer.status == 202:
        assert {"accepted", "rejected", "ignored"} == set(answer.json)


def test_command_refuses_to_start_with_a_mapping_setting_it_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from streams.ingest.api import api_command

    monkeypatch.setenv("LEADPULSE_INGEST_SECRET", "x")
    monkeypatch.setenv("LEADPULSE_SEGMENT_EVENTS", '{"Signed Up": "lead.signed"}')
    result = CliRunner().invoke(api_command, ["--port", "1"])
    assert result.exit_code == 2
    assert "LEADPULSE_SEGMENT_EVENTS: unknown meaning 'lead.signed'" in result.output


def test_insecure_no_auth_serves_every_hook_unchecked() -> None:
    """No secret at all: the hooks still verify nothing and map (here up to Kafka, which is down: 503)."""
    unchecked = RunningApi(create_app(Settings(kafka_bootstrap="127.0.0.1:1"), insecure_no_auth=True))
    try:
        for hook, body in [("hubspot", HUBSPOT_BATCH), ("segment", ex.SEGMENT_SPEC_IDENTIFY),
                           ("form", {"email": "e@example.com"}), ("salesforce", SALESFORCE_BATCH)]:  # fmt: skip
            assert unchecked.post(f"/v1/hooks/{hook}", orjson.dumps(body), secret=None).status == 503, hook
    finally:
        unchecked.close()

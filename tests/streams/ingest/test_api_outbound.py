"""Salesforce Outbound Messages through the real API, mapped by the import's rules, into the real Kafka.

Documented Lead and Opportunity messages are acknowledged only once their events are in
Kafka, and re-deliveries count once in the workers' aggregates; another org's message, a
wrong or missing token and XML attacks are refused with nothing sent; a malformed message
is a fault and a rejected record; a Kafka outage is a 5xx fault without an Ack; the token
never reaches a log.
"""

from __future__ import annotations

import logging
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from pydantic import SecretStr

from streams.ingest.api import RouteAccessLogger, create_app
from streams.ingest.vendors.salesforce_outbound import ack
from streams.kafka.rejected import ORIGIN_HEADER, REASON_CODE_HEADER
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from tests.aggregates.reference import assert_same_series
from tests.pipeline import Pipeline
from tests.streams.ingest.test_api import SECRET, Answer, RunningApi
from tests.streams.ingest.test_api_hooks import pipeline  # noqa: F401 (the fixture: a worker per test, killed after)
from tests.streams.ingest.test_publish import TopicTail
from tests.streams.ingest.vendors.test_salesforce_outbound import (
    BILLION_LAUGHS,
    LEAD,
    LEAD_FIELDS,
    LEAD_MESSAGE,
    OPPORTUNITY,
    OPPORTUNITY_FIELDS,
    OPPORTUNITY_MESSAGE,
    ORG,
    TOKEN,
    XXE,
    message,
)

pytestmark = pytest.mark.integration

PATH = f"/v1/hooks/salesforce/outbound/{TOKEN}"
ROUTE_ORIGIN = b"api /v1/hooks/salesforce/outbound/{token}"
XML = "text/xml; charset=utf-8"


def outbound_settings(base: Settings) -> Settings:
    return base.model_copy(update={
        "ingest_secret": SecretStr(SECRET), "salesforce_outbound_token": SecretStr(TOKEN), "salesforce_org_id": ORG,
    })  # fmt: skip


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[RunningApi]:
    running = RunningApi(create_app(outbound_settings(stack_settings)), access_log_class=RouteAccessLogger)
    yield running
    running.close()


def post(api: RunningApi, body: bytes, path: str = PATH) -> Answer:
    """POST as Salesforce does: SOAP 1.1, no signature."""
    return api.request("POST", path, body, {"Content-Type": XML, "SOAPAction": '""'})


def fresh(body: bytes, tag: str) -> bytes:
    """`body` with this run's own record ids (18 characters, as Salesforce's), so its events are this test's."""
    return body.replace(LEAD.encode(), f"00Q{tag}".encode()).replace(OPPORTUNITY.encode(), f"006{tag}".encode())


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:15]


def assert_fault(answer: Answer, status: int, why: str) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"] == XML
    assert b"<faultstring>" in answer.body and why.encode() in answer.body and b"Ack" not in answer.body


def test_documented_lead_and_opportunity_messages_are_acked_once_their_events_are_in_kafka(
    api: RunningApi, kafka_bootstrap: str, tag: str
) -> None:
    tail = TopicTail(kafka_bootstrap)
    for body in (LEAD_MESSAGE, OPPORTUNITY_MESSAGE):
        answer = post(api, fresh(body, tag))
        assert (answer.status, answer.headers["Content-Type"], answer.body) == (200, XML, ack())
    lead, deal, opportunity_ids = f"00Q{tag}", f"006{tag}", f"salesforce:opportunity:006{tag}:00Q{tag}"
    found = {(m.topic, m.key, m.value) for m in tail.read(tag)}
    assert found == {(LEADS_TOPIC if e["type"].startswith("lead.") else DEALS_TOPIC, lead.encode(), orjson.dumps(e)) for e in [
        {"event_id": f"salesforce:lead:{lead}:lead.created", "type": "lead.created", "occurred_at": "2026-11-02T10:00:00.000Z",
         "lead_id": lead, "source": "Web", "attributes": {"owner": "0055g00000AbCdEAAV"}},
        {"event_id": f"salesforce:lead:{lead}:lead.qualified:sql", "type": "lead.qualified",
         "occurred_at": "2026-11-02T10:00:00.000Z", "lead_id": lead, "stage": "sql"},
        {"event_id": f"salesforce:lead:{lead}:deal.created", "type": "deal.created", "occurred_at": "2026-11-04T00:00:00.000Z",
         "lead_id": lead, "deal_id": deal},
        {"event_id": f"{opportunity_ids}:deal.created", "type": "deal.created", "occurred_at": "2026-11-04T09:00:00.000Z",
         "lead_id": lead, "deal_id": deal},
        {"event_id": f"{opportunity_ids}:deal.won", "type": "deal.won", "occurred_at": "2026-11-05T00:00:00.000Z",
         "lead_id": lead, "deal_id": deal, "amount": 12000.0},
    ]}  # fmt: skip


def test_a_notification_without_events_goes_to_rejected_and_the_message_is_still_acked(
    api: RunningApi, kafka_bootstrap: str, tag: str
) -> None:
    """Salesforce re-sending it would be rejected again: the rejected topic holds it, the rest counts."""
    body = message([(f"04l{tag}", "Account", {"Id": f"001{tag}"}), ("04l5g00000Gx7R1AAJ", "Lead", {**LEAD_FIELDS, "Id": f"00Q{tag}"})])
    tail = TopicTail(kafka_bootstrap)
    assert post(api, body).body == ack()
    messages = tail.read(tag)
    assert {orjson.loads(m.value)["lead_id"] for m in messages if m.topic != REJECTED_TOPIC} == {f"00Q{tag}"}
    [rejected] = [m for m in messages if m.topic == REJECTED_TOPIC]
    assert orjson.loads(rejected.value) == {"ActionId": "04k5g000000CaRkAAK", "Id": f"04l{tag}", "sObject": "Account",
                                            "fields": {"Id": f"001{tag}"}}  # fmt: skip
    assert (rejected.headers[REASON_CODE_HEADER], rejected.headers[ORIGIN_HEADER]) == (b"invalid_field", ROUTE_ORIGIN + b"#0")


def test_a_malformed_message_is_a_400_fault_and_its_body_reaches_the_rejected_topic(
    api: RunningApi, kafka_bootstrap: str, tag: str
) -> None:
    body = fresh(LEAD_MESSAGE, tag).replace(b"OrganizationId", b"OrgId")
    tail = TopicTail(kafka_bootstrap)
    assert_fault(post(api, body), 400, "no notifications/OrganizationId")
    [rejected] = tail.read(tag)
    assert (rejected.topic, rejected.value, rejected.headers[REASON_CODE_HEADER]) == (REJECTED_TOPIC, body, b"missing_field")
    assert rejected.headers[ORIGIN_HEADER] == ROUTE_ORIGIN + b"#0"


def refusals(tag: str) -> dict[str, tuple[str, bytes, int, str]]:
    """(path, body, status, fault fragment) of messages refused with nothing sent."""
    mine = fresh(LEAD_MESSAGE, tag)
    return {
        "another org": (PATH, mine.replace(ORG.encode(), b"00D5g000009zzzZEAQ"), 403, "is not this leadpulse's"),
        "a wrong token": (PATH[:-1] + "X", mine, 404, "no such hook"),
        "a token one character short": (PATH[:-1], mine, 404, "no such hook"),
        "no token": ("/v1/hooks/salesforce/outbound/", mine, 404, ""),
        "billion laughs": (PATH, BILLION_LAUGHS.replace(b"<soapenv:Body>", f"<soapenv:Body>{tag}".encode()), 400, "DTD"),
        "external entity": (PATH, fresh(XXE, tag), 400, "DTD"),
    }


@pytest.mark.parametrize("case", list(refusals("x")))
def test_strangers_and_xml_attacks_are_refused_quickly_with_bounded_memory_and_nothing_sent(
    api: RunningApi, kafka_bootstrap: str, tag: str, case: str
) -> None:
    path, body, status, why = refusals(tag)[case]
    tail = TopicTail(kafka_bootstrap)
    tracemalloc.start()  # the API serves from a thread of this process: its allocations count too
    started = time.perf_counter()
    try:
        answer = post(api, body, path)
        elapsed, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if why:
        assert_fault(answer, status, why)
    assert answer.status == status
    assert elapsed < 0.5 and peak < 2 * 1024 * 1024, (elapsed, peak)
    assert tail.read(tag) == []


def test_a_kafka_outage_is_a_server_fault_with_retry_after_and_no_ack(stack_settings: Settings, tag: str) -> None:
    dead_kafka = outbound_settings(stack_settings).model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    dead = RunningApi(create_app(dead_kafka))
    try:
        answer = post(dead, fresh(LEAD_MESSAGE, tag))
        assert_fault(answer, 503, "Kafka is unavailable")
        assert b"soapenv:Server" in answer.body and answer.headers["Retry-After"] == "5"
    finally:
        dead.close()


def test_without_its_token_the_hook_is_not_served_unless_insecure(stack_settings: Settings) -> None:
    plain = stack_settings.model_copy(update={"ingest_secret": SecretStr(SECRET), "kafka_bootstrap": "127.0.0.1:1"})
    unserved = RunningApi(create_app(plain))
    unchecked = RunningApi(create_app(plain, insecure_no_auth=True))
    try:
        assert_fault(post(unserved, LEAD_MESSAGE), 404, "LEADPULSE_SALESFORCE_OUTBOUND_TOKEN is not set")
        assert_fault(post(unchecked, LEAD_MESSAGE, "/v1/hooks/salesforce/outbound/anything"), 503, "Kafka")
    finally:
        unserved.close()
        unchecked.close()


def test_the_token_never_reaches_a_log_not_even_the_access_log(
    api: RunningApi, tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        post(api, fresh(LEAD_MESSAGE, tag))
        post(api, fresh(LEAD_MESSAGE, tag).replace(ORG.encode(), b"00D5g000009zzzZEAQ"))
        post(api, b"<not-xml")
        post(api, LEAD_MESSAGE, PATH + "X")
    assert "POST /v1/hooks/salesforce/outbound/{token} 403" in caplog.text
    assert TOKEN not in caplog.text


def test_the_command_refuses_to_start_with_the_token_but_no_org(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from streams.ingest.api import api_command

    monkeypatch.setenv("LEADPULSE_INGEST_SECRET", "x")
    monkeypatch.setenv("LEADPULSE_SALESFORCE_OUTBOUND_TOKEN", TOKEN)
    result = CliRunner().invoke(api_command, ["--port", "1"])
    assert result.exit_code == 2
    assert "Error: LEADPULSE_SALESFORCE_ORG_ID is not set" in result.output and TOKEN not in result.output


def test_a_lead_and_its_won_opportunity_re_delivered_count_once_in_the_aggregates(
    api: RunningApi, pipeline: Pipeline, tag: str
) -> None:
    """Salesforce re-sends each message (and the Flow sends the record again on a later edit): one lead, one customer."""
    created = datetime.now(timezone.utc) - timedelta(days=1)
    lead, deal, source = f"00Q{tag}", f"006{tag}", f"sf-{tag}"
    lead_fields = {**LEAD_FIELDS, "Id": lead, "LeadSource": source, "ConvertedOpportunityId": deal,
                   "CreatedDate": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "ConvertedDate": created.date().isoformat()}
    deal_fields = {**OPPORTUNITY_FIELDS, "Id": deal, "Lead_Id__c": lead, "CreatedDate": lead_fields["CreatedDate"],
                   "CloseDate": datetime.now(timezone.utc).date().isoformat()}  # fmt: skip
    for attempt in range(3):
        for kind, fields in (("Lead", lead_fields), ("Opportunity", deal_fields)):
            assert post(api, message([(f"04l{attempt}{tag[:14]}", kind, fields)])).body == ack()
    pipeline.start_worker()
    pipeline.wait_caught_up()
    pipeline.stop_workers()
    report = pipeline.report()
    mine = {(s.name, s.labels.get("window"), s.labels.get("basis")): s.value for s in report
            if s.labels.get("dimension") == "source" and s.labels.get("segment") == source}  # fmt: skip
    assert mine[("leadpulse_window_leads", "7d", None)] == 1
    assert mine[("leadpulse_window_customers", "7d", "cohort")] == 1
    assert_same_series(report, pipeline.expected())

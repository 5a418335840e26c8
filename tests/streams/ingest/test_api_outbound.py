"""Salesforce Outbound Messages through the real API and the real Kafka of the test stack.

Documented Lead and Opportunity messages are acknowledged only once their events are in
Kafka; another org's message, a wrong or missing token and XML attacks are refused with
nothing sent; a malformed message is a fault and a rejected record; a Kafka outage is a
5xx fault without an Ack; the token never reaches a log.
"""

from __future__ import annotations

import logging
import time
import tracemalloc
import uuid
from collections.abc import Iterator

import orjson
import pytest
from pydantic import SecretStr

from streams.ingest.api import RouteAccessLogger, create_app
from streams.ingest.vendors.salesforce_outbound import ack
from streams.kafka.rejected import ORIGIN_HEADER, REASON_CODE_HEADER
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from tests.streams.ingest.test_api import SECRET, Answer, RunningApi
from tests.streams.ingest.test_publish import TopicTail
from tests.streams.ingest.vendors.test_salesforce_outbound import (
    BILLION_LAUGHS,
    LEAD,
    LEAD_FIELDS,
    LEAD_MESSAGE,
    OPPORTUNITY,
    OPPORTUNITY_MESSAGE,
    ORG,
    TOKEN,
    XXE,
    message,
    stand_in,
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
    running = RunningApi(create_app(outbound_settings(stack_settings), salesforce_objects=stand_in),
                         access_log_class=RouteAccessLogger)  # fmt: skip
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
    lead = f"00Q{tag}"
    found = {(m.topic, m.key, m.value) for m in tail.read(tag)}
    assert found == {
        (LEADS_TOPIC, lead.encode(), orjson.dumps({"event_id": f"salesforce:lead:{lead}:lead.created", "type": "lead.created",
         "occurred_at": "2026-11-02T10:00:00.000Z", "lead_id": lead, "source": "Web"})),
        (DEALS_TOPIC, lead.encode(), orjson.dumps({"event_id": f"salesforce:opportunity:006{tag}:deal.won", "type": "deal.won",
         "occurred_at": "2026-11-05T00:00:00Z", "lead_id": lead, "deal_id": f"006{tag}", "amount": 12000.0})),
    }  # fmt: skip


def test_a_notification_without_events_goes_to_rejected_and_the_message_is_still_acked(
    api: RunningApi, kafka_bootstrap: str, tag: str
) -> None:
    """Salesforce re-sending it would be rejected again: the rejected topic holds it, the rest counts."""
    body = message([(f"04l{tag}", "Account", {"Id": f"001{tag}"}), ("04l5g00000Gx7R1AAJ", "Lead", {**LEAD_FIELDS, "Id": f"00Q{tag}"})])
    tail = TopicTail(kafka_bootstrap)
    assert post(api, body).body == ack()
    by_topic = {m.topic: m for m in tail.read(tag)}
    assert orjson.loads(by_topic[LEADS_TOPIC].value)["lead_id"] == f"00Q{tag}"
    rejected = by_topic[REJECTED_TOPIC]
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
    dead = RunningApi(create_app(dead_kafka, salesforce_objects=stand_in))
    try:
        answer = post(dead, fresh(LEAD_MESSAGE, tag))
        assert_fault(answer, 503, "Kafka is unavailable")
        assert b"soapenv:Server" in answer.body and answer.headers["Retry-After"] == "5"
    finally:
        dead.close()


def test_without_its_token_the_hook_is_not_served_unless_insecure(stack_settings: Settings) -> None:
    plain = stack_settings.model_copy(update={"ingest_secret": SecretStr(SECRET), "kafka_bootstrap": "127.0.0.1:1"})
    unserved = RunningApi(create_app(plain, salesforce_objects=stand_in))
    unchecked = RunningApi(create_app(plain, insecure_no_auth=True, salesforce_objects=stand_in))
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

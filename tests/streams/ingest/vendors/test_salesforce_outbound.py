"""Salesforce Outbound Messages: the documented SOAP shape parses, attacks and strangers are refused, answers are SOAP.

Pure: no Kafka. The object mapper here is `stand_in`, a small stand-in for the import's
rules, so what is proven is the message handling, not the Salesforce mapping;
tests/streams/ingest/test_api_outbound.py posts the same messages through the running API,
which maps them with the import's own rules, to Kafka and through the workers.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Mapping
from typing import Any, Literal
from xml.etree import ElementTree

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr

from streams.events import Event, Rejection
from streams.ingest.vendors import MisconfiguredHook, outbound_hook
from streams.ingest.vendors.salesforce_outbound import (
    MAX_NOTIFICATIONS,
    Fault,
    Malformed,
    OutboundHook,
    ack,
    fault,
    malformed_record,
    note_mapper,
    parse,
    same_org,
)
from streams.settings import Settings
from tests.streams.ingest.vendors.mapping import NOW_MS

ORG, TOKEN = "00D5g000004abcDEAQ", "s3cr3t-outbound-token"
LEAD, OPPORTUNITY = "00Q5g00000AbCdEEAZ", "0065g00000XyZaBAAV"
OUTBOUND, SOBJECT = "http://soap.sforce.com/2005/09/outbound", "urn:sobject.enterprise.soap.sforce.com"
SOAP, XSI = "http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2001/XMLSchema-instance"
#: The fields docs/api.md says to send, as a converted lead and its won opportunity carry them.
LEAD_FIELDS = {"Id": LEAD, "CreatedDate": "2026-11-02T10:00:00.000Z", "LeadSource": "Web", "Status": "Qualified",
               "IsConverted": "true", "ConvertedDate": "2026-11-04", "ConvertedOpportunityId": OPPORTUNITY,
               "OwnerId": "0055g00000AbCdEAAV"}  # fmt: skip
OPPORTUNITY_FIELDS = {"Id": OPPORTUNITY, "CreatedDate": "2026-11-04T09:00:00.000Z", "CloseDate": "2026-11-05",
                      "IsClosed": "true", "IsWon": "true", "StageName": "Closed Won", "Amount": "12000.0",
                      "Lead_Id__c": LEAD}  # fmt: skip


def message(
    notes: list[tuple[str, str, Mapping[str, str]]],
    org: str = ORG,
    soap: str = "soapenv",
    sf: str = "sf",
    xsi: str = "xsi",
    out: str = "",
) -> bytes:
    """A notifications message in the shape of Salesforce's documentation and WSDL, with the given prefixes.

    `notes` are (notification id, sObject type, fields); `out` is the outbound namespace's
    prefix ("": the default namespace, as Salesforce writes it).
    """
    o = f"{out}:" if out else ""
    body = "".join(
        f'<{o}Notification><{o}Id>{note_id}</{o}Id><{o}sObject {xsi}:type="{sf}:{kind}" xmlns:{sf}="{SOBJECT}">'
        + "".join(f"<{sf}:{name}>{value}</{sf}:{name}>" for name, value in fields.items())
        + f'<{sf}:ConvertedDate {xsi}:nil="true"/></{o}sObject></{o}Notification>'
        for note_id, kind, fields in notes
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{soap}:Envelope xmlns:{soap}="{SOAP}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:{xsi}="{XSI}">'
        f'<{soap}:Body><{o}notifications xmlns{":" + out if out else ""}="{OUTBOUND}">'
        f"<{o}OrganizationId>{org}</{o}OrganizationId><{o}ActionId>04k5g000000CaRkAAK</{o}ActionId>"
        f'<{o}SessionId {xsi}:nil="true"/>'
        f"<{o}EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/62.0/00D5g000004abcD</{o}EnterpriseUrl>"
        f"<{o}PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/62.0/00D5g000004abcD</{o}PartnerUrl>"
        f"{body}</{o}notifications></{soap}:Body></{soap}:Envelope>"
    ).encode()


LEAD_MESSAGE = message([("04l5g00000Gx7QzAAJ", "Lead", LEAD_FIELDS)])
OPPORTUNITY_MESSAGE = message([("04l5g00000Gx7R0AAJ", "Opportunity", OPPORTUNITY_FIELDS)])
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10) for n in range(1, 10))
    + b"]><soapenv:Envelope xmlns:soapenv=\"" + SOAP.encode() + b"\"><soapenv:Body>&lol9;</soapenv:Body></soapenv:Envelope>"
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    + LEAD_MESSAGE.split(b"?>", 1)[1].replace(b"<sf:LeadSource>Web", b"<sf:LeadSource>&xxe;")
)


def stand_in(
    object_name: Literal["lead", "opportunity"], fields: Mapping[str, str], settings: Settings
) -> list[dict[str, Any]] | Rejection:
    """A stand-in for the import's rules: a lead's creation, an opportunity's win; ids from the record alone."""
    record = fields.get("Id")
    if record is None:
        return Rejection("missing_field", "Id")
    if object_name == "lead":
        return [{"event_id": f"salesforce:lead:{record}:lead.created", "type": "lead.created",
                 "occurred_at": fields.get("CreatedDate"), "lead_id": record, "source": fields.get("LeadSource")}]  # fmt: skip
    if fields.get("IsWon") != "true":
        return []
    return [{"event_id": f"salesforce:opportunity:{record}:deal.won", "type": "deal.won",
             "occurred_at": f"{fields['CloseDate']}T00:00:00Z", "lead_id": fields.get("Lead_Id__c"), "deal_id": record,
             "amount": float(fields["Amount"])}]  # fmt: skip


HOOK = OutboundHook(TOKEN.encode(), ORG[:15], note_mapper(stand_in, Settings()))


def events(body: bytes) -> list[dict[str, Any]]:
    return [{"type": r.result.type, "lead_id": r.result.lead_id} for r in HOOK.records(body, NOW_MS) if isinstance(r.result, Event)]


# --- the documented shape ---------------------------------------------------------------


def test_documented_lead_and_opportunity_messages_parse_to_their_notifications_with_nil_fields_left_out() -> None:
    lead, opportunity = parse(LEAD_MESSAGE), parse(OPPORTUNITY_MESSAGE)
    assert (lead.organization_id, lead.action_id) == (ORG, "04k5g000000CaRkAAK")
    assert lead.notes == [{"ActionId": "04k5g000000CaRkAAK", "Id": "04l5g00000Gx7QzAAJ", "sObject": "Lead", "fields": LEAD_FIELDS}]
    assert opportunity.notes[0]["sObject"] == "Opportunity" and opportunity.notes[0]["fields"] == OPPORTUNITY_FIELDS


def test_a_lead_and_its_won_opportunity_become_the_mappers_events() -> None:
    assert events(LEAD_MESSAGE) == [{"type": "lead.created", "lead_id": LEAD}]
    assert events(OPPORTUNITY_MESSAGE) == [{"type": "deal.won", "lead_id": LEAD}]


PREFIXES = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(lambda p: not p.startswith("xml"))


@given(soap=PREFIXES, sf=PREFIXES, xsi=PREFIXES, out=st.just("") | PREFIXES, bom=st.booleans())
def test_any_namespace_prefixes_and_a_byte_order_mark_parse_the_same(soap: str, sf: str, xsi: str, out: str, bom: bool) -> None:
    notes = [("04l5g00000Gx7QzAAJ", "Lead", LEAD_FIELDS), ("04l5g00000Gx7R0AAJ", "Opportunity", OPPORTUNITY_FIELDS)]
    assume(len({soap, sf, xsi, out}) == 4 and "xsd" not in (soap, sf, xsi, out))  # one prefix, one namespace
    body = message(notes, soap=soap, sf=sf, xsi=xsi, out=out)
    assert parse(b"\xef\xbb\xbf" * bom + body) == parse(message(notes))


@given(count=st.sampled_from([1, 2, 37, MAX_NOTIFICATIONS]))
def test_one_to_a_hundred_notifications_each_map_in_order(count: int) -> None:
    notes = [(f"04l5g00000Gx{n:04d}AAJ", "Lead", {**LEAD_FIELDS, "Id": f"00Q5g0000{n:04d}EEAZ"}) for n in range(count)]
    records = HOOK.records(message(notes), NOW_MS)
    assert [(r.line, r.result.lead_id) for r in records if isinstance(r.result, Event)] == [
        (n, f"00Q5g0000{n:04d}EEAZ") for n in range(count)
    ]


# --- refused: attacks, strangers, malformed messages -----------------------------------


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE], ids=["billion laughs", "external entity"])
def test_dtds_and_entities_are_refused_at_once_with_bounded_memory(body: bytes) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(Fault) as refused:
            parse(body)
        elapsed, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 400 and not isinstance(refused.value, Malformed)
    assert "DTD" in str(refused.value)
    assert elapsed < 0.05 and peak < 512 * 1024, (elapsed, peak)


MALFORMED = {
    "not XML": (b'{"OrganizationId": "x"}', "invalid_field", "not well-formed XML"),
    "truncated": (LEAD_MESSAGE[:-40], "invalid_field", "not well-formed XML"),
    "not SOAP": (b"<notifications/>", "invalid_field", "not a SOAP Envelope"),
    "another call": (LEAD_MESSAGE.replace(b"notifications", b"describeSObjects"), "invalid_field", "holds describeSObjects"),
    "no org": (LEAD_MESSAGE.replace(b"OrganizationId", b"OrgId"), "missing_field", "no notifications/OrganizationId"),
    "no notification": (message([]), "missing_field", "1 to 100"),
    "101 notifications": (message([("04l5g00000Gx7QzAAJ", "Lead", LEAD_FIELDS)] * 101), "invalid_field", "over 100"),
    "nested too deep": (LEAD_MESSAGE.replace(b"Web", b"<a><b>Web</b></a>"), "invalid_field", "deeper"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_message_is_a_400_naming_the_problem_and_a_rejected_record_of_the_body(case: str) -> None:
    body, code, why = MALFORMED[case]
    with pytest.raises(Malformed) as refused:
        HOOK.records(body, NOW_MS)
    assert refused.value.status == 400 and why in str(refused.value)
    record = malformed_record(body, refused.value)
    assert (record.raw, record.result) == (body, Rejection(code, str(refused.value)))


def test_a_notification_that_maps_to_nothing_usable_is_a_rejected_record_beside_the_good_ones() -> None:
    body = message([("04l5g00000Gx7QzAAJ", "Account", {"Id": "0015g00000ZkM3hAAF"}), ("04l5g00000Gx7R1AAJ", "Lead", LEAD_FIELDS),
                    ("04l5g00000Gx7R2AAJ", "Lead", {"CreatedDate": "2026-11-02T10:00:00.000Z"})])  # fmt: skip
    results = [(r.line, r.result if isinstance(r.result, Rejection) else r.result.type) for r in HOOK.records(body, NOW_MS)]
    assert results == [
        (0, Rejection("invalid_field", "sObject xsi:type Account: only Lead and Opportunity map to events")),
        (1, "lead.created"),
        (2, Rejection("missing_field", "Id")),
    ]


@pytest.mark.parametrize("sent", [ORG, ORG[:15], "00D5g000004abcEEAQ", "00d5g000004abcDEAQ", "00D5g000004abcD", ""])
@pytest.mark.parametrize("configured", [ORG, ORG[:15]])
def test_the_org_matches_on_its_first_15_characters_case_sensitively(sent: str, configured: str) -> None:
    assert same_org(sent, configured) == (sent[:15] == ORG[:15])


def test_another_orgs_message_is_a_403_fault() -> None:
    with pytest.raises(Fault) as refused:
        HOOK.records(message([("04l5g00000Gx7QzAAJ", "Lead", LEAD_FIELDS)], org="00D5g000009zzzZEAQ"), NOW_MS)
    assert refused.value.status == 403 and "00D5g000009zzzZEAQ" in str(refused.value)


@given(guess=st.text(max_size=40))
def test_only_the_configured_token_is_authorised(guess: str) -> None:
    assert HOOK.authorised(guess) == (guess == TOKEN)
    assert HOOK.authorised(TOKEN)
    assert OutboundHook(None, None, HOOK.mapper).authorised(guess)


# --- configuration -----------------------------------------------------------------------


def test_the_hook_is_served_only_with_its_token_and_then_needs_a_well_formed_org() -> None:
    token = {"salesforce_outbound_token": SecretStr(TOKEN)}
    assert outbound_hook(Settings(), stand_in) is None
    assert outbound_hook(Settings(**token, salesforce_org_id=ORG), stand_in) is not None
    unchecked = outbound_hook(Settings(), stand_in, insecure_no_auth=True)
    assert unchecked is not None and (unchecked.token, unchecked.org_id) == (None, None)
    with pytest.raises(MisconfiguredHook, match="LEADPULSE_SALESFORCE_ORG_ID is not set"):
        outbound_hook(Settings(**token), stand_in)
    with pytest.raises(MisconfiguredHook, match="LEADPULSE_SALESFORCE_ORG_ID must be .* got '00D5g'"):
        outbound_hook(Settings(**token, salesforce_org_id="00D5g"), stand_in)


# --- answers -----------------------------------------------------------------------------


def test_the_ack_is_salesforces_notifications_response_in_a_soap_11_envelope() -> None:
    root = ElementTree.fromstring(ack())
    assert root.tag == f"{{{SOAP}}}Envelope"
    assert root.find(f"{{{SOAP}}}Body/{{{OUTBOUND}}}notificationsResponse/{{{OUTBOUND}}}Ack").text == "true"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "code"), [(400, "soapenv:Client"), (403, "soapenv:Client"), (503, "soapenv:Server")])
def test_a_fault_is_a_soap_11_fault_with_an_escaped_reason(status: int, code: str) -> None:
    found = ElementTree.fromstring(fault(status, "<&> not ours")).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert found is not None
    assert (found.findtext("faultcode"), found.findtext("faultstring")) == (code, "<&> not ours")
    assert b"Ack" not in fault(status, "x")

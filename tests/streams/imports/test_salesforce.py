"""The outbound hook's entry point maps one record exactly as the Salesforce import maps a row."""

from __future__ import annotations

from streams.events import Event, Rejection, parse_record
from streams.imports.salesforce import object_events
from streams.settings import Settings

import orjson

LEAD = {
    "Id": "00Q5g00000AbCdEEAV", "CreatedDate": "2025-04-08T17:19:07.000Z", "Status": "Qualified", "LeadSource": "Web",
    "OwnerId": "0055g00000XyZab", "IsConverted": "true", "ConvertedOpportunityId": "0065g00000QrStUAAV",
    "ConvertedDate": "2025-05-01", "IsDeleted": "false",
}  # fmt: skip
OPPORTUNITY = {
    "Id": "0065g00000QrStUAAV", "CreatedDate": "2025-05-01T10:00:00.000+0000", "CloseDate": "2025-04-20",
    "StageName": "Closed Won", "IsWon": "true", "IsClosed": "true", "Amount": "1200.50", "Lead_Id__c": "00Q5g00000AbCdE",
}  # fmt: skip


def _valid(events: object) -> list[Event]:
    assert isinstance(events, list)
    parsed = [parse_record(orjson.dumps(e), 2**62) for e in events]
    assert all(isinstance(e, Event) for e in parsed), parsed
    return parsed  # type: ignore[return-value]


def test_a_converted_qualified_lead_is_created_sql_and_has_its_deal_at_the_conversion_date_at_midnight_utc() -> None:
    events = _valid(object_events("lead", LEAD, Settings()))
    assert [(e.type, e.stage, e.event_id) for e in events] == [
        ("lead.created", None, "salesforce:lead:00Q5g00000AbCdEEAV:lead.created"),
        ("lead.qualified", "sql", "salesforce:lead:00Q5g00000AbCdEEAV:lead.qualified:sql"),
        ("deal.created", None, "salesforce:lead:00Q5g00000AbCdEEAV:deal.created"),
    ]
    assert events[0].source == "web" and events[0].attributes == {"owner": "0055g00000xyzabaaf"}
    assert events[2].deal_id == "0065g00000QrStUAAV" and events[2].occurred_ms == 1746057600000


def test_a_won_opportunity_reaches_its_lead_through_the_lead_field_in_its_18_character_form() -> None:
    events = _valid(object_events("opportunity", OPPORTUNITY, Settings()))
    assert [(e.type, e.lead_id, e.amount) for e in events] == [
        ("deal.created", "00Q5g00000AbCdEEAV", None),
        ("deal.won", "00Q5g00000AbCdEEAV", 1200.5),
    ]


def test_the_lead_field_and_the_won_stage_are_settings() -> None:
    settings = Settings(salesforce_lead_field="Origin_Lead__c", salesforce_won_stages="Signed")
    fields = {**OPPORTUNITY, "Origin_Lead__c": OPPORTUNITY["Lead_Id__c"], "Lead_Id__c": "", "IsWon": "", "IsClosed": "",
              "StageName": "Signed"}  # fmt: skip
    assert [e.type for e in _valid(object_events("opportunity", fields, settings))] == ["deal.created", "deal.won"]


def test_a_deleted_record_or_an_opportunity_without_its_lead_means_nothing_yet() -> None:
    assert object_events("lead", {**LEAD, "IsDeleted": "true"}, Settings()) == []
    assert object_events("opportunity", {**OPPORTUNITY, "Lead_Id__c": ""}, Settings()) == []


def test_a_record_without_its_creation_time_or_with_an_unreadable_one_is_rejected_naming_the_field() -> None:
    assert object_events("lead", {"Id": LEAD["Id"]}, Settings()) == Rejection("missing_field", "CreatedDate")
    rejected = object_events("lead", {**LEAD, "CreatedDate": "yesterday"}, Settings())
    assert isinstance(rejected, Rejection) and "CreatedDate" in rejected.detail


def test_the_outbound_hooks_lead_is_contacted_at_the_earlier_of_its_first_call_and_first_email() -> None:
    lead = {**LEAD, "FirstCallDateTime": "2025-04-10T09:00:00.000Z", "FirstEmailDateTime": "2025-04-09T16:30:00.000Z"}
    touches = [e for e in _valid(object_events("lead", lead, Settings())) if e.type == "lead.contacted"]
    assert [(e.event_id, e.occurred_ms) for e in touches] == [
        ("salesforce:lead:00Q5g00000AbCdEEAV:lead.contacted", 1744216200000)
    ]
    assert not any(e.type == "lead.contacted" for e in _valid(object_events("lead", LEAD, Settings())))

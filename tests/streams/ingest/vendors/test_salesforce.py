"""Salesforce Change Data Capture messages, as a relay forwards them, become the funnel of a lead.

Pure: no Kafka. tests/streams/ingest/test_api_hooks.py posts the same payloads through the running API.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest.vendors.salesforce import SalesforceConfig, recognise
from streams.settings import Settings
from tests.streams.ingest.vendors.mapping import JSON_VALUES, T1, assert_total, mapped

salesforce = SalesforceConfig.from_settings(Settings()).map
LEAD_FIELD = Settings().salesforce_lead_field


def change_event(entity: str, change: str, record_ids: list[str], sequence: int = 1, **fields: Any) -> dict[str, Any]:
    """A Salesforce Change Data Capture message as a Pub/Sub relay forwards it."""
    header = {
        "entityName": entity,
        "recordIds": record_ids,
        "changeType": change,
        "changeOrigin": "com/salesforce/api/rest/62.0",
        "transactionKey": "0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11",
        "sequenceNumber": sequence,
        "commitTimestamp": T1,
        "commitNumber": 11684418373066,
        "commitUser": "0055g00000AbCdEAAV",
        "changedFields": sorted(fields) if change == "UPDATE" else [],
    }
    payload = {"ChangeEventHeader": header, **fields}
    return {"schema": "x2Fg3vR5OoKsTi2XOJ6x5Q", "payload": payload, "event": {"replayId": 42}}


LEAD, OPPORTUNITY = "00Q5g00000AbCdEEAZ", "0065g00000XyZaBAAV"
SALESFORCE_BATCH = [
    change_event("Lead", "CREATE", [LEAD], 1, LeadSource="Web", Status="New", Company="Acme"),
    change_event("Lead", "UPDATE", [LEAD], 2, Status="Qualified"),
    change_event("Lead", "UPDATE", [LEAD], 3, IsConverted=True, ConvertedOpportunityId=OPPORTUNITY,
                 Status="Closed - Converted"),
    change_event("Opportunity", "UPDATE", [OPPORTUNITY], 4, StageName="Closed Won", IsWon=True, IsClosed=True,
                 Amount=12000.0, **{LEAD_FIELD: LEAD}),
]  # fmt: skip
SALESFORCE_EVENTS = [
    {"event_id": f"salesforce:0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11:1:{LEAD}:lead.created",
     "occurred_at": "2026-11-02T10:00:00.000Z", "type": "lead.created", "lead_id": LEAD, "source": "Web"},
    {"event_id": f"salesforce:0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11:2:{LEAD}:lead.qualified",
     "occurred_at": "2026-11-02T10:00:00.000Z", "type": "lead.qualified", "lead_id": LEAD, "stage": "sql"},
    {"event_id": f"salesforce:0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11:3:{LEAD}:deal.created",
     "occurred_at": "2026-11-02T10:00:00.000Z", "type": "deal.created", "lead_id": LEAD, "deal_id": OPPORTUNITY},
    {"event_id": f"salesforce:0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11:4:{OPPORTUNITY}:deal.won",
     "occurred_at": "2026-11-02T10:00:00.000Z", "type": "deal.won", "lead_id": LEAD, "deal_id": OPPORTUNITY,
     "amount": 12000.0},
]  # fmt: skip


def test_lead_and_opportunity_changes_become_the_funnel_of_one_lead() -> None:
    assert mapped(salesforce, SALESFORCE_BATCH) == (SALESFORCE_EVENTS, [], 0)


def test_a_message_may_come_bare_or_wrapped_in_data() -> None:
    assert mapped(salesforce, SALESFORCE_BATCH[0]["payload"]) == ([SALESFORCE_EVENTS[0]], [], 0)
    assert mapped(salesforce, {"data": SALESFORCE_BATCH[0]}) == ([SALESFORCE_EVENTS[0]], [], 0)


def test_other_objects_and_deletes_are_ignored() -> None:
    other = [change_event("Account", "CREATE", ["001"]), change_event("Lead", "DELETE", [LEAD])]
    assert mapped(salesforce, other) == ([], [], 2)


def test_each_record_id_of_a_change_is_one_lead() -> None:
    events, _, _ = mapped(salesforce, change_event("Lead", "CREATE", ["00QA", "00QB"], LeadSource="Partner Referral"))
    assert [(e["lead_id"], e["source"]) for e in events] == [("00QA", "Partner Referral"), ("00QB", "Partner Referral")]
    assert len({e["event_id"] for e in events}) == 2


def test_statuses_map_case_insensitively_and_a_lost_opportunity_is_a_lost_deal() -> None:
    body = [
        change_event("Lead", "UPDATE", ["00QA"], 1, Status="marketing qualified"),
        change_event("Lead", "UPDATE", ["00QB"], 2, Status="Closed - Not Converted"),
        change_event("Opportunity", "UPDATE", ["006"], 3, IsWon=False, IsClosed=True, **{LEAD_FIELD: "00Q"}),
    ]
    events, _, _ = mapped(salesforce, body)
    assert [(e["type"], e.get("stage"), e.get("reason")) for e in events] == [
        ("lead.qualified", "mql", None),
        ("lead.disqualified", None, "Status Closed - Not Converted"),
        ("deal.lost", None, None),
    ]


def test_statuses_stages_and_the_lead_field_come_from_the_settings_the_import_reads() -> None:
    custom = Settings(salesforce_mql_statuses="Hot Lead", salesforce_won_stages="Signed", salesforce_lead_field="Origin_Lead__c")
    body = [
        change_event("Lead", "UPDATE", ["00QA"], 1, Status="HOT-LEAD"),  # compared as the import compares
        change_event("Lead", "UPDATE", ["00QB"], 2, Status="MQL"),  # no longer an mql status
        change_event("Opportunity", "UPDATE", ["006"], 3, StageName="Signed", Origin_Lead__c="00QA"),
    ]
    events, _, ignored = mapped(SalesforceConfig.from_settings(custom).map, body)
    assert [(e["type"], e["lead_id"], e.get("stage")) for e in events] == [("lead.qualified", "00QA", "mql"), ("deal.won", "00QA", None)]
    assert ignored == 1


def test_an_opportunity_without_its_lead_is_rejected_with_the_reason() -> None:
    no_lead = change_event("Opportunity", "UPDATE", [OPPORTUNITY], StageName="Closed Won")  # not enriched
    assert mapped(salesforce, [no_lead]) == ([], [(0, "missing_field: lead_id", orjson.dumps(no_lead))], 0)
    assert mapped(salesforce, [SALESFORCE_BATCH[0], {"hello": "world"}])[1][0][1] == "missing_field: ChangeEventHeader"


def test_a_body_of_another_vendor_is_not_recognised_as_salesforce() -> None:
    assert recognise(SALESFORCE_BATCH) is None and recognise([]) is None
    assert recognise({"hello": "world"}) == "not a Salesforce change event: no message has a ChangeEventHeader"


@settings(max_examples=200, deadline=None)
@given(body=JSON_VALUES | st.lists(JSON_VALUES.map(lambda v: {"payload": {"ChangeEventHeader": v}}), max_size=3))
def test_mapping_is_total_any_json_gives_events_a_rejection_or_ignored(body: Any) -> None:
    assert_total(salesforce, body)

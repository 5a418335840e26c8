"""The CRM webhook mappers: real HubSpot and Salesforce shapes become the expected contract events.

Pure: no Kafka. tests/test_api.py posts the same payloads through the running API.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import Event, Rejection
from streams.ingest.webhooks import MAPPERS, SALESFORCE_LEAD_FIELD, map_notifications

NOW_MS = 1_794_268_800_000  # 2026-11-10T00:00Z
T1, T2 = 1_793_613_600_000, 1_793_700_000_000  # 2026-11-02T10:00Z, 2026-11-03T10:00Z


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
    {"event_id": "hubspot:62515:contact.creation:123:1001", "type": "lead.created",
     "occurred_at": "2026-11-02T10:00:00.000Z", "lead_id": "123", "source": "FORM"},
    {"event_id": "hubspot:62515:contact.propertyChange:123:1002", "type": "lead.qualified",
     "occurred_at": "2026-11-03T10:00:00.000Z", "lead_id": "123", "stage": "mql"},
    {"event_id": "hubspot:62515:contact.propertyChange:123:1003", "type": "lead.qualified",
     "occurred_at": "2026-11-03T10:00:00.000Z", "lead_id": "123", "stage": "sql"},
    {"event_id": "hubspot:62515:contact.propertyChange:123:1004", "type": "deal.won",
     "occurred_at": "2026-11-03T10:00:00.000Z", "lead_id": "123", "deal_id": "hubspot-contact-123"},
    {"event_id": "hubspot:62515:contact.propertyChange:124:1005", "type": "lead.disqualified",
     "occurred_at": "2026-11-02T10:00:00.000Z", "lead_id": "124", "reason": "hs_lead_status UNQUALIFIED"},
]  # fmt: skip


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
                 Amount=12000.0, **{SALESFORCE_LEAD_FIELD: LEAD}),
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


def mapped(name: str, body: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str, bytes]], int]:
    """(event objects sent, (index, reason, raw) of rejections, ignored count) for `body` posted to hook `name`."""
    records, ignored = map_notifications(MAPPERS[name], body, NOW_MS)
    events = [orjson.loads(r.raw) for r in records if isinstance(r.result, Event)]
    rejected = [(r.line, str(r.result), r.raw) for r in records if isinstance(r.result, Rejection)]
    return events, rejected, ignored


def test_hubspot_contact_lifecycle_becomes_lead_events_and_a_conversion() -> None:
    assert mapped("hubspot", HUBSPOT_BATCH) == (HUBSPOT_EVENTS, [], 0)


def test_salesforce_lead_and_opportunity_changes_become_the_funnel_of_one_lead() -> None:
    assert mapped("salesforce", SALESFORCE_BATCH) == (SALESFORCE_EVENTS, [], 0)


def test_a_single_notification_needs_no_array() -> None:
    assert mapped("hubspot", HUBSPOT_BATCH[0]) == ([HUBSPOT_EVENTS[0]], [], 0)
    assert mapped("salesforce", SALESFORCE_BATCH[0]["payload"]) == ([SALESFORCE_EVENTS[0]], [], 0)
    assert mapped("salesforce", {"data": SALESFORCE_BATCH[0]}) == ([SALESFORCE_EVENTS[0]], [], 0)


def test_a_redelivered_notification_maps_to_the_same_event_ids() -> None:
    retry = [{**note, "attemptNumber": 3} for note in HUBSPOT_BATCH]
    assert mapped("hubspot", retry)[0] == HUBSPOT_EVENTS


def test_notifications_without_funnel_meaning_are_ignored_not_rejected() -> None:
    body = [
        hubspot_note(1, "contact.propertyChange", propertyName="firstname", propertyValue="Ada"),
        hubspot_note(2, "contact.propertyChange", propertyName="lifecyclestage", propertyValue="opportunity"),
        hubspot_note(3, "deal.propertyChange", 9, propertyName="dealstage", propertyValue="closedwon"),
        hubspot_note(4, "contact.deletion"),
    ]
    assert mapped("hubspot", body) == ([], [], 4)
    other = [change_event("Account", "CREATE", ["001"]), change_event("Lead", "DELETE", [LEAD])]
    assert mapped("salesforce", other) == ([], [], 2)


def test_each_record_id_of_a_salesforce_change_is_one_lead() -> None:
    events, _, _ = mapped("salesforce", change_event("Lead", "CREATE", ["00QA", "00QB"], LeadSource="Partner Referral"))
    assert [(e["lead_id"], e["source"]) for e in events] == [("00QA", "Partner Referral"), ("00QB", "Partner Referral")]
    assert len({e["event_id"] for e in events}) == 2


def test_salesforce_statuses_map_case_insensitively_and_a_lost_opportunity_is_a_lost_deal() -> None:
    body = [
        change_event("Lead", "UPDATE", ["00QA"], 1, Status="marketing qualified"),
        change_event("Lead", "UPDATE", ["00QB"], 2, Status="Closed - Not Converted"),
        change_event("Opportunity", "UPDATE", ["006"], 3, IsWon=False, IsClosed=True, **{SALESFORCE_LEAD_FIELD: "00Q"}),
    ]
    events, _, _ = mapped("salesforce", body)
    assert [(e["type"], e.get("stage"), e.get("reason")) for e in events] == [
        ("lead.qualified", "mql", None),
        ("lead.disqualified", None, "Status Closed - Not Converted"),
        ("deal.lost", None, None),
    ]


def test_an_unmappable_notification_is_rejected_with_its_reason_and_sent_as_received() -> None:
    no_lead = change_event("Opportunity", "UPDATE", [OPPORTUNITY], StageName="Closed Won")  # not enriched
    no_contact = {key: value for key, value in HUBSPOT_BATCH[0].items() if key != "objectId"}
    future = {**HUBSPOT_BATCH[0], "occurredAt": NOW_MS + 2 * 86_400_000}
    body = [no_lead, no_contact, future, {"hello": "world"}, [1, 2]]
    assert mapped("hubspot", body[1:]) == (
        [],
        [
            (0, "missing_field: objectId", orjson.dumps(no_contact)),
            (1, "future_timestamp: 2026-11-12T00:00:00.000Z", orjson.dumps(future)),
            (2, "missing_field: subscriptionType", b'{"hello":"world"}'),
            (3, "not_an_object: list", b"[1,2]"),
        ],
        0,
    )
    assert mapped("salesforce", body[:1]) == ([], [(0, "missing_field: lead_id", orjson.dumps(no_lead))], 0)
    assert mapped("salesforce", {"hello": "world"})[1][0][1] == "missing_field: ChangeEventHeader"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
HUBSPOT_LIKE = st.fixed_dictionaries(
    {key: JSON_VALUES | st.just(value) for key, value in HUBSPOT_BATCH[3].items()}  # mostly-real notifications
)


@settings(max_examples=200, deadline=None)
@given(body=JSON_VALUES | st.lists(HUBSPOT_LIKE, max_size=3) | HUBSPOT_LIKE)
def test_mappers_are_total_every_notification_is_an_event_a_rejection_or_ignored(body: Any) -> None:
    notes = body if isinstance(body, list) else [body]
    for name in MAPPERS:
        records, ignored = map_notifications(MAPPERS[name], body, NOW_MS)
        assert {r.line for r in records} | set(range(len(notes))) == set(range(len(notes)))
        assert len({r.line for r in records}) + ignored == len(notes)

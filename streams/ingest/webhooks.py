"""Webhook shapes of real CRMs, mapped to contract events (`POST /v1/hooks/<name>`).

Marketing systems cannot be taught leadpulse's event format, so each mapper turns one of
their notifications into zero or more contract event objects. Mappers only rename and
pick fields; `parse_record` then judges the result exactly as it judges a posted event,
so a notification missing what the contract needs is rejected with the usual reason.
Event ids are built from the sender's own ids, so a notification the CRM re-delivers
maps to the same `event_id`s and the workers count it once.

Pure: no I/O, no clock except the `now_ms` the caller passes to validation.

**hubspot**: a HubSpot webhook subscription batch (a JSON array; one object also works).
The contact is the lead::

    [{"eventId": 1001, "subscriptionId": 7, "portalId": 62515, "occurredAt": 1793613600000,
      "subscriptionType": "contact.creation", "objectId": 123, "changeSource": "FORM"},
     {"eventId": 1002, "subscriptionId": 8, "portalId": 62515, "occurredAt": 1793700000000,
      "subscriptionType": "contact.propertyChange", "objectId": 123,
      "propertyName": "lifecyclestage", "propertyValue": "customer", "changeSource": "DEALS"}]

- ``contact.creation`` -> ``lead.created`` (source: ``changeSource``, e.g. ``form``, ``import``);
- ``contact.propertyChange`` of ``lifecyclestage``: ``marketingqualifiedlead`` ->
  ``lead.qualified`` mql, ``salesqualifiedlead`` -> sql, ``customer`` -> ``deal.won`` with
  deal ``hubspot-contact-<id>``. HubSpot's deal notifications do not name the deal's
  contact, so the conversion comes from the contact's lifecycle stage, which HubSpot
  sets to customer when an associated deal closes won;
- ``contact.propertyChange`` of ``hs_lead_status`` to ``UNQUALIFIED`` -> ``lead.disqualified``;
- anything else is ignored (counted in the response, not sent).

**salesforce**: Change Data Capture events (one message or an array) as a Pub/Sub or
CometD relay forwards them: ``{"data": {"payload": {...}}}``, ``{"payload": {...}}`` or
the bare payload. Each id in ``ChangeEventHeader.recordIds`` is one record::

    {"payload": {"ChangeEventHeader": {"entityName": "Lead", "changeType": "CREATE",
       "recordIds": ["00Q5g00000AbCdEEAZ"], "commitTimestamp": 1793613600000,
       "transactionKey": "0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11", "sequenceNumber": 1},
     "LeadSource": "Web", "Status": "New"}}

- Lead ``CREATE`` -> ``lead.created`` (source: ``LeadSource``), plus the status event below;
- a Lead ``Status`` of ``MQL``/``Marketing Qualified`` -> ``lead.qualified`` mql,
  ``Qualified``/``SQL``/``Sales Qualified`` -> sql, ``Unqualified``/``Closed - Not Converted``
  -> ``lead.disqualified`` (case-insensitive);
- a Lead ``UPDATE`` with ``IsConverted`` and ``ConvertedOpportunityId`` -> ``deal.created``;
- an Opportunity ``CREATE``/``UPDATE`` with ``IsWon``/``IsClosed`` or ``StageName`` ``Closed Won``/
  ``Closed Lost`` -> ``deal.won``/``deal.lost`` (amount: ``Amount``). An opportunity does
  not name its lead, so its lead comes from the custom field `SALESFORCE_LEAD_FIELD`,
  which the org fills at lead conversion and adds to the change event as an enriched field;
- anything else is ignored.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Final, Mapping

import orjson

from streams.events import MAX_RECORD_BYTES, Event, Rejection, parse_record
from streams.ingest.records import Record

#: One notification to the contract event objects it means ([] when it means nothing to leadpulse).
Mapper = Callable[[dict[str, Any]], list[dict[str, Any]] | Rejection]

SALESFORCE_LEAD_FIELD: Final = "Lead_Id__c"

_QUALIFIED_MQL: Final = {"type": "lead.qualified", "stage": "mql"}
_QUALIFIED_SQL: Final = {"type": "lead.qualified", "stage": "sql"}
_DISQUALIFIED: Final = {"type": "lead.disqualified"}
#: (subscriptionType, propertyName, propertyValue) -> what the notification means.
_HUBSPOT_EVENTS: Final[Mapping[tuple[str | None, ...], Mapping[str, str]]] = {
    ("contact.creation", None, None): {"type": "lead.created"},
    ("contact.propertyChange", "lifecyclestage", "marketingqualifiedlead"): _QUALIFIED_MQL,
    ("contact.propertyChange", "lifecyclestage", "salesqualifiedlead"): _QUALIFIED_SQL,
    ("contact.propertyChange", "lifecyclestage", "customer"): {"type": "deal.won"},
    ("contact.propertyChange", "hs_lead_status", "UNQUALIFIED"): {
        **_DISQUALIFIED,
        "reason": "hs_lead_status UNQUALIFIED",
    },
}
#: The HubSpot ids an event id is made of: eventId alone is not guaranteed unique.
_HUBSPOT_IDS: Final = ("portalId", "subscriptionType", "objectId", "eventId")
_HUBSPOT_KEY: Final = ("subscriptionType", "propertyName", "propertyValue")
_SALESFORCE_IDS: Final = ("transactionKey", "sequenceNumber")
_SALESFORCE_STATUSES: Final[Mapping[str, Mapping[str, str]]] = {
    "mql": _QUALIFIED_MQL,
    "marketing qualified": _QUALIFIED_MQL,
    "qualified": _QUALIFIED_SQL,
    "sql": _QUALIFIED_SQL,
    "sales qualified": _QUALIFIED_SQL,
    "unqualified": _DISQUALIFIED,
    "closed - not converted": _DISQUALIFIED,
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def map_notifications(mapper: Mapper, body: Any, now_ms: int) -> tuple[list[Record], int]:
    """The records of a webhook body (one notification or an array of them) and how many were ignored.

    A record's `line` is its notification's index in the body. A valid event is sent as
    the mapped event; a rejected one as the notification it came from, so the rejected
    topic shows what the CRM actually sent.
    """
    records: list[Record] = []
    ignored = 0
    for index, note in enumerate(body if isinstance(body, list) else [body]):
        original = orjson.dumps(note)[:MAX_RECORD_BYTES]
        mapped = mapper(note) if isinstance(note, dict) else Rejection("not_an_object", type(note).__name__)
        if isinstance(mapped, Rejection):
            records.append(Record(original, mapped, index))
            continue
        ignored += not mapped
        for obj in mapped:
            raw = orjson.dumps(obj)
            result = parse_record(raw, now_ms)
            records.append(Record(raw if isinstance(result, Event) else original, result, index))
    return records, ignored


def hubspot(note: dict[str, Any]) -> list[dict[str, Any]] | Rejection:
    """A HubSpot webhook subscription event (see the module docstring)."""
    if note.get("subscriptionType") is None:
        return Rejection("missing_field", "subscriptionType")
    key = tuple(value if isinstance(value, str) else None for value in _fields(note, _HUBSPOT_KEY))
    meaning = _HUBSPOT_EVENTS.get(key)
    if meaning is None:
        return []
    ids = _fields(note, _HUBSPOT_IDS)
    if None in ids:
        return Rejection("missing_field", _HUBSPOT_IDS[ids.index(None)])
    contact = _id(note["objectId"])
    event = {"event_id": _join("hubspot", *ids), "occurred_at": _rfc3339(note.get("occurredAt")), "lead_id": contact}
    event.update(meaning)
    if meaning["type"] == "lead.created":
        event["source"] = note.get("changeSource") or "unknown"
    elif meaning["type"] == "deal.won":
        event["deal_id"] = f"hubspot-contact-{contact}"
    return [event]


def salesforce(message: dict[str, Any]) -> list[dict[str, Any]] | Rejection:
    """A Salesforce Change Data Capture event of a Lead or an Opportunity (see the module docstring)."""
    data = message.get("data", message)
    payload = data.get("payload", data) if isinstance(data, dict) else None
    header = payload.get("ChangeEventHeader") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(header, dict):
        return Rejection("missing_field", "ChangeEventHeader")
    record_ids = header.get("recordIds")
    if not isinstance(record_ids, list):
        return Rejection("missing_field", "ChangeEventHeader.recordIds")
    entity, change = header.get("entityName"), header.get("changeType")
    events = [
        (record_id, fields)
        for record_id in record_ids
        for fields in _salesforce_events(entity, change, payload, record_id)
    ]
    ids = _fields(header, _SALESFORCE_IDS)
    if events and None in ids:
        return Rejection("missing_field", f"ChangeEventHeader.{_SALESFORCE_IDS[ids.index(None)]}")
    occurred_at = _rfc3339(header.get("commitTimestamp"))
    return [
        {"event_id": _join("salesforce", *ids, record_id, fields["type"]), "occurred_at": occurred_at, **fields}
        for record_id, fields in events
    ]


def _salesforce_events(
    entity: object, change: object, payload: dict[str, Any], record_id: object
) -> list[dict[str, Any]]:
    """The events (without id and time) that one record's change means."""
    if change not in ("CREATE", "UPDATE"):
        return []
    if entity == "Lead":
        events: list[dict[str, Any]] = []
        if change == "CREATE":
            source = payload.get("LeadSource") or "unknown"
            events.append({"type": "lead.created", "lead_id": record_id, "source": source})
        status = payload.get("Status")
        meaning = _SALESFORCE_STATUSES.get(status.strip().lower()) if isinstance(status, str) else None
        if meaning is _DISQUALIFIED:
            events.append({**meaning, "lead_id": record_id, "reason": f"Status {status}"})
        elif meaning is not None:
            events.append({**meaning, "lead_id": record_id})
        if payload.get("IsConverted") is True and payload.get("ConvertedOpportunityId") is not None:
            events.append({"type": "deal.created", "lead_id": record_id, "deal_id": payload["ConvertedOpportunityId"]})
        return events
    if entity == "Opportunity":
        stage_name, won, closed = payload.get("StageName"), payload.get("IsWon"), payload.get("IsClosed")
        if won is True or stage_name == "Closed Won":
            kind = "deal.won"
        elif (won is False and closed is True) or stage_name == "Closed Lost":
            kind = "deal.lost"
        else:
            return []
        deal = {"type": kind, "lead_id": payload.get(SALESFORCE_LEAD_FIELD), "deal_id": record_id}
        if payload.get("Amount") is not None:
            deal["amount"] = payload["Amount"]
        return [deal]
    return []


def _id(value: object) -> object:
    """CRM ids come as numbers or strings; the contract wants strings (other types stay, for validation to reject)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _fields(obj: dict[str, Any], names: tuple[str, ...]) -> list[Any]:
    return [obj.get(name) for name in names]


def _join(*parts: object) -> str:
    """An event id from the sender's own ids, so a re-delivered notification keeps it."""
    return ":".join(str(part) for part in parts)


def _rfc3339(epoch_ms: object) -> object:
    """CRM epoch milliseconds as RFC 3339 UTC; anything else stays for validation to reject."""
    if not isinstance(epoch_ms, int) or isinstance(epoch_ms, bool):
        return epoch_ms
    try:
        moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    except OverflowError:
        return epoch_ms
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


MAPPERS: Final[Mapping[str, Mapper]] = {"hubspot": hubspot, "salesforce": salesforce}

"""Salesforce Change Data Capture events, as a relay forwards them, mapped to lead and deal events.

Salesforce delivers CDC over its Pub/Sub API (gRPC) or CometD, never as a webhook, so a
relay subscribes and posts each message here, signed with leadpulse's own
``X-Leadpulse-Signature`` (`streams.ingest.signing`, `LEADPULSE_INGEST_SECRET`). leadpulse
ships no relay: PyPI has no well-kept Pub/Sub API client (docs/api.md says what was
looked at), and Salesforce's own examples are the better starting point for one.

A message is ``{"data": {"payload": {...}}}``, ``{"payload": {...}}`` or the bare payload;
each id in ``ChangeEventHeader.recordIds`` is one record::

    {"payload": {"ChangeEventHeader": {"entityName": "Lead", "changeType": "CREATE",
       "recordIds": ["00Q5g00000AbCdEEAZ"], "commitTimestamp": 1793613600000,
       "transactionKey": "0004a3c1-5e1b-7f4d-9a3b-2c6d1e0f9a11", "sequenceNumber": 1},
     "LeadSource": "Web", "Status": "New"}}

- Lead ``CREATE`` -> ``lead.created`` (source: ``LeadSource``), plus the status event below;
- a Lead ``Status`` that ``LEADPULSE_SALESFORCE_MQL_STATUSES`` lists -> ``lead.qualified`` mql,
  ``_SQL_STATUSES`` -> sql, ``_DISQUALIFIED_STATUSES`` -> ``lead.disqualified``;
- a Lead ``UPDATE`` with ``IsConverted`` and ``ConvertedOpportunityId`` -> ``deal.created``;
- an Opportunity ``CREATE``/``UPDATE`` with ``IsWon``/``IsClosed``, or a ``StageName`` that
  ``LEADPULSE_SALESFORCE_WON_STAGES``/``_LOST_STAGES`` lists -> ``deal.won``/``deal.lost``
  (amount: ``Amount``). An opportunity does not name its lead, so its lead comes from the
  custom field ``LEADPULSE_SALESFORCE_LEAD_FIELD``, which the org fills at lead conversion
  and adds to the change event as an enriched field;
- anything else is ignored.

The values are read as `leadpulse import salesforce` reads them (the preset's value lists,
compared ignoring case, spaces and punctuation), so a status means the same in a relayed
change, an outbound message and an import.

Event id: ``salesforce:<transactionKey>:<sequenceNumber>:<recordId>:<type>``, the same
for every re-delivery of the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from streams.events import Rejection
from streams.imports.mapping import ObjectMapping, preset
from streams.ingest.vendors.common import any_note_has, join_id, rfc3339_from_ms
from streams.settings import Settings

SECRET_SETTING: Final = "LEADPULSE_INGEST_SECRET"  # the relay signs with leadpulse's own scheme
_IDS: Final = ("transactionKey", "sequenceNumber")


def _payload(message: dict[str, Any]) -> dict[str, Any] | None:
    data = message.get("data", message)
    payload = data.get("payload", data) if isinstance(data, dict) else None
    return payload if isinstance(payload, dict) and isinstance(payload.get("ChangeEventHeader"), dict) else None


def recognise(body: Any) -> str | None:
    if any_note_has(body, lambda note: _payload(note) is not None):
        return None
    return "not a Salesforce change event: no message has a ChangeEventHeader"


@dataclass(frozen=True)
class SalesforceConfig:
    """What Lead statuses and Opportunity stages mean, and the lead field: the import's preset and settings."""

    leads: ObjectMapping
    opportunities: ObjectMapping
    lead_field: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SalesforceConfig:
        objects = preset("salesforce", settings).objects
        return cls(objects["leads"], objects["opportunities"], settings.salesforce_lead_field)

    def map(self, message: dict[str, Any], now_ms: int) -> list[dict[str, Any]] | Rejection:
        """A Salesforce Change Data Capture event of a Lead or an Opportunity (see the module docstring)."""
        payload = _payload(message)
        if payload is None:
            return Rejection("missing_field", "ChangeEventHeader")
        header = payload["ChangeEventHeader"]
        record_ids = header.get("recordIds")
        if not isinstance(record_ids, list):
            return Rejection("missing_field", "ChangeEventHeader.recordIds")
        entity, change = header.get("entityName"), header.get("changeType")
        events = [
            (record_id, fields)
            for record_id in record_ids
            for fields in _events(entity, change, payload, record_id, self)
        ]
        ids = [header.get(name) for name in _IDS]
        if events and None in ids:
            return Rejection("missing_field", f"ChangeEventHeader.{_IDS[ids.index(None)]}")
        occurred_at = rfc3339_from_ms(header.get("commitTimestamp"))
        return [
            {"event_id": join_id("salesforce", *ids, record_id, fields["type"]), "occurred_at": occurred_at, **fields}
            for record_id, fields in events
        ]


def _meaning(mapping: ObjectMapping, value: object) -> str | None:
    return mapping.meaning(value) if isinstance(value, str) else None


def _events(
    entity: object, change: object, payload: dict[str, Any], record_id: object, config: SalesforceConfig
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
        meaning = _meaning(config.leads, status)
        if meaning == "disqualified":
            events.append({"type": "lead.disqualified", "lead_id": record_id, "reason": f"Status {status}"})
        elif meaning in ("mql", "sql"):
            events.append({"type": "lead.qualified", "stage": meaning, "lead_id": record_id})
        if payload.get("IsConverted") is True and payload.get("ConvertedOpportunityId") is not None:
            events.append({"type": "deal.created", "lead_id": record_id, "deal_id": payload["ConvertedOpportunityId"]})
        return events
    if entity == "Opportunity":
        stage, won, closed = _meaning(config.opportunities, payload.get("StageName")), payload.get("IsWon"), payload.get("IsClosed")
        if won is True or stage == "won":
            kind = "deal.won"
        elif (won is False and closed is True) or stage == "lost":
            kind = "deal.lost"
        else:
            return []
        deal = {"type": kind, "lead_id": payload.get(config.lead_field), "deal_id": record_id}
        if payload.get("Amount") is not None:
            deal["amount"] = payload["Amount"]
        return [deal]
    return []

"""Segment webhook destinations: Segment's ``X-Signature`` and its spec's calls as lead events.

**Signature** (Segment's Webhooks destinations, classic and Actions): ``X-Signature`` is
the hex HMAC-SHA1 of the request body keyed with the destination's shared secret
(`LEADPULSE_SEGMENT_SHARED_SECRET`). With batching on, Segment Actions signs only the
first event of a batch, which would leave the rest unauthenticated, so batches are
verified over the whole body like any request and a batched delivery is refused: keep
the mapping's batching off.

**Calls** (the Segment spec, one message per request; an array also works):

- ``identify`` -> ``lead.created`` for ``userId`` (unless `SegmentConfig.identify_as_lead`
  is off): the first identify is the lead's creation, later ones change nothing;
- ``track`` whose ``event`` names a meaning in `SegmentConfig.events` (``Lead Created``,
  ``Lead Contacted``, ``Opportunity Won``, ... by default) -> that event for ``userId``;
  a touch (``lead.contacted``) takes its ``channel`` and the ``owner`` who made it
  (``attributes.owner``) from the properties;
- anything else (page, screen, group, other track events) is ignored.

Fields come from the call's ``properties`` (track) or ``traits`` (identify), under the
names of `SegmentConfig.properties`; a lead's source and campaign fall back to the UTM
parameters Segment keeps in ``context.campaign``, which also become ``utm_*`` attributes.
A deal without a deal id property is ``segment-user-<userId>``, so a user converts once.

Event id: ``segment:<messageId>``; Segment keeps a message's ``messageId`` on every retry.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from streams.events import Rejection
from streams.ingest.signing import SignatureError
from streams.ingest.vendors.common import SignedRequest, any_note_has

SIGNATURE_HEADER: Final = "X-Signature"
SECRET_SETTING: Final = "LEADPULSE_SEGMENT_SHARED_SECRET"

#: What a track event can mean, by the name `SegmentConfig.events` uses for it.
MEANINGS: Final[Mapping[str, Mapping[str, str]]] = {
    "lead.created": {"type": "lead.created"},
    "lead.qualified:mql": {"type": "lead.qualified", "stage": "mql"},
    "lead.qualified:sql": {"type": "lead.qualified", "stage": "sql"},
    "lead.disqualified": {"type": "lead.disqualified"},
    "lead.contacted": {"type": "lead.contacted"},
    "deal.created": {"type": "deal.created"},
    "deal.won": {"type": "deal.won"},
    "deal.lost": {"type": "deal.lost"},
}
DEFAULT_EVENTS: Final[Mapping[str, str]] = {
    "Lead Created": "lead.created",
    "Lead Qualified": "lead.qualified:mql",
    "Lead Sales Qualified": "lead.qualified:sql",
    "Lead Disqualified": "lead.disqualified",
    "Lead Contacted": "lead.contacted",
    "Opportunity Created": "deal.created",
    "Opportunity Won": "deal.won",
    "Opportunity Lost": "deal.lost",
}
#: Contract field -> the property (or trait) that holds it.
DEFAULT_PROPERTIES: Final[Mapping[str, str]] = {
    "source": "source",
    "campaign": "campaign",
    "deal_id": "deal_id",
    "amount": "amount",
    "reason": "reason",
    "channel": "channel",
    "owner": "owner",
}
#: context.campaign key -> attribute (Segment's names for the UTM parameters).
_UTM: Final = {"source": "utm_source", "medium": "utm_medium", "name": "utm_campaign", "term": "utm_term", "content": "utm_content"}


def signature(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha1).hexdigest()


def verify(secret: bytes, request: SignedRequest) -> None:
    """Raise `SignatureError` unless ``X-Signature`` is the body's HMAC-SHA1 with `secret`."""
    given = request.headers.get(SIGNATURE_HEADER)
    if not given:
        raise SignatureError(f"missing {SIGNATURE_HEADER}")
    if not hmac.compare_digest(signature(secret, request.body).encode(), given.strip().lower().encode("utf-8", "surrogateescape")):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")


def recognise(body: Any) -> str | None:
    if any_note_has(body, lambda note: isinstance(note.get("type"), str) and "messageId" in note):
        return None
    return "not a Segment message: no call has a type and a messageId"


@dataclass(frozen=True)
class SegmentConfig:
    """Which calls mean what (`LEADPULSE_SEGMENT_EVENTS`, `_IDENTIFY_AS_LEAD`, `_PROPERTIES`)."""

    events: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENTS))
    identify_as_lead: bool = True
    properties: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PROPERTIES))

    def __post_init__(self) -> None:
        unknown = sorted({meaning for meaning in self.events.values() if meaning not in MEANINGS})
        if unknown:
            raise ValueError(f"LEADPULSE_SEGMENT_EVENTS: unknown meaning {unknown[0]!r}; known: {', '.join(MEANINGS)}")
        extra = sorted(set(self.properties) - set(DEFAULT_PROPERTIES))
        if extra:
            raise ValueError(f"LEADPULSE_SEGMENT_PROPERTIES: unknown field {extra[0]!r}; known: {', '.join(DEFAULT_PROPERTIES)}")

    def map(self, message: dict[str, Any], now_ms: int) -> list[dict[str, Any]] | Rejection:
        """One Segment call (see the module docstring)."""
        kind = message.get("type")
        if kind == "identify" and self.identify_as_lead:
            meaning: Mapping[str, str] | None = MEANINGS["lead.created"]
            values = message.get("traits")
        elif kind == "track" and isinstance(message.get("event"), str):
            name = self.events.get(message["event"])
            meaning, values = (MEANINGS[name] if name else None), message.get("properties")
        else:
            meaning, values = None, None
        if meaning is None:
            return []
        for required in ("messageId", "userId"):
            if message.get(required) is None:
                return Rejection("missing_field", required)
        user, values = message["userId"], values if isinstance(values, dict) else {}
        occurred = message.get("timestamp") or message.get("originalTimestamp") or message.get("receivedAt")
        event: dict[str, Any] = {"event_id": f"segment:{message['messageId']}", "occurred_at": occurred, "lead_id": user}
        event.update(meaning)
        if event["type"] == "lead.created":
            event.update(self._lead_fields(message, values))
        elif event["type"].startswith("deal."):
            event["deal_id"] = self._value(values, "deal_id") or f"segment-user-{user}"
            amount = self._value(values, "amount")
            amount = values.get("revenue") if amount is None else amount  # Segment's reserved revenue property
            if amount is not None and event["type"] == "deal.won":
                event["amount"] = amount
        elif event["type"] == "lead.disqualified" and self._value(values, "reason") is not None:
            event["reason"] = self._value(values, "reason")
        elif event["type"] == "lead.contacted":
            event.update(self._touch_fields(values))
        return [event]

    def _touch_fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The touch's channel and the owner who made it, where the properties have them."""
        fields: dict[str, Any] = {}
        if self._value(values, "channel") is not None:
            fields["channel"] = self._value(values, "channel")
        if self._value(values, "owner") is not None:
            fields["attributes"] = {"owner": self._value(values, "owner")}
        return fields

    def _value(self, values: Mapping[str, Any], name: str) -> Any:
        return values.get(self.properties.get(name, DEFAULT_PROPERTIES[name]))

    def _lead_fields(self, message: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        context = message.get("context")
        utm = context.get("campaign") if isinstance(context, dict) else None
        utm = utm if isinstance(utm, dict) else {}
        fields: dict[str, Any] = {"source": self._value(values, "source") or utm.get("source") or "unknown"}
        campaign = self._value(values, "campaign") or utm.get("name")
        if campaign is not None:
            fields["campaign"] = campaign
        attributes = {attr: utm[key] for key, attr in _UTM.items() if isinstance(utm.get(key), str)}
        if attributes:
            fields["attributes"] = attributes
        return fields

"""HubSpot webhook subscriptions: HubSpot's own request signatures and its notifications as lead events.

**Signatures** (HubSpot's "Validating requests from HubSpot"), keyed with the app's client
secret (`LEADPULSE_HUBSPOT_CLIENT_SECRET`):

- ``X-HubSpot-Signature-v3`` with ``X-HubSpot-Request-Timestamp`` (epoch ms): base64 of
  HMAC-SHA256 over method + URI + body + timestamp. The URI is the full public URL HubSpot
  called, with the percent-escapes of `_V3_URI_DECODES` decoded. Timestamps more than
  `MAX_AGE_MS` old (or ahead) are refused. When this header is present, only v3 counts.
- otherwise ``X-HubSpot-Signature`` with ``X-HubSpot-Signature-Version: v1`` (what
  webhook-API subscriptions send): hex SHA-256 of client secret + body; ``v2``: hex SHA-256
  of client secret + method + URI + body.

v1 and v2 carry no time, so a captured request can be replayed: harmless for the numbers,
as its events keep their ids.

**Notifications**: a JSON array of subscription events (one object also works); the
contact is the lead:

- ``contact.creation`` -> ``lead.created`` (source: ``changeSource``, e.g. ``FORM``);
- ``contact.propertyChange`` of ``lifecyclestage``: ``marketingqualifiedlead`` ->
  ``lead.qualified`` mql, ``salesqualifiedlead`` -> sql, ``customer`` -> ``deal.won`` with
  deal ``hubspot-contact-<id>``. HubSpot's deal notifications do not name the deal's
  contact, so the conversion comes from the contact's lifecycle stage, which HubSpot
  sets to customer when an associated deal closes won;
- ``contact.propertyChange`` of ``hs_lead_status`` to ``UNQUALIFIED`` -> ``lead.disqualified``;
- anything else is ignored (counted in the response, not sent).

Event id: ``hubspot:contact:<objectId>:<type>[:<stage>]``, the id `leadpulse import hubspot`
gives the same fact (`streams.imports.rows`), so HubSpot's retries (same objectId, higher
``attemptNumber``), a repeated stage change and an imported history all count once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Final

from streams.events import Rejection
from streams.ingest.signing import SignatureError
from streams.ingest.vendors.common import SignedRequest, any_note_has, join_id, rfc3339_from_ms, text_id

SIGNATURE_V3_HEADER: Final = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER: Final = "X-HubSpot-Request-Timestamp"
SIGNATURE_HEADER: Final = "X-HubSpot-Signature"
VERSION_HEADER: Final = "X-HubSpot-Signature-Version"
SECRET_SETTING: Final = "LEADPULSE_HUBSPOT_CLIENT_SECRET"
#: HubSpot's own window: "reject the request if the timestamp is older than 5 minutes".
MAX_AGE_MS: Final = 5 * 60 * 1000
#: The escapes HubSpot's v3 instructions decode in the request URI before signing; others stay.
_V3_URI_DECODES: Final = {
    "%3a": ":", "%2f": "/", "%3f": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2a": "*", "%2c": ",", "%3b": ";",
}  # fmt: skip
_V3_ESCAPE: Final = re.compile("|".join(_V3_URI_DECODES), re.IGNORECASE)

_QUALIFIED_MQL: Final = {"type": "lead.qualified", "stage": "mql"}
_QUALIFIED_SQL: Final = {"type": "lead.qualified", "stage": "sql"}
#: (subscriptionType, propertyName, propertyValue) -> what the notification means.
_EVENTS: Final[Mapping[tuple[str | None, ...], Mapping[str, str]]] = {
    ("contact.creation", None, None): {"type": "lead.created"},
    ("contact.propertyChange", "lifecyclestage", "marketingqualifiedlead"): _QUALIFIED_MQL,
    ("contact.propertyChange", "lifecyclestage", "salesqualifiedlead"): _QUALIFIED_SQL,
    ("contact.propertyChange", "lifecyclestage", "customer"): {"type": "deal.won"},
    ("contact.propertyChange", "hs_lead_status", "UNQUALIFIED"): {
        "type": "lead.disqualified",
        "reason": "hs_lead_status UNQUALIFIED",
    },
}
_KEY: Final = ("subscriptionType", "propertyName", "propertyValue")


def signature_v1(secret: bytes, body: bytes) -> str:
    return hashlib.sha256(secret + body).hexdigest()


def signature_v2(secret: bytes, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret + method.encode() + uri.encode() + body).hexdigest()


def signature_v3(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + v3_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()


def v3_uri(uri: str) -> str:
    """The URI as v3 signs it: HubSpot's listed percent-escapes decoded, any case."""
    return _V3_ESCAPE.sub(lambda match: _V3_URI_DECODES[match.group().lower()], uri)


def verify(secret: bytes, request: SignedRequest) -> None:
    """Raise `SignatureError` unless HubSpot signed `request` with `secret` (v3 when sent, else v1/v2)."""
    headers = request.headers
    given = headers.get(SIGNATURE_V3_HEADER)
    if given is not None:
        stamp = headers.get(TIMESTAMP_HEADER, "")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 16):
            raise SignatureError(f"{TIMESTAMP_HEADER} must be epoch milliseconds")
        if abs(request.now_s * 1000 - int(stamp)) > MAX_AGE_MS:
            raise SignatureError(f"{TIMESTAMP_HEADER} is more than {MAX_AGE_MS // 60_000} minutes from the server's clock")
        expected = signature_v3(secret, request.method, request.url, request.body, stamp)
        _compare(expected, given, SIGNATURE_V3_HEADER)
        return
    given, version = headers.get(SIGNATURE_HEADER), headers.get(VERSION_HEADER)
    if given is None:
        raise SignatureError(f"missing {SIGNATURE_V3_HEADER} and {SIGNATURE_HEADER}")
    if version == "v1":
        expected = signature_v1(secret, request.body)
    elif version == "v2":
        expected = signature_v2(secret, request.method, request.url, request.body)
    else:
        raise SignatureError(f"{VERSION_HEADER} must be v1 or v2")
    _compare(expected, given.strip().lower(), SIGNATURE_HEADER)


def _compare(expected: str, given: str, header: str) -> None:
    # Bytes, so a non-ASCII header cannot make compare_digest raise.
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape")):
        raise SignatureError(f"{header} does not match the request")


def recognise(body: Any) -> str | None:
    if any_note_has(body, lambda note: "subscriptionType" in note):
        return None
    return "not a HubSpot webhook: no notification has a subscriptionType"


def hubspot(note: dict[str, Any], now_ms: int) -> list[dict[str, Any]] | Rejection:
    """A HubSpot webhook subscription event (see the module docstring)."""
    if note.get("subscriptionType") is None:
        return Rejection("missing_field", "subscriptionType")
    key = tuple(value if isinstance(value, str) else None for value in (note.get(name) for name in _KEY))
    meaning = _EVENTS.get(key)
    if meaning is None:
        return []
    if note.get("objectId") is None:
        return Rejection("missing_field", "objectId")
    contact = text_id(note["objectId"])
    event_id = join_id("hubspot", "contact", contact, meaning["type"], *filter(None, [meaning.get("stage")]))
    event = {"event_id": event_id, "occurred_at": rfc3339_from_ms(note.get("occurredAt")), "lead_id": contact}
    event.update(meaning)
    if meaning["type"] == "lead.created":
        event["source"] = note.get("changeSource") or "unknown"
    elif meaning["type"] == "deal.won":
        event["deal_id"] = f"hubspot-contact-{contact}"
    return [event]

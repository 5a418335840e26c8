"""Salesforce Outbound Messages: the SOAP `notifications` a workflow rule or flow sends, to records and answers.

Salesforce posts 1 to 100 `Notification`s per message, each the `Id` of the notification
and an `sObject` (`xsi:type="sf:Lead"` or `"sf:Opportunity"`) carrying the fields the
outbound message was set up to send, and re-sends the whole message for up to 24 hours
until the answer is a `notificationsResponse` with `<Ack>true</Ack>`. Salesforce signs
nothing: what authenticates a message is the secret token in the endpoint URL and the
`OrganizationId` it carries (a sandbox refreshed from production keeps the production
endpoint, token included, so the org check is what keeps sandbox data out).

Each Lead or Opportunity becomes events by `ObjectMapper`, the Salesforce import's rules,
so a record that arrives here and in an import is the same events under the same ids; a
re-delivery carries the same records, hence the same ids, and the workers count it once.

Pure: no I/O. `parse` reads the body as a stream of elements (defusedxml's iterparse,
DTDs forbidden), so neither a billion-laughs nor an external-entity body is expanded,
and a body nested or repeated past a real message's shape is refused as it is read.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from streams.events import MAX_RECORD_BYTES, Rejection
from streams.ingest.records import Record
from streams.ingest.vendors.common import Mapper, map_notifications
from streams.settings import Settings

TOKEN_SETTING: Final = "LEADPULSE_SALESFORCE_OUTBOUND_TOKEN"
ORG_SETTING: Final = "LEADPULSE_SALESFORCE_ORG_ID"
ROUTE: Final = "/v1/hooks/salesforce/outbound/{token}"
CONTENT_TYPE: Final = "text/xml"
MAX_NOTIFICATIONS: Final = 100
#: Envelope / Body / notifications / Notification / sObject / field: nothing deeper is Salesforce's.
MAX_DEPTH: Final = 6
#: Salesforce's ids are 15 characters, or 18 with a case-safe suffix: the first 15 decide.
ORG_ID_CHARS: Final = 15

#: The Salesforce import's rules for one object's fields (`streams.imports.salesforce.object_events`).
ObjectMapper = Callable[[Literal["lead", "opportunity"], Mapping[str, str], Settings], list[dict[str, Any]] | Rejection]

_XSI: Final = "{http://www.w3.org/2001/XMLSchema-instance}"
_NOTIFICATIONS: Final = ("Envelope", "Body", "notifications")
_OBJECTS: Final[Mapping[str, Literal["lead", "opportunity"]]] = {"Lead": "lead", "Opportunity": "opportunity"}
_SOAP_ENVELOPE: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{}</soapenv:Body>'
    "</soapenv:Envelope>"
)


class Fault(Exception):
    """Answer `status` with a SOAP fault saying `str(self)`; Salesforce re-sends on any answer but an Ack."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Malformed(Fault):
    """Not a Salesforce notifications message: 400, and the body goes to the rejected topic with `rejection`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(400, message)
        self.rejection = Rejection(code, message)


@dataclass(frozen=True)
class Message:
    """The parts of a notifications message leadpulse uses; each note is JSON-ready (the rejected topic's form)."""

    organization_id: str
    action_id: str
    notes: list[dict[str, Any]]


def parse(body: bytes) -> Message:
    """The message in `body` (a UTF-8 byte-order mark and any namespace prefixes are fine).

    Raises `Fault(400)` for a DTD, an entity or an external reference, before anything is
    expanded, and `Malformed` for anything else that is not a notifications message.
    """
    path: list[str] = []
    header: dict[str, str] = {}
    notes: list[dict[str, Any]] = []
    try:
        for event, element in iterparse(io.BytesIO(body), ("start", "end"), forbid_dtd=True):
            if event == "start":
                path.append(_local(element.tag))
                _check_shape(path, len(notes))
                continue
            name = path.pop()
            if tuple(path) == _NOTIFICATIONS and name == "Notification":
                notes.append(_note(element))
                element.clear()  # the fields are copied: keep only one notification's tree at a time
            elif tuple(path) == _NOTIFICATIONS:
                header[name] = element.text or ""
    except DefusedXmlException as exc:
        raise Fault(400, f"refused: the body declares a DTD or entities ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise Malformed("invalid_field", f"not well-formed XML: {exc}") from exc
    if not header.get("OrganizationId"):
        raise Malformed("missing_field", "no notifications/OrganizationId: not a Salesforce outbound message")
    if not notes:
        raise Malformed("missing_field", "no notifications/Notification: a Salesforce outbound message has 1 to 100")
    action = header.get("ActionId", "")
    return Message(header["OrganizationId"], action, [{"ActionId": action, **note} for note in notes])


def _check_shape(path: list[str], notes: int) -> None:
    """Refuse an element, as soon as it opens, where no Salesforce message has one."""
    if path[0] != "Envelope":
        raise Malformed("invalid_field", f"the root element is {path[0]}, not a SOAP Envelope")
    if len(path) == 3 and path[1] == "Body" and path[2] != "notifications":
        raise Malformed("invalid_field", f"the SOAP Body holds {path[2]}, not Salesforce's notifications")
    if len(path) > MAX_DEPTH:
        raise Malformed("invalid_field", f"elements nested deeper than a notification's {MAX_DEPTH} levels")
    if tuple(path) == (*_NOTIFICATIONS, "Notification") and notes == MAX_NOTIFICATIONS:
        raise Malformed("invalid_field", f"over {MAX_NOTIFICATIONS} notifications in one message")


def _local(tag: str) -> str:
    """An element's name without its namespace, whatever prefix the sender bound it to."""
    return tag.rpartition("}")[2]


def _note(element: Element) -> dict[str, Any]:
    """One `Notification`: its id, its sObject's type (`Lead`) and fields (nil ones left out)."""
    parts = {_local(child.tag): child for child in element}
    note: dict[str, Any] = {"Id": parts["Id"].text if "Id" in parts else None}
    sobject = parts.get("sObject")
    if sobject is not None:
        note["sObject"] = sobject.get(f"{_XSI}type", "").rpartition(":")[2] or None
        note["fields"] = {_local(field.tag): field.text or "" for field in sobject if field.get(f"{_XSI}nil") != "true"}
    return note


def same_org(sent: str, configured: str) -> bool:
    """Whether `sent` (18 characters) names the org `configured` (15 or 18): case-sensitive on the first 15."""
    return len(sent) in (ORG_ID_CHARS, ORG_ID_CHARS + 3) and sent[:ORG_ID_CHARS] == configured[:ORG_ID_CHARS]


def note_mapper(objects: ObjectMapper, settings: Settings) -> Mapper:
    """A `Mapper` of notifications as `parse` renders them: Lead and Opportunity through `objects`."""

    def mapped(note: dict[str, Any], now_ms: int) -> list[dict[str, Any]] | Rejection:
        if "sObject" not in note:
            return Rejection("missing_field", "Notification/sObject")
        kind = note["sObject"]
        if kind not in _OBJECTS:
            return Rejection("invalid_field", f"sObject xsi:type {kind}: only Lead and Opportunity map to events")
        return objects(_OBJECTS[kind], note["fields"], settings)

    return mapped


@dataclass(frozen=True)
class OutboundHook:
    """The hook's checks and mapping: `token` and `org_id` None mean unchecked (`--insecure-no-auth`)."""

    token: bytes | None
    org_id: str | None
    mapper: Mapper

    def authorised(self, token: str) -> bool:
        """Whether the URL's token is the configured one, in constant time (hashed first, so length leaks nothing)."""
        if self.token is None:
            return True
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), hashlib.sha256(self.token).digest())

    def records(self, body: bytes, now_ms: int) -> list[Record]:
        """The records of a message: its notifications' events, and rejections for those that map to none.

        Raises `Fault` (or `Malformed`) for a body that is refused as a whole, 403 for another org's.
        """
        message = parse(body)
        if self.org_id is not None and not same_org(message.organization_id, self.org_id):
            raise Fault(403, f"OrganizationId {message.organization_id} is not this leadpulse's Salesforce org ({ORG_SETTING})")
        records, _ = map_notifications(self.mapper, message.notes, now_ms)
        return records


def malformed_record(body: bytes, fault: Malformed) -> Record:
    """The body of a malformed message as the rejected topic takes it: as received, cut to the record limit."""
    return Record(body[:MAX_RECORD_BYTES], fault.rejection, 0)


def ack() -> bytes:
    """Salesforce's `notificationsResponse` acknowledging every notification of the message."""
    return _SOAP_ENVELOPE.format(
        '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack></notificationsResponse>'
    ).encode()


def fault(status: int, message: str) -> bytes:
    """A SOAP 1.1 fault: `Client` for a 4xx (the message is at fault), `Server` for a 5xx (leadpulse is)."""
    code = "soapenv:Client" if status < 500 else "soapenv:Server"
    return _SOAP_ENVELOPE.format(
        f"<soapenv:Fault><faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring></soapenv:Fault>"
    ).encode()

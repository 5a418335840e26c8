"""A generic form-tool webhook: one flat JSON object per submission becomes a `lead.created`.

Typeform, Webflow, Tally and the like (directly, or through Zapier, Make or n8n) post one
submission at a time as a flat object: ``{"email": "ada@example.com", "utm_source":
"google", ...}``. `FormConfig.fields` says which field holds what; UTM parameters
(``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_term``, ``utm_content``) become
attributes, and ``utm_source``/``utm_campaign`` stand in for a missing source/campaign.

**Authentication** with `LEADPULSE_FORM_SECRET`, whichever the tool can send:

- ``X-Leadpulse-Form-Signature: sha256=<hex HMAC-SHA256 of the body>`` (the scheme of
  `streams.ingest.signing`, with the form secret), or
- ``Authorization: Bearer <secret>``, for tools that can only add a fixed header (then
  the secret travels with every request: use TLS).

Event id: ``form:<submission id field>``, or, when the tool sends no id,
``form:sha256:<digest of the submission>``, so a re-posted submission is a duplicate.
A submission without a time takes the receive time, which then enters the digest too
(one id, one content): its re-post is another ``lead.created`` of the same lead, which
changes nothing either.
The lead is the e-mail address, trimmed and lower-cased, so one person is one lead
whatever form they fill in; their first submission is their lead's creation.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from streams.events import Rejection
from streams.ingest.signing import SCHEME, SignatureError, sign
from streams.ingest.vendors.common import SignedRequest, rfc3339_from_ms

SIGNATURE_HEADER: Final = "X-Leadpulse-Form-Signature"
SECRET_SETTING: Final = "LEADPULSE_FORM_SECRET"
BEARER: Final = "Bearer "
#: Contract field -> the submission field that holds it.
DEFAULT_FIELDS: Final[Mapping[str, str]] = {
    "lead_id": "email",
    "event_id": "submission_id",
    "occurred_at": "submitted_at",
    "source": "source",
    "campaign": "campaign",
}
UTM_FIELDS: Final = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
#: Epoch numbers below this are seconds, above it milliseconds (1e11 s is the year 5138).
_MS_THRESHOLD: Final = 100_000_000_000


def verify(secret: bytes, request: SignedRequest) -> None:
    """Raise `SignatureError` unless the request carries the form secret's HMAC or the secret itself."""
    signature, authorization = request.headers.get(SIGNATURE_HEADER), request.headers.get("Authorization")
    if signature:
        given = signature.strip().lower().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(sign(secret, request.body).encode(), given):
            raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")
    elif authorization and authorization.startswith(BEARER):
        token = authorization[len(BEARER) :].strip().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(secret, token):
            raise SignatureError("Authorization bearer token is not the form secret")
    else:
        raise SignatureError(f"missing {SIGNATURE_HEADER} ({SCHEME}<hex>) or Authorization: Bearer")


def recognise(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"a form submission is one flat JSON object, not a JSON {type(body).__name__}"
    nested = next((key for key, value in body.items() if isinstance(value, dict | list)), None)
    if nested is not None:
        return f"a form submission is one flat JSON object; field {nested!r} is nested"
    return None


@dataclass(frozen=True)
class FormConfig:
    """Which submission field holds what (`LEADPULSE_FORM_FIELDS`)."""

    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))

    def __post_init__(self) -> None:
        extra = sorted(set(self.fields) - set(DEFAULT_FIELDS))
        if extra:
            raise ValueError(f"LEADPULSE_FORM_FIELDS: unknown field {extra[0]!r}; known: {', '.join(DEFAULT_FIELDS)}")

    def map(self, submission: dict[str, Any], now_ms: int) -> list[dict[str, Any]] | Rejection:
        """One submission (see the module docstring); the receive time when it carries none."""
        def value(name: str) -> Any:
            return submission.get(self.fields.get(name, DEFAULT_FIELDS[name]))

        email = value("lead_id")
        if not isinstance(email, str) or not email.strip():
            return Rejection("missing_field", self.fields.get("lead_id", DEFAULT_FIELDS["lead_id"]))
        given_id, given_time = value("event_id"), value("occurred_at")
        occurred = _time(given_time, now_ms)
        # Without the tool's time, the receive time is part of the event, so it is part of its id
        # too: one id, one content. A re-post is then another lead.created of the same lead,
        # which changes nothing.
        basis = submission if given_time not in (None, "") else {**submission, "": occurred}
        digest = hashlib.sha256(orjson.dumps(basis, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        event: dict[str, Any] = {
            "event_id": f"form:{given_id}" if given_id not in (None, "") else f"form:sha256:{digest}",
            "type": "lead.created",
            "occurred_at": occurred,
            "lead_id": email.strip().lower(),
            "source": value("source") or submission.get("utm_source") or "form",
        }
        campaign = value("campaign") or submission.get("utm_campaign")
        if campaign is not None:
            event["campaign"] = campaign
        attributes = {name: str(submission[name]) for name in UTM_FIELDS if submission.get(name) not in (None, "")}
        if attributes:
            event["attributes"] = attributes
        return [event]


def _time(value: object, now_ms: int) -> object:
    """RFC 3339 stays; epoch seconds or milliseconds are converted; none is the receive time."""
    if value is None or value == "":
        return rfc3339_from_ms(now_ms)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:  # exact in a float
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return rfc3339_from_ms(value if abs(value) >= _MS_THRESHOLD else value * 1000)
    return value

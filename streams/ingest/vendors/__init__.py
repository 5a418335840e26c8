"""Marketing systems that post to `POST /v1/hooks/<name>`, each verified the way it signs.

One module per vendor, each a pure mapper from its payload to contract events, a check
that a body is its shape at all, and its own signature check. `hooks` puts them together
with their secrets from the settings; a vendor without its secret is not served.
Salesforce's Outbound Messages are SOAP, not JSON, on a route of their own: `outbound_hook`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pydantic import SecretStr

from streams.ingest import signing
from streams.ingest.vendors import form, hubspot, salesforce, segment
from streams.ingest.vendors import salesforce_outbound as outbound
from streams.ingest.vendors.common import Mapper, Recogniser, SignedRequest
from streams.settings import Settings

#: A vendor's signature check, given the secret: raises `SignatureError`.
Verifier = Callable[[bytes, SignedRequest], None]


class MisconfiguredHook(ValueError):
    """A vendor's mapping settings make no sense; the message names the setting to fix."""


@dataclass(frozen=True)
class Hook:
    """What the API needs of a vendor: its mapper, its shape check and its verified secret (None: unchecked)."""

    name: str
    mapper: Mapper
    recognise: Recogniser
    verifier: Verifier
    secret: bytes | None

    def verify(self, request: SignedRequest) -> None:
        if self.secret is not None:
            self.verifier(self.secret, request)


def _leadpulse_signature(secret: bytes, request: SignedRequest) -> None:
    """Salesforce's relay signs with leadpulse's own scheme (docs/api.md, Signing)."""
    headers = request.headers
    signing.verify(secret, request.body, headers.get(signing.SIGNATURE_HEADER), headers.get(signing.TIMESTAMP_HEADER), request.now_s)


#: Each vendor's secret setting: the hook is served only when it is set.
SECRET_SETTINGS: Final = {
    "form": form.SECRET_SETTING,
    "hubspot": hubspot.SECRET_SETTING,
    "salesforce": salesforce.SECRET_SETTING,
    "segment": segment.SECRET_SETTING,
}


def hooks(settings: Settings, *, insecure_no_auth: bool = False) -> dict[str, Hook]:
    """The hooks to serve: those whose secret is set, or all of them, unchecked, with `insecure_no_auth`.

    Raises `MisconfiguredHook` when a vendor's mapping settings are invalid.
    """
    try:
        segment_config = segment.SegmentConfig(
            settings.segment_events or segment.DEFAULT_EVENTS, settings.segment_identify_as_lead, settings.segment_properties
        )
        form_config = form.FormConfig(settings.form_fields)
        salesforce_config = salesforce.SalesforceConfig.from_settings(settings)
    except ValueError as exc:
        raise MisconfiguredHook(str(exc)) from exc
    vendors: dict[str, tuple[Mapper, Recogniser, Verifier, SecretStr | None]] = {
        "form": (form_config.map, form.recognise, form.verify, settings.form_secret),
        "hubspot": (hubspot.hubspot, hubspot.recognise, hubspot.verify, settings.hubspot_client_secret),
        "salesforce": (salesforce_config.map, salesforce.recognise, _leadpulse_signature, settings.ingest_secret),
        "segment": (segment_config.map, segment.recognise, segment.verify, settings.segment_shared_secret),
    }
    served = {}
    for name, (mapper, recognise, verifier, secret) in vendors.items():
        key = secret.get_secret_value().encode() if secret is not None else b""
        if key or insecure_no_auth:
            served[name] = Hook(name, mapper, recognise, verifier, None if insecure_no_auth else key)
    return served


def outbound_hook(
    settings: Settings, objects: outbound.ObjectMapper, *, insecure_no_auth: bool = False
) -> outbound.OutboundHook | None:
    """The Salesforce Outbound Message hook, mapping with `objects`: None (not served) while its token is unset.

    With `insecure_no_auth` it is served without a token check, and any org's messages are
    taken unless the org is set. Raises `MisconfiguredHook` for a token without a valid org id.
    """
    secret = settings.salesforce_outbound_token
    token = secret.get_secret_value().encode() if secret is not None else b""
    org = settings.salesforce_org_id
    if org is not None and not (org.isascii() and org.isalnum() and len(org) in (15, 18)):
        raise MisconfiguredHook(f"{outbound.ORG_SETTING} must be a Salesforce org id of 15 or 18 letters and digits, got {org!r}")
    if not token and not insecure_no_auth:
        return None
    if org is None and not insecure_no_auth:
        raise MisconfiguredHook(
            f"{outbound.ORG_SETTING} is not set: {outbound.TOKEN_SETTING} serves Salesforce Outbound Messages "
            "only with the org id they must carry (Setup > Company Information > Salesforce.com Organization ID)"
        )
    return outbound.OutboundHook(None if insecure_no_auth else token, org, outbound.note_mapper(objects, settings))

"""Request signatures of the ingest API: HMAC-SHA256 with the shared `LEADPULSE_INGEST_SECRET`.

The scheme (docs/api.md shows it with curl and openssl):

- ``X-Leadpulse-Signature: sha256=<hex>`` where ``<hex>`` is the lower- or upper-case
  hex HMAC-SHA256 of the raw request body, keyed with the secret's UTF-8 bytes.
- Optionally ``X-Leadpulse-Timestamp: <unix seconds>``. When it is sent, the signature
  covers ``<timestamp>.<body>`` instead of the body alone, and the request is refused
  unless the timestamp is within `TOLERANCE_S` of the server's clock. That bounds how
  long a captured request can be replayed; a replay inside the window is harmless
  anyway, because its events keep their `event_id`s and the workers count them once.

Pure: the caller passes the clock, so the window is testable without sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

SIGNATURE_HEADER: Final = "X-Leadpulse-Signature"
TIMESTAMP_HEADER: Final = "X-Leadpulse-Timestamp"
SCHEME: Final = "sha256="
#: Five minutes either way: enough for clock skew and a sender's retry, short for a replay.
TOLERANCE_S: Final = 300


class SignatureError(Exception):
    """The request is not signed with the shared secret; the message says why (never the secret)."""


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Leadpulse-Signature` value for `body` (and `timestamp`, when the sender sends one)."""
    message = body if timestamp is None else b"%d." % timestamp + body
    return SCHEME + hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str | None, timestamp: str | None, now_s: float) -> None:
    """Raise `SignatureError` unless `signature` (and `timestamp`, if sent) fit `body` and `now_s`."""
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER}")
    stamp: int | None = None
    if timestamp is not None:
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds")
        stamp = int(timestamp)
        if abs(now_s - stamp) > TOLERANCE_S:
            raise SignatureError(f"{TIMESTAMP_HEADER} is more than {TOLERANCE_S} s from the server's clock")
    expected = sign(secret, body, stamp).encode()
    # compare_digest takes only ASCII str; bytes keep a non-ASCII header from raising.
    given = signature.strip().lower().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected, given):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")

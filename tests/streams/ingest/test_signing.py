"""The signing scheme of docs/api.md: what verifies, what does not, and that openssl agrees."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from streams.ingest.signing import TOLERANCE_S, SignatureError, sign, verify

SECRET = b"s3cret"
BODY = b'{"event_id":"e1"}'
NOW = 1_793_613_600


def test_signature_is_the_hex_hmac_sha256_of_the_body_that_openssl_computes() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET.decode(), "-r"], input=BODY, capture_output=True, check=True
    )
    assert sign(SECRET, BODY) == "sha256=" + out.stdout.split()[0].decode()


def test_timestamp_is_signed_as_a_prefix_of_the_body() -> None:
    assert sign(SECRET, BODY, NOW) == sign(SECRET, b"%d." % NOW + BODY)


@pytest.mark.parametrize(
    "signature, timestamp",
    [
        (sign(SECRET, BODY), None),
        (sign(SECRET, BODY).upper().replace("SHA256=", "sha256="), None),
        (sign(SECRET, BODY, NOW), str(NOW)),
        (sign(SECRET, BODY, NOW - TOLERANCE_S), str(NOW - TOLERANCE_S)),
        (sign(SECRET, BODY, NOW + TOLERANCE_S), str(NOW + TOLERANCE_S)),
    ],
)
def test_valid_signatures_verify(signature: str, timestamp: str | None) -> None:
    verify(SECRET, BODY, signature, timestamp, NOW)


@pytest.mark.parametrize(
    "signature, timestamp, why",
    [
        (None, None, "missing"),
        ("", None, "missing"),
        (sign(b"other secret", BODY), None, "does not match"),
        (sign(SECRET, BODY + b" "), None, "does not match"),
        (sign(SECRET, BODY)[len("sha256=") :], None, "does not match"),
        ("sha256=ü", None, "does not match"),
        (sign(SECRET, BODY), str(NOW), "does not match"),  # a timestamp the signature does not cover
        (sign(SECRET, BODY, NOW), None, "does not match"),  # a signed timestamp left out
        (sign(SECRET, BODY, NOW - TOLERANCE_S - 1), str(NOW - TOLERANCE_S - 1), "from the server's clock"),
        (sign(SECRET, BODY, NOW + TOLERANCE_S + 1), str(NOW + TOLERANCE_S + 1), "from the server's clock"),
        (sign(SECRET, BODY), "yesterday", "unix seconds"),
        (sign(SECRET, BODY), "9" * 5000, "unix seconds"),
    ],
)
def test_invalid_signatures_are_refused_with_the_reason(signature: str | None, timestamp: str | None, why: str) -> None:
    with pytest.raises(SignatureError, match=why):
        verify(SECRET, BODY, signature, timestamp, NOW)

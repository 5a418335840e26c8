"""The stack's CA and the certificates it signs: valid, naming their hosts, kept while they fit."""

from __future__ import annotations

import datetime
import ipaddress
import tempfile
from pathlib import Path

from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.stack.certificates import ensure_ca, ensure_certificate

HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def named(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {str(v) for v in san.get_values_for_type(x509.IPAddress)}


@settings(max_examples=25, deadline=None)
@given(hosts=st.sets(HOSTS, min_size=1, max_size=4))
def test_an_issued_certificate_is_signed_by_the_ca_and_names_exactly_its_hosts(hosts: set[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ca = ensure_ca(Path(tmp))
        issued = ensure_certificate(ca, Path(tmp) / "c.pem", Path(tmp) / "c-key.pem", "broker", hosts)
        cert = load(issued.cert)
        cert.verify_directly_issued_by(load(ca.cert))
        assert named(cert) == {str(ipaddress.ip_address(h)) if h[0].isdigit() else h for h in hosts}
        assert (Path(tmp) / "c-key.pem").stat().st_mode & 0o077 == 0  # the key is the owner's only


def test_a_fitting_certificate_is_kept_and_one_missing_a_host_or_expiring_is_made_again(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    first = ensure_certificate(ca, tmp_path / "c.pem", tmp_path / "c-key.pem", "broker", ["127.0.0.1"]).cert.read_bytes()
    assert ensure_certificate(ca, tmp_path / "c.pem", tmp_path / "c-key.pem", "broker", ["127.0.0.1"]).cert.read_bytes() == first
    wider = ensure_certificate(ca, tmp_path / "c.pem", tmp_path / "c-key.pem", "broker", ["127.0.0.1", "localhost"])
    assert named(load(wider.cert)) == {"127.0.0.1", "localhost"}
    soon = ensure_certificate(ca, tmp_path / "s.pem", tmp_path / "s-key.pem", "x", valid_for=datetime.timedelta(hours=1))
    again = ensure_certificate(ca, soon.cert, soon.key, "x")
    assert load(again.cert).not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=800)


def test_the_ca_is_made_once_and_kept(tmp_path: Path) -> None:
    made = ensure_ca(tmp_path).cert.read_bytes()
    assert ensure_ca(tmp_path).cert.read_bytes() == made
    assert load(tmp_path / "ca.pem").extensions.get_extension_for_class(x509.BasicConstraints).value.ca

"""Each way a TLS connection goes wrong gets its cause and setting, on a broker that requires client certificates.

The module's stack runs Kafka with `SSL` and client authentication: leadpulse is the
principal of the certificate the stack made (CN=leadpulse), with exactly its ACLs. The
contract examples go through it exactly; then clients with no CA, no certificate, an
expired one, a key of another certificate, a stranger's certificate or PLAINTEXT are
each refused with the line that says what to fix. Broker-side certificate faults (an
expired one, one for another host) are shown by a plain TLS listener with such a
certificate, since the handshake is all that step of the diagnosis looks at.
"""

from __future__ import annotations

import datetime
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from streams.kafka.clients import KafkaSettingsError, client_options
from streams.kafka.diagnose import diagnose_sync
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings
from streams.stack.certificates import Issued, ensure_ca, ensure_certificate
from tests.aggregates.reference import assert_same_series
from tests.contract_examples import AS_OF, EXAMPLES
from tests.pipeline import Pipeline
from tests.secured import run_command, secured_settings, secured_stack

pytestmark = pytest.mark.integration

TOPICS = [*INPUT_TOPICS, REJECTED_TOPIC]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    home = tmp_path_factory.mktemp("ssl-home")
    with secured_stack(secured_settings(home, "SSL", redis_tls=False, as_of=AS_OF)) as running:
        yield running


@pytest.fixture(scope="module")
def ca(secured: Settings) -> Issued:
    return ensure_ca(secured.kafka_tls_dir)


def elsewhere(secured: Settings, tmp_path: Path, **files: Path) -> Settings:
    """A client of `secured` from another home (so the stack's files are not its defaults)."""
    return secured.model_copy(update={"home": tmp_path / "client-home", **{f"kafka_ssl_{k}": v for k, v in files.items()}})


def test_the_contract_examples_through_ssl_with_a_client_certificate_are_exact(secured: Settings, tmp_path: Path) -> None:
    pipe = Pipeline(secured, tmp_path, own_group=False)
    try:
        done = run_command(["publish", str(EXAMPLES / "contract-examples.jsonl")], pipe.env())
        assert done.returncode == 0 and done.stdout.strip() == "sent 22, rejected 1", done.stderr
        pipe.start_worker()
        pipe.wait_caught_up()
        pipe.stop_workers()
        assert_same_series(pipe.report(), pipe.expected())
    finally:
        pipe.stop_workers(signal.SIGKILL)


def test_the_stacks_own_files_need_no_setting(secured: Settings) -> None:
    assert diagnose_sync(client_options(secured), TOPICS, secured.consumer_group) is None


def test_a_client_without_the_ca_is_told_to_set_the_ca_file(secured: Settings, tmp_path: Path, ca: Issued) -> None:
    tls = secured.kafka_tls_dir
    client = elsewhere(secured, tmp_path, certfile=tls / "client.pem", keyfile=tls / "client-key.pem")
    cause = diagnose_sync(client_options(client), TOPICS)
    assert cause is not None and "not signed by a CA this client trusts" in cause and "LEADPULSE_KAFKA_SSL_CAFILE" in cause


def test_a_client_without_a_certificate_is_told_to_set_one(secured: Settings, tmp_path: Path, ca: Issued) -> None:
    cause = diagnose_sync(client_options(elsewhere(secured, tmp_path, cafile=ca.cert)), TOPICS)
    assert cause is not None and "requires a client certificate" in cause and "LEADPULSE_KAFKA_SSL_CERTFILE" in cause


def test_an_expired_client_certificate_is_named_and_publish_exits_1(secured: Settings, tmp_path: Path, ca: Issued) -> None:
    old = ensure_certificate(ca, tmp_path / "old.pem", tmp_path / "old-key.pem", "leadpulse", valid_for=-datetime.timedelta(days=1))
    client = elsewhere(secured, tmp_path, cafile=ca.cert, certfile=old.cert, keyfile=old.key)
    cause = diagnose_sync(client_options(client), TOPICS)
    assert cause is not None and "expired" in cause and "LEADPULSE_KAFKA_SSL_CERTFILE" in cause
    started = time.monotonic()
    done = run_command(["publish", str(EXAMPLES / "contract-examples.jsonl")], Pipeline(client, tmp_path).env())
    assert done.returncode == 1 and done.stdout.strip() == "sent 0, rejected 0" and time.monotonic() - started < 30
    assert done.stderr.strip() == f"Error: {cause}"


def test_a_key_of_another_certificate_is_refused_before_connecting(secured: Settings, tmp_path: Path, ca: Issued) -> None:
    other = ensure_certificate(ca, tmp_path / "other.pem", tmp_path / "other-key.pem", "other")
    tls = secured.kafka_tls_dir
    client = elsewhere(secured, tmp_path, cafile=ca.cert, certfile=tls / "client.pem", keyfile=other.key)
    with pytest.raises(KafkaSettingsError, match="LEADPULSE_KAFKA_SSL_CERTFILE / LEADPULSE_KAFKA_SSL_KEYFILE"):
        client_options(client)
    done = run_command(["worker"], Pipeline(client, tmp_path).env(), timeout=30)
    assert done.returncode == 1 and "LEADPULSE_KAFKA_SSL_KEYFILE" in done.stderr


def test_a_stranger_with_a_valid_certificate_but_no_acls_reads_nothing(secured: Settings, tmp_path: Path, ca: Issued) -> None:
    stranger = ensure_certificate(ca, tmp_path / "stranger.pem", tmp_path / "stranger-key.pem", "stranger")
    options = client_options(elsewhere(secured, tmp_path, cafile=ca.cert, certfile=stranger.cert, keyfile=stranger.key))
    cause = diagnose_sync(options, TOPICS)
    assert cause is not None and "may not use topic leadpulse.deals, leadpulse.leads, leadpulse.rejected" in cause
    consumer = KafkaConsumer(**options.kwargs(), group_id=None)
    try:
        assert consumer.topics() == set()
    finally:
        consumer.close()


def test_plaintext_against_the_tls_port_is_told_to_use_tls(secured: Settings) -> None:
    cause = diagnose_sync(client_options(secured.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})), TOPICS)
    assert cause is not None and "expects TLS" in cause and "LEADPULSE_KAFKA_SECURITY_PROTOCOL" in cause


def test_tls_against_a_plaintext_port_is_told_it_does_not_speak_tls(kafka_bootstrap: str, tmp_path: Path) -> None:
    client = Settings(home=tmp_path, kafka_bootstrap=kafka_bootstrap, kafka_security_protocol="SSL")
    cause = diagnose_sync(client_options(client), TOPICS)
    assert cause is not None and "does not speak TLS" in cause and "LEADPULSE_KAFKA_SECURITY_PROTOCOL" in cause


def test_nothing_listening_is_told_to_check_the_bootstrap(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        cause = diagnose_sync(client_options(Settings(home=tmp_path, kafka_bootstrap=f"127.0.0.1:{port}")))
    assert cause is not None and "unreachable" in cause and "LEADPULSE_KAFKA_BOOTSTRAP" in cause


# --- the broker's certificate, through a TLS listener holding a faulty one --------------


@pytest.fixture
def tls_listener(ca: Issued, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[int]:
    """A TLS server on a free port presenting the certificate `request.param` describes."""
    hosts, valid_for = request.param
    cert = ensure_certificate(ca, tmp_path / "server.pem", tmp_path / "server-key.pem", "server", hosts, valid_for=valid_for)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert, cert.key)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:
                pass  # the client refused our certificate: what the test wants

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    server.close()


@pytest.mark.parametrize(
    ("tls_listener", "expected"),
    [
        ((["127.0.0.1"], -datetime.timedelta(days=1)), "its TLS certificate has expired"),
        ((["kafka.elsewhere.invalid"], datetime.timedelta(days=30)), "does not name 127.0.0.1: set LEADPULSE_KAFKA_BOOTSTRAP"),
    ],
    indirect=["tls_listener"],
)
def test_a_broker_certificate_that_is_expired_or_for_another_host_is_named(
    tls_listener: int, expected: str, ca: Issued, tmp_path: Path
) -> None:
    client = Settings(home=tmp_path, kafka_bootstrap=f"127.0.0.1:{tls_listener}", kafka_security_protocol="SSL", kafka_ssl_cafile=ca.cert)
    cause = diagnose_sync(client_options(client))
    assert cause is not None and expected in cause

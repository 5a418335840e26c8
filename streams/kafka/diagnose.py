"""Why a Kafka connection fails, in one line that names the cause and the setting to fix.

Client libraries retry a refused password or an untrusted certificate until their
bootstrap times out and then report "unable to bootstrap", which names nothing. So
when a command cannot reach Kafka, `diagnose` retraces the connection step by step
with the same options: TCP, then TLS and one ApiVersions request (the request every
Kafka client sends first, allowed before SASL), then SASL, then whether the principal
may describe the topics and the consumer group it needs. The first step that fails
gives the line. Nothing here prints a password: messages name settings, users and files.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import struct
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from streams.kafka.clients import TLS_PROTOCOLS, KafkaClientOptions
from streams.logs import quiet

T = TypeVar("T")

#: Each step's limit: a reachable broker answers in milliseconds, and all steps together
#: stay within the 30 s in which a command must say why it cannot connect.
STEP_TIMEOUT_S: Final = 5.0
_API_VERSIONS_V0: Final = struct.pack(">hhih", 18, 0, 1, 18) + b"leadpulse-diagnose"
ACL_HINT: Final = "ask the cluster's admin for the ACLs in docs/operations.md"
#: OpenSSL verify codes (`ssl.SSLCertVerificationError.verify_code`).
_CERT_EXPIRED: Final = 10
_NAME_MISMATCH: Final = frozenset({62, 64})  # hostname, IP address
#: TLS alerts with which a broker refuses the client's certificate (or its absence).
_CLIENT_CERT_REFUSED: Final = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "UNKNOWN_CA", "CERTIFICATE_EXPIRED", "DECRYPT_ERROR")
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST", "UNEXPECTED_EOF")


async def diagnose(options: KafkaClientOptions, topics: Sequence[str] = (), group: str | None = None) -> str | None:
    """None when `options` connect, authenticate and may describe `topics` and `group`; else why not."""
    host, _, port_text = options.bootstrap.split(",")[0].strip().rpartition(":")
    host, port = host.strip("[]") or "127.0.0.1", int(port_text)
    where = f"Kafka at {host}:{port}"
    with quiet("aiokafka"):  # its warnings would repeat, less clearly, what the line says
        cause = await _transport(options, host, port, where)
        if cause is None and options.sasl_mechanism is not None:
            cause = await _sasl(options, host, port, where)
        if cause is None:
            cause = await _access(options, topics, group, where)
    return cause


def diagnose_sync(options: KafkaClientOptions, topics: Sequence[str] = (), group: str | None = None) -> str | None:
    """`diagnose` from synchronous code, on a loop of its own (the caller's loop, if any, is untouched)."""
    return run_private(diagnose(options, topics, group))


def run_private(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on a new event loop that never becomes the thread's current one.

    `asyncio.run` would leave the thread without a current loop, which breaks Faust's
    and mode's `get_event_loop()` when the worker starts after a check.
    """
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


async def _transport(options: KafkaClientOptions, host: str, port: int, where: str) -> str | None:
    """TCP, TLS where configured, and one ApiVersions round trip."""
    protocol = options.security_protocol
    try:
        await asyncio.wait_for(_api_versions(host, port, options.ssl_context), STEP_TIMEOUT_S)
    except ssl.SSLError as exc:
        return f"{where}: {_tls_cause(exc, host, options)}"
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        speaks_tls = await _speaks_tls(host, port)
        if protocol in TLS_PROTOCOLS and not speaks_tls:
            return f"{where}: {_NOT_TLS_ADVICE}"
        if protocol not in TLS_PROTOCOLS and speaks_tls:
            return (
                f"{where} expects TLS but LEADPULSE_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                "set it to SSL or SASL_SSL (with LEADPULSE_KAFKA_SSL_CAFILE if its CA is private)"
            )
        return f"{where} closed the connection over {protocol}: check LEADPULSE_KAFKA_SECURITY_PROTOCOL"
    except (asyncio.TimeoutError, TimeoutError):
        return f"{where} did not answer within {STEP_TIMEOUT_S:.0f} s over {protocol}: check LEADPULSE_KAFKA_BOOTSTRAP and LEADPULSE_KAFKA_SECURITY_PROTOCOL"
    except OSError as exc:
        return f"{where} is unreachable ({exc.strerror or exc}): check LEADPULSE_KAFKA_BOOTSTRAP and that Kafka runs (`leadpulse stack status`)"
    return None


async def _api_versions(host: str, port: int, context: ssl.SSLContext | None) -> None:
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host if context else None)
    try:
        writer.write(struct.pack(">i", len(_API_VERSIONS_V0)) + _API_VERSIONS_V0)
        await writer.drain()
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        await reader.readexactly(size)
    finally:
        writer.close()


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether the port completes a TLS handshake (certificate unchecked: only the protocol matters)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), STEP_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


def _tls_cause(exc: ssl.SSLError, host: str, options: KafkaClientOptions) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code == _CERT_EXPIRED:
            return "its TLS certificate has expired: renew it on the broker (the local stack's `leadpulse stack up` makes a new one)"
        if exc.verify_code in _NAME_MISMATCH:
            return f"its TLS certificate does not name {host}: set LEADPULSE_KAFKA_BOOTSTRAP to a host name the certificate holds"
        return (
            f"its TLS certificate is not signed by a CA this client trusts ({exc.verify_message}): "
            "set LEADPULSE_KAFKA_SSL_CAFILE to the CA that signed it"
        )
    reason = (exc.reason or str(exc)).upper()
    if any(marker in reason for marker in _NOT_TLS) or "EOF" in str(exc).upper():
        return _NOT_TLS_ADVICE
    if any(alert in reason for alert in _CLIENT_CERT_REFUSED):
        return _client_certificate_cause(options.certfile)
    return f"the TLS handshake failed ({exc.reason}): check LEADPULSE_KAFKA_SSL_CAFILE, LEADPULSE_KAFKA_SSL_CERTFILE and LEADPULSE_KAFKA_SSL_KEYFILE"


_NOT_TLS_ADVICE: Final = (
    "does not speak TLS on this port: set LEADPULSE_KAFKA_SECURITY_PROTOCOL to PLAINTEXT or SASL_PLAINTEXT, "
    "or LEADPULSE_KAFKA_BOOTSTRAP to its TLS listener"
)


def _client_certificate_cause(certfile: Path | None) -> str:
    """Why the broker refused our certificate: none sent, expired, or signed by a CA it does not trust."""
    if certfile is None:
        return "it requires a client certificate: set LEADPULSE_KAFKA_SSL_CERTFILE and LEADPULSE_KAFKA_SSL_KEYFILE"
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    except (OSError, ValueError):
        cert = None
    now = datetime.datetime.now(datetime.timezone.utc)
    if cert is not None and cert.not_valid_after_utc < now:
        return f"it refused the client certificate {certfile}, which has expired: renew the one LEADPULSE_KAFKA_SSL_CERTFILE names"
    if cert is not None and now < cert.not_valid_before_utc:
        return f"it refused the client certificate {certfile}, which is not valid yet: check LEADPULSE_KAFKA_SSL_CERTFILE and the clock"
    return f"it refused the client certificate {certfile} (LEADPULSE_KAFKA_SSL_CERTFILE): not signed by a CA the broker trusts"


async def _sasl(options: KafkaClientOptions, host: str, port: int, where: str) -> str | None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

    kwargs = {key: value for key, value in options.kwargs().items() if key != "bootstrap_servers"}
    try:
        conn = await asyncio.wait_for(create_conn(host, port, **kwargs), STEP_TIMEOUT_S)
    except SaslAuthenticationFailed:
        return (
            f"{where} refused the password of {options.principal} ({options.sasl_mechanism}): "
            "check LEADPULSE_KAFKA_SASL_USERNAME and LEADPULSE_KAFKA_SASL_PASSWORD"
        )
    except UnsupportedSaslMechanismError:
        return f"{where} does not offer SASL {options.sasl_mechanism}: set LEADPULSE_KAFKA_SASL_MECHANISM to one it enables"
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        return f"{where}: SASL {options.sasl_mechanism} failed ({type(exc).__name__}): check LEADPULSE_KAFKA_SECURITY_PROTOCOL and LEADPULSE_KAFKA_SASL_MECHANISM"
    conn.close()
    return None


async def _any_broker(client: Any, ask: Callable[[int], Awaitable[T]]) -> T:
    """`ask(node)` of each broker in turn until one answers: with several brokers one may be
    down or still starting (a restart, a rolling upgrade), which refuses nothing."""
    from aiokafka.errors import KafkaConnectionError, NodeNotReadyError

    *others, last = sorted(broker.nodeId for broker in client.cluster.brokers()) or [client.get_random_node()]
    for node in others:
        try:
            return await ask(node)
        except (NodeNotReadyError, KafkaConnectionError):
            continue
    return await ask(last)


async def _access(options: KafkaClientOptions, topics: Sequence[str], group: str | None, where: str) -> str | None:
    """Whether the principal may describe `topics` (Read and Write imply it) and use `group`."""
    from aiokafka import AIOKafkaClient
    from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError, KafkaError
    from aiokafka.protocol.metadata import MetadataRequest

    client = AIOKafkaClient(**options.kwargs(), request_timeout_ms=int(STEP_TIMEOUT_S * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), STEP_TIMEOUT_S)
        if topics:
            request = MetadataRequest(list(topics), False)
            response = await _any_broker(client, lambda node: client.send(node, request))
            refused = sorted(topic[1] for topic in response.topics if topic[0] == 29)  # TOPIC_AUTHORIZATION_FAILED
            if refused:
                return f"{where}: {options.principal} may not use topic {', '.join(refused)}: {ACL_HINT} (LEADPULSE_KAFKA_SASL_USERNAME says who connects)"
        if group is not None:
            await _any_broker(client, lambda _: client.coordinator_lookup(0, group))  # 0: a consumer group
    except CoordinatorNotAvailableError:
        pass  # the offsets topic is still being created: a wait, not a refusal
    except GroupAuthorizationFailedError:
        return f"{where}: {options.principal} may not use consumer group {group!r}: set LEADPULSE_CONSUMER_GROUP to the group its ACLs name, or {ACL_HINT}"
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        if options.sasl_mechanism is None:
            return f"{where} refused leadpulse's requests over {options.security_protocol} ({type(exc).__name__}): it may expect SASL: check LEADPULSE_KAFKA_SECURITY_PROTOCOL"
        return f"{where} refused leadpulse's requests ({type(exc).__name__}): check LEADPULSE_KAFKA_BOOTSTRAP and LEADPULSE_KAFKA_SECURITY_PROTOCOL"
    finally:
        await client.close()
    return None

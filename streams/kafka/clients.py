"""Kafka client options from the settings: the one place every command gets them from.

`publish`, the workers (Faust over aiokafka), `rebuild`, the ingest API, the exporter's
lag reader, the demo and the stack's own admin client all connect with what
`client_options` returns, so a secured cluster needs its settings once and no command
can forget one. kafka-python and aiokafka name their options alike
(`security_protocol`, `ssl_context`, `sasl_*`); Faust takes `broker_credentials`;
`publish`'s librdkafka producer takes file paths (`librdkafka_config`).

Trust: `LEADPULSE_KAFKA_SSL_CAFILE` when set; otherwise the system CAs plus the CA the
local stack made under `$LEADPULSE_HOME/kafka/tls/`, if there is one, so a rehearsal on
the local stack needs no CA setting. The same holds for the stack's client certificate
(with `SSL`, which it makes the broker require).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import SecretStr

from streams.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

#: Files of the local stack's TLS directory (`streams.stack.certificates` writes them).
CA_FILE = "ca.pem"
CLIENT_CERT_FILE = "client.pem"
CLIENT_KEY_FILE = "client-key.pem"

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class KafkaSettingsError(ValueError):
    """The Kafka security settings cannot work together; the message names the setting to fix."""


class KafkaAccessError(RuntimeError):
    """Kafka refused or could not be reached; the message (from `streams.kafka.diagnose`) names the setting to fix."""


@dataclass(frozen=True)
class KafkaClientOptions:
    """How to reach and authenticate to Kafka, in the terms each client library takes."""

    bootstrap: str
    security_protocol: str
    sasl_mechanism: str | None
    sasl_username: str | None
    sasl_password: SecretStr | None
    ssl_context: ssl.SSLContext | None
    certfile: Path | None = None  # the client certificate in `ssl_context`
    keyfile: Path | None = None  # its key, when not in `certfile`
    cafile: Path | None = None  # the CA `ssl_context` trusts beyond the system's, if any

    @property
    def principal(self) -> str:
        """Who the broker sees, for messages: the SASL user, the certificate, or nobody in particular."""
        if self.sasl_username:
            return f"user {self.sasl_username}"
        return "the client certificate" if self.security_protocol == "SSL" else "an anonymous client"

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's and aiokafka's clients (they share these names)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            options["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return options

    def librdkafka_config(self) -> dict[str, str]:
        """The same options in librdkafka's terms (confluent-kafka), which reads certificates from files.

        Hostnames are verified as with `ssl_context`; without a CA file librdkafka probes the
        system's CA locations, as `ssl.create_default_context` does.
        """
        config = {"bootstrap.servers": self.bootstrap, "security.protocol": self.security_protocol}
        if self.security_protocol in TLS_PROTOCOLS:
            config["ssl.endpoint.identification.algorithm"] = "https"
            config["ssl.ca.location"] = str(self.cafile) if self.cafile else "probe"
            if self.certfile is not None:
                config["ssl.certificate.location"] = str(self.certfile)
                config["ssl.key.location"] = str(self.keyfile or self.certfile)
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = self.sasl_password.get_secret_value() if self.sasl_password else ""
        return config

    def durable_producer(self, client_id: str) -> dict[str, Any]:
        """librdkafka options of a producer that loses and doubles nothing: `acks=all`, idempotent.

        Its `murmur2_random` partitioner is the Java client's, kafka-python's and aiokafka's:
        a lead's records land on one partition whichever command sent them.
        """
        return {
            **self.librdkafka_config(),
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
        }

    def faust_credentials(self) -> CredentialsT | None:
        """Faust's `broker_credentials`: SASL (over TLS when there is a context), TLS only, or none."""
        from faust.auth import SASLCredentials, SSLCredentials

        if self.sasl_mechanism is not None:
            password = self.sasl_password.get_secret_value() if self.sasl_password else None
            return SASLCredentials(
                username=self.sasl_username, password=password, ssl_context=self.ssl_context, mechanism=self.sasl_mechanism
            )
        if self.ssl_context is not None:
            return SSLCredentials(self.ssl_context)
        return None


def client_options(settings: Settings) -> KafkaClientOptions:
    """The Kafka options of `settings`, or `KafkaSettingsError` naming what is missing or unreadable."""
    protocol = settings.kafka_security_protocol
    mechanism: str | None = None
    if protocol in SASL_PROTOCOLS:
        if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
            raise KafkaSettingsError(
                f"LEADPULSE_KAFKA_SECURITY_PROTOCOL={protocol} needs LEADPULSE_KAFKA_SASL_USERNAME "
                "and LEADPULSE_KAFKA_SASL_PASSWORD"
            )
        mechanism = settings.kafka_sasl_mechanism
    context, files = _ssl_context(settings) if protocol in TLS_PROTOCOLS else (None, _TlsFiles())
    return KafkaClientOptions(
        settings.kafka_bootstrap,
        protocol,
        mechanism,
        settings.kafka_sasl_username if mechanism else None,
        settings.kafka_sasl_password if mechanism else None,
        context,
        *files,
    )


class _TlsFiles(NamedTuple):
    """The files an SSL context was loaded from: librdkafka needs the paths, not the context."""

    certfile: Path | None = None
    keyfile: Path | None = None
    cafile: Path | None = None


def _ssl_context(settings: Settings) -> tuple[ssl.SSLContext, _TlsFiles]:
    """Verifying context (hostnames included) with the configured or the local stack's CA and client certificate."""
    local = settings.kafka_tls_dir
    context = ssl.create_default_context()
    cafile = settings.kafka_ssl_cafile or _existing(local / CA_FILE)
    if cafile is not None:
        try:
            context.load_verify_locations(cafile=str(cafile))
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSettingsError(f"LEADPULSE_KAFKA_SSL_CAFILE: cannot load CA {cafile}: {exc}") from exc
    certfile, keyfile = settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile
    if certfile is None and settings.kafka_security_protocol == "SSL":
        certfile, keyfile = _existing(local / CLIENT_CERT_FILE), _existing(local / CLIENT_KEY_FILE)
    if certfile is not None:
        try:
            context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSettingsError(
                f"LEADPULSE_KAFKA_SSL_CERTFILE / LEADPULSE_KAFKA_SSL_KEYFILE: cannot load {certfile}"
                f"{f' with {keyfile}' if keyfile else ''}: {exc}"
            ) from exc
    return context, _TlsFiles(certfile, keyfile if certfile is not None else None, cafile)


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None

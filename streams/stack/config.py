"""Configuration the stack renders from deploy/ into each service's directory.

Every file is written anew at each start from the shipped configs and the settings'
ports, so two homes never share a config and a hand edit never drifts silently.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import SecretStr

from streams.kafka.clients import CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE, SASL_PROTOCOLS
from streams.settings import Settings
from streams.stack.certificates import Issued, ensure_ca, ensure_certificate, write_private
from streams.stack.errors import StackError
from streams.stack.services import DEPLOY, Service, broker_id, java_command

log = logging.getLogger(__name__)


def replication(brokers: int) -> tuple[int, int]:
    """Replicas of every topic and the in-sync replicas an `acks=all` write needs.

    Three brokers (or more) keep three copies and accept writes with one broker down;
    fewer keep one copy per broker and need all of them.
    """
    replicas = min(brokers, 3)
    return replicas, 2 if replicas == 3 else replicas


def _controller(settings: Settings, node: int) -> str:
    return f"127.0.0.1:{settings.kafka_controller_port + node - 1}"


def _render_kafka(settings: Settings, svc: Service) -> None:
    """One broker of the bootstrap list, also a KRaft controller of the stack's quorum."""
    brokers = len(settings.kafka_brokers)
    if brokers > 1 and settings.kafka_security_protocol != "PLAINTEXT":
        raise StackError(
            f"LEADPULSE_KAFKA_BOOTSTRAP lists {brokers} brokers: the local stack runs several only with "
            "LEADPULSE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"
        )
    node = broker_id(svc.name)
    controller = _controller(settings, node)
    replicas, min_insync = (str(n) for n in replication(brokers))
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.voters": ",".join(f"{n}@{_controller(settings, n)}" for n in range(1, brokers + 1)),
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{svc.address},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{svc.address}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(svc.dir / "data"),
        "num.partitions": str(settings.topic_partitions),
        # No topic, internal ones included, can have more replicas than there are brokers.
        "default.replication.factor": replicas,
        "min.insync.replicas": min_insync,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_insync,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_insync,
        # A new consumer group starts at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
    }
    if settings.kafka_security_protocol != "PLAINTEXT":
        props.update(_secured_kafka(settings, svc, controller))
    # A .properties value reads backslashes as escapes: double them (JAAS passwords may hold some).
    lines = [f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in props.items()]
    write_private(svc.dir / "server.properties", _HEADER + "".join(lines))  # may hold PLAIN passwords
    shutil.copyfile(DEPLOY / "kafka" / "log4j2.properties", svc.dir / "log4j2.properties")
    if not (svc.dir / "data" / "meta.properties").exists():
        _format_kafka(settings, svc)
    _check_formatted_users(settings, svc)


#: The broker's own identity (its certificate's CN) and the stack's admin user: the only
#: super users. leadpulse's own user gets exactly the ACLs of `streams.stack.acls`.
BROKER_PRINCIPAL = "kafka-broker"
ADMIN_USER = "leadpulse-admin"
ADMIN_PASSWORD_FILE = "admin-password"
BROKER_KEYSTORE = "broker-keystore.pem"
SCRAM_ITERATIONS = 8192
_RECORD = "security.json"  # which SCRAM users the storage was formatted with
CLUSTER_ID_FILE = "cluster.id"


def _secured_kafka(settings: Settings, svc: Service, controller: str) -> dict[str, str]:
    """Listener, TLS, SASL and authorizer properties for a secured local broker.

    The clients' listener takes the configured protocol; the KRaft controller listener
    stays on 127.0.0.1 and speaks TLS with client certificates, where only the broker's
    own certificate is a super user, so nothing else gets in through it.
    """
    protocol = settings.kafka_security_protocol
    tls = _broker_tls(settings)
    props = {
        "listeners": f"CLIENT://{svc.address},CONTROLLER://{controller}",
        "advertised.listeners": f"CLIENT://{svc.address}",
        "listener.security.protocol.map": f"CLIENT:{protocol},CONTROLLER:SSL",
        "inter.broker.listener.name": "CLIENT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls / BROKER_KEYSTORE),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls / CA_FILE),
        "listener.name.controller.ssl.client.auth": "required",
        # A certificate's principal is its CN: User:kafka-broker, User:leadpulse.
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{BROKER_PRINCIPAL};User:{ADMIN_USER}",
    }
    if protocol == "SSL":
        props["listener.name.client.ssl.client.auth"] = "required"
    if protocol in SASL_PROTOCOLS:
        mechanism = settings.kafka_sasl_mechanism
        admin = admin_password(settings)
        if mechanism == "PLAIN":
            users = {ADMIN_USER: admin, app_principal(settings): _app_password(settings)}
            login = "org.apache.kafka.common.security.plain.PlainLoginModule"
            entries = "".join(f' user_{user}="{_jaas_quote(pw)}"' for user, pw in users.items())
        else:  # SCRAM: the broker looks the users up in its metadata (made at format time)
            login = "org.apache.kafka.common.security.scram.ScramLoginModule"
            entries = ""
        jaas = f'{login} required username="{ADMIN_USER}" password="{_jaas_quote(admin)}"{entries};'
        props.update(
            {
                "listener.name.client.sasl.enabled.mechanisms": mechanism,
                "sasl.mechanism.inter.broker.protocol": mechanism,
                f"listener.name.client.{mechanism.lower()}.sasl.jaas.config": jaas,
            }
        )
    return props


def _broker_tls(settings: Settings) -> Path:
    """The CA and the broker's certificate (made when missing); the directory holding them."""
    tls = settings.kafka_tls_dir
    if settings.kafka_ssl_cafile is not None and settings.kafka_ssl_cafile.resolve() != (tls / CA_FILE):
        raise StackError(
            f"the local stack signs its broker certificate with its own CA ({tls / CA_FILE}); "
            "unset LEADPULSE_KAFKA_SSL_CAFILE (or point it there) to run the stack secured"
        )
    ca = ensure_ca(tls)
    host, _ = settings.kafka_host_port
    broker = ensure_certificate(
        ca, tls / "broker.pem", tls / "broker-key.pem", BROKER_PRINCIPAL, {host, "localhost", "127.0.0.1"}
    )
    keystore = broker.key.read_text() + broker.cert.read_text() + ca.cert.read_text()
    write_private(tls / BROKER_KEYSTORE, keystore)
    if settings.kafka_security_protocol == "SSL" and settings.kafka_ssl_certfile is None:
        ensure_certificate(ca, tls / CLIENT_CERT_FILE, tls / CLIENT_KEY_FILE, app_principal(settings))
    return tls


def admin_password(settings: Settings) -> str:
    """The stack's admin password: random, made once per home, kept beside the CA (owner-only)."""
    path = settings.kafka_tls_dir / ADMIN_PASSWORD_FILE
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24))
    return path.read_text().strip()


def admin_settings(settings: Settings) -> Settings:
    """`settings` with the stack's super-user identity, for creating topics, ACLs and probing.

    SASL: the admin user; SSL: the broker's own certificate. The trust stays the stack's CA.
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return settings
    tls = settings.kafka_tls_dir
    update: dict[str, object] = {"kafka_ssl_cafile": tls / CA_FILE}
    if protocol in SASL_PROTOCOLS:
        update |= {"kafka_sasl_username": ADMIN_USER, "kafka_sasl_password": SecretStr(admin_password(settings))}
    else:
        update |= {"kafka_ssl_certfile": tls / "broker.pem", "kafka_ssl_keyfile": tls / "broker-key.pem"}
    return settings.model_copy(update=update)


def app_principal(settings: Settings) -> str:
    """The name leadpulse's clients have on the secured stack: the SASL user, or its certificate's CN."""
    return settings.kafka_sasl_username or "leadpulse"


def _app_password(settings: Settings) -> str:
    if settings.kafka_sasl_password is None or not settings.kafka_sasl_username:
        raise StackError("a SASL broker needs its user: set LEADPULSE_KAFKA_SASL_USERNAME and LEADPULSE_KAFKA_SASL_PASSWORD")
    return settings.kafka_sasl_password.get_secret_value()


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _scram_users(settings: Settings) -> dict[str, str]:
    """The SCRAM users to create at format time, by name (the admin and leadpulse's user)."""
    if settings.kafka_security_protocol not in SASL_PROTOCOLS or not settings.kafka_sasl_mechanism.startswith("SCRAM"):
        return {}
    return {ADMIN_USER: admin_password(settings), app_principal(settings): _app_password(settings)}


def scram_argument(mechanism: str, user: str, password: str, salt: bytes) -> str:
    """StorageTool's `--add-scram` value with the salted password, so no password is on a command line."""
    digest = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, SCRAM_ITERATIONS)  # SCRAM's Hi()
    return (
        f"{mechanism}=[name={user},iterations={SCRAM_ITERATIONS},"
        f'salt="{base64.b64encode(salt).decode()}",saltedpassword="{base64.b64encode(salted).decode()}"]'
    )


def _format_kafka(settings: Settings, svc: Service) -> None:
    """KRaft refuses to start on an unformatted log dir; formatting happens once per home.

    SCRAM users live in the cluster's metadata, so a SASL/SCRAM stack creates its
    users here, before the broker first starts.
    """
    cluster_id = _kafka_cluster_id(settings)
    log.info("formatting Kafka storage in %s (cluster id %s)", svc.dir / "data", cluster_id)
    scram: list[str] = []
    users = _scram_users(settings)
    for user, password in users.items():
        scram += ["--add-scram", scram_argument(settings.kafka_sasl_mechanism, user, password, secrets.token_bytes(16))]
    command = java_command(
        settings, "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(svc.dir / "server.properties"), *scram
    )
    with open(svc.output, "ab") as out:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise StackError(f"formatting Kafka storage failed (exit {done.returncode}); see {svc.output}")
    record = {"scram": sorted(f"{settings.kafka_sasl_mechanism}:{user}" for user in users)}
    (svc.dir / _RECORD).write_text(json.dumps(record))


def _check_formatted_users(settings: Settings, svc: Service) -> None:
    """Refuse a SCRAM setup the storage was not formatted with: its users would not exist."""
    wanted = {f"{settings.kafka_sasl_mechanism}:{user}" for user in _scram_users(settings)}
    try:
        formatted = set(json.loads((svc.dir / _RECORD).read_text())["scram"])
    except (OSError, ValueError, KeyError):
        formatted = set()
    if not wanted <= formatted:
        raise StackError(
            f"the Kafka storage in {svc.dir / 'data'} was formatted without the SCRAM user "
            f"{app_principal(settings)!r} ({settings.kafka_sasl_mechanism}); SCRAM users are made when the storage is "
            f"formatted: stop the stack and remove {svc.dir / 'data'}, or use another LEADPULSE_HOME"
        )


def _kafka_cluster_id(settings: Settings) -> str:
    """The stack's Kafka cluster id, shared by its brokers: made once per home, kept in its file."""
    path = settings.home.expanduser().resolve() / "kafka" / CLUSTER_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    while True:
        # A random Kafka Uuid as `StorageTool random-uuid` prints it, without starting a JVM.
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids these: they read as command-line flags
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(cluster_id)
            return cluster_id


def _render_redis(settings: Settings, svc: Service) -> None:
    """Port, password and TLS as `LEADPULSE_REDIS_URL` asks; in a file, so no password is on a command line.

    `redis://user:pw@…` makes that ACL user (and turns `default` off), `redis://:pw@…` a
    `requirepass`; `rediss://` serves TLS only, with a certificate from the stack's CA.
    """
    url = urlparse(settings.redis_url)
    lines = []
    if url.scheme == "rediss":
        tls = _redis_tls(settings, svc)
        lines += ["port 0", f"tls-port {svc.port}", f"tls-cert-file {tls.cert}", f"tls-key-file {tls.key}"]
        lines += [f"tls-ca-cert-file {settings.kafka_tls_dir / CA_FILE}", "tls-auth-clients optional"]
    else:
        lines.append(f"port {svc.port}")
    password = unquote(url.password) if url.password else None
    if password and url.username and url.username != "default":
        lines += ["user default off", f"user {unquote(url.username)} on {_redis_quote('>' + password)} ~* &* +@all"]
    elif password:
        lines.append(f"requirepass {_redis_quote(password)}")
    write_private(svc.dir / "redis.conf", _HEADER + "".join(f"{line}\n" for line in lines))


def _redis_tls(settings: Settings, svc: Service) -> Issued:
    given = parse_qs(urlparse(settings.redis_url).query).get("ssl_ca_certs")
    local_ca = settings.kafka_tls_dir / CA_FILE
    if given and Path(given[0]).resolve() != local_ca:
        raise StackError(
            f"the local stack signs its Redis certificate with its own CA ({local_ca}); "
            "drop ssl_ca_certs from LEADPULSE_REDIS_URL (or point it there) to run the stack's Redis with TLS"
        )
    ca = ensure_ca(settings.kafka_tls_dir)
    hosts = {svc.host, "localhost", "127.0.0.1"}
    return ensure_certificate(ca, svc.dir / "tls" / "redis.pem", svc.dir / "tls" / "redis-key.pem", "leadpulse-redis", hosts)


def _redis_quote(value: str) -> str:
    """A redis.conf argument: double-quoted, with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render_prometheus(settings: Settings, svc: Service) -> None:
    """The compose config with every target on 127.0.0.1 and this stack's ports."""
    config = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    ports = {"prometheus": settings.prometheus_port, "leadpulse": settings.exporter_port}
    for job in config["scrape_configs"]:
        if job["job_name"] in ports:
            for static in job["static_configs"]:
                static["targets"] = [f"127.0.0.1:{ports[job['job_name']]}"]
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = [f"127.0.0.1:{settings.alertmanager_port}"]
    config["rule_files"] = [str(DEPLOY / "prometheus" / pattern) for pattern in config["rule_files"]]
    _write_yaml(svc.dir / "prometheus.yml", config)


def _render_alertmanager(settings: Settings, svc: Service) -> None:
    """The shipped config with its placeholder webhook replaced by ``alert_webhook_url``."""
    config = _load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    placeholder = Settings.model_fields["alert_webhook_url"].default
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"] == placeholder:
                hook["url"] = settings.alert_webhook_url
    _write_yaml(svc.dir / "alertmanager.yml", config)


_HEADER = "# Rendered by `leadpulse stack up` from deploy/; edits here are overwritten on the next start.\n"
RENDER: dict[str, Callable[[Settings, Service], None]] = {
    "kafka": _render_kafka,
    "redis": _render_redis,
    "prometheus": _render_prometheus,
    "alertmanager": _render_alertmanager,
}


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def _write_yaml(path: Path, config: Any) -> None:
    import yaml

    path.write_text(_HEADER + yaml.safe_dump(config, sort_keys=False))

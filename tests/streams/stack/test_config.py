"""The secured local stack's rendered configuration: listeners, users, ACL authorizer, Redis TLS and password."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from streams.stack.acls import Grant, grants
from streams.stack.config import ADMIN_USER, BROKER_PRINCIPAL, RENDER, _secured_kafka, admin_settings, scram_argument
from streams.stack.errors import StackError
from streams.stack.services import service

PASSWORD = 'app-"pw\\1'


def secured(tmp_path: Path, protocol: str, mechanism: str = "SCRAM-SHA-512", **extra: object) -> Settings:
    sasl = {"kafka_sasl_username": "app", "kafka_sasl_password": SecretStr(PASSWORD)} if protocol.startswith("SASL") else {}
    return Settings(home=tmp_path, kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, **sasl, **extra)  # type: ignore[arg-type]


def props(settings: Settings) -> dict[str, str]:
    return _secured_kafka(settings, service(settings, "kafka"), f"127.0.0.1:{settings.kafka_controller_port}")


@pytest.mark.parametrize("protocol", ["SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_the_clients_listener_takes_the_protocol_and_the_controller_stays_tls_with_client_certificates(tmp_path: Path, protocol: str) -> None:
    rendered = props(secured(tmp_path, protocol))
    assert rendered["listener.security.protocol.map"] == f"CLIENT:{protocol},CONTROLLER:SSL"
    assert rendered["listener.name.controller.ssl.client.auth"] == "required"
    assert rendered["authorizer.class.name"].endswith("StandardAuthorizer")
    assert rendered["super.users"] == f"User:{BROKER_PRINCIPAL};User:{ADMIN_USER}"
    assert (tmp_path / "kafka" / "tls" / "ca.pem").is_file()


def test_ssl_requires_client_certificates_and_makes_leadpulses(tmp_path: Path) -> None:
    rendered = props(secured(tmp_path, "SSL"))
    assert rendered["listener.name.client.ssl.client.auth"] == "required"
    assert (tmp_path / "kafka" / "tls" / "client.pem").is_file() and (tmp_path / "kafka" / "tls" / "client-key.pem").is_file()


def test_scram_keeps_the_users_password_out_of_the_broker_config(tmp_path: Path) -> None:
    rendered = props(secured(tmp_path, "SASL_SSL"))
    jaas = rendered["listener.name.client.scram-sha-512.sasl.jaas.config"]
    assert "ScramLoginModule" in jaas and f'username="{ADMIN_USER}"' in jaas
    assert PASSWORD not in "".join(rendered.values())


def test_plain_lists_its_users_in_jaas_with_quotes_escaped(tmp_path: Path) -> None:
    jaas = props(secured(tmp_path, "SASL_PLAINTEXT", "PLAIN"))["listener.name.client.plain.sasl.jaas.config"]
    assert 'user_app="app-\\"pw\\\\1"' in jaas and jaas.endswith(";")


def test_the_admin_is_the_stacks_super_user_in_each_mode(tmp_path: Path) -> None:
    sasl = admin_settings(secured(tmp_path, "SASL_SSL"))
    assert sasl.kafka_sasl_username == ADMIN_USER and sasl.kafka_sasl_password is not None
    assert sasl.kafka_sasl_password.get_secret_value() == (tmp_path / "kafka" / "tls" / "admin-password").read_text()
    assert admin_settings(secured(tmp_path, "SSL")).kafka_ssl_certfile == tmp_path / "kafka" / "tls" / "broker.pem"


def test_a_foreign_ca_file_cannot_sign_the_stacks_broker(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unset LEADPULSE_KAFKA_SSL_CAFILE"):
        props(secured(tmp_path, "SSL", kafka_ssl_cafile=tmp_path / "corporate-ca.pem"))


@hypothesis_settings(max_examples=50)
@given(password=st.text(min_size=1, max_size=40))
def test_the_scram_argument_carries_only_the_salted_password(password: str) -> None:
    mechanism, _, fields = scram_argument("SCRAM-SHA-256", "app", password, b"0123456789abcdef").partition("=")
    parsed = dict(field.split("=", 1) for field in fields.strip("[]").split(","))
    assert mechanism == "SCRAM-SHA-256" and set(parsed) == {"name", "iterations", "salt", "saltedpassword"}
    salted = base64.b64decode(parsed["saltedpassword"].strip('"'))
    assert salted == hashlib.pbkdf2_hmac("sha256", password.encode(), b"0123456789abcdef", int(parsed["iterations"]))


def test_leadpulse_gets_exactly_read_and_write_on_its_three_topics_and_read_on_its_group() -> None:
    assert set(grants(Settings(consumer_group="workers"))) == {
        Grant("TOPIC", LEADS_TOPIC, "READ"), Grant("TOPIC", LEADS_TOPIC, "WRITE"),
        Grant("TOPIC", DEALS_TOPIC, "READ"), Grant("TOPIC", DEALS_TOPIC, "WRITE"),
        Grant("TOPIC", REJECTED_TOPIC, "READ"), Grant("TOPIC", REJECTED_TOPIC, "WRITE"),
        Grant("GROUP", "workers", "READ"),
    }  # fmt: skip


def redis_conf(tmp_path: Path, url: str) -> list[str]:
    settings = Settings(home=tmp_path, redis_url=url)
    svc = service(settings, "redis")
    svc.dir.mkdir(parents=True)
    RENDER["redis"](settings, svc)
    return [line for line in (svc.dir / "redis.conf").read_text().splitlines() if not line.startswith("#")]


def test_redis_with_an_acl_user_over_tls_serves_only_tls_and_turns_default_off(tmp_path: Path) -> None:
    lines = redis_conf(tmp_path, "rediss://lp:p%40ss%22w@127.0.0.1:6390/0")
    assert lines[:2] == ["port 0", "tls-port 6390"]
    assert "user default off" in lines and 'user lp on ">p@ss\\"w" ~* &* +@all' in lines
    assert (tmp_path / "redis" / "tls" / "redis.pem").is_file()
    assert (tmp_path / "redis" / "redis.conf").stat().st_mode & 0o077 == 0


def test_redis_with_a_password_only_requires_it_and_plain_redis_needs_nothing(tmp_path: Path) -> None:
    assert redis_conf(tmp_path / "a", "redis://:s3cret@127.0.0.1:6391/0") == ["port 6391", 'requirepass "s3cret"']
    assert redis_conf(tmp_path / "b", "redis://127.0.0.1:6392/0") == ["port 6392"]


def test_three_bootstrap_addresses_render_three_brokers_of_one_quorum_with_three_replicas(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003", kafka_controller_port=7101)
    rendered = []
    for name in ("kafka", "kafka-2", "kafka-3"):
        svc = service(settings, name)
        svc.dir.mkdir(parents=True)
        (svc.dir / "data").mkdir()
        (svc.dir / "data" / "meta.properties").write_text("")  # formatted: render only
        RENDER["kafka"](settings, svc)
        rendered.append(dict(line.split("=", 1) for line in (svc.dir / "server.properties").read_text().splitlines() if "=" in line))
    assert [p["node.id"] for p in rendered] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in rendered} == {"1@127.0.0.1:7101,2@127.0.0.1:7102,3@127.0.0.1:7103"}
    assert [p["advertised.listeners"] for p in rendered] == [f"PLAINTEXT://127.0.0.1:{port}" for port in (7001, 7002, 7003)]
    assert {(p["default.replication.factor"], p["min.insync.replicas"], p["offsets.topic.replication.factor"]) for p in rendered} == {("3", "2", "3")}


def test_a_secured_stack_of_several_brokers_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = secured(tmp_path, "SASL_SSL", kafka_bootstrap="127.0.0.1:7001,127.0.0.1:7002")
    svc = service(settings, "kafka-2")
    svc.dir.mkdir(parents=True)
    with pytest.raises(StackError, match="LEADPULSE_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"):
        RENDER["kafka"](settings, svc)

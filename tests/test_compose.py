"""docker-compose.yml agrees with Settings: every LEADPULSE_* name is a field, every
published port is the field's default, and the mounted configs exist and fit together."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from streams.settings import Settings
from tests import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DEFAULTS = Settings.model_construct()  # defaults only: no LEADPULSE_* from the environment


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _published(service: dict[str, Any]) -> set[int]:
    """Host ports of ``ports`` entries like "9092:9092" or "127.0.0.1:9092:9092"."""
    return {int(str(entry).split(":")[-2]) for entry in service.get("ports", [])}


def test_compose_has_every_service() -> None:
    expected = {"kafka", "redis", "prometheus", "alertmanager", "grafana", "worker", "exporter", "api"}
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_leadpulse_variable_is_a_setting(name: str) -> None:
    for variable in _environment(SERVICES[name]):
        if variable.startswith("LEADPULSE_"):
            assert variable.removeprefix("LEADPULSE_").lower() in Settings.model_fields, variable


def test_published_ports_are_the_settings_defaults() -> None:
    expected = {
        "kafka": DEFAULTS.kafka_host_port[1],
        "redis": DEFAULTS.redis_host_port[1],
        "prometheus": DEFAULTS.prometheus_port,
        "alertmanager": DEFAULTS.alertmanager_port,
        "exporter": DEFAULTS.exporter_port,
        "api": DEFAULTS.api_port,
    }
    assert {name: _published(SERVICES[name]) for name in expected} == {name: {port} for name, port in expected.items()}


def test_port_variables_are_the_settings_defaults() -> None:
    for service in SERVICES.values():
        for variable, value in _environment(service).items():
            field = variable.removeprefix("LEADPULSE_").lower()
            if variable.startswith("LEADPULSE_") and field.endswith("_port"):
                assert int(value) == getattr(DEFAULTS, field), variable


def test_kafka_controller_uses_the_settings_port() -> None:
    voters = _environment(SERVICES["kafka"])["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.endswith(f":{DEFAULTS.kafka_controller_port}")


def test_mounted_configs_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source


def test_prometheus_scrapes_the_exporter_and_loads_the_rules() -> None:
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs["leadpulse"] == [f"exporter:{DEFAULTS.exporter_port}"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"alertmanager:{DEFAULTS.alertmanager_port}"
    ]
    rules = [path for pattern in config["rule_files"] for path in (REPO / "deploy/prometheus").glob(pattern)]
    assert REPO / "deploy/prometheus/rules/leadpulse.yml" in rules


def test_alertmanager_groups_by_segment() -> None:
    config = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
    assert config["route"]["group_by"] == ["alertname", "dimension", "segment"]


def test_grafana_reads_the_compose_prometheus() -> None:
    config = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert config["datasources"][0]["url"] == f"http://prometheus:{DEFAULTS.prometheus_port}"

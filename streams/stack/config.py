"""Configuration the stack renders from deploy/ into each service's directory.

Every file is written anew at each start from the shipped configs and the settings'
ports, so two homes never share a config and a hand edit never drifts silently.
"""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.settings import Settings
from streams.stack.errors import StackError
from streams.stack.services import DEPLOY, Service, java_command

log = logging.getLogger(__name__)


def _render_kafka(settings: Settings, svc: Service) -> None:
    controller = f"127.0.0.1:{settings.kafka_controller_port}"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{controller}",
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{svc.address},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{svc.address}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(svc.dir / "data"),
        "num.partitions": str(settings.topic_partitions),
        # One broker: no internal topic can have more replicas than that.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # A new consumer group starts at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
    }
    lines = [f"{key}={value}\n" for key, value in props.items()]
    (svc.dir / "server.properties").write_text(_HEADER + "".join(lines))
    shutil.copyfile(DEPLOY / "kafka" / "log4j2.properties", svc.dir / "log4j2.properties")
    if not (svc.dir / "data" / "meta.properties").exists():
        _format_kafka(settings, svc)


def _format_kafka(settings: Settings, svc: Service) -> None:
    """KRaft refuses to start on an unformatted log dir; formatting happens once per home."""
    cluster_id = _kafka_cluster_id()
    log.info("formatting Kafka storage in %s (cluster id %s)", svc.dir / "data", cluster_id)
    command = java_command(settings, "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(svc.dir / "server.properties"))
    with open(svc.output, "ab") as out:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise StackError(f"formatting Kafka storage failed (exit {done.returncode}); see {svc.output}")


def _kafka_cluster_id() -> str:
    """A random Kafka Uuid as `StorageTool random-uuid` prints it, without starting a JVM."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids these: they read as command-line flags
            return cluster_id


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
    "prometheus": _render_prometheus,
    "alertmanager": _render_alertmanager,
}


def _load_yaml(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def _write_yaml(path: Path, config: Any) -> None:
    import yaml

    path.write_text(_HEADER + yaml.safe_dump(config, sort_keys=False))

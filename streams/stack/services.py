"""What each service of the local stack is: its command line, port, files and logs.

Pure descriptions: nothing here starts, renders or probes anything, so `stack status`
and the tests can ask where a service lives without touching it.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from streams.stack.errors import StackError

SERVICES = ("kafka", "redis", "prometheus", "alertmanager")
OPTIONAL = frozenset({"prometheus", "alertmanager"})
TOPICS = (LEADS_TOPIC, DEALS_TOPIC, REJECTED_TOPIC)
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

KAFKA_HEAP = "512m"  # plenty for one broker with a few 6-partition topics


@dataclass(frozen=True)
class Service:
    """How one service of one home runs: where it listens, keeps its files and logs."""

    name: str
    host: str
    port: int
    dir: Path
    log: Path  # the log to read when something goes wrong
    output: Path  # where the process's stdout/stderr go (the log itself except for Kafka)
    command: tuple[str, ...]
    missing: str = ""  # what is not installed; empty when the service can be started

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid.json"


def java_command(settings: Settings, heap: str, *args: str) -> tuple[str, ...]:
    libs = settings.kafka_libs.expanduser().resolve()
    return (shutil.which("java") or "java", f"-Xmx{heap}", "-cp", f"{libs}/*", *args)


def broker_names(settings: Settings) -> list[str]:
    """One local broker per bootstrap address: `kafka`, then `kafka-2`, `kafka-3`..."""
    return ["kafka", *(f"kafka-{n}" for n in range(2, len(settings.kafka_brokers) + 1))]


def broker_id(name: str) -> int:
    """The KRaft node id of broker `name` (1 for `kafka`), also its place in the bootstrap list."""
    return int(name.partition("-")[2] or 1)


def names(settings: Settings) -> list[str]:
    """Every service of this stack, each broker apart."""
    return [*broker_names(settings), *SERVICES[1:]]


def _kafka(settings: Settings, home: Path, name: str = "kafka") -> Service:
    d = home / name
    host, port = settings.kafka_brokers[broker_id(name) - 1]
    command = java_command(
        settings,
        KAFKA_HEAP,
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={d}",
        "kafka.Kafka",
        str(d / "server.properties"),
    )
    missing = "" if shutil.which("java") else "java"
    if not missing and not any(settings.kafka_libs.expanduser().glob("kafka_*.jar")):
        missing = f"Kafka jars in {settings.kafka_libs}"
    return Service(name, host, port, d, d / "server.log", d / "kafka.out", command, missing)


def _redis(settings: Settings, home: Path) -> Service:
    d = home / "redis"
    host, port = settings.redis_host_port
    command = (
        "redis-server",
        str(d / "redis.conf"),  # the port, TLS and password, rendered from LEADPULSE_REDIS_URL
        "--bind", socket.gethostbyname(host),  # Redis binds addresses, not names
        "--dir", str(d),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",  # the AOF is the persistence; no RDB snapshots to fork for or fail at shutdown
        "--daemonize", "no",
    )  # fmt: skip
    return Service("redis", host, port, d, d / "redis.log", d / "redis.log", command, _which_missing("redis-server"))


def _prometheus(settings: Settings, home: Path) -> Service:
    d = home / "prometheus"
    port = settings.prometheus_port
    command = (
        "prometheus",
        f"--config.file={d / 'prometheus.yml'}",
        f"--storage.tsdb.path={d / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    )
    log_file = d / "prometheus.log"
    return Service("prometheus", "127.0.0.1", port, d, log_file, log_file, command, _which_missing("prometheus"))


def _alertmanager(settings: Settings, home: Path) -> Service:
    d = home / "alertmanager"
    port = settings.alertmanager_port
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")  # Debian's name first
    command = (
        binary or "alertmanager",
        f"--config.file={d / 'alertmanager.yml'}",
        f"--storage.path={d / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # empty: no gossip port, so two stacks never cluster together
    )
    log_file = d / "alertmanager.log"
    missing = "" if binary else "alertmanager"
    return Service("alertmanager", "127.0.0.1", port, d, log_file, log_file, command, missing)


def _which_missing(program: str) -> str:
    return "" if shutil.which(program) else program


_SERVICES: dict[str, Callable[[Settings, Path], Service]] = {
    "kafka": _kafka,
    "redis": _redis,
    "prometheus": _prometheus,
    "alertmanager": _alertmanager,
}


def service(settings: Settings, name: str) -> Service:
    home = settings.home.expanduser().resolve()
    if name in broker_names(settings):
        return _kafka(settings, home, name)
    return _SERVICES[name](settings, home)


def selected(settings: Settings, services: Sequence[str] | None) -> list[str]:
    """The services named (all when none), `kafka` standing for every broker."""
    every = names(settings)
    wanted = set(services or every)
    unknown = sorted(wanted - set(every) - {"kafka"})
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    if "kafka" in wanted:
        wanted |= set(broker_names(settings))
    return [n for n in every if n in wanted]

"""The local stack behind `leadpulse stack up/down/status`.

Runs a single-node Kafka (KRaft), Redis and, where installed, Prometheus and
Alertmanager as plain background processes. Rendered configs, data, logs and pid files
live under ``settings.home/<service>/``. A service that already answers on its port is
reused but never claimed, and ``down`` stops only the pids its home recorded, so a
developer's own Redis, or a second stack with another home and other ports, is never
touched.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import click

from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings

log = logging.getLogger(__name__)

SERVICES = ("kafka", "redis", "prometheus", "alertmanager")
OPTIONAL = frozenset({"prometheus", "alertmanager"})
TOPICS = (LEADS_TOPIC, DEALS_TOPIC, REJECTED_TOPIC)
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"

START_TIMEOUT = 120.0  # a first Kafka start (format + JVM warm-up) takes 10-20 s on 2 cores
STOP_TIMEOUT = 30.0  # Kafka's controlled shutdown needs a few seconds before SIGKILL is fair
POLL = 0.25
EXTERNAL_WAIT = 10.0  # a service found on its port that stays silent this long is not the one we want
KAFKA_HEAP = "512m"  # plenty for one broker with a few 6-partition topics


class StackError(RuntimeError):
    """A service could not be started, reached or stopped; read the log the message names."""


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `stack status`; ``state`` is running/ours, running/external, stopped or not installed."""

    name: str
    address: str
    state: str
    pid: int | None
    log: Path


@dataclass(frozen=True)
class _Service:
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


# Popen objects of the processes this Python process started: kept so they are reaped
# (no zombies, no ResourceWarning) when a test kills one and starts it again.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --- what each service is --------------------------------------------------------------


def _java(settings: Settings, heap: str, *args: str) -> tuple[str, ...]:
    libs = settings.kafka_libs.expanduser().resolve()
    return (shutil.which("java") or "java", f"-Xmx{heap}", "-cp", f"{libs}/*", *args)


def _kafka(settings: Settings, home: Path) -> _Service:
    d = home / "kafka"
    host, port = settings.kafka_host_port
    command = _java(
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
    return _Service("kafka", host, port, d, d / "server.log", d / "kafka.out", command, missing)


def _redis(settings: Settings, home: Path) -> _Service:
    d = home / "redis"
    host, port = settings.redis_host_port
    command = (
        "redis-server",
        "--bind", socket.gethostbyname(host),  # Redis binds addresses, not names
        "--port", str(port),
        "--dir", str(d),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",  # the AOF is the persistence; no RDB snapshots to fork for or fail at shutdown
        "--daemonize", "no",
    )  # fmt: skip
    return _Service("redis", host, port, d, d / "redis.log", d / "redis.log", command, _which_missing("redis-server"))


def _prometheus(settings: Settings, home: Path) -> _Service:
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
    return _Service("prometheus", "127.0.0.1", port, d, log_file, log_file, command, _which_missing("prometheus"))


def _alertmanager(settings: Settings, home: Path) -> _Service:
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
    return _Service("alertmanager", "127.0.0.1", port, d, log_file, log_file, command, missing)


def _which_missing(program: str) -> str:
    return "" if shutil.which(program) else program


_SERVICES: dict[str, Callable[[Settings, Path], _Service]] = {
    "kafka": _kafka,
    "redis": _redis,
    "prometheus": _prometheus,
    "alertmanager": _alertmanager,
}


def _service(settings: Settings, name: str) -> _Service:
    return _SERVICES[name](settings, settings.home.expanduser().resolve())


def _selected(services: Sequence[str] | None) -> list[str]:
    names = list(services) if services else list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        raise StackError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    return [n for n in SERVICES if n in names]


# --- rendered configuration ----------------------------------------------------------


def _render_kafka(settings: Settings, svc: _Service) -> None:
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


def _format_kafka(settings: Settings, svc: _Service) -> None:
    """KRaft refuses to start on an unformatted log dir; formatting happens once per home."""
    cluster_id = _kafka_cluster_id()
    log.info("formatting Kafka storage in %s (cluster id %s)", svc.dir / "data", cluster_id)
    command = _java(settings, "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(svc.dir / "server.properties"))
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


def _render_prometheus(settings: Settings, svc: _Service) -> None:
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


def _render_alertmanager(settings: Settings, svc: _Service) -> None:
    """The shipped config with its placeholder webhook replaced by ``alert_webhook_url``."""
    config = _load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    placeholder = Settings.model_fields["alert_webhook_url"].default
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"] == placeholder:
                hook["url"] = settings.alert_webhook_url
    _write_yaml(svc.dir / "alertmanager.yml", config)


_HEADER = "# Rendered by `leadpulse stack up` from deploy/; edits here are overwritten on the next start.\n"
_RENDER: dict[str, Callable[[Settings, _Service], None]] = {
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


# --- does it answer? -----------------------------------------------------------------


@contextmanager
def _quiet_kafka() -> Iterator[None]:
    """kafka-python logs every refused connection; while polling a starting broker that is noise."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _kafka_admin(bootstrap: str, timeout: float) -> Any:
    from kafka import KafkaAdminClient

    ms = int(timeout * 1000)
    return KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=ms, request_timeout_ms=max(ms, 1000))


def _kafka_answers(svc: _Service, timeout: float) -> bool:
    from kafka.errors import KafkaError

    with _quiet_kafka():
        try:
            # Bootstrapping is a metadata request: it succeeds once the broker serves clients.
            _kafka_admin(svc.address, timeout).close()
        except (KafkaError, OSError):
            return False
    return True


def _redis_answers(svc: _Service, timeout: float) -> bool:
    import redis

    client = redis.Redis(host=svc.host, port=svc.port, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())  # a Redis still loading its AOF answers LOADING: not ready yet
    except redis.RedisError:
        return False
    finally:
        client.close()


def _http_ready(svc: _Service, timeout: float) -> bool:
    import http.client
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{svc.address}/-/ready", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException):  # URLError and HTTPError (503 while starting) are OSErrors
        return False


_ANSWERS: dict[str, Callable[[_Service, float], bool]] = {
    "kafka": _kafka_answers,
    "redis": _redis_answers,
    "prometheus": _http_ready,
    "alertmanager": _http_ready,
}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- our processes -------------------------------------------------------------------


def _stat(path: Path) -> list[str] | None:
    """Fields of a /proc stat file after the command name; None if the process is gone."""
    try:
        return path.read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot): with the pid, it names one process."""
    fields = _stat(Path(f"/proc/{pid}/stat"))
    return fields[19] if fields else None


class _Proc(NamedTuple):
    """A process this home started, as its pid file records it."""

    pid: int
    started: str | None  # start time; None without procfs
    address: str


def _running(proc: _Proc) -> bool:
    """Whether the process is alive and is still the one recorded (pids get reused).

    "Alive" lasts until its last thread is gone: a killed Redis or JVM shows its main
    thread as a zombie while other threads still hold its sockets. Without procfs
    (macOS) only the pid is checked.
    """
    child = _CHILDREN.get(proc.pid)
    if child is not None:  # ours to reap: waitpid succeeds only once every thread is gone
        if child.poll() is None:
            return True
        del _CHILDREN[proc.pid]
        return False
    if not Path("/proc/self").exists():
        try:
            os.kill(proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, just not ours to signal
            pass
        return True
    fields = _stat(Path(f"/proc/{proc.pid}/stat"))
    if fields is None or fields[19] != proc.started:
        return False
    try:
        tasks = list(Path(f"/proc/{proc.pid}/task").iterdir())
    except OSError:
        return False
    return any(_task_alive(task) for task in tasks)


def _task_alive(task: Path) -> bool:
    fields = _stat(task / "stat")
    return fields is not None and fields[0] not in ("Z", "X")


def _recorded(svc: _Service) -> _Proc | None:
    try:
        record = json.loads(svc.pid_file.read_text())
        return _Proc(int(record["pid"]), record["started"], str(record["address"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _ours(svc: _Service) -> _Proc | None:
    """This home's running process of ``svc``, if any (wherever it listens)."""
    proc = _recorded(svc)
    return proc if proc is not None and _running(proc) else None


def _start(settings: Settings, svc: _Service) -> None:
    if svc.missing:
        raise StackError(f"cannot start {svc.name}: {svc.missing} not found; run `make install`")
    svc.dir.mkdir(parents=True, exist_ok=True)
    render = _RENDER.get(svc.name)
    if render is not None:
        render(settings, svc)
    with open(svc.output, "ab") as out:
        process = subprocess.Popen(
            svc.command,
            cwd=svc.dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `leadpulse stack up` and its terminal
        )
    _CHILDREN[process.pid] = process
    record = {"pid": process.pid, "started": _start_time(process.pid), "address": svc.address}
    svc.pid_file.write_text(json.dumps(record))
    log.info("started %s on %s (pid %d), log %s", svc.name, svc.address, process.pid, svc.log)


def _wait_ready(svc: _Service, deadline: float, ours: bool) -> None:
    """Poll until ``svc`` answers; fail early if our process died."""
    while not _ANSWERS[svc.name](svc, 1.0):
        proc = _recorded(svc)
        if ours and (proc is None or not _running(proc)):
            raise StackError(f"{svc.name} exited while starting; see {_logs(svc)}{_tail(svc)}")
        if time.monotonic() > deadline:
            if not ours:
                raise StackError(
                    f"something listens on {svc.address} but does not answer as {svc.name}; "
                    "stop it or give the stack another port"
                )
            raise StackError(f"{svc.name} did not answer on {svc.address} in time; see {_logs(svc)}{_tail(svc)}")
        time.sleep(POLL)


def _logs(svc: _Service) -> str:
    return str(svc.log) if svc.log == svc.output else f"{svc.log} and {svc.output}"


def _tail(svc: _Service, lines: int = 5) -> str:
    try:
        last = svc.output.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\nlast lines of {svc.output}:\n  " + "\n  ".join(last) if last else ""


def _stop(proc: _Proc, sig: signal.Signals, timeout: float) -> bool:
    """Send ``sig`` and wait until the process is gone; False if it outlived ``timeout``."""
    _signal(proc, sig)
    return _wait_gone(proc, time.monotonic() + timeout)


def _signal(proc: _Proc, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # already gone: nothing to do
        os.kill(proc.pid, sig)


def _wait_gone(proc: _Proc, deadline: float) -> bool:
    while _running(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


# --- the stack -----------------------------------------------------------------------


def up(settings: Settings, services: Sequence[str] | None = None, timeout: float = START_TIMEOUT) -> list[ServiceStatus]:
    """Start (or reuse) the services, wait until each answers, then create the topics.

    Idempotent: services of this home that run are kept, services that answer on their
    port are reused without being claimed, optional ones that are not installed are
    skipped.
    """
    names = _selected(services)
    deadline = time.monotonic() + timeout
    started = [svc for svc in (_service(settings, name) for name in names) if _ensure_started(settings, svc, deadline)]
    for svc in started:
        _wait_ready(svc, deadline, ours=True)
    if "kafka" in names:
        create_topics(settings)
    return status(settings, names)


def _ensure_started(settings: Settings, svc: _Service, deadline: float) -> bool:
    """Start ``svc`` unless something runs on its port; True if it was started here.

    What already runs must answer before ``deadline``. Something else on the port of
    Kafka or Redis gets EXTERNAL_WAIT seconds, then fails the start; on the port of
    Prometheus or Alertmanager, which the pipeline does not need, one try and a warning.
    """
    proc = _ours(svc)
    if proc is not None and proc.address != svc.address:
        raise StackError(
            f"{svc.name} of {svc.dir.parent} runs on {proc.address}, not {svc.address}; "
            f"stop it with `leadpulse stack down --home {svc.dir.parent}` or use another home"
        )
    if proc is not None:
        log.info("%s already runs on %s (pid %d, ours)", svc.name, svc.address, proc.pid)
        _wait_ready(svc, deadline, ours=True)
    elif _port_open(svc.host, svc.port):
        log.info("%s: something already listens on %s; reusing it (not ours: `down` leaves it)", svc.name, svc.address)
        patience = 0.0 if svc.name in OPTIONAL else EXTERNAL_WAIT
        try:
            _wait_ready(svc, min(deadline, time.monotonic() + patience), ours=False)
        except StackError as error:
            if svc.name not in OPTIONAL:
                raise
            log.warning("%s skipped: %s", svc.name, error)
    elif svc.missing and svc.name in OPTIONAL:
        log.info("%s is not installed (%s not found); skipped", svc.name, svc.missing)
    else:
        _start(settings, svc)
        return True
    return False


def create_topics(settings: Settings) -> None:
    """Create the contract's topics, keeping any that exist (their settings are not changed)."""
    from kafka.errors import TopicAlreadyExistsError

    wanted = {
        topic: {
            "num_partitions": settings.topic_partitions,
            "replication_factor": -1,  # the broker's default: 1 on the local stack
            "configs": {"retention.ms": str(settings.topic_retention_ms)},
        }
        for topic in TOPICS
    }
    with _quiet_kafka():
        admin = _kafka_admin(settings.kafka_bootstrap, 10.0)
        try:
            result = admin.create_topics(wanted, raise_errors=False)
            for topic in result["topics"]:
                if topic["error_code"] == 0:
                    log.info("created topic %s (%d partitions)", topic["name"], settings.topic_partitions)
                elif topic["error_code"] != TopicAlreadyExistsError.errno:
                    raise StackError(f"creating topic {topic['name']} failed: {topic['error_message']}")
            admin.wait_for_topics(list(TOPICS), timeout_ms=30_000)
        finally:
            admin.close()


def down(settings: Settings, timeout: float = STOP_TIMEOUT) -> list[ServiceStatus]:
    """Stop the processes this home started (SIGTERM, SIGKILL after ``timeout``); nothing else."""
    services = [_service(settings, name) for name in SERVICES]
    running = [(svc, proc) for svc in services if (proc := _ours(svc)) is not None]
    for svc, proc in running:
        log.info("stopping %s (pid %d)", svc.name, proc.pid)
        _signal(proc, signal.SIGTERM)  # all at once: they stop in parallel
    deadline = time.monotonic() + timeout
    for svc, proc in running:
        if not _wait_gone(proc, deadline):
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", svc.name, proc.pid, timeout)
            if not _stop(proc, signal.SIGKILL, 10):
                raise StackError(f"{svc.name} (pid {proc.pid}) survived SIGKILL")
        log.info("stopped %s", svc.name)
    for svc in services:
        svc.pid_file.unlink(missing_ok=True)
    if not running:
        log.info("nothing started by %s was running", settings.home)
    return status(settings)


def status(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """What runs where: ours (pid recorded in this home), external (port answers), or not."""
    return [_status(_service(settings, name)) for name in _selected(services)]


def _status(svc: _Service) -> ServiceStatus:
    proc = _ours(svc)
    if proc is not None:
        return ServiceStatus(svc.name, proc.address, "running/ours", proc.pid, svc.log)
    if _port_open(svc.host, svc.port):
        state = "running/external"
    else:
        state = "not installed" if svc.missing else "stopped"
    return ServiceStatus(svc.name, svc.address, state, None, svc.log)


def kill_service(settings: Settings, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
    """Signal this home's ``name`` process, for fault tests; returns its pid.

    Waits until SIGKILL or SIGTERM took effect, so a test can restart it at once.
    """
    svc = _service(settings, name)
    proc = _ours(svc)
    if proc is None:
        raise StackError(f"{name} of {settings.home} is not running as ours; nothing to signal")
    log.info("sending %s to %s (pid %d)", sig.name, name, proc.pid)
    if sig in (signal.SIGKILL, signal.SIGTERM):
        if not _stop(proc, sig, STOP_TIMEOUT):
            raise StackError(f"{name} (pid {proc.pid}) still runs after {sig.name}")
    else:
        _signal(proc, sig)
    return proc.pid


def start_service(settings: Settings, name: str, timeout: float = START_TIMEOUT) -> ServiceStatus:
    """Start ``name`` again (after `kill_service`) and wait until it answers."""
    return up(settings, [name], timeout)[0]


# --- command line --------------------------------------------------------------------

_SETTINGS_OPTIONS = (
    click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="data, logs and pid files [LEADPULSE_HOME]"),
    click.option("--kafka-bootstrap", help="broker host:port [LEADPULSE_KAFKA_BOOTSTRAP]"),
    click.option("--kafka-controller-port", type=int, help="KRaft controller port [LEADPULSE_KAFKA_CONTROLLER_PORT]"),
    click.option("--redis-url", help="redis://host:port/db [LEADPULSE_REDIS_URL]"),
    click.option("--prometheus-port", type=int, help="[LEADPULSE_PROMETHEUS_PORT]"),
    click.option("--alertmanager-port", type=int, help="[LEADPULSE_ALERTMANAGER_PORT]"),
    click.option("--exporter-port", type=int, help="port Prometheus scrapes [LEADPULSE_EXPORTER_PORT]"),
)


def _with_settings(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_SETTINGS_OPTIONS):
        command = option(command)
    return command


def _settings(overrides: dict[str, Any]) -> Settings:
    from streams.cli import configure_logging

    configure_logging("info")
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def _print_table(statuses: Sequence[ServiceStatus]) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"running/ours": "green", "running/external": "cyan", "stopped": "red"}
    table = Table("service", "address", "state", "pid")
    table.add_column("log", overflow="fold")
    for row in statuses:
        state = f"[{colours.get(row.state, 'yellow')}]{row.state}[/]"
        table.add_row(row.name, row.address, state, str(row.pid or ""), _short(row.log))
    Console().print(table)


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.group()
def stack() -> None:
    """Run the local stack: Kafka (KRaft), Redis, and Prometheus and Alertmanager where installed.

    Everything lives under LEADPULSE_HOME (default .leadpulse): rendered configs, data,
    logs and pid files. Settings come from LEADPULSE_* variables; the flags of each
    subcommand override them. Stacks with different homes and ports run side by side.
    """


@stack.command("up")
@_with_settings
@click.option("--service", "-s", "services", multiple=True, type=click.Choice(SERVICES), help="only these (repeatable)")
@click.option("--timeout", type=float, default=START_TIMEOUT, show_default=True, help="seconds to wait for all to answer")
def up_command(services: tuple[str, ...], timeout: float, **overrides: Any) -> None:
    """Start the stack (or what of it is not running) and create the topics.

    Waits until every service answers.

    A service already answering on its port is reused and left alone by `down`.
    Processes keep running after this command exits.
    """
    try:
        _print_table(up(_settings(overrides), services or None, timeout))
    except StackError as error:
        raise click.ClickException(str(error)) from error


@stack.command("down")
@_with_settings
@click.option("--timeout", type=float, default=STOP_TIMEOUT, show_default=True, help="seconds before SIGKILL")
def down_command(timeout: float, **overrides: Any) -> None:
    """Stop what this home started; reused services keep running.

    SIGTERM first, SIGKILL after --timeout seconds.
    """
    try:
        _print_table(down(_settings(overrides), timeout))
    except StackError as error:
        raise click.ClickException(str(error)) from error


@stack.command("status")
@_with_settings
def status_command(**overrides: Any) -> None:
    """Show what runs where, and whether this home started it.

    State is running/ours (started by this home), running/external (something else
    answers on the port), stopped, or not installed.
    """
    try:
        _print_table(status(_settings(overrides)))
    except StackError as error:
        raise click.ClickException(str(error)) from error

"""The local stack behind `leadpulse stack up/down/status`.

Runs a single-node Kafka (KRaft), Redis and, where installed, Prometheus and
Alertmanager as plain background processes. Rendered configs, data, logs and pid files
live under ``settings.home/<service>/``. A service that already answers on its port is
reused but never claimed, and ``down`` stops only the pids its home recorded, so a
developer's own Redis, or a second stack with another home and other ports, is never
touched.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Settings
from streams.stack.acls import grant, grants
from streams.stack.config import app_principal, replication
from streams.stack.errors import StackError
from streams.logs import quiet
from streams.stack.probes import answers, kafka_admin, port_open
from streams.stack.processes import POLL, ours, recorded, running, send_signal, start, stop, wait_gone
from streams.stack.services import OPTIONAL, TOPICS, Service, broker_names, selected, service
from streams.stack.services import names as all_names

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # a first Kafka start (format + JVM warm-up) takes 10-20 s on 2 cores
STOP_TIMEOUT = 30.0  # Kafka's controlled shutdown needs a few seconds before SIGKILL is fair
EXTERNAL_WAIT = 10.0  # a service found on its port that stays silent this long is not the one we want


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `stack status`; ``state`` is running/ours, running/external, stopped or not installed."""

    name: str
    address: str
    state: str
    pid: int | None
    log: Path


def _wait_ready(settings: Settings, svc: Service, deadline: float, mine: bool) -> None:
    """Poll until ``svc`` answers; fail early if our process died."""
    while not answers(settings, svc, 1.0):
        proc = recorded(svc)
        if mine and (proc is None or not running(proc)):
            raise StackError(f"{svc.name} exited while starting; see {_logs(svc)}{_tail(svc)}")
        if time.monotonic() > deadline:
            if not mine:
                raise StackError(
                    f"something listens on {svc.address} but does not answer as {svc.name}; "
                    "stop it or give the stack another port"
                )
            raise StackError(f"{svc.name} did not answer on {svc.address} in time; see {_logs(svc)}{_tail(svc)}")
        time.sleep(POLL)


def _logs(svc: Service) -> str:
    return str(svc.log) if svc.log == svc.output else f"{svc.log} and {svc.output}"


def _tail(svc: Service, lines: int = 5) -> str:
    try:
        last = svc.output.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\nlast lines of {svc.output}:\n  " + "\n  ".join(last) if last else ""


def up(settings: Settings, services: Sequence[str] | None = None, timeout: float = START_TIMEOUT) -> list[ServiceStatus]:
    """Start (or reuse) the services, wait until each answers, then create the topics.

    Idempotent: services of this home that run are kept, services that answer on their
    port are reused without being claimed, optional ones that are not installed are
    skipped.
    """
    names = selected(settings, services)
    deadline = time.monotonic() + timeout
    started = [svc for svc in (service(settings, name) for name in names) if _ensure_started(settings, svc, deadline)]
    for svc in started:
        _wait_ready(settings, svc, deadline, mine=True)
    if set(names) & set(broker_names(settings)):
        create_topics(settings)
    return status(settings, names)


def _ensure_started(settings: Settings, svc: Service, deadline: float) -> bool:
    """Start ``svc`` unless something runs on its port; True if it was started here.

    What already runs must answer before ``deadline``. Something else on the port of
    Kafka or Redis gets EXTERNAL_WAIT seconds, then fails the start; on the port of
    Prometheus or Alertmanager, which the pipeline does not need, one try and a warning.
    """
    proc = ours(svc)
    if proc is not None and proc.address != svc.address:
        raise StackError(
            f"{svc.name} of {svc.dir.parent} runs on {proc.address}, not {svc.address}; "
            f"stop it with `leadpulse stack down --home {svc.dir.parent}` or use another home"
        )
    if proc is not None:
        log.info("%s already runs on %s (pid %d, ours)", svc.name, svc.address, proc.pid)
        _wait_ready(settings, svc, deadline, mine=True)
    elif port_open(svc.host, svc.port):
        log.info("%s: something already listens on %s; reusing it (not ours: `down` leaves it)", svc.name, svc.address)
        patience = 0.0 if svc.name in OPTIONAL else EXTERNAL_WAIT
        try:
            _wait_ready(settings, svc, min(deadline, time.monotonic() + patience), mine=False)
        except StackError as error:
            if svc.name not in OPTIONAL:
                raise
            log.warning("%s skipped: %s", svc.name, error)
    elif svc.missing and svc.name in OPTIONAL:
        log.info("%s is not installed (%s not found); skipped", svc.name, svc.missing)
    else:
        start(settings, svc)
        return True
    return False


def create_topics(settings: Settings) -> None:
    """Create the contract's topics, keeping any that exist (their settings are not changed).

    On a secured broker, also grant leadpulse's principal its ACLs (`streams.stack.acls`).
    """
    from kafka.errors import TopicAlreadyExistsError

    wanted = {
        topic: {
            "num_partitions": settings.topic_partitions,
            "replication_factor": -1,  # the brokers' default (streams.stack.config.replication)
            "configs": {
                "retention.ms": str(settings.topic_retention_ms),
                "min.insync.replicas": str(replication(len(settings.kafka_brokers))[1]),
            },
        }
        for topic in TOPICS
    }
    with quiet("kafka"):
        admin = kafka_admin(settings, 10.0)
        try:
            result = admin.create_topics(wanted, raise_errors=False)
            for topic in result["topics"]:
                if topic["error_code"] == 0:
                    log.info("created topic %s (%d partitions)", topic["name"], settings.topic_partitions)
                elif topic["error_code"] != TopicAlreadyExistsError.errno:
                    raise StackError(f"creating topic {topic['name']} failed: {topic['error_message']}")
            admin.wait_for_topics(list(TOPICS), timeout_ms=30_000)
            if settings.kafka_security_protocol != "PLAINTEXT":
                grant(admin, app_principal(settings), grants(settings))
        finally:
            admin.close()


def down(settings: Settings, timeout: float = STOP_TIMEOUT) -> list[ServiceStatus]:
    """Stop the processes this home started (SIGTERM, SIGKILL after ``timeout``); nothing else."""
    services = [service(settings, name) for name in all_names(settings)]
    alive = [(svc, proc) for svc in services if (proc := ours(svc)) is not None]
    for svc, proc in alive:
        log.info("stopping %s (pid %d)", svc.name, proc.pid)
        send_signal(proc, signal.SIGTERM)  # all at once: they stop in parallel
    deadline = time.monotonic() + timeout
    for svc, proc in alive:
        if not wait_gone(proc, deadline):
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", svc.name, proc.pid, timeout)
            if not stop(proc, signal.SIGKILL, 10):
                raise StackError(f"{svc.name} (pid {proc.pid}) survived SIGKILL")
        log.info("stopped %s", svc.name)
    for svc in services:
        svc.pid_file.unlink(missing_ok=True)
    if not alive:
        log.info("nothing started by %s was running", settings.home)
    return status(settings)


def status(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """What runs where: ours (pid recorded in this home), external (port answers), or not."""
    return [_status(service(settings, name)) for name in selected(settings, services)]


def _status(svc: Service) -> ServiceStatus:
    proc = ours(svc)
    if proc is not None:
        return ServiceStatus(svc.name, proc.address, "running/ours", proc.pid, svc.log)
    if port_open(svc.host, svc.port):
        state = "running/external"
    else:
        state = "not installed" if svc.missing else "stopped"
    return ServiceStatus(svc.name, svc.address, state, None, svc.log)


def kill_service(settings: Settings, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
    """Signal this home's ``name`` process, for fault tests; returns its pid.

    Waits until SIGKILL or SIGTERM took effect, so a test can restart it at once.
    """
    svc = service(settings, name)
    proc = ours(svc)
    if proc is None:
        raise StackError(f"{name} of {settings.home} is not running as ours; nothing to signal")
    log.info("sending %s to %s (pid %d)", sig.name, name, proc.pid)
    if sig in (signal.SIGKILL, signal.SIGTERM):
        if not stop(proc, sig, STOP_TIMEOUT):
            raise StackError(f"{name} (pid {proc.pid}) still runs after {sig.name}")
    else:
        send_signal(proc, sig)
    return proc.pid


def start_service(settings: Settings, name: str, timeout: float = START_TIMEOUT) -> ServiceStatus:
    """Start ``name`` again (after `kill_service`) and wait until it answers."""
    return up(settings, [name], timeout)[0]

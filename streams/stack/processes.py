"""Process supervision for the stack: start in the background, record, recognise, stop.

Kept by hand rather than delegated to a supervisor library: `stack up` returns while
its services keep running, and a later `stack down` or `status` (another process) must
recognise exactly the processes this home started. mirakuru's executors hold their
process in the Python object that started it, and supervisord would add a daemon of
its own to every home; a pid file with the process's start time (so a reused pid is
never mistaken for ours) is the smaller mechanism that keeps those promises.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

from streams.settings import Settings
from streams.stack.config import RENDER
from streams.stack.errors import StackError
from streams.stack.services import Service

log = logging.getLogger(__name__)

POLL = 0.25

# Popen objects of the processes this Python process started: kept so they are reaped
# (no zombies, no ResourceWarning) when a test kills one and starts it again.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


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


class Proc(NamedTuple):
    """A process this home started, as its pid file records it."""

    pid: int
    started: str | None  # start time; None without procfs
    address: str


def running(proc: Proc) -> bool:
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


def recorded(svc: Service) -> Proc | None:
    try:
        record = json.loads(svc.pid_file.read_text())
        return Proc(int(record["pid"]), record["started"], str(record["address"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ours(svc: Service) -> Proc | None:
    """This home's running process of ``svc``, if any (wherever it listens)."""
    proc = recorded(svc)
    return proc if proc is not None and running(proc) else None


def start(settings: Settings, svc: Service) -> None:
    if svc.missing:
        raise StackError(f"cannot start {svc.name}: {svc.missing} not found; run `make install`")
    svc.dir.mkdir(parents=True, exist_ok=True)
    render = RENDER.get(svc.name.partition("-")[0])  # kafka-2 is a broker like kafka
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


def stop(proc: Proc, sig: signal.Signals, timeout: float) -> bool:
    """Send ``sig`` and wait until the process is gone; False if it outlived ``timeout``."""
    send_signal(proc, sig)
    return wait_gone(proc, time.monotonic() + timeout)


def send_signal(proc: Proc, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # already gone: nothing to do
        os.kill(proc.pid, sig)


def wait_gone(proc: Proc, deadline: float) -> bool:
    while running(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True

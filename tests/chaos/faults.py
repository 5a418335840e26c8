"""The soak's processes and the faults it injects into them, one at a time, at random.

`Cast` holds what runs: the stack (three brokers, Redis with its AOF or a Redis Cluster),
the workers (`tests.pipeline.Pipeline`), the ingest API and the exporter. Each fault
breaks one thing as a crash or a stall would and repairs it again; the injector returns
once the repair is done, so the soak knows from when to wait for fresh numbers.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from streams import stack
from streams.settings import Settings
from streams.stack.services import broker_names
from tests.pipeline import LEADPULSE, Pipeline
from tests.services import RedisCluster

#: A broker stays down long enough for its partitions' leaders to move and producers to notice.
BROKER_DOWN_S: Final = (10.0, 20.0)
#: Other crashed processes come back after a pause like a supervisor's restart delay.
PROCESS_DOWN_S: Final = (1.0, 5.0)
#: A stopped worker stays frozen this long past its session timeout, so the group evicts it.
STALL_PAST_TIMEOUT_S: Final = 5.0
BROKER_START_TIMEOUT_S: Final = 300.0


@dataclass
class Cast:
    """What the soak runs, and how to start each piece again."""

    stack: Settings
    pipe: Pipeline
    workers: int
    api_port: int
    exporter_port: int
    secrets: dict[str, str]
    cluster: RedisCluster | None = None
    api: subprocess.Popen[bytes] | None = None
    exporter: subprocess.Popen[bytes] | None = None
    launches: int = 0  # numbers the API and exporter logs

    def start_api(self) -> None:
        self.api = self._start("api", "--host", "127.0.0.1", "--port", str(self.api_port))

    def start_exporter(self) -> None:
        self.exporter = self._start("exporter", "--host", "127.0.0.1", "--port", str(self.exporter_port))

    def start_workers(self) -> None:
        for _ in range(self.workers):
            self.pipe.start_worker()

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.pipe.workers if w.poll() is None]

    def stop(self) -> None:
        """SIGTERM the API, the exporter and the workers, and wait for them."""
        for process in (self.api, self.exporter):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)
        self.pipe.stop_workers()

    def _start(self, command: str, *args: str) -> subprocess.Popen[bytes]:
        self.launches += 1
        log = (self.pipe.logs / f"{command}-{self.launches}.log").open("wb")
        env = {**self.pipe.env(), **self.secrets}
        return subprocess.Popen([LEADPULSE, command, *args], env=env, stdout=log, stderr=subprocess.STDOUT)


Fault = Callable[[Cast, random.Random], Awaitable[None]]


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.kill()
        process.wait()


async def _pause(rng: random.Random, bounds: tuple[float, float]) -> None:
    await asyncio.sleep(rng.uniform(*bounds))


async def worker_sigkill(cast: Cast, rng: random.Random) -> None:
    _kill(rng.choice(cast.live_workers()))
    await _pause(rng, PROCESS_DOWN_S)
    cast.pipe.start_worker()


async def worker_sigstop(cast: Cast, rng: random.Random) -> None:
    victim = rng.choice(cast.live_workers())
    victim.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(cast.pipe.settings.session_timeout_s + STALL_PAST_TIMEOUT_S)
    finally:
        victim.send_signal(signal.SIGCONT)


async def redis_sigkill(cast: Cast, rng: random.Random) -> None:
    """Redis restarts from its AOF; a Cluster master's replica takes over, and the old master rejoins."""
    if cast.cluster is None:
        await asyncio.to_thread(stack.kill_service, cast.stack, "redis")
        await _pause(rng, PROCESS_DOWN_S)
        await asyncio.to_thread(stack.start_service, cast.stack, "redis")
        return
    cluster = cast.cluster
    master = rng.choice(await asyncio.to_thread(cluster.masters))
    cluster.kill(master)
    await asyncio.to_thread(cluster.wait_healthy)  # failed over
    await asyncio.to_thread(cluster.restart, master)
    await asyncio.to_thread(cluster.wait_healthy)  # rejoined and in sync


async def broker_sigkill(cast: Cast, rng: random.Random) -> None:
    name = rng.choice(broker_names(cast.stack))
    await asyncio.to_thread(stack.kill_service, cast.stack, name)
    await _pause(rng, BROKER_DOWN_S)
    await asyncio.to_thread(stack.start_service, cast.stack, name, BROKER_START_TIMEOUT_S)


async def exporter_sigkill(cast: Cast, rng: random.Random) -> None:
    _kill(cast.exporter)
    await _pause(rng, PROCESS_DOWN_S)
    cast.start_exporter()


async def api_sigkill(cast: Cast, rng: random.Random) -> None:
    _kill(cast.api)
    await _pause(rng, PROCESS_DOWN_S)
    cast.start_api()


async def group_restart(cast: Cast, rng: random.Random) -> None:
    """Every worker stops (SIGTERM, as a deploy would) and a new group of them starts."""
    await asyncio.to_thread(cast.pipe.stop_workers)
    cast.start_workers()


#: Every fault by the name the figures and `--faults` give it.
FAULTS: Final[dict[str, Fault]] = {
    "worker-kill": worker_sigkill,  # SIGKILL a worker, start another
    "worker-stop": worker_sigstop,  # SIGSTOP a worker past the session timeout, then SIGCONT
    "redis-kill": redis_sigkill,  # SIGKILL Redis (restart from its AOF) or a Cluster master (failover)
    "broker-kill": broker_sigkill,  # SIGKILL one of the three brokers, restart it
    "exporter-kill": exporter_sigkill,
    "api-kill": api_sigkill,
    "group-restart": group_restart,  # SIGTERM every worker, start a new group
}


def schedule(names: Sequence[str], rng: random.Random) -> list[str]:
    """The next round of faults: every kind once, in random order, so a short soak still meets each."""
    return rng.sample(names, len(names))

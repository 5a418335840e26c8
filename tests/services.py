"""Throwaway local servers for tests and benchmarks that must not share the test stack."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from streams import stack
from streams.settings import Settings

REDIS_START_TIMEOUT_S = 10.0
#: Start, join and (in tests) fail over: node timeout 1 s, so a replica takes over in ~2 s.
CLUSTER_TIMEOUT_S = 60.0
CLUSTER_NODE_TIMEOUT_MS = 1000


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[redis.Redis]:
    """A `redis-server` of our own without persistence: flushing its script cache or
    measuring its memory disturbs nobody, and nobody else moves its figures."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="leadpulse-redis-")
    command = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", workdir]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        _wait_ping(port)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class RedisCluster:
    """Local `redis-server` processes joined by `redis-cli --cluster create`: 3 masters, 3 replicas."""

    ports: list[int]
    processes: dict[int, subprocess.Popen[bytes]]
    workdir: Path
    commands: dict[int, list[str]]

    @property
    def url_port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.url_port}/0"

    def masters(self) -> list[int]:
        """Ports of the live masters now (a failover changes them)."""
        nodes = _cluster_nodes(self.alive())
        return sorted(port for port, flags in nodes.items() if "master" in flags and "fail" not in flags)

    def alive(self) -> int:
        return next(port for port, process in self.processes.items() if process.poll() is None)

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        self.processes[port].kill()
        self.processes[port].wait()

    def restart(self, port: int) -> None:
        """Start a killed node again: its nodes.conf makes it rejoin, as a replica once another took over."""
        node_dir = self.workdir / str(port)
        self.processes[port] = subprocess.Popen(self.commands[port], stdout=(node_dir / "log").open("ab"), stderr=subprocess.STDOUT)
        _wait_ping(port)

    def wait_healthy(self, timeout_s: float = CLUSTER_TIMEOUT_S) -> None:
        """Until every live node sees all slots served by live masters (after a kill: its replica
        promoted) and every live replica is in sync, ready for the next failover."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = {port: _cluster_state(port) for port, p in self.processes.items() if p.poll() is None}
            masters = self.masters()
            dead = {port for port, p in self.processes.items() if p.poll() is not None}
            synced = all(_replica_synced(port) for port, p in self.processes.items() if p.poll() is None and port not in masters)
            healthy = all(state == "ok" for state in states.values()) and len(masters) == len(self.ports) // 2
            if healthy and synced and not dead & set(masters):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster not ok after {timeout_s}s: {states}")
            time.sleep(0.2)


@contextmanager
def redis_cluster(nodes: int = 6) -> Iterator[RedisCluster]:
    """A Redis Cluster of `nodes` local servers (half of them replicas) on free ports, without persistence."""
    server = shutil.which("redis-server") or "redis-server"
    workdir = Path(tempfile.mkdtemp(prefix="leadpulse-cluster-"))
    ports = [free_port() for _ in range(nodes)]
    processes: dict[int, subprocess.Popen[bytes]] = {}
    commands: dict[int, list[str]] = {}
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir()
            command = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                       "--cluster-port", str(free_port()), "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                       "--repl-diskless-sync-delay", "0",
                       "--save", "", "--appendonly", "no", "--dir", str(node_dir)]  # fmt: skip
            commands[port] = command
            processes[port] = subprocess.Popen(command, stdout=(node_dir / "log").open("wb"), stderr=subprocess.STDOUT)
        for port in ports:
            _wait_ping(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=CLUSTER_TIMEOUT_S,
        )  # fmt: skip
        cluster = RedisCluster(ports, processes, workdir, commands)
        cluster.wait_healthy()
        yield cluster
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ping(port: int) -> None:
    with redis.Redis(port=port) as client:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not answer; is redis-server installed?") from None
                time.sleep(0.05)


def _cluster_state(port: int) -> str:
    try:
        with redis.Redis(port=port, socket_timeout=1) as client:
            return str(client.cluster("INFO")["cluster_state"])
    except redis.RedisError as exc:
        return f"unreachable ({exc})"


def _replica_synced(port: int) -> bool:
    """A replica can take over only once it has synchronised with its master."""
    with redis.Redis(port=port, socket_timeout=1) as client:
        return client.info("replication").get("master_link_status") == "up"


def _cluster_nodes(port: int) -> dict[int, str]:
    """Port -> flags (`myself,master`, `slave`, `master,fail`...) as node `port` sees the cluster."""
    with redis.Redis(port=port, decode_responses=True) as client:
        nodes = client.cluster("NODES")
    return {int(address.split("@")[0].rpartition(":")[2]): node["flags"] for address, node in nodes.items()}


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports (brokers' controllers), below the ephemeral range:
    there no outgoing connection takes one of them between this choice and the bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        first = random.randrange(max(1024, low - 8000), low - count)
        if all(_bindable(first + i) for i in range(count)):
            return first


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def own_broker(base: Settings, home: Path) -> Iterator[Settings]:
    """`base` with a Kafka broker of its own on free ports (fresh topics), stopped afterwards.

    For tests whose records must not mix with the shared topics, or that read whole topics.
    """
    settings = base.model_copy(
        update={"home": home, "kafka_bootstrap": f"127.0.0.1:{free_port()}", "kafka_controller_port": free_port()}
    )
    try:
        stack.up(settings, ["kafka"])
        yield settings
    finally:
        stack.down(settings)

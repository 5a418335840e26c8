"""The one place Redis clients are built: single node or Cluster, sync or asyncio.

Every component (worker, exporter, report, rebuild, demo, the stack's probe) asks here,
so `LEADPULSE_REDIS_CLUSTER` and the TLS trust of `Settings.redis_connect_url` hold for
all of them. redis-py's cluster clients route each command by its key's hash slot and
follow `MOVED`/`ASK`; their pipelines send one batch per node (`aggregates.store`).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, TypeAlias

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from streams.settings import Settings

SyncRedis: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"
AsyncRedis: TypeAlias = "redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster"


#: Under `LEADPULSE_HOME`: the Cluster's nodes as a client last saw them, one `host:port`
#: a line. A process starting while the URL's node is down (a failed master) finds the
#: cluster through the others.
KNOWN_NODES_FILE = "redis-cluster-nodes"


def redis_client(settings: Settings, timeout_s: float | None = None) -> SyncRedis:
    """A synchronous client; `timeout_s` bounds connecting and every reply."""
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if not settings.redis_cluster:
        return redis.Redis.from_url(settings.redis_connect_url, **options)
    known = [redis.cluster.ClusterNode(host, port) for host, port in _startup_nodes(settings)]
    client = redis.cluster.RedisCluster.from_url(settings.redis_connect_url, startup_nodes=known, **options)
    _remember(settings, [(node.host, node.port) for node in client.get_nodes()])
    return client


def async_redis_client(settings: Settings) -> AsyncRedis:
    """An asyncio client (the worker's); it connects on first use, inside the running loop."""
    if not settings.redis_cluster:
        return redis.asyncio.Redis.from_url(settings.redis_connect_url)
    known = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in _startup_nodes(settings)]
    return redis.asyncio.cluster.RedisCluster.from_url(settings.redis_connect_url, startup_nodes=known)


def note_cluster_nodes(settings: Settings) -> None:
    """Record the Cluster's nodes now, if it answers (a worker does at start: its own
    asyncio client connects later, and waits out an unreachable Redis by itself)."""
    if settings.redis_cluster:
        with suppress(redis.RedisError, redis.cluster.RedisClusterException):
            redis_client(settings, timeout_s=5).close()


def _remember(settings: Settings, nodes: list[tuple[str, int]]) -> None:
    """Note the Cluster's nodes for the next process; a home that cannot be written is no error."""
    path = settings.home.expanduser() / KNOWN_NODES_FILE
    with suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{host}:{port}\n" for host, port in sorted(set(nodes))))


def _startup_nodes(settings: Settings) -> list[tuple[str, int]]:
    """The URL's node first (redis-py tries them in order), then the nodes last seen."""
    try:
        lines = (settings.home.expanduser() / KNOWN_NODES_FILE).read_text().split()
    except OSError:
        lines = []
    known = [(host, int(port)) for host, _, port in (line.rpartition(":") for line in lines) if port.isdigit()]
    return [settings.redis_host_port, *(node for node in known if node != settings.redis_host_port)]


def primaries(client: SyncRedis) -> list[redis.Redis]:
    """A client per node holding slots (the only one of a single server): what SCAN must visit."""
    if isinstance(client, redis.cluster.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def moving_slots(reply: Any) -> set[int]:
    """The slots a `CLUSTER NODES` reply shows as migrating or importing (`[slot->-id]`,
    `[slot-<-id]`), whether redis-py parsed it into its node map or left it as text."""
    if isinstance(reply, dict) and all(isinstance(v, dict) for v in reply.values()):
        nodes = reply.values()
        if any("migrations" in node for node in nodes):  # one node's parsed map
            return {int(m["slot"]) for node in nodes for m in node.get("migrations", ())}
        return set().union(*(moving_slots(v) for v in nodes))  # {node name: reply} of several
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return {int(item[1:].split("-", 1)[0]) for item in text.split() if item.startswith("[") and ("->-" in item or "-<-" in item)}


def cluster_moving_slots(client: SyncRedis) -> set[int]:
    """Slots being resharded anywhere in the Cluster (each master shows only its own); none on one server."""
    if not isinstance(client, redis.cluster.RedisCluster):
        return set()
    return moving_slots(client.execute_command("CLUSTER NODES", target_nodes=client.get_primaries()))


async def async_cluster_moving_slots(client: AsyncRedis) -> set[int]:
    """`cluster_moving_slots` for the worker's asyncio client (the masters asked at once)."""
    if not isinstance(client, redis.asyncio.cluster.RedisCluster):
        return set()
    return moving_slots(await client.execute_command("CLUSTER NODES", target_nodes=client.get_primaries()))


def queue(pipe: Any, client: SyncRedis, *command: Any, **options: Any) -> None:
    """Queue `command` on a pipeline of `client`, routed by its first key's slot on a Cluster.

    redis-py's synchronous cluster pipeline asks a server (COMMAND GETKEYS) where each
    EVAL/EVALSHA goes - a round trip per script call; the slot map it already holds
    answers the same. A stale map is corrected by MOVED, which the pipeline follows.
    """
    if isinstance(client, redis.cluster.RedisCluster):
        key = command[3] if command[0] in ("EVAL", "EVALSHA") else command[1]
        options["target_nodes"] = client.get_node_from_key(key)
    pipe.execute_command(*command, **options)

"""The one place Redis clients are built: single node or Cluster, sync or asyncio.

Every component (worker, exporter, report, rebuild, demo, the stack's probe) asks here,
so `LEADPULSE_REDIS_CLUSTER` and the TLS trust of `Settings.redis_connect_url` hold for
all of them. redis-py's cluster clients route each command by its key's hash slot and
follow `MOVED`/`ASK`; their pipelines send one batch per node (`aggregates.store`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from streams.settings import Settings

SyncRedis: TypeAlias = "redis.Redis | redis.cluster.RedisCluster"
AsyncRedis: TypeAlias = "redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster"


def redis_client(settings: Settings, timeout_s: float | None = None) -> SyncRedis:
    """A synchronous client; `timeout_s` bounds connecting and every reply."""
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if settings.redis_cluster:
        return redis.cluster.RedisCluster.from_url(settings.redis_connect_url, **options)
    return redis.Redis.from_url(settings.redis_connect_url, **options)


def async_redis_client(settings: Settings) -> AsyncRedis:
    """An asyncio client (the worker's); it connects on first use, inside the running loop."""
    if settings.redis_cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(settings.redis_connect_url)
    return redis.asyncio.Redis.from_url(settings.redis_connect_url)


def primaries(client: SyncRedis) -> list[redis.Redis]:
    """A client per node holding slots (the only one of a single server): what SCAN must visit."""
    if isinstance(client, redis.cluster.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


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

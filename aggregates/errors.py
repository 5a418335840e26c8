"""Errors of the aggregates layer, under one root so callers can catch them together."""

from __future__ import annotations

from typing import Final

from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)


class AggregateError(Exception):
    """Redis refused an aggregates command for a reason retrying will not cure.

    Connection and timeout errors are not wrapped (the worker retries those); anything
    here needs an operator: read the message, fix the cause, restart the worker.
    """


class LayoutMismatch(AggregateError):
    """The prefix holds aggregates written with other shards, attribute dimensions or key layout.

    Stored lead state records segments in the order of the configured dimensions, and
    leads are found by shard and bucket, so mixing layouts would corrupt counters: run
    `leadpulse rebuild`, or restore the previous LEADPULSE_SHARDS /
    LEADPULSE_ATTRIBUTE_DIMENSIONS (or leadpulse version).
    """


class ReshardingInProgress(AggregateError):
    """A slot of this prefix's shards is moving between Cluster masters.

    A shard's script touches many keys of its slot, and one that meets a key already
    moved fails after some of its writes: workers must not write while a resharding runs.
    """


#: What Redis answers while it restarts: wait and send again.
CONNECTION_ERRORS: Final = (ConnectionError, TimeoutError, OSError)
#: What a Redis Cluster answers while it recovers (the slot's master is down or not yet
#: replaced) or a slot is moving. From a server that is not meant to be a Cluster node,
#: they mean LEADPULSE_REDIS_CLUSTER is missing: that needs an operator.
CLUSTER_RECOVERY_ERRORS: Final = (ClusterDownError, TryAgainError, SlotNotCoveredError)
#: Everything the worker waits out; the store raises the cluster ones as they are only on a Cluster.
TRANSIENT_ERRORS: Final = CONNECTION_ERRORS + CLUSTER_RECOVERY_ERRORS
#: Everything a Redis or Redis Cluster client raises (cluster routing errors are no `RedisError`).
REDIS_ERRORS: Final = (RedisError, RedisClusterException)

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


#: What Redis answers while it recovers - a restart, a Cluster failover (the slot's
#: master is down or not yet replaced), a slot that is moving: wait and send again.
#: Everything else needs an operator.
TRANSIENT_ERRORS: Final = (ConnectionError, TimeoutError, ClusterDownError, TryAgainError, SlotNotCoveredError, OSError)
#: Everything a Redis or Redis Cluster client raises (cluster routing errors are no `RedisError`).
REDIS_ERRORS: Final = (RedisError, RedisClusterException)

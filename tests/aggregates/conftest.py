"""The aggregates tests use the suite's Redis (tests/conftest.py) and tidy up after it.

Tests share that Redis, so nothing here flushes: each test works under its own key
prefix, and the keys of that prefix are deleted when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def key_prefix(key_prefix: str, redis_client: redis.Redis) -> Iterator[str]:
    """The suite's fresh prefix; its keys are deleted afterwards."""
    yield key_prefix
    for key in redis_client.scan_iter(match=f"{key_prefix}:*", count=1000):
        redis_client.unlink(key)

"""Session fixtures: the test stack, started once and reused, and clients on it.

The test stack has its own home (.leadpulse-test) and ports, so a running demo stack is
never touched. Each of those defaults can be overridden with LEADPULSE_TEST_<FIELD>
(e.g. LEADPULSE_TEST_REDIS_URL); other settings come from LEADPULSE_* as usual. The
stack stays up after the session so the next one starts in a second; `make down`
stops it. Tests share its Redis and topics, so they isolate themselves with
`key_prefix` rather than flushing anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from streams import stack
from streams.settings import Settings
from tests import REPO

TEST_DEFAULTS: dict[str, Any] = {
    "home": REPO / ".leadpulse-test",
    "kafka_bootstrap": "127.0.0.1:19092",
    "kafka_controller_port": 19095,
    "redis_url": "redis://127.0.0.1:16379/0",
    "prometheus_port": 19090,
    "alertmanager_port": 19093,
    "exporter_port": 19816,
    "api_port": 19817,
    "alert_webhook_url": "http://127.0.0.1:19819/alerts",
}


def make_test_settings() -> Settings:
    """Settings of the test stack: TEST_DEFAULTS unless LEADPULSE_TEST_<FIELD> says otherwise."""
    values = {name: os.environ.get(f"LEADPULSE_TEST_{name.upper()}", default) for name, default in TEST_DEFAULTS.items()}
    return Settings(**values)


STACK_FIXTURES = frozenset({"stack_settings", "kafka_bootstrap", "redis_client"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the real stack is an integration test, whether or not its module says so."""
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    """The running test stack (started, or reused if already up)."""
    settings = make_test_settings()
    stack.up(settings)
    return settings


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_settings: Settings) -> str:
    return stack_settings.kafka_bootstrap


@pytest.fixture
def redis_client(stack_settings: Settings) -> Iterator[redis.Redis]:
    """A client on the test stack's Redis; write only under ``key_prefix``."""
    client = redis.Redis.from_url(stack_settings.redis_url)
    yield client
    client.close()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test (or earlier session) uses."""
    return f"t{uuid.uuid4().hex[:8]}"

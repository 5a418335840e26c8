"""Pipelines for the review tests: the contract examples and a generated year of marketing, in Redis.

Each is applied once per test session under its own key prefix (through `AggregateStore`, the
worker's own write path) and deleted afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from aggregates.connect import redis_client
from aggregates.store import AggregateStore
from streams.events import Event, parse_record
from streams.settings import Settings
from tests import contract_examples

#: Day T of the generated feed's review: its month review is November 2026.
AS_OF = date(2026, 12, 1)
NOW_MS = int(datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp() * 1000)
LEADPULSE = Path(sys.executable).parent / "leadpulse"


def generated_events(path: Path) -> list[Event]:
    """400 days of the demo's simulated marketing (seven sources; paid search converts a third as well from 11 November), as events."""
    subprocess.run([str(LEADPULSE), "generate", "--days", "400", "--leads-per-day", "25", "--now", "2026-12-01",
                    "--seed", "14", "--drop", "paid_search:0.3@760s", "-o", str(path)], check=True, capture_output=True)
    parsed = (parse_record(line, NOW_MS) for line in path.read_text().splitlines())
    return [e for e in parsed if isinstance(e, Event)]


def load(settings: Settings, events: list[Event]) -> None:
    client = redis_client(settings)
    store = AggregateStore(client, settings)
    for first in range(0, len(events), 2000):
        store.apply(events[first : first + 2000], rejected={})
    client.close()


def drop(settings: Settings) -> None:
    client = redis_client(settings)
    for key in client.scan_iter(match=f"{settings.key_prefix}:*", count=1000):
        client.unlink(key)
    client.close()


@pytest.fixture(scope="session")
def generated(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, list[Event]]]:
    """The generated feed applied under a fresh prefix: its settings and its events."""
    events = generated_events(tmp_path_factory.mktemp("feed") / "events.jsonl")
    settings = stack_settings.model_copy(update={"key_prefix": f"r{uuid.uuid4().hex[:8]}"})
    load(settings, events)
    yield settings, events
    drop(settings)


@pytest.fixture(scope="session")
def examples(stack_settings: Settings) -> Iterator[Settings]:
    """The contract's worked examples applied under a fresh prefix."""
    settings = stack_settings.model_copy(update={"key_prefix": f"r{uuid.uuid4().hex[:8]}"})
    load(settings, contract_examples.feed_events())
    yield settings
    drop(settings)


@pytest.fixture(scope="session")
def empty(stack_settings: Settings) -> Settings:
    """A prefix nothing was ever written under: an empty pipeline."""
    return stack_settings.model_copy(update={"key_prefix": f"r{uuid.uuid4().hex[:8]}"})

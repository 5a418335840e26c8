"""Pipelines for the review tests: the contract examples and a generated year of marketing, in Redis.

Each is applied once per test session under its own key prefix (through `AggregateStore`, the
worker's own write path) and deleted afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Final

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


#: The follow-up feed: (lead, created, source, owner, minutes to first touch or None, days to win
#: or None, minutes to disqualification or None), each lead's events at those offsets.
#: With the default SLA of 1 day around the clock, in November 2026: N1, N2 met; N3
#: (touched after 30 h) and N4 (never) breached; N5's deadline (1 December) is after the
#: month's end: touched, not past its deadline; N6 disqualified untouched before its deadline:
#: neither. October: O1 met, O2 breached.
FOLLOW_UP_LEADS: Final = (
    ("N1", "2026-11-02T10:00:00", "paid_search", "ana", 10, 8, None),
    ("N2", "2026-11-03T10:00:00", "paid_search", "ana", 120, None, None),
    ("N3", "2026-11-04T10:00:00", "paid_search", "ben", 1800, 16, None),
    ("N4", "2026-11-05T10:00:00", "email", "ben", None, None, None),
    ("N5", "2026-11-30T12:00:00", "email", "ana", 5, None, None),
    ("N6", "2026-11-06T10:00:00", "email", "ana", None, None, 60),
    ("O1", "2026-10-05T10:00:00", "paid_search", "ana", 60, 15, None),
    ("O2", "2026-10-06T10:00:00", "paid_search", "ben", 4320, None, None),
)


def follow_up_events() -> list[Event]:
    """`FOLLOW_UP_LEADS` as contract events, validated as a worker would on 1 December 2026."""
    lines = []
    for lead, created, source, owner, touch, won, disqualified in FOLLOW_UP_LEADS:
        start = datetime.fromisoformat(created).replace(tzinfo=timezone.utc)

        def event(kind: str, after: timedelta, **fields: object) -> None:
            at = (start + after).isoformat().replace("+00:00", "Z")
            lines.append(json.dumps({"event_id": f"{lead}-{kind}", "type": kind, "occurred_at": at, "lead_id": lead, **fields}))

        event("lead.created", timedelta(), source=source, attributes={"owner": owner})
        if touch is not None:
            event("lead.contacted", timedelta(minutes=touch), channel="call")
        if won is not None:
            event("deal.won", timedelta(days=won), deal_id=f"D-{lead}", amount=1000)
        if disqualified is not None:
            event("lead.disqualified", timedelta(minutes=disqualified))
    parsed = (parse_record(line, NOW_MS) for line in lines)
    return [e for e in parsed if isinstance(e, Event)]


@pytest.fixture(scope="session")
def follow_up(stack_settings: Settings) -> Iterator[Settings]:
    """The follow-up feed applied under a fresh prefix, with `owner` a dimension."""
    settings = stack_settings.model_copy(update={"key_prefix": f"r{uuid.uuid4().hex[:8]}", "attribute_dimensions": "owner"})
    load(settings, follow_up_events())
    yield settings
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

"""The contract's worked examples (tests/examples/), loaded one way for every test that uses them."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Final

from streams.events import Event, Rejection, parse_record

EXAMPLES = Path(__file__).parent / "examples"
#: The day the expected series are computed as of, and the validation clock that goes with it.
AS_OF = date(2026, 6, 15)
NOW_MS = int(datetime(2026, 6, 15, 12, tzinfo=timezone.utc).timestamp() * 1000)


#: The feeds: the contract's (v1.1) and the follow-up one (v1.2), as of the same day T.
CONTRACT: Final = "contract-examples"
FOLLOW_UP: Final = "followup-examples"


def parsed_feed(feed: str = CONTRACT) -> list[Event | Rejection]:
    """Every record of the feed, validated as a worker would on day T."""
    lines = (EXAMPLES / f"{feed}.jsonl").read_text().splitlines()
    return [parse_record(line, NOW_MS) for line in lines]


def feed_events(feed: str = CONTRACT) -> list[Event]:
    """The feed's valid events."""
    return [e for e in parsed_feed(feed) if isinstance(e, Event)]


def expected(feed: str = CONTRACT) -> dict[str, Any]:
    """The expected file: `as_of`, record counts and the series the feed must produce."""
    return json.loads((EXAMPLES / f"{feed}.expected.json").read_text())

"""The follow-up examples (contract v1.2) through the real Redis, against the expected file and the reference."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from aggregates.read import Series, read_series
from aggregates.store import AggregateStore
from streams.events import Event
from streams.settings import Settings
from tests import contract_examples
from tests.aggregates.reference import assert_same_series, reference_series
from tests.aggregates.test_contract_examples import FOLLOW_UP_SERIES, key_of
from tests.contract_examples import AS_OF, FOLLOW_UP

RATIOS = {"leadpulse_window_follow_up_met_ratio"}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return contract_examples.expected(FOLLOW_UP)


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return contract_examples.feed_events(FOLLOW_UP)


@pytest.fixture
def published(events: list[Event], redis_client: redis.Redis, key_prefix: str) -> list[Series]:
    """The feed applied by the store as the workers do, read with T pinned (evaluated at T's end)."""
    settings = Settings(key_prefix=key_prefix, as_of=AS_OF)
    outcome = AggregateStore(redis_client, settings).apply(events)
    assert outcome.counts == {"applied": len(events) - 1, "duplicate": 1, "rejected": 0}  # fx-04 twice
    return read_series(redis_client, settings, AS_OF)


def follow_up(series: list[Series]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The follow-up series of dimension `all`: the expected file's scope."""
    return {
        key_of(s.name, s.labels): s.value
        for s in series
        if s.name.startswith(FOLLOW_UP_SERIES) and s.labels["dimension"] == "all"
    }


def test_the_feed_has_the_documented_records(events: list[Event], expected: dict[str, Any]) -> None:
    assert len(contract_examples.parsed_feed(FOLLOW_UP)) == expected["records"]
    assert len(events) == expected["records"] - expected["rejected"]


@pytest.mark.parametrize("source", ["redis", "reference"])
def test_every_follow_up_series_of_the_expected_file_and_nothing_else(
    source: str, request: pytest.FixtureRequest, events: list[Event], expected: dict[str, Any]
) -> None:
    series = request.getfixturevalue("published") if source == "redis" else reference_series(events, AS_OF)
    got = follow_up(series)
    want = {key_of(w["name"], w["labels"]): w["value"] for w in expected["series"]}
    for key, value in want.items():
        assert got.get(key) == pytest.approx(value, abs=1e-9), key
    extra = {key: value for key, value in got.items() if key not in want}
    assert all(value == 0 and key[0] not in RATIOS for key, value in extra.items()), extra


def test_store_and_reference_agree_on_every_series_of_the_feed(published: list[Series], events: list[Event]) -> None:
    assert_same_series(published, reference_series(events, AS_OF))

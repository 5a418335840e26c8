"""The contract's worked examples, end to end through the real Redis and the reference."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from aggregates.read import Series, read_series
from aggregates.store import AggregateStore
from streams.events import Event, Rejection
from streams.settings import Settings
from tests import contract_examples
from tests.aggregates.reference import assert_same_series, reference_series
from tests.contract_examples import AS_OF

RATIOS = {
    "leadpulse_cohort_conversion_ratio",
    "leadpulse_cohort_qualified_conversion_ratio",
    "leadpulse_cohort_leads_per_customer",
    "leadpulse_window_conversion_ratio",
    "leadpulse_window_conversion_ratio_lower",
    "leadpulse_window_conversion_ratio_upper",
    "leadpulse_window_win_ratio",
}

FOLLOW_UP_SERIES = (
    "leadpulse_window_first_touch",
    "leadpulse_window_follow_up",
    "leadpulse_leads_",
    "leadpulse_oldest_awaiting",
)

Key = tuple[str, tuple[tuple[str, str], ...]]


def key_of(name: str, labels: dict[str, Any]) -> Key:
    return name, tuple(sorted((k, str(v)) for k, v in labels.items()))


def in_expected_scope(series: Series) -> bool:
    """The expected file is a subset: month cohorts, 7d/30d windows, histogram of `all`.

    It lists no matured series and no alert checks (tests/aggregates/test_matured.py and
    test_checks.py hold those to hand-computed values), and no follow-up series of v1.2
    (the follow-up examples do: tests/aggregates/test_followup_examples.py).
    """
    labels = series.labels
    if labels.get("period") == "week" or labels.get("window") not in (None, "7d", "30d"):
        return False
    if "within" in labels or "check" in labels or series.name.startswith(FOLLOW_UP_SERIES):
        return False
    return not (series.name.startswith("leadpulse_window_time_to_convert") and labels["dimension"] != "all")


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return contract_examples.expected()


@pytest.fixture(scope="module")
def parsed() -> list[Event | Rejection]:
    return contract_examples.parsed_feed()


@pytest.fixture
def published(parsed: list[Event | Rejection], redis_client: redis.Redis, key_prefix: str) -> list[Series]:
    settings = Settings(key_prefix=key_prefix, as_of=AS_OF)
    store = AggregateStore(redis_client, settings)
    outcome = store.apply([e for e in parsed if isinstance(e, Event)], rejected={"leadpulse.leads": 1})
    assert outcome.counts["rejected"] == 1
    return read_series(redis_client, settings, AS_OF)


@pytest.fixture(params=["redis", "reference"])
def source(request: pytest.FixtureRequest, parsed: list[Event | Rejection]) -> list[Series]:
    """What Redis publishes, and what the reference model computes from the contract."""
    if request.param == "reference":
        return reference_series([e for e in parsed if isinstance(e, Event)], AS_OF)
    published: list[Series] = request.getfixturevalue("published")
    return published


def test_feed_has_the_documented_record_and_rejection_counts(
    parsed: list[Event | Rejection], expected: dict[str, Any]
) -> None:
    assert len(parsed) == expected["records"]
    assert sum(isinstance(p, Rejection) for p in parsed) == expected["rejected"]


def test_every_expected_series_is_published_with_its_value(source: list[Series], expected: dict[str, Any]) -> None:
    got = {key_of(s.name, s.labels): s.value for s in source}
    for want in expected["series"]:
        key = key_of(want["name"], want["labels"])
        omittable = want["value"] == 0 and want["name"] not in RATIOS
        if key in got:
            assert got[key] == pytest.approx(want["value"], abs=1e-9), key
        else:
            assert omittable, f"missing {key} = {want['value']}"


def test_nothing_published_within_the_expected_scope_contradicts_it(
    source: list[Series], expected: dict[str, Any]
) -> None:
    listed = {key_of(s["name"], s["labels"]) for s in expected["series"]}
    extra = [s for s in source if in_expected_scope(s) and key_of(s.name, s.labels) not in listed]
    assert all(s.value == 0 and s.name not in RATIOS for s in extra), extra


def test_store_and_reference_model_publish_identical_series(
    published: list[Series], parsed: list[Event | Rejection]
) -> None:
    reference = reference_series([e for e in parsed if isinstance(e, Event)], AS_OF)
    assert_same_series(published, reference)


def test_replaying_the_feed_changes_no_series(
    parsed: list[Event | Rejection], published: list[Series], redis_client: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(key_prefix=key_prefix)
    events = [e for e in parsed if isinstance(e, Event)]
    outcome = AggregateStore(redis_client, settings).apply(events[::-1])
    assert outcome.counts["applied"] == sum(e.type == "deal.created" for e in events)
    assert_same_series(read_series(redis_client, settings, AS_OF), published)

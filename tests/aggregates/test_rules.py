"""The pure calendar, histogram and ratio maths, table-driven."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from aggregates import rules
from streams.events import parse_timestamp_ms
from tests import contract_examples


def ms(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


@pytest.mark.parametrize(
    ("instant", "week", "month"),
    [
        ("2026-06-15T12:00:00+00:00", "2026-W25", "2026-06"),
        ("2026-06-14T23:59:59.999+00:00", "2026-W24", "2026-06"),  # Sunday ends the ISO week
        ("2027-01-01T00:00:00+00:00", "2026-W53", "2027-01"),  # 2026 has 53 ISO weeks
        ("2024-12-30T00:00:00+00:00", "2025-W01", "2024-12"),  # week-year runs ahead of the year
        ("2021-01-03T23:00:00+00:00", "2020-W53", "2021-01"),
        ("2026-06-01T01:30:00+03:00", "2026-W22", "2026-05"),  # still 31 May in UTC
        ("2026-11-02T10:00:00-05:00", "2026-W45", "2026-11"),
        ("1969-12-31T23:59:59+00:00", "1970-W01", "1969-12"),  # before the epoch: floor, not truncation
    ],
)
def test_cohort_labels_are_utc_iso_week_and_month(instant: str, week: str, month: str) -> None:
    assert rules.iso_week_label(ms(instant)) == week
    assert rules.month_label(ms(instant)) == month


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        ("2026-06-01T01:30:00+03:00", date(2026, 5, 31)),
        ("2026-06-15T00:00:00Z", date(2026, 6, 15)),
        ("2026-06-15T23:59:59.999Z", date(2026, 6, 15)),
        ("1969-12-31T23:00:00Z", date(1969, 12, 31)),
    ],
)
def test_epoch_day_is_the_utc_calendar_day(instant: str, day: date) -> None:
    occurred = parse_timestamp_ms(instant)
    assert isinstance(occurred, int)
    assert rules.day_date(rules.epoch_day(occurred)) == day


@pytest.mark.parametrize(
    ("days", "first", "last"),
    [(1, date(2026, 6, 15), date(2026, 6, 15)), (7, date(2026, 6, 9), date(2026, 6, 15)), (30, date(2026, 5, 17), date(2026, 6, 15))],
)
def test_window_covers_t_minus_d_plus_1_through_t(days: int, first: date, last: date) -> None:
    span = rules.window_day_range(date(2026, 6, 15), days)
    assert len(span) == days
    assert (rules.day_date(span[0]), rules.day_date(span[-1])) == (first, last)


def test_published_cohorts_are_the_twelve_latest_weeks_and_months_up_to_t() -> None:
    cohorts = rules.published_cohorts(date(2026, 2, 3))
    weeks = [label for period, label in cohorts if period == "week"]
    months = [label for period, label in cohorts if period == "month"]
    assert weeks[:2] == ["2026-W06", "2026-W05"] and weeks[-1] == "2025-W47" and len(set(weeks)) == 12
    assert months == [
        "2026-02", "2026-01", "2025-12", "2025-11", "2025-10", "2025-09",
        "2025-08", "2025-07", "2025-06", "2025-05", "2025-04", "2025-03",
    ]  # fmt: skip
    assert all(rules.period_of(label) == period for period, label in cohorts)


@pytest.mark.parametrize(
    ("created", "converted", "seconds", "bucket"),
    [
        ("2026-06-15T07:00:00Z", "2026-06-15T08:00:00Z", 3_600, 0),
        ("2026-06-15T08:00:00Z", "2026-06-15T07:00:00Z", 0, 0),  # won before created: never below 0
        ("2026-06-01T09:00:00Z", "2026-06-02T08:59:59Z", 86_399, 0),
        ("2026-06-01T09:00:00Z", "2026-06-02T09:00:00Z", 86_400, 0),  # le=86400 holds exactly 1 day
        ("2026-06-01T09:00:00Z", "2026-06-02T09:00:01Z", 86_401, 1),  # a second more is the next bucket
        ("2026-06-01T09:00:00Z", "2026-06-10T09:00:00Z", 9 * 86_400, 3),
        ("2026-01-01T00:00:00Z", "2026-06-30T00:00:00Z", 180 * 86_400, 7),
        ("2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z", 181 * 86_400, 8),  # +Inf
    ],
)
def test_time_to_convert_is_exact_seconds_in_inclusive_buckets(created: str, converted: str, seconds: int, bucket: int) -> None:
    elapsed = rules.ttc_ms(ms(created.replace("Z", "+00:00")), ms(converted.replace("Z", "+00:00")))
    assert elapsed == seconds * 1000
    assert rules.ttc_bucket(elapsed) == bucket


def test_ratio_over_zero_is_not_a_number_to_export() -> None:
    assert rules.ratio(3, 0) is None
    assert rules.ratio(0, 4) == 0.0
    assert rules.wilson_interval(0, 0) is None


def test_wilson_interval_matches_every_bound_of_the_expected_file() -> None:
    """Each (lower, upper) pair of the contract examples, with its window's counts."""
    expected = contract_examples.expected()
    values = {(s["name"], tuple(sorted(s["labels"].items()))): s["value"] for s in expected["series"]}
    checked = 0
    for (name, labels), lower in values.items():
        if name != "leadpulse_window_conversion_ratio_lower":
            continue
        leads = values[("leadpulse_window_leads", labels)]
        customers = values.get(("leadpulse_window_customers", tuple(sorted({**dict(labels), "basis": "cohort"}.items()))), 0)
        interval = rules.wilson_interval(int(customers), int(leads))
        assert interval is not None
        assert interval == pytest.approx((lower, values[("leadpulse_window_conversion_ratio_upper", labels)]), abs=1e-12)
        checked += 1
    assert checked == 15


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 50), (50, 50), (3, 7), (1, 1000)])
def test_wilson_interval_stays_within_0_1_and_holds_the_estimate(k: int, n: int) -> None:
    interval = rules.wilson_interval(k, n)
    assert interval is not None
    lower, upper = interval
    assert 0.0 <= lower <= k / n <= upper <= 1.0

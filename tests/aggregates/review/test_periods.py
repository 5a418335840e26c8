"""The review's calendar: the latest complete month or quarter, and what it compares with."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.review.periods import KINDS, Period, PeriodKind, review_period


@pytest.mark.parametrize(
    ("kind", "as_of", "start", "end"),
    [
        ("month", date(2026, 12, 1), date(2026, 11, 1), date(2026, 11, 30)),
        ("month", date(2026, 11, 30), date(2026, 11, 1), date(2026, 11, 30)),
        ("month", date(2026, 11, 29), date(2026, 10, 1), date(2026, 10, 31)),
        ("month", date(2026, 1, 15), date(2025, 12, 1), date(2025, 12, 31)),
        ("quarter", date(2026, 12, 1), date(2026, 7, 1), date(2026, 9, 30)),
        ("quarter", date(2026, 3, 31), date(2026, 1, 1), date(2026, 3, 31)),
        ("quarter", date(2026, 2, 10), date(2025, 10, 1), date(2025, 12, 31)),
    ],
)
def test_the_review_covers_the_latest_period_complete_by_day_t(kind: PeriodKind, as_of: date, start: date, end: date) -> None:
    assert review_period(kind, as_of) == Period(kind, start, end)


def test_previous_and_year_before_periods_and_their_labels() -> None:
    november = review_period("month", date(2026, 12, 1))
    assert (november.label, november.days, november.months) == ("November 2026", 30, ("2026-11",))
    assert november.previous() == Period("month", date(2026, 10, 1), date(2026, 10, 31))
    assert november.year_before() == Period("month", date(2025, 11, 1), date(2025, 11, 30))
    q1 = Period.starting("quarter", date(2024, 1, 1))
    assert (q1.label, q1.days, q1.months) == ("2024 Q1", 91, ("2024-01", "2024-02", "2024-03"))  # a leap year
    assert q1.previous() == Period("quarter", date(2023, 10, 1), date(2023, 12, 31))
    assert q1.year_before().start == date(2023, 1, 1)


@given(st.sampled_from(KINDS), st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)))
def test_the_period_has_ended_by_day_t_and_the_next_one_has_not(kind: PeriodKind, as_of: date) -> None:
    period = review_period(kind, as_of)
    assert period.end <= as_of < period.shifted(1).end
    assert period.previous().end + timedelta(days=1) == period.start
    assert period.days == sum(1 for _ in range(period.days)) and period.start.day == 1

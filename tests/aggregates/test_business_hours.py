"""The touch deadline in business hours, against cases computed by hand on a calendar."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates.business_hours import BusinessHours, FollowUpClock, parse_duration_ms
from streams.settings import Settings

HOUR = 3_600_000
OFFICE = BusinessHours.parse("Mon-Fri 09:00-17:30")  # UTC


def ms(text: str) -> int:
    """An RFC 3339 instant as epoch milliseconds."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_friday_1700_plus_one_business_hour_is_monday_0930() -> None:
    # 2026-12-04 is a Friday: 30 minutes left that day, the other 30 from Monday's opening.
    assert OFFICE.deadline_ms(ms("2026-12-04T17:00:00Z"), HOUR) == ms("2026-12-07T09:30:00Z")


def test_a_holiday_is_skipped_like_a_weekend() -> None:
    hours = BusinessHours.parse("Mon-Fri 09:00-17:30", holidays="2026-12-25")
    # Thursday 24 December 17:00: 30 minutes that day, Friday 25 is a holiday, Monday 09:30.
    assert hours.deadline_ms(ms("2026-12-24T17:00:00Z"), HOUR) == ms("2026-12-28T09:30:00Z")


def test_opening_hours_follow_the_office_clock_across_the_autumn_dst_change() -> None:
    berlin = BusinessHours.parse("Mon-Fri 09:00-17:30", "Europe/Berlin")
    # Friday 23 October 17:00 CEST (15:00Z); clocks go back on Sunday 25; Monday 09:30 CET is 08:30Z.
    assert berlin.deadline_ms(ms("2026-10-23T15:00:00Z"), HOUR) == ms("2026-10-26T08:30:00Z")


def test_the_sla_counts_elapsed_open_time_through_the_spring_gap() -> None:
    night = BusinessHours.parse("Mon-Sun 01:00-04:00", "Europe/Berlin")
    # 29 March 2026 01:00 CET (00:00Z) to 04:00 CEST (02:00Z) is 2 hours: 02:00-03:00 never happens.
    assert night.deadline_ms(ms("2026-03-29T00:00:00Z"), 2 * HOUR) == ms("2026-03-29T02:00:00Z")
    # 30 more minutes spill into 30 March, opening at 01:00 CEST (23:00Z on the 29th).
    assert night.deadline_ms(ms("2026-03-29T00:00:00Z"), 5 * HOUR // 2) == ms("2026-03-29T23:30:00Z")


def test_a_lead_created_before_opening_waits_for_it_and_one_in_hours_counts_at_once() -> None:
    assert OFFICE.deadline_ms(ms("2026-12-07T06:00:00Z"), HOUR) == ms("2026-12-07T10:00:00Z")
    assert OFFICE.deadline_ms(ms("2026-12-07T12:00:00Z"), HOUR) == ms("2026-12-07T13:00:00Z")
    # Ending exactly at closing time stays on that day.
    assert OFFICE.deadline_ms(ms("2026-12-07T16:30:00Z"), HOUR) == ms("2026-12-07T17:30:00Z")


def test_a_day_of_sla_in_business_hours_is_24_open_hours_not_one_working_day() -> None:
    # Monday 09:00 + 24 h of 8.5-hour days: 8.5 Mon, 8.5 Tue, 7 on Wednesday -> 16:00.
    assert OFFICE.deadline_ms(ms("2026-12-07T09:00:00Z"), 24 * HOUR) == ms("2026-12-09T16:00:00Z")
    assert OFFICE.deadline_ms(ms("2026-12-07T09:00:00Z"), parse_duration_ms("8h30m")) == ms("2026-12-07T17:30:00Z")


def test_without_business_hours_the_deadline_is_creation_plus_the_sla() -> None:
    clock = Settings().follow_up_clock
    assert clock == FollowUpClock(24 * HOUR)
    assert clock.deadline_ms(ms("2026-12-05T23:00:00Z")) == ms("2026-12-06T23:00:00Z")


@given(st.integers(ms("2026-01-01T00:00:00Z"), ms("2027-01-01T00:00:00Z")), st.integers(1, 200 * HOUR))
def test_a_deadline_is_never_earlier_than_the_same_sla_around_the_clock(created: int, sla: int) -> None:
    assert OFFICE.deadline_ms(created, sla) >= created + sla


BERLIN = BusinessHours.parse("Mon-Fri 09:00-17:30", "Europe/Berlin", "2026-10-26,2026-12-25")


@given(
    st.integers(ms("2026-01-01T00:00:00Z"), ms("2027-01-01T00:00:00Z")),
    st.integers(0, 3 * 86_400_000),
    st.integers(1, 50 * HOUR),
)
def test_a_later_lead_is_never_due_earlier_and_a_longer_sla_never_ends_sooner(created: int, later: int, sla: int) -> None:
    """Monotone in both: a lead created later, or given more time, is never due sooner."""
    assert BERLIN.deadline_ms(created, sla) <= BERLIN.deadline_ms(created + later, sla)
    assert BERLIN.deadline_ms(created, sla) <= BERLIN.deadline_ms(created, sla + later)


@pytest.mark.parametrize(
    ("text", "expected"), [("30m", 30 * 60_000), ("1h", HOUR), ("4h", 4 * HOUR), ("1d", 24 * HOUR), ("1h30m", 90 * 60_000)]
)
def test_sla_durations(text: str, expected: int) -> None:
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("follow_up_sla", "soon", "LEADPULSE_FOLLOW_UP_SLA"),
        ("follow_up_sla", "0m", "LEADPULSE_FOLLOW_UP_SLA"),
        ("business_hours", "weekdays 9-5", "LEADPULSE_BUSINESS_HOURS"),
        ("business_hours", "Mon-Fri 17:30-09:00", "LEADPULSE_BUSINESS_HOURS"),
        ("business_hours", "Mon-Fry 09:00-17:30", "LEADPULSE_BUSINESS_HOURS"),
        ("business_timezone", "Mars/Olympus", "LEADPULSE_BUSINESS_TIMEZONE"),
        ("business_holidays", "25 Dec", "LEADPULSE_BUSINESS_HOLIDAYS"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(setting: str, value: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Settings(**{setting: value})  # type: ignore[arg-type]


def test_a_weekday_range_may_wrap_the_week() -> None:
    assert BusinessHours.parse("Sun-Thu 08:00-16:00").weekdays == frozenset({6, 0, 1, 2, 3})

"""Matured cohorts (CONTRACT section 2) against hand-computed cells, day boundaries first."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates import matured as m
from aggregates.rules import day_number, lag_days

T = day_number(date(2026, 6, 15))
DAY_MS = 86_400_000


def test_matured_cohort_is_created_t_minus_n_minus_d_to_t_minus_n_minus_1() -> None:
    days = m.matured_days(T, window=7, within=30)
    assert (days[0], days[-1], len(days)) == (T - 37, T - 31, 7)


@pytest.mark.parametrize(
    ("elapsed_ms", "lag"),
    [(0, 0), (1, 1), (DAY_MS - 1, 1), (DAY_MS, 1), (DAY_MS + 1, 2), (7 * DAY_MS, 7), (7 * DAY_MS + 1, 8)],
)
def test_lag_is_whole_days_rounded_up_so_exactly_n_days_is_within_n(elapsed_ms: int, lag: int) -> None:
    assert lag_days(elapsed_ms) == lag


def test_within_sums_the_slots_up_to_and_including_the_age() -> None:
    assert m.within([1, 0, 2, 5], 2) == 3
    assert m.within([1, 0, 2, 5], 30) == 8
    assert m.within([], 7) == 0


def test_cells_count_only_the_matured_days_and_only_conversions_within_the_age() -> None:
    # Created T-8 (inside 7d/7d) with lags 7 and 8; T-14 (first day of it); T-7 (too young); T-15 (too old).
    leads = {T - 15: 100, T - 14: 10, T - 8: 20, T - 7: 1000}
    lags = {T - 15: [0, 50], T - 14: [0, 0, 0, 0, 0, 0, 0, 3], T - 8: [0, 0, 0, 0, 0, 0, 0, 2, 4], T - 7: [0, 9]}
    (cell,) = m.matured(leads, lags, T, windows=(7,), ages=(7,))
    assert cell == m.Matured(window=7, within=7, leads=30, customers=5)


def test_cells_come_in_window_then_age_order_with_every_combination() -> None:
    """Created T-33: too young for 7d within 7 (T-14 .. T-8), in the three others (T-37 .. T-8, T-37 .. T-31, T-60 .. T-31)."""
    cells = m.matured({T - 33: 4}, {T - 33: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]}, T, windows=(30, 7), ages=(30, 7))
    assert [(c.window, c.within, c.leads, c.customers) for c in cells] == [
        (7, 7, 0, 0), (30, 7, 4, 1), (7, 30, 4, 2), (30, 30, 4, 2)
    ]  # fmt: skip


def test_span_reaches_back_to_the_oldest_matured_day() -> None:
    assert m.span((7, 30, 90), (7, 30, 90)) == 180
    assert datetime.fromtimestamp((T - 180) * 86_400, tz=timezone.utc).date() == date(2025, 12, 17)


@given(
    leads=st.dictionaries(st.integers(900, 1_100), st.integers(0, 50), max_size=40),
    lags=st.dictionaries(st.integers(900, 1_100), st.lists(st.integers(0, 9), max_size=120), max_size=40),
    windows=st.lists(st.integers(1, 90), min_size=1, max_size=3),
    ages=st.lists(st.integers(0, 100), min_size=1, max_size=3),
)
def test_cells_are_their_definition_summed_day_by_day(
    leads: dict[int, int], lags: dict[int, list[int]], windows: list[int], ages: list[int]
) -> None:
    """Prefix sums or not, a cell is the leads and the within-N customers of its days."""
    want = [
        m.Matured(window, age, sum(leads.get(d, 0) for d in days), sum(m.within(lags.get(d, []), age) for d in days))
        for age in sorted(set(ages))
        for window in sorted(set(windows))
        for days in [m.matured_days(1_100, window, age)]
    ]
    assert m.matured(leads, lags, 1_100, windows, ages) == want

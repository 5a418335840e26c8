"""The alert checks' maths against hand-computed values: lag weights, expectation, statistic."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregates import checks as c
from aggregates.checks import Check, History
from aggregates.rules import day_number

T = day_number(date(2026, 6, 15))


def steady(leads_per_day: int, lag_customers: dict[int, int], days: range) -> History:
    """Every day of `days` the same leads, converting with the same counts at each lag."""
    vector = [0] * (max(lag_customers) + 1)
    for lag, n in lag_customers.items():
        vector[lag] = n
    return History({d: leads_per_day for d in days}, {d: list(vector) for d in days})


ALL_DAYS = range(T - 200, T + 1)


def test_steady_flow_expects_exactly_what_it_observes() -> None:
    """100 leads a day, 2 customers at lag 20 and 1 at lag 40: 7 days x 3 customers."""
    check = c.conversion_check(steady(100, {20: 2, 40: 1}, ALL_DAYS), T)
    assert check is not None
    assert check.observed == 21 and check.expected == pytest.approx(21)
    # Var = E + sum_k (X_r/X_b)^2 C_b: (7/83)^2 * (83*2 + 83*1) = 21 * 7/83.
    assert check.variance == pytest.approx(21 + 21 * 7 / 83)
    assert check.drop == 0


def test_a_lead_surge_raises_the_expectation_with_its_lag() -> None:
    """Leads double on the days whose lag-20 customers fall in the recent week (T-27 .. T-21)."""
    history = steady(100, {20: 2}, ALL_DAYS)
    leads = dict(history.leads)
    lags = {d: list(v) for d, v in history.lags.items()}
    for day in range(T - 27, T - 20):
        leads[day], lags[day] = 200, [0] * 20 + [4]
    check = c.conversion_check(History(leads, lags), T)
    assert check is not None
    assert check.observed == 28 and check.expected == pytest.approx(28)  # 7 x 4: no drop


def test_a_follow_up_break_halves_the_observed_not_the_expected() -> None:
    history = steady(100, {20: 2}, ALL_DAYS)
    lags = {d: ([0] * 20 + [1] if T - 27 <= d < T - 20 else list(v)) for d, v in history.lags.items()}
    check = c.conversion_check(History(history.leads, lags), T)
    assert check is not None
    assert (check.observed, check.expected, check.drop) == (7, pytest.approx(14), 0.5)
    sd = math.sqrt(14 + 14 * 7 / 83 + (0.1 * 14) ** 2)
    assert check.zscore == pytest.approx((7.5 - 14) / sd)


def test_the_current_day_enters_neither_side() -> None:
    history = steady(100, {0: 5}, ALL_DAYS)
    today = {**{d: list(v) for d, v in history.lags.items()}, T: [500]}
    check = c.conversion_check(History({**history.leads, T: 10_000}, today), T)
    assert check is not None
    assert (check.observed, check.expected) == (35, pytest.approx(35))


def test_no_baseline_lead_means_no_check_and_no_baseline_customer_means_nothing_expected() -> None:
    assert c.conversion_check(History({T - 3: 50}, {T - 3: [0, 1]}), T) is None
    quiet = c.conversion_check(steady(10, {5: 0}, ALL_DAYS), T)
    assert quiet is not None and quiet.expected == 0 and quiet.drop is None and quiet.zscore is None


def test_a_segment_whose_leads_stopped_is_still_checked() -> None:
    """No lead in the last 30 days, yet its older leads are expected to convert at lag 40."""
    history = steady(100, {40: 2}, range(T - 200, T - 30))
    check = c.conversion_check(history, T)
    assert check is not None and check.observed == 14 and check.expected == pytest.approx(14)


def test_exactly_forty_percent_is_a_drop_of_exactly_0_4() -> None:
    """E summed over nine lags of 5/9 each is 4.999999999999999 in floats: 3 of it, naively, is a 39.99...% drop."""
    expected = sum([5 / 9] * 9)
    assert 1 - 3 / expected < 0.4  # the float hazard the published rounding removes
    assert Check(3, expected, expected, 0.1).drop == 0.4
    assert Check(3, 5.0, 5.0, 0.1).drop == 0.4


@given(observed=st.integers(0, 10_000), expected=st.floats(0.01, 10_000), extra=st.floats(0, 1_000))
def test_zscore_falls_as_observed_falls_and_is_zero_near_expectation(observed: int, expected: float, extra: float) -> None:
    """The law of the statistic: monotone in O, centred on E (up to the continuity half)."""
    low, high = Check(observed, expected, expected + extra, 0.1), Check(observed + 1, expected, expected + extra, 0.1)
    assert low.zscore is not None and high.zscore is not None and low.zscore < high.zscore
    assert (low.zscore < 0) == (observed + 0.5 < expected)


def test_quality_compares_thirty_day_matured_cohorts() -> None:
    """Baseline T-100 .. T-45 converts 10 of 100 within 30 days; recent T-44 .. T-31 only 5."""
    leads = {d: 100 for d in range(T - 100, T - 30)}
    lags = {d: [0] * 30 + [10 if d < T - 44 else 5] + [0] * 10 + [20] for d in range(T - 100, T - 30)}
    check = c.quality_check(History(leads, lags), T)
    assert check is not None
    assert (check.observed, check.expected, check.drop) == (70, pytest.approx(140), 0.5)
    assert check.variance == pytest.approx(140 + (1400 / 5600) ** 2 * 560)


def test_quality_without_recent_or_baseline_leads_is_no_check() -> None:
    assert c.quality_check(History({T - 40: 10}, {}), T) is None
    assert c.quality_check(History({T - 90: 10}, {}), T) is None

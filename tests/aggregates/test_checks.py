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


def test_quality_counts_each_recent_cohort_at_its_own_age() -> None:
    """Baseline T-156 .. T-45: 100 leads a day, 4 customers at lag 5 and 10 at lag 30 (and 20 at lag 41).

    Recent: the matured cohorts T-44 .. T-31 win 4 at lag 5 but only 5 at lag 30; the
    young ones T-30 .. T-1 win 2 at lag 5, counted only where lag 5 is complete
    (T-30 .. T-6: cohort T-5's lag-5 customers may have converted today).
    R(5) = 39 cohorts x 100 = 3900, R(30) = 14 x 100 = 1400, L_b = 11200, C_b(5) = 448,
    C_b(30) = 1120: E = 3900 x 0.04 + 1400 x 0.1 = 296; O = 14 x 9 + 25 x 2 = 176.
    """
    leads = {d: 100 for d in range(T - 200, T)}
    lags: dict[int, list[int]] = {}
    for d in range(T - 200, T):
        vector = [0] * 42
        vector[5], vector[30], vector[41] = (4, 10, 20) if d < T - 44 else (4, 5, 0) if d <= T - 31 else (2, 0, 0)
        lags[d] = vector
    check = c.quality_check(History(leads, lags), T)
    assert check is not None
    assert (check.observed, check.expected) == (176, pytest.approx(296))
    assert check.drop == round(1 - 176 / 296, 9)
    assert check.variance == pytest.approx(296 + (3900 / 11200) ** 2 * 448 + (1400 / 11200) ** 2 * 1120)
    assert check.zscore == pytest.approx((176.5 - 296) / math.sqrt(check.variance + (0.06 * 296) ** 2))


@given(
    vector=st.lists(st.integers(0, 5), min_size=1, max_size=40),
    base=st.integers(1, 50),
    multipliers=st.lists(st.integers(0, 4), min_size=c.QUALITY_RECENT_DAYS, max_size=c.QUALITY_RECENT_DAYS),
)
def test_a_change_in_lead_volume_alone_is_no_quality_drop(vector: list[int], base: int, multipliers: list[int]) -> None:
    """The law of the quality check: recent cohorts of any size converting as the baseline's did expect what they win."""
    first = T - c.QUALITY_RECENT_DAYS
    days = range(first - c.QUALITY_BASELINE_DAYS, T)
    scale = {d: (multipliers[d - first] if d >= first else 1) for d in days}
    history = History({d: base * scale[d] for d in days}, {d: [base * scale[d] * n for n in vector] for d in days})
    check = c.quality_check(history, T)
    if not any(multipliers):
        assert check is None
        return
    assert check is not None and check.expected == pytest.approx(check.observed, abs=1e-9)


def test_quality_without_recent_or_baseline_leads_is_no_check() -> None:
    assert c.quality_check(History({T - 40: 10}, {}), T) is None  # recent leads only
    assert c.quality_check(History({T - 90: 10}, {}), T) is None  # baseline leads only
    assert c.quality_check(History({T - 90: 10, T: 10}, {}), T) is None  # today's leads are not recent yet


def plain_conversion_check(history: History, as_of_day: int) -> Check | None:
    """The conversion check's definition with every exposure summed day by day."""
    first_recent, first_baseline = as_of_day - c.RECENT_DAYS, as_of_day - c.RECENT_DAYS - c.BASELINE_DAYS

    def leads(first: int, stop: int) -> int:
        return sum(history.leads.get(day, 0) for day in range(first, min(stop, as_of_day)))

    observed, baseline = [0] * (c.MAX_LAG + 1), [0] * (c.MAX_LAG + 1)
    for day, vector in history.lags.items():
        for lag, customers in enumerate(vector[: c.MAX_LAG + 1]):
            if first_recent <= day + lag < as_of_day:
                observed[lag] += customers
            elif first_baseline <= day + lag < first_recent:
                baseline[lag] += customers
    seen = expected = variance = 0.0
    exposed_any = False
    for lag in range(c.MAX_LAG + 1):
        exposed = leads(first_baseline - lag, first_recent - lag)
        if exposed:
            exposed_any = True
            weight = leads(first_recent - lag, as_of_day - lag) / exposed
            seen += observed[lag]
            expected += weight * baseline[lag]
            variance += weight * weight * baseline[lag]
    return Check(int(seen), expected, expected + variance, c.CONVERSION_VARIATION) if exposed_any else None


@given(
    leads=st.dictionaries(st.integers(T - 200, T + 2), st.integers(0, 500), max_size=60),
    lags=st.dictionaries(st.integers(T - 200, T + 2), st.lists(st.integers(0, 20), max_size=100), max_size=40),
)
def test_conversion_check_by_prefix_sums_is_exactly_its_day_by_day_definition(leads: dict[int, int], lags: dict[int, list[int]]) -> None:
    history = History(leads, lags)
    assert c.conversion_check(history, T) == plain_conversion_check(history, T)


@given(
    leads=st.dictionaries(st.integers(T - 200, T + 2), st.integers(0, 500), max_size=60),
    lags=st.dictionaries(st.integers(T - 200, T + 2), st.lists(st.integers(0, 20), max_size=40), max_size=40),
)
def test_quality_baseline_summed_vector_by_vector_is_its_slot_by_slot_definition(leads: dict[int, int], lags: dict[int, list[int]]) -> None:
    """The baseline customers at each lag k: the sum over the baseline days of slot k."""
    history = History(leads, lags)
    first = T - c.QUALITY_RECENT_DAYS
    days = range(first - c.QUALITY_BASELINE_DAYS, first)
    baseline_leads = sum(leads.get(d, 0) for d in days)
    baseline = [sum(lags[d][k] for d in days if d in lags and k < len(lags[d])) for k in range(c.QUALITY_AGE + 1)]
    exposed, observed, seen = [0] * (c.QUALITY_AGE + 1), 0, 0
    for day in range(first, T):
        age = min(T - 1 - day, c.QUALITY_AGE)
        seen += leads.get(day, 0)
        exposed[age] = seen
        observed += sum(lags.get(day, [])[: age + 1])
    check = c.quality_check(history, T)
    if not baseline_leads or not seen:
        assert check is None
        return
    weights = [recent / baseline_leads for recent in exposed]
    expected = sum(w * n for w, n in zip(weights, baseline))
    variance = sum(w * w * n for w, n in zip(weights, baseline))
    assert check == Check(observed, expected, expected + variance, c.QUALITY_VARIATION)

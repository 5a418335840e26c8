"""The statistics behind `LeadConversionDrop` and `LeadQualityDrop` (docs/alerts.md): pure.

Both checks compare the customers a segment actually won (observed, O) with what its own
history predicts (expected, E), and publish O, E, the relative drop 1 - O/E and a z
score, so an alert rule only compares published numbers with thresholds and needs no
history in Prometheus (no `offset`, no long range): a new or restarted Prometheus
alerts correctly from its first evaluations.

- **conversion**: customers won on the last 7 complete UTC days (T-7 .. T-1) against
  the leads of the days they come from, weighted by the segment's own conversion-lag
  distribution over the 83 days before. A lead surge raises E as its leads come to
  convert, so a change of volume alone is not a drop.
- **quality**: the 30-day matured rate of the leads created T-44 .. T-31 against the
  same rate of the 8 weeks of cohorts before them. A drop in lead quality shows here
  weeks before the customers it costs are missed.

The current UTC day never enters: its leads and customers are still arriving, and
counting them would make every check dip at midnight. Both checks step once a day (and
when late events arrive for past days).

The inputs are a segment's per-creation-day counters (`History`): leads created on day
s, L(s), and customers of those leads by whole days to convert k (rounded up), C(s, k).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Final, NamedTuple

from aggregates.matured import within

#: Conversion check: customers won on these complete days before T (T-7 .. T-1) ...
RECENT_DAYS: Final = 7
#: ... against the lag distribution of the conversions of the 83 days before them.
BASELINE_DAYS: Final = 83
#: Lags (days to convert, rounded up) the expectation covers; later conversions count on
#: neither side. 90 days hold the bulk of B2B sales cycles.
MAX_LAG: Final = 90
#: Quality check: 30-day matured cohorts, 14 days of them against the 56 days before.
QUALITY_AGE: Final = 30
QUALITY_RECENT_DAYS: Final = 14
QUALITY_BASELINE_DAYS: Final = 56
#: Creation days before T that the checks read: T-180 .. T-1 with the defaults.
HISTORY_DAYS: Final = max(RECENT_DAYS + BASELINE_DAYS + MAX_LAG, QUALITY_AGE + QUALITY_RECENT_DAYS + QUALITY_BASELINE_DAYS)
#: Allowance for real feeds' extra week-to-week variation: on top of the Poisson noise,
#: the observed count may stray by this fraction of E (one standard deviation) without
#: anything having changed. Without it a hundred-customer week 15% short would read as
#: z = -1.5 and a thousand-customer one as z = -4.7, though both are ordinary weeks.
#: The conversion check counts one week of wins: the full 10%. The quality check's
#: customers come from 14 days of cohorts converting over some five weeks, which
#: averages a 10% weekly wobble down somewhat; 8% is what `make bench-alerts` found to
#: keep its false episodes under 0.1 per segment-year with that wobble.
CONVERSION_VARIATION: Final = 0.1
QUALITY_VARIATION: Final = 0.08
#: The drop is published rounded to this many decimals, so a drop of exactly 40%
#: (3 customers where 5 were expected) is 0.4 and meets `>= 0.4`, whatever the float
#: arithmetic of E left in the 17th digit.
DROP_DECIMALS: Final = 9

CONVERSION: Final = "conversion"
QUALITY: Final = "quality"


class History(NamedTuple):
    """A segment's per-creation-day counters: the leads of each day, its lag vectors."""

    leads: Mapping[int, int]  # epoch day of creation -> leads created
    lags: Mapping[int, Sequence[int]]  # epoch day of creation -> customers by days to convert (slot k)


class Check(NamedTuple):
    """Observed against expected customers, and the variance of O - E when nothing changed."""

    observed: int
    expected: float
    variance: float
    allowance: float  # the extra variation allowed, as a fraction of E (one sd)

    @property
    def drop(self) -> float | None:
        """1 - O/E (negative for a rise); None when nothing is expected (no baseline)."""
        if self.expected <= 0:
            return None
        return round(1 - self.observed / self.expected, DROP_DECIMALS)

    @property
    def zscore(self) -> float | None:
        """(O + 1/2 - E) / sd: the half is a continuity correction, conservative on small counts."""
        sd = math.sqrt(self.variance + (self.allowance * self.expected) ** 2)
        if self.expected <= 0 or sd <= 0:
            return None
        return (self.observed + 0.5 - self.expected) / sd


def conversion_check(history: History, as_of_day: int) -> Check | None:
    """Customers won on T-7 .. T-1 against the lead flow of their days, lag by lag.

    For each lag k: the baseline rate q(k) = C_b(k) / X_b(k), where X_b(k) are the leads
    whose k-th day fell in the baseline (T-90 .. T-8) and C_b(k) those of them that
    converted at lag k; the recent leads at lag k, X_r(k) (k-th day in T-7 .. T-1),
    are expected to yield X_r(k) q(k). A lag the baseline has no leads for is left out
    on both sides. Var(O - E) = E (Poisson O) + sum of X_r(k)^2 / X_b(k)^2 C_b(k)
    (E is estimated). None without any baseline lead.
    """
    first_recent, first_baseline = as_of_day - RECENT_DAYS, as_of_day - RECENT_DAYS - BASELINE_DAYS
    oldest = first_baseline - MAX_LAG
    # Leads by creation day as prefix sums, so each lag's exposure is one subtraction.
    cumulative = [0, *accumulate(history.leads.get(day, 0) for day in range(oldest, as_of_day))]

    def leads_between(first: int, stop: int) -> int:
        return cumulative[max(0, min(stop, as_of_day) - oldest)] - cumulative[max(0, first - oldest)]

    observed, baseline = [0] * (MAX_LAG + 1), [0] * (MAX_LAG + 1)
    for day, vector in history.lags.items():
        for lag, customers in enumerate(vector[: MAX_LAG + 1]):
            if customers:
                converted = day + lag
                if first_recent <= converted < as_of_day:
                    observed[lag] += customers
                elif first_baseline <= converted < first_recent:
                    baseline[lag] += customers
    seen = expected = estimate_variance = 0.0
    any_baseline = False
    for lag in range(MAX_LAG + 1):
        exposed = leads_between(first_baseline - lag, first_recent - lag)
        if not exposed:
            continue
        any_baseline = True
        recent = leads_between(first_recent - lag, as_of_day - lag)
        weight = recent / exposed
        seen += observed[lag]
        expected += weight * baseline[lag]
        estimate_variance += weight * weight * baseline[lag]
    if not any_baseline:
        return None
    return Check(int(seen), expected, expected + estimate_variance, CONVERSION_VARIATION)


def quality_check(history: History, as_of_day: int) -> Check | None:
    """30-day matured customers of the cohorts T-44 .. T-31 against those of T-100 .. T-45.

    E = L_r C_b / L_b (the baseline cohorts' 30-day rate applied to the recent leads),
    Var(O - E) = E + (L_r / L_b)^2 C_b. None without baseline leads or recent leads.
    """
    last_recent = as_of_day - QUALITY_AGE - 1  # every one of its leads is 30 days old
    recent_days = range(last_recent - QUALITY_RECENT_DAYS + 1, last_recent + 1)
    baseline_days = range(recent_days.start - QUALITY_BASELINE_DAYS, recent_days.start)

    def totals(days: range) -> tuple[int, int]:
        leads = sum(history.leads.get(day, 0) for day in days)
        customers = sum(within(history.lags.get(day, ()), QUALITY_AGE) for day in days)
        return leads, customers

    recent_leads, observed = totals(recent_days)
    baseline_leads, baseline_customers = totals(baseline_days)
    if not baseline_leads or not recent_leads:
        return None
    weight = recent_leads / baseline_leads
    expected = weight * baseline_customers
    return Check(observed, expected, expected + weight * weight * baseline_customers, QUALITY_VARIATION)

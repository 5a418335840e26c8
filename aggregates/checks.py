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
- **quality**: the customers of the leads created T-44 .. T-1, each cohort counted
  within 30 days or within its age so far if younger, against the 16 weeks of matured
  cohorts before them at the same ages. A drop in lead quality shows here weeks before
  the customers it costs are missed.

The current UTC day never enters: its leads and customers are still arriving, and
counting them would make every check dip at midnight. Both checks step once a day (and
when late events arrive for past days).

The inputs are a segment's per-creation-day counters (`History`): leads created on day
s, L(s), and customers of those leads by whole days to convert k (rounded up), C(s, k).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import accumulate, compress, repeat
from operator import add
from typing import Final, NamedTuple

from aggregates.matured import within

#: Conversion check: customers won on these complete days before T (T-7 .. T-1) ...
RECENT_DAYS: Final = 7
#: ... against the lag distribution of the conversions of the 83 days before them.
BASELINE_DAYS: Final = 83
#: Lags (days to convert, rounded up) the expectation covers; later conversions count on
#: neither side. 90 days hold the bulk of B2B sales cycles.
MAX_LAG: Final = 90
#: The lag slots the conversion check reads, 0 .. MAX_LAG.
_LAGS: Final = range(MAX_LAG + 1)
#: Quality check: the cohorts of the last 44 days (14 of them 30 days old or more, and
#: the 30 younger ones at their age so far) against the 16 weeks of cohorts before them.
#: The young cohorts carry a quality drop weeks before it has matured, so it is seen
#: sooner; the long baseline keeps the estimate's own noise small and still lies within
#: the history the conversion check reads.
QUALITY_AGE: Final = 30
QUALITY_MATURED_DAYS: Final = 14
QUALITY_RECENT_DAYS: Final = QUALITY_AGE + QUALITY_MATURED_DAYS
QUALITY_BASELINE_DAYS: Final = 112
#: Creation days before T that the checks read: T-180 .. T-1 with the defaults.
HISTORY_DAYS: Final = max(RECENT_DAYS + BASELINE_DAYS + MAX_LAG, QUALITY_RECENT_DAYS + QUALITY_BASELINE_DAYS)
#: Allowance for real feeds' extra week-to-week variation: on top of the Poisson noise,
#: the observed count may stray by this fraction of E (one standard deviation) without
#: anything having changed. Without it a hundred-customer week 15% short would read as
#: z = -1.5 and a thousand-customer one as z = -4.7, though both are ordinary weeks.
#: The conversion check counts one week of wins: the full 10%. The quality check's
#: customers are won over the last six weeks and its baseline's over four months, which
#: averages a 10% weekly wobble down: its relative shortfall then strays by 5.6% (one
#: sd, measured by the simulation of `make bench-alerts` at a volume where Poisson noise
#: vanishes), so it allows 6%.
CONVERSION_VARIATION: Final = 0.1
QUALITY_VARIATION: Final = 0.06
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
    # Leads by creation day as prefix sums from `oldest`, so each lag's exposure is one
    # subtraction: the leads of days [first, stop) are cumulative[stop - oldest] -
    # cumulative[first - oldest]; for lags 0 .. MAX_LAG every such index is in range.
    cumulative = [0, *accumulate(map(history.leads.get, range(oldest, as_of_day), repeat(0)))]
    baseline_start, recent_start, end = first_baseline - oldest, first_recent - oldest, as_of_day - oldest
    observed, baseline = [0] * (MAX_LAG + 1), [0] * (MAX_LAG + 1)
    for day, vector in history.lags.items():
        for lag in compress(_LAGS, vector):  # the non-zero slots only: most are zeros
            converted = day + lag
            if first_recent <= converted < as_of_day:
                observed[lag] += vector[lag]
            elif first_baseline <= converted < first_recent:
                baseline[lag] += vector[lag]
    seen = expected = estimate_variance = 0.0
    any_baseline = False
    for lag in _LAGS:
        exposed = cumulative[recent_start - lag] - cumulative[baseline_start - lag]
        if not exposed:
            continue
        any_baseline = True
        recent = cumulative[end - lag] - cumulative[recent_start - lag]
        weight = recent / exposed
        seen += observed[lag]
        expected += weight * baseline[lag]
        estimate_variance += weight * weight * baseline[lag]
    if not any_baseline:
        return None
    return Check(int(seen), expected, expected + estimate_variance, CONVERSION_VARIATION)


def quality_check(history: History, as_of_day: int) -> Check | None:
    """Customers of the cohorts T-44 .. T-1, each within min(its age, 30) days, against T-156 .. T-45.

    A cohort created on day s has complete conversions up to lag T-1-s (a conversion at
    lag k happened before day s+k+1), so it is counted within a = min(T-1-s, 30) days and
    expected to convert as the baseline cohorts (all 30 days old or more) did within a
    days. Lag by lag, as in the conversion check: R(k) recent leads are observed at lag k
    (cohorts up to T-1-k), the baseline's L_b leads won C_b(k) customers at lag k, so
    E = sum_k R(k) C_b(k) / L_b and Var(O - E) = E + sum_k (R(k) / L_b)^2 C_b(k).
    None without baseline leads or recent leads.
    """
    first = as_of_day - QUALITY_RECENT_DAYS
    baseline_days = range(first - QUALITY_BASELINE_DAYS, first)
    baseline_leads = sum(map(history.leads.get, baseline_days, repeat(0)))
    baseline = [0] * (QUALITY_AGE + 1)
    observed = 0
    for day, vector in history.lags.items():  # only the days with customers, not every day of both spans
        if first <= day < as_of_day:
            observed += within(vector, min(as_of_day - 1 - day, QUALITY_AGE))
        elif day in baseline_days and vector:
            vector = vector[: QUALITY_AGE + 1]
            baseline[: len(vector)] = map(add, baseline, vector)
    # R(k), recent leads observed at lag k: the cohorts first .. T-1-k, i.e. the running sum of
    # the recent days' leads read newest first (the 14 matured cohorts all land on lag 30).
    running = list(accumulate(map(history.leads.get, range(first, as_of_day), repeat(0))))
    seen, exposed = running[-1], running[::-1][: QUALITY_AGE + 1]
    if not baseline_leads or not seen:
        return None
    weights = [recent / baseline_leads for recent in exposed]
    expected = sum(w * c for w, c in zip(weights, baseline))
    estimate_variance = sum(w * w * c for w, c in zip(weights, baseline))
    return Check(observed, expected, expected + estimate_variance, QUALITY_VARIATION)

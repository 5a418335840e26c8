"""The calendar and ratio maths of CONTRACT section 2 and 3: pure, so it is tested alone.

Everything here is in UTC. The Lua apply script does no calendar maths of its own:
Python hands it the cohort labels of each `lead.created` (computed here), and Lua only
divides epoch milliseconds by `DAY_MS`, which is the same floor as `epoch_day`.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache
from typing import Final

DAY_MS: Final = 86_400_000
EPOCH: Final = date(1970, 1, 1)
#: Upper bounds (seconds, inclusive) of the time-to-convert histogram: 1, 3, 7, 14, 30, 60,
#: 90 and 180 days (CONTRACT v1.1 section 3); +Inf follows.
TTC_BOUNDS: Final = tuple(days * 86_400 for days in (1, 3, 7, 14, 30, 60, 90, 180))
#: Upper bounds (seconds, inclusive) of the speed-to-lead histogram: 5 min, 15 min, 1 h,
#: 4 h, 1, 3 and 7 days (CONTRACT v1.2 section 3); +Inf follows.
TOUCH_BOUNDS: Final = (300, 900, 3_600, 14_400, 86_400, 259_200, 604_800)
#: Two-sided 95% normal quantile of the Wilson interval (the contract's expected file
#: was computed with exactly this value).
WILSON_Z: Final = 1.959963984540054
PUBLISHED_COHORTS: Final = 12

WEEK: Final = "week"
MONTH: Final = "month"


def epoch_day(ms: int) -> int:
    """UTC day number of an epoch-ms instant (floor, so times before 1970 work too)."""
    return ms // DAY_MS


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_date(number: int) -> date:
    return EPOCH + timedelta(days=number)


@lru_cache(maxsize=4096)
def _labels_of_day(number: int) -> tuple[str, str]:
    day = day_date(number)
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}", f"{day.year}-{day.month:02d}"


def iso_week_label(ms: int) -> str:
    """Cohort label of period `week`: ISO 8601 week-year and week, e.g. `2026-W23`."""
    return _labels_of_day(epoch_day(ms))[0]


def month_label(ms: int) -> str:
    """Cohort label of period `month`, e.g. `2026-06`."""
    return _labels_of_day(epoch_day(ms))[1]


def period_of(label: str) -> str:
    """`week` for `2026-W23`, `month` for `2026-06`: the label's shape says which."""
    return WEEK if "W" in label else MONTH


def window_day_range(as_of: date, days: int) -> range:
    """Epoch days of the rolling window of `days` days ending with (and including) `as_of`."""
    last = day_number(as_of)
    return range(last - days + 1, last + 1)


def published_cohorts(as_of: date) -> list[tuple[str, str]]:
    """(period, label) of the 12 most recent ISO weeks and 12 most recent months up to T."""
    weeks = [_labels_of_day(day_number(as_of - timedelta(weeks=back)))[0] for back in range(PUBLISHED_COHORTS)]
    months = []
    year, month = as_of.year, as_of.month
    for _ in range(PUBLISHED_COHORTS):
        months.append(f"{year}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return [(WEEK, label) for label in weeks] + [(MONTH, label) for label in months]


def ttc_ms(created_ms: int, converted_ms: int) -> int:
    """Milliseconds from creation to conversion, never below 0 (a deal may predate its lead).

    Milliseconds, the events' own resolution, so sums stay exact integers; the exporter
    divides by 1000 for the contract's seconds.
    """
    return max(0, converted_ms - created_ms)


def lag_days(ttc: int) -> int:
    """Whole days to convert, rounded up: converted within N x 24 h exactly when lag_days <= N."""
    return -(-ttc // DAY_MS)


def ttc_bucket(ms: int) -> int:
    """Index of the first histogram bucket whose bound (inclusive) holds `ms`; len(TTC_BOUNDS) is +Inf."""
    for index, bound in enumerate(TTC_BOUNDS):
        if ms <= bound * 1000:
            return index
    return len(TTC_BOUNDS)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None: the contract exports no ratio over a zero."""
    return numerator / denominator if denominator else None


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """95% Wilson score interval of a binomial proportion, clamped to [0, 1]; None for 0 trials.

    Wilson rather than the normal approximation because segments are small: it stays
    inside [0, 1] and is honest about 1 of 3 (the alerts lean on that).
    """
    if trials <= 0:
        return None
    p = successes / trials
    z2n = z * z / trials
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    # At k = 0 and k = n the bound is exactly 0 or 1; floating point lands a hair off.
    lower = 0.0 if successes <= 0 else max(0.0, centre - half)
    upper = 1.0 if successes >= trials else min(1.0, centre + half)
    return lower, upper

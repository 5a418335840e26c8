"""Age-matched ("matured") conversion of CONTRACT section 2: pure, so it is tested alone.

For a maturity age N and a window D, as of day T: the matured leads are those created
on days T-N-D .. T-N-1, every one at least N days old; the matured customers are those
of them that converted within N x 24 h of creation. A young cohort's rate is still
rising; a matured cohort's N-day rate is final, so cohorts of different ages compare
like with like (and `LeadQualityDrop` compares them).

The inputs are the per-creation-day counters Redis keeps: leads created that day (slot
`DAY_LEADS` of the day vector) and the lag vector, customers of that day's leads by
whole days to convert rounded up (`aggregates.rules.lag_days`), so "within N days" is
the sum of slots 0..N.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, repeat
from typing import NamedTuple


class Matured(NamedTuple):
    """One (window, within) cell of a segment: its matured leads and customers."""

    window: int  # D, days of creation
    within: int  # N, the maturity age in days
    leads: int
    customers: int


def matured_days(as_of_day: int, window: int, within: int) -> range:
    """Epoch days of creation of the matured cohort: T-N-D .. T-N-1."""
    return range(as_of_day - within - window, as_of_day - within)


def span(windows: Iterable[int], ages: Iterable[int]) -> int:
    """How many days before T the matured cohorts reach back (T-N-D at the longest)."""
    return max(windows, default=0) + max(ages, default=0)


def within(lags: Sequence[int], age: int) -> int:
    """Customers of a lag vector that converted within `age` days (slots 0..age)."""
    return sum(lags[: age + 1])


def matured(
    leads: Mapping[int, int],
    lags: Mapping[int, Sequence[int]],
    as_of_day: int,
    windows: Iterable[int],
    ages: Iterable[int],
) -> list[Matured]:
    """Every (window, within) cell of one segment, from its day leads and lag vectors.

    `leads` and `lags` are keyed by epoch day of creation (missing days are zeros).
    Cells are in (within, window) order. A cell's leads are one subtraction of prefix
    sums over days; its customers are summed over the segment's lag vectors, which exist
    only for the days with customers (a few dozen), rather than over its up to 90 days:
    nine cells for each of ~290 segments in the bench's biggest scrape.
    """
    windows, ages = sorted(set(windows)), sorted(set(ages))
    if not windows or not ages:
        return []
    oldest = as_of_day - ages[-1] - windows[-1]  # the oldest matured day of any cell
    leads_before = [0, *accumulate(map(leads.get, range(oldest, as_of_day - ages[0]), repeat(0)))]
    cells = []
    for age in ages:
        converted = [(day, within(vector, age)) for day, vector in lags.items()]
        for window in windows:
            days = matured_days(as_of_day, window, age)
            first, stop = days.start, days.stop
            customers = sum([count for day, count in converted if first <= day < stop])
            cells.append(Matured(window, age, leads_before[stop - oldest] - leads_before[first - oldest], customers))
    return cells

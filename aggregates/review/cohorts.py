"""The cohort heatmap's numbers (pure): how each month cohort's conversion grew with its age.

Row: the leads created in one calendar month (UTC). Column k: the share of them that
had converted by the end of the k-th month after it (k = 0 is the creation month
itself), shown only once that month has ended by day T; later cells are "not yet".
The last column, to date, is the cohort's rate now: `leadpulse_cohort_conversion_ratio`.

The matured columns (contract v1.1 section 2, per cohort): for each maturity age N, the
share of the cohort's leads that converted within N × 24 h of their creation, shown once
the cohort's last day is at least N days before day T (so the figure is final and every
cohort's cell in that column compares like with like); until then "not yet".

Which cohorts are still maturing: those whose youngest leads are younger than the age
by which 90% of all conversions so far had happened (`MATURING_QUANTILE`), so their
rate can still be expected to rise noticeably.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

from aggregates.leads import LeadTimes
from aggregates.rules import DAY_MS, day_number, month_label, ratio

MATURING_QUANTILE: Final = 0.9
COHORT_MONTHS: Final = 12


def _month_start_ms(year: int, month: int) -> int:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return day_number(date(year, month, 1)) * DAY_MS


@dataclass(frozen=True, slots=True)
class CohortRow:
    cohort: str  # `2026-11`
    leads: int
    customers: int  # converted by now
    cumulative: tuple[float | None, ...]  # by age in months; None: not reached by day T
    maturing: bool
    matured: tuple[float | None, ...] = ()  # by maturity age (CohortTriangle.matured_days); None: not final yet

    @property
    def rate_to_date(self) -> float | None:
        return ratio(self.customers, self.leads)


@dataclass(frozen=True, slots=True)
class CohortTriangle:
    rows: tuple[CohortRow, ...]  # newest cohort first
    maturity_days: float | None  # age by which MATURING_QUANTILE of conversions happened
    matured_days: tuple[int, ...] = ()  # the maturity ages N of each row's `matured`


def conversion_quantile_days(leads: Iterable[LeadTimes], quantile: float) -> float | None:
    """Days from creation to conversion below which `quantile` of the customers converted."""
    days = sorted(max(0, t.converted_ms - t.created_ms) / DAY_MS for t in leads if t.converted_ms is not None)
    if not days:
        return None
    return days[min(len(days) - 1, int(quantile * len(days)))]


def matured_rate(members: Sequence[LeadTimes], next_month_ms: int, age_days: int, as_of: date) -> float | None:
    """Share of a cohort converted within `age_days` × 24 h of creation; None while its last
    day (the day before `next_month_ms`) is later than T - N - 1, or it has no leads."""
    if not members or next_month_ms > (day_number(as_of) - age_days) * DAY_MS:
        return None
    limit = age_days * DAY_MS
    return sum(t.converted_ms is not None and t.converted_ms - t.created_ms <= limit for t in members) / len(members)


def cohort_triangle(
    leads: Iterable[LeadTimes], last_month: date, as_of: date, matured_days: Sequence[int] = ()
) -> CohortTriangle:
    """The `COHORT_MONTHS` month cohorts ending with `last_month`'s, aged as of day T, with
    their matured rates at each of `matured_days`."""
    all_leads = list(leads)
    maturity = conversion_quantile_days(all_leads, MATURING_QUANTILE)
    end_of_t = (day_number(as_of) + 1) * DAY_MS
    by_cohort: dict[str, list[LeadTimes]] = {}
    for lead in all_leads:
        by_cohort.setdefault(month_label(lead.created_ms), []).append(lead)
    rows = []
    for back in range(COHORT_MONTHS):
        year, month = last_month.year, last_month.month - back
        start = _month_start_ms(year, month)
        label = month_label(start)
        members = by_cohort.get(label, [])
        conversions = sorted(t.converted_ms for t in members if t.converted_ms is not None)
        cells: list[float | None] = []
        for age in range(COHORT_MONTHS):
            boundary = _month_start_ms(year, month + age + 1)
            reached = bool(members) and boundary <= end_of_t
            cells.append(bisect_left(conversions, boundary) / len(members) if reached else None)
        next_month = _month_start_ms(year, month + 1)
        youngest_days = (end_of_t - next_month) / DAY_MS
        rows.append(CohortRow(label, len(members), len(conversions), tuple(cells),
                              maturing=bool(members) and maturity is not None and youngest_days < maturity,
                              matured=tuple(matured_rate(members, next_month, n, as_of) for n in matured_days)))
    return CohortTriangle(tuple(rows), maturity, tuple(matured_days))

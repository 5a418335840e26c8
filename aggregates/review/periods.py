"""The calendar of a review (pure): which month or quarter it covers and what it compares with.

A review covers the latest *complete* calendar period up to day T: run on 1 December
(or with `--as-of 2026-11-30`) a monthly review covers November. Whole periods keep
the figures like for like: the period's leads are exactly its month cohorts, so the
funnel counts of the cohort series and the window series of the same days describe
the same leads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

PeriodKind = Literal["month", "quarter"]
KINDS: Final = ("month", "quarter")
_MONTHS_OF: Final = {"month": 1, "quarter": 3}


def _month_start(year: int, month: int) -> date:
    """First day of a month given as year and a month number that may over- or underflow."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return date(year, month, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar month or quarter: its first and last day (inclusive)."""

    kind: PeriodKind
    start: date
    end: date

    @classmethod
    def starting(cls, kind: PeriodKind, start: date) -> Period:
        following = _month_start(start.year, start.month + _MONTHS_OF[kind])
        return cls(kind, start, following - timedelta(days=1))

    @property
    def days(self) -> int:
        """Its length in days: the window length that reads exactly its days."""
        return (self.end - self.start).days + 1

    @property
    def months(self) -> tuple[str, ...]:
        """Month cohort labels (`2026-11`) of its months, oldest first."""
        return tuple(
            f"{m.year}-{m.month:02d}"
            for m in (_month_start(self.start.year, self.start.month + i) for i in range(_MONTHS_OF[self.kind]))
        )

    @property
    def label(self) -> str:
        """`November 2026` or `2026 Q4`."""
        if self.kind == "month":
            return self.start.strftime("%B %Y")
        return f"{self.start.year} Q{(self.start.month - 1) // 3 + 1}"

    def shifted(self, periods: int) -> Period:
        """The period `periods` steps later (negative: earlier)."""
        months = _MONTHS_OF[self.kind] * periods
        return Period.starting(self.kind, _month_start(self.start.year, self.start.month + months))

    def previous(self) -> Period:
        return self.shifted(-1)

    def year_before(self) -> Period:
        return self.shifted(-12 // _MONTHS_OF[self.kind])


def review_period(kind: PeriodKind, as_of: date) -> Period:
    """The latest complete month or quarter ending on or before day T."""
    first_month = as_of.month - (as_of.month - 1) % _MONTHS_OF[kind]
    current = Period.starting(kind, date(as_of.year, first_month, 1))
    return current if current.end <= as_of else current.previous()

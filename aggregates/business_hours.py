"""The follow-up SLA's deadline: creation time plus the SLA, counted in business hours (pure).

CONTRACT v1.2 section 2: a lead's touch deadline is its creation plus
`LEADPULSE_FOLLOW_UP_SLA`, counted only inside `LEADPULSE_BUSINESS_HOURS` (local wall
time of `LEADPULSE_BUSINESS_TIMEZONE`, holidays excluded) when those are set, else
around the clock. Wall time, not UTC: opening hours follow the office clock through a
DST change, while the SLA's own hours are elapsed time (a 2-hour SLA is 7,200 seconds
of open office, whatever the clock does meanwhile).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_HOURS = re.compile(r"([A-Za-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_UNIT_MS: Final = (86_400_000, 3_600_000, 60_000, 1_000)
_MS: Final = timedelta(milliseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_duration_ms(text: str) -> int:
    """`30m`, `1h`, `4h`, `1d`, `1h30m` to milliseconds; ValueError names the setting."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"LEADPULSE_FOLLOW_UP_SLA must be a duration such as 30m, 1h, 4h, 1d or 1h30m, got {text!r}")
    ms = sum(int(part) * unit for part, unit in zip(match.groups(), _UNIT_MS) if part)
    if ms <= 0:
        raise ValueError(f"LEADPULSE_FOLLOW_UP_SLA must be longer than 0, got {text!r}")
    return ms


def _weekdays(spec: str) -> frozenset[int]:
    """`Mon-Fri`, `Mon,Wed,Fri` or `Sun-Thu` (a range may wrap the week) to weekday numbers."""
    days: set[int] = set()
    for part in spec.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"LEADPULSE_BUSINESS_HOURS: unknown weekday in {spec!r} (use Mon, Tue, ..., Sun)")
        start, stop = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Open weekdays with one opening time each, in a timezone, minus holidays (local dates)."""

    weekdays: frozenset[int]
    opens: time
    closes: time
    zone: ZoneInfo
    holidays: frozenset[date] = frozenset()

    @classmethod
    def parse(cls, hours: str, zone: str = "UTC", holidays: str = "") -> BusinessHours:
        """From the settings' text: `Mon-Fri 09:00-17:30`, an IANA zone, comma-separated ISO dates."""
        match = _HOURS.fullmatch(hours.strip())
        if match is None:
            raise ValueError(f"LEADPULSE_BUSINESS_HOURS must look like 'Mon-Fri 09:00-17:30', got {hours!r}")
        spec, h1, m1, h2, m2 = match.groups()
        try:
            opens, closes = time(int(h1), int(m1)), time(int(h2), int(m2))
        except ValueError:
            raise ValueError(f"LEADPULSE_BUSINESS_HOURS has an impossible time of day: {hours!r}") from None
        if closes <= opens:
            raise ValueError(f"LEADPULSE_BUSINESS_HOURS must close after it opens on the same day, got {hours!r}")
        return cls(_weekdays(spec), opens, closes, business_zone(zone), parse_holidays(holidays))

    def deadline_ms(self, created_ms: int, sla_ms: int) -> int:
        """The instant `sla_ms` of open time after `created_ms` (at or after it).

        Walks the local days from the creation's: each open day contributes the part of
        its opening interval after the creation, converted to UTC on that day, so DST
        changes and holidays fall out of the calendar rather than being special cases.
        """
        left = sla_ms
        created = _EPOCH + created_ms * _MS
        day = created.astimezone(self.zone).date()
        while True:
            if day.weekday() in self.weekdays and day not in self.holidays:
                start = _to_ms(datetime.combine(day, self.opens, self.zone))
                stop = _to_ms(datetime.combine(day, self.closes, self.zone))
                start = max(start, created_ms)
                if start < stop:
                    if start + left <= stop:
                        return start + left
                    left -= stop - start
            day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class FollowUpClock:
    """The SLA and, where configured, the business hours it is counted in (else 24 x 7)."""

    sla_ms: int
    hours: BusinessHours | None = None

    def deadline_ms(self, created_ms: int) -> int:
        return created_ms + self.sla_ms if self.hours is None else self.hours.deadline_ms(created_ms, self.sla_ms)


def business_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"LEADPULSE_BUSINESS_TIMEZONE must be an IANA time zone such as Europe/Berlin, got {name!r}") from None


def parse_holidays(text: str) -> frozenset[date]:
    try:
        return frozenset(date.fromisoformat(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"LEADPULSE_BUSINESS_HOLIDAYS must be ISO dates separated by commas, got {text!r}") from None


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS

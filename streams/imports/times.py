"""The times CRM exports write, to one instant: pure, table-driven.

Exports write times in many styles: RFC 3339 with `Z` or an offset (Salesforce's
`2006-06-15T20:47:07.000Z`, REST's `+0000`), epoch milliseconds (HubSpot's API),
naive `2025-04-08 17:19` (HubSpot's UI, in the portal's zone), a spreadsheet's US
`4/8/2025 5:19 PM`, date-only cells, and Excel serial numbers. A time without an offset
is only an instant once the operator names its zone (`--timezone`); guessing would
shift every cohort boundary silently, so it is refused instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Final

#: What a spreadsheet cell may hold once read (CSV cells are always text).
Cell = str | datetime | date | float | int | bool | None

#: Texts a column's reader remembers the instant of (`ColumnTimes`).
KNOWN_TEXTS: Final = 4096
#: Excel's day 0 (its 1900 leap-year bug is folded in: serial 60 is 1900-02-29).
_EXCEL_EPOCH: Final = datetime(1899, 12, 30)
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: Serial numbers of 1970..2200: anything else is not an Excel date.
_EXCEL_RANGE: Final = (25_569.0, 110_000.0)
#: Epoch milliseconds of 1973-03-03 .. 2286: twelve or thirteen digits.
_EPOCH_MS: Final = re.compile(r"\d{12,13}")
_SERIAL: Final = re.compile(r"\d{5}(\.\d+)?")
_ISO: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)
_US: Final = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP]\.?M\.?)?)?",
    re.IGNORECASE,
)


class TimeError(ValueError):
    """A cell is not a time this module reads, or needs a zone that was not given."""


class NeedsTimezone(TimeError):
    """A time without an offset and no `--timezone`."""


def parse_time(cell: Cell, zone: tzinfo | None, *, calendar_date: bool = False) -> datetime:
    """The instant `cell` names, in UTC.

    `calendar_date`: the column holds a date without a time (Salesforce's CloseDate and
    ConvertedDate), which becomes 00:00 UTC of that date whatever `zone` is, so the
    same date means the same instant in every import and every live hook.
    """
    if isinstance(cell, bool) or cell is None:
        raise TimeError(f"{cell!r} is not a time")
    if isinstance(cell, datetime):
        return _in_utc(cell, zone, calendar_date)
    if isinstance(cell, date):
        return _in_utc(datetime.combine(cell, time()), zone, calendar_date)
    if isinstance(cell, (int, float)):
        return _in_utc(_from_serial(float(cell), str(cell)), zone, calendar_date)
    return _read_text(cell.strip(), zone, calendar_date, list(_TEXT_READERS))


class ColumnTimes:
    """One column's times: its cells share one format, so the reader of the last cell is tried first.

    Cuts the formats tried per cell to one in a large export; the formats never overlap,
    so the order cannot change what a cell reads as. The instants of the last texts read
    are kept: an export's rows come in creation order, and neighbouring rows share their
    minute (or day), so most cells are read once per run of them.
    """

    def __init__(self, zone: tzinfo | None, *, calendar_date: bool = False) -> None:
        self.zone, self.calendar_date = zone, calendar_date
        self._readers = list(_TEXT_READERS)
        self._known: dict[str, datetime] = {}

    def read(self, cell: Cell) -> datetime:
        """As `parse_time(cell, zone, calendar_date=...)`."""
        if type(cell) is not str:
            return parse_time(cell, self.zone, calendar_date=self.calendar_date)
        known = self._known.get(cell)
        if known is None:
            if len(self._known) >= KNOWN_TEXTS:
                self._known.clear()  # bounded: the rows to come repeat the latest texts, not the oldest
            known = self._known[cell] = _read_text(cell.strip(), self.zone, self.calendar_date, self._readers)
        return known


def _read_text(text: str, zone: tzinfo | None, calendar_date: bool, readers: list[_TextReader]) -> datetime:
    """The first reader's instant that reads `text`; that reader moves to the front of `readers`."""
    for i, reader in enumerate(readers):
        moment = reader(text, zone, calendar_date)
        if moment is not None:
            if i:
                readers.insert(0, readers.pop(i))
            return moment
    raise TimeError(f"{text!r} is not a time")


@lru_cache(maxsize=4096)  # an import's events repeat the instants of neighbouring rows
def rfc3339(moment: datetime) -> str:
    """An instant as the contract's `occurred_at`: UTC, milliseconds, `Z`."""
    utc = moment if moment.tzinfo is timezone.utc else moment.astimezone(timezone.utc)  # most already are: no copy
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _from_serial(serial: float, shown: str) -> datetime:
    if not _EXCEL_RANGE[0] <= serial <= _EXCEL_RANGE[1]:
        raise TimeError(f"{shown!r} is not a time")
    # Round to the millisecond: a serial's float fraction of a day is never exact.
    return _EXCEL_EPOCH + timedelta(milliseconds=round(serial * 86_400_000))


def _epoch_ms(text: str, zone: tzinfo | None, calendar_date: bool) -> datetime | None:
    return _UNIX_EPOCH + timedelta(milliseconds=int(text)) if _EPOCH_MS.fullmatch(text) else None


def _serial(text: str, zone: tzinfo | None, calendar_date: bool) -> datetime | None:
    return _in_utc(_from_serial(float(text), text), zone, calendar_date) if _SERIAL.fullmatch(text) else None


def _iso(text: str, zone: tzinfo | None, calendar_date: bool) -> datetime | None:
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    parsed = _calendar(text, year, month, day, hour, minute, second, fraction, None if offset is None else _offset(offset))
    return _in_utc(parsed, zone, calendar_date)


def _us(text: str, zone: tzinfo | None, calendar_date: bool) -> datetime | None:
    match = _US.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, meridiem = match.groups()
    year = f"20{year}" if len(year) == 2 else year
    hour = _twelve_hour(hour, meridiem, text) if meridiem else hour
    return _in_utc(_calendar(text, year, month, day, hour, minute, second, None, None), zone, calendar_date)


def _calendar(text: str, year: str, month: str, day: str, hour: str | None, minute: str | None, second: str | None,
              fraction: str | None, zone: tzinfo | None) -> datetime:  # fmt: skip
    try:
        return datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")), zone,
        )  # fmt: skip
    except ValueError:
        raise TimeError(f"{text!r} is not a calendar time") from None


def _offset(text: str) -> timezone:
    if text.upper() == "Z":
        return timezone.utc
    digits = text[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return timezone(-delta if text[0] == "-" else delta)


def _twelve_hour(hour: str, meridiem: str, text: str) -> str:
    value = int(hour)
    if not 1 <= value <= 12:
        raise TimeError(f"{text!r} is not a time")
    return str(value % 12 + (12 if meridiem.upper().startswith("P") else 0))


_TextReader = Callable[[str, "tzinfo | None", bool], "datetime | None"]
#: Every text format read, each returning None for text not in its format (they never overlap).
_TEXT_READERS: Final[tuple[_TextReader, ...]] = (_iso, _epoch_ms, _serial, _us)


def _in_utc(moment: datetime, zone: tzinfo | None, calendar_date: bool) -> datetime:
    if calendar_date:
        return datetime.combine(moment.date(), time(), timezone.utc)
    if moment.tzinfo is None:
        if zone is None:
            raise NeedsTimezone("has no UTC offset")
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)

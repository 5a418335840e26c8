"""Every time style CRM exports write reads as the same instant; no offset and no zone is refused."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from streams.imports.times import KNOWN_TEXTS, ColumnTimes, NeedsTimezone, TimeError, parse_time, rfc3339

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("cell", "zone", "expected"),
    [
        ("2006-06-15T20:47:07.000Z", None, "2006-06-15T20:47:07.000Z"),
        ("2006-06-15T20:47:07.000+0000", None, "2006-06-15T20:47:07.000Z"),
        ("2025-04-08T17:19:00+02:00", None, "2025-04-08T15:19:00.000Z"),
        ("1744132740000", None, "2025-04-08T17:19:00.000Z"),
        ("2025-04-08 17:19", NY, "2025-04-08T21:19:00.000Z"),
        ("2025-04-08T17:19:00", UTC, "2025-04-08T17:19:00.000Z"),
        ("4/8/2025 17:19", UTC, "2025-04-08T17:19:00.000Z"),
        ("4/8/2025 5:19 PM", UTC, "2025-04-08T17:19:00.000Z"),
        ("04/08/2025 05:19:07 PM", UTC, "2025-04-08T17:19:07.000Z"),
        ("12/1/2025 12:05 AM", UTC, "2025-12-01T00:05:00.000Z"),
        ("2025-04-08", NY, "2025-04-08T04:00:00.000Z"),
        ("45755.5", UTC, "2025-04-08T12:00:00.000Z"),
        (45755.5, UTC, "2025-04-08T12:00:00.000Z"),
        (datetime(2025, 4, 8, 17, 19), NY, "2025-04-08T21:19:00.000Z"),
        (date(2025, 4, 8), UTC, "2025-04-08T00:00:00.000Z"),
    ],
)
def test_each_style_seen_in_real_exports_reads_as_its_instant(cell: object, zone: ZoneInfo | None, expected: str) -> None:
    assert rfc3339(parse_time(cell, zone)) == expected  # type: ignore[arg-type]


def test_a_calendar_date_column_is_midnight_utc_whatever_the_zone() -> None:
    assert rfc3339(parse_time("2025-04-20", NY, calendar_date=True)) == "2025-04-20T00:00:00.000Z"


@pytest.mark.parametrize("cell", ["2025-04-08 17:19", "4/8/2025", datetime(2025, 4, 8), 45755.5])
def test_a_time_without_an_offset_needs_a_zone(cell: object) -> None:
    with pytest.raises(NeedsTimezone):
        parse_time(cell, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["yesterday", "2025-13-01", "13/40/2025 10:00", "4/8/2025 13:00 PM", "12", True, ""])
def test_what_is_not_a_time_is_refused(cell: object) -> None:
    with pytest.raises(TimeError):
        parse_time(cell, UTC)  # type: ignore[arg-type]


STYLES = [
    lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
    lambda m: str(int(m.timestamp() * 1000)),
    lambda m: m.strftime("%Y-%m-%d %H:%M:%S"),
    lambda m: f"{m.month}/{m.day}/{m.year} {m.hour}:{m.minute:02}:{m.second:02}",
    lambda m: f"{m.month:02}/{m.day:02}/{m.year} {(m.hour % 12) or 12:02}:{m.minute:02}:{m.second:02} {'PM' if m.hour >= 12 else 'AM'}",
    lambda m: m.replace(tzinfo=None),
]


@given(
    moment=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2200, 1, 1)).map(lambda m: m.replace(microsecond=0)),
    style=st.sampled_from(STYLES),
)
def test_a_time_formatted_in_any_supported_style_parses_back_to_the_same_instant(moment: datetime, style: object) -> None:
    utc = moment.replace(tzinfo=UTC)
    assert parse_time(style(utc), UTC) == utc  # type: ignore[operator]


@given(
    cells=st.lists(
        st.one_of(
            st.tuples(st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2200, 1, 1)), st.sampled_from(STYLES)).map(
                lambda pair: pair[1](pair[0].replace(microsecond=0, tzinfo=UTC))  # type: ignore[operator]
            ),
            st.sampled_from(["yesterday", "2025-13-01", "45755.5", "12", "4/8/2025 13:00 PM", "2025-04-08", " 4/8/25 "]),
        ),
        max_size=12,
    ),
    calendar=st.booleans(),
)
def test_a_column_reader_reads_every_cell_as_parse_time_does_whatever_formats_came_before(cells: list[object], calendar: bool) -> None:
    column = ColumnTimes(NY, calendar_date=calendar)
    for cell in cells:
        try:
            expected: object = parse_time(cell, NY, calendar_date=calendar)  # type: ignore[arg-type]
        except TimeError as exc:
            expected = (type(exc), str(exc))
        try:
            found: object = column.read(cell)  # type: ignore[arg-type]
        except TimeError as exc:
            found = (type(exc), str(exc))
        assert found == expected


@given(
    texts=st.lists(
        st.sampled_from(["2025-04-08 17:19", "4/8/2025 5:19 PM", "2025-04-08", "yesterday", "1744132740000", " 2025-04-08 17:19 "]),
        max_size=20,
    ),
    calendar=st.booleans(),
)
def test_a_column_reader_reads_a_repeated_text_again_as_parse_time_does(texts: list[str], calendar: bool) -> None:
    column = ColumnTimes(NY, calendar_date=calendar)
    for text in texts + texts:
        try:
            expected: object = parse_time(text, NY, calendar_date=calendar)
        except TimeError as exc:
            expected = (type(exc), str(exc))
        try:
            found: object = column.read(text)
        except TimeError as exc:
            found = (type(exc), str(exc))
        assert found == expected


def test_a_column_reader_remembers_at_most_known_texts_and_still_reads_every_cell() -> None:
    column = ColumnTimes(UTC)
    minutes = [f"2025-01-{1 + i // 1440:02}T{i // 60 % 24:02}:{i % 60:02}Z" for i in range(KNOWN_TEXTS + 100)]
    read = [column.read(text) for text in minutes]
    assert read == [parse_time(text, UTC) for text in minutes]
    assert len(column._known) <= KNOWN_TEXTS


@given(moment=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
       zone=st.sampled_from([UTC, NY, ZoneInfo("Asia/Kolkata")]))  # fmt: skip
def test_an_instant_has_one_rfc3339_text_in_whichever_zone_it_is_given_first(moment: datetime, zone: ZoneInfo) -> None:
    rfc3339.cache_clear()
    local = moment.astimezone(zone)
    assert rfc3339(local) == rfc3339(moment) == rfc3339.__wrapped__(moment)
    assert rfc3339(moment).endswith("Z")

"""Export files as a header and rows, streamed one row at a time: CSV and XLSX.

A row's number is the one a spreadsheet shows for it (the header is row 1), so a
refusal that names row 5012 points at what the operator sees when opening the file,
even where a quoted cell spans several lines of the CSV. The delimiter is the header
line's: a comma, or one of the others Salesforce's Bulk API 2.0 writes when a job asks
for it (`columnDelimiter` semicolon, tab, pipe, caret, backquote), as do spreadsheets
saved in locales whose decimal mark is a comma (semicolon).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import Final

from streams.imports.times import Cell

SPREADSHEET_SUFFIXES: Final = frozenset({".xlsx", ".xlsm"})
#: Delimiters a CRM's CSV may use, the default first (a header without any is one column).
DELIMITERS: Final = (",", ";", "\t", "|", "^", "`")
#: A CRM note can be long; Python's default of 128 KiB per cell would refuse the row.
_CELL_LIMIT: Final = 16 * 1024 * 1024


class TableError(ValueError):
    """A file cannot be read as a table; the message names the file."""


@dataclass(frozen=True)
class Row:
    """One data row: where it is and its cells (empty cells are None)."""

    number: int
    cells: tuple[Cell, ...]


@contextmanager
def open_table(path: str) -> Iterator[tuple[list[str], Iterator[Row]]]:
    """The header of `path` (CSV, or the first sheet of an XLSX) and its data rows, lazily."""
    if PurePath(path).suffix.lower() in SPREADSHEET_SUFFIXES:
        with _xlsx(path) as table:
            yield table
    else:
        with _csv(path) as table:
            yield table


@contextmanager
def _csv(path: str) -> Iterator[tuple[list[str], Iterator[Row]]]:
    csv.field_size_limit(_CELL_LIMIT)
    try:
        stream = open(path, encoding="utf-8-sig", errors="replace", newline="")
    except OSError as exc:
        raise TableError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with stream:
        first = stream.readline()
        reader = csv.reader(itertools.chain([first], stream), delimiter=delimiter(first))
        header = next(reader, None)
        if header is None:
            raise TableError(f"{path}: the file is empty, not an export with a header row")
        yield [name.strip() for name in header], _csv_rows(reader)


def delimiter(header_line: str) -> str:
    """The delimiter a header line uses: the candidate it holds most of outside quotes (a comma on a tie)."""
    unquoted = header_line.split('"')[::2]
    counts = [sum(part.count(candidate) for part in unquoted) for candidate in DELIMITERS]
    return DELIMITERS[counts.index(max(counts))]


def _csv_rows(reader: Iterator[list[str]]) -> Iterator[Row]:
    for number, cells in enumerate(reader, start=2):
        if any(cells):
            yield Row(number, tuple([cell if cell and not cell.isspace() else None for cell in cells]))


@contextmanager
def _xlsx(path: str) -> Iterator[tuple[list[str], Iterator[Row]]]:
    from openpyxl import load_workbook  # only XLSX imports pay for loading it

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError and its own errors for a bad file
        raise TableError(f"{path}: not a readable XLSX workbook: {exc}") from exc
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise TableError(f"{path}: the first sheet is empty, not an export with a header row")
        yield [str(name).strip() if name is not None else "" for name in header], _sheet_rows(rows)
    finally:
        book.close()


def _sheet_rows(rows: Iterator[tuple[object, ...]]) -> Iterator[Row]:
    for number, values in enumerate(rows, start=2):
        cells = tuple(_cell(value) for value in values)
        if any(cell is not None for cell in cells):
            yield Row(number, cells)


def _cell(value: object) -> Cell:
    if isinstance(value, str):
        return value if value.strip() else None
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if isinstance(value, (datetime, date)):
        return value
    return str(value)


def is_readable(path: str) -> str | None:
    """None when `path` can be opened, else why not (for the one-line refusal)."""
    try:
        Path(path).open("rb").close()
    except OSError as exc:
        return f"{path}: cannot read: {exc.strerror or exc}"
    return None

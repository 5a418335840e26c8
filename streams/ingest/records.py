"""Input records from JSON Lines and CSV files, each paired with its verdict.

Pure apart from reading the stream it is given, and lazy: one record in memory at a
time, so a file of any size (or an endless stdin) streams through. The bytes yielded
are exactly what goes to Kafka, so the verdict here is the one the workers will reach:
`route_record`, the compiled check that gives a valid record's topic and key and leaves
every other record to `parse_record` (the two held equal by their differential test).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from pathlib import PurePath
from typing import TYPE_CHECKING, BinaryIO, Callable, Final, Iterator, Literal, NamedTuple

import orjson

from streams.events import MAX_RECORD_BYTES, Event, Rejection
from streams.ingest.routes import Route, route_record

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

Format = Literal["jsonl", "csv"]
FORMATS: Final[tuple[Format, ...]] = ("jsonl", "csv")
STDIN: Final = "-"

_FORMAT_BY_SUFFIX: Final[dict[str, Format]] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
ATTRIBUTE_PREFIX: Final = "attributes."
#: A line this long without its newline is over MAX_RECORD_BYTES even after "\r\n" goes.
_LINE_LIMIT: Final = MAX_RECORD_BYTES + 2
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
#: Where a CSV row's cells beyond the header go, so a malformed row is rejected whole.
EXTRA_CELLS: Final = "extra_cells"


class Record(NamedTuple):
    """One input record: the bytes to send, what validation made of them, where it was.

    A valid record's result has its `topic` and `lead_id` (the key): a `Route` where the
    bytes came in as they are, the mapped `Event` where a vendor's notification was mapped.
    """

    raw: bytes
    result: Route | Event | Rejection
    line: int


def wall_clock_ms() -> int:
    """Now in epoch ms; read per record so a days-long stdin stream keeps a true `now`."""
    return time.time_ns() // 1_000_000


def detect_format(path: str, override: Format | None = None) -> Format:
    """The format of `path`: the override, else by extension; stdin defaults to JSON Lines."""
    if override is not None:
        return override
    if path == STDIN:
        return "jsonl"
    suffix = PurePath(path).suffix.lower()
    if suffix not in _FORMAT_BY_SUFFIX:
        known = ", ".join(sorted(_FORMAT_BY_SUFFIX))
        raise ValueError(f"{path}: cannot tell the format from the extension (known: {known}); pass --format")
    return _FORMAT_BY_SUFFIX[suffix]


def read_records(stream: BinaryIO, fmt: Format, now_ms: Callable[[], int] = wall_clock_ms) -> Iterator[Record]:
    """Every record of `stream` in `fmt`, lazily."""
    return read_jsonl(stream, now_ms) if fmt == "jsonl" else read_csv(stream, now_ms)


def read_jsonl(stream: BinaryIO, now_ms: Callable[[], int] = wall_clock_ms) -> Iterator[Record]:
    """One record per non-blank line; the line without its terminator is the record, unchanged.

    A line over MAX_RECORD_BYTES is not read whole: it yields its first MAX_RECORD_BYTES
    bytes as a `too_large` rejection whose detail gives the full size.
    """
    number = 0
    while line := stream.readline(_LINE_LIMIT):
        number += 1
        if len(line) == _LINE_LIMIT and not line.endswith(b"\n"):
            size = len(line) + _skip_rest_of_line(stream)
            yield Record(line[:MAX_RECORD_BYTES], Rejection("too_large", f"{size} bytes"), number)
            continue
        raw = line.removesuffix(b"\n").removesuffix(b"\r")
        if raw and not raw.isspace():
            yield Record(raw, route_record(raw, now_ms()), number)


def _skip_rest_of_line(stream: BinaryIO) -> int:
    """Consume the rest of an over-long line in bounded chunks; return its length without the terminator."""
    skipped = 0
    while chunk := stream.readline(_LINE_LIMIT):
        if chunk.endswith(b"\n"):
            return skipped + len(chunk.removesuffix(b"\n").removesuffix(b"\r"))
        skipped += len(chunk)
    return skipped


def read_csv(stream: BinaryIO, now_ms: Callable[[], int] = wall_clock_ms) -> Iterator[Record]:
    """One record per data row: the row as a JSON object, serialised compactly.

    The header names the fields; `attributes.<key>` columns fill `attributes`; empty
    cells are left out; `amount` becomes a number when it looks like one (else it stays
    a string for validation to reject). A UTF-8 BOM (common in CRM exports) is skipped.
    Like a JSON line, a row serialising to over MAX_RECORD_BYTES keeps only that many.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _csv_rows(csv.reader(text), now_ms)
    finally:
        text.detach()  # leave `stream` open: it may be the caller's stdin


def _csv_rows(rows: _CsvReader, now_ms: Callable[[], int]) -> Iterator[Record]:
    """Rows after the header (the first non-blank row); `number` is where a row starts."""
    columns = [name.strip() for name in next((row for row in rows if any(row)), [])]
    line = rows.line_num
    for cells in _cells(rows):
        number, line = line + 1, rows.line_num
        if isinstance(cells, csv.Error):
            yield Record(b"", Rejection("too_large", str(cells)), number)
            continue
        if not any(cells):
            continue
        obj = row_object(columns, cells)
        result: Route | Rejection
        if len(cells) > len(columns):
            obj[EXTRA_CELLS] = cells[len(columns) :]
            detail = f"row has {len(cells)} cells for {len(columns)} columns"
            raw, result = _dumps(obj), Rejection("invalid_field", detail)
        else:
            try:
                raw = orjson.dumps(obj)
                result = route_record(raw, now_ms())
            except orjson.JSONEncodeError:  # a cell held bytes that are not UTF-8 (surrogate-escaped)
                raw, result = _dumps(obj), Rejection("not_utf8", "a cell is not UTF-8")
        yield Record(raw[:MAX_RECORD_BYTES], result, number)


def _cells(rows: _CsvReader) -> Iterator[list[str] | csv.Error]:
    """The reader's rows; one it refuses (a field over `csv.field_size_limit`) comes as that error."""
    while True:
        try:
            yield next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


def row_object(columns: list[str], cells: list[str]) -> dict[str, object]:
    """The event object of one CSV row (see `read_csv` for the mapping)."""
    obj: dict[str, object] = {}
    attributes: dict[str, str] = {}
    for name, cell in zip(columns, cells):
        if cell == "":
            continue
        if name.startswith(ATTRIBUTE_PREFIX):
            attributes[name[len(ATTRIBUTE_PREFIX) :]] = cell
        elif name == "amount":
            obj[name] = _number_or_text(cell)
        else:
            obj[name] = cell
    if attributes:
        obj["attributes"] = attributes
    return obj


def _number_or_text(cell: str) -> int | float | str:
    """`cell` as an int or finite float when it is written as one, else unchanged."""
    text = cell.strip()
    if not _NUMBER.fullmatch(text):
        return cell
    if text.lstrip("+-").isdigit() and len(text) < 19:  # fits int64, which orjson needs
        return int(text)
    number = float(text)
    return number if math.isfinite(number) else cell


def _dumps(obj: dict[str, object]) -> bytes:
    """Lossless JSON for rows orjson refuses: undecodable bytes stay visible as \\udcXX escapes."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()

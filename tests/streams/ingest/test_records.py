"""Reading JSON Lines and CSV input: the bytes kept, the CSV mapping, streaming, stdin."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import orjson
import pytest

from streams.events import MAX_RECORD_BYTES, Event, Rejection, parse_record
from streams.ingest.records import EXTRA_CELLS, Record, detect_format, read_csv, read_jsonl, read_records
from streams.ingest.routes import Route
from tests import REPO

NOW_MS = 1_793_620_800_000  # 2026-11-02T12:00:00Z


def clock() -> int:
    return NOW_MS


LEAD = (
    b'{"event_id":"e-1","type":"lead.created","occurred_at":"2026-11-02T10:00:00Z",'
    b'"lead_id":"L1","source":"Paid Search"}'
)


def jsonl(data: bytes) -> list[Record]:
    return list(read_jsonl(io.BytesIO(data), clock))


def csv_rows(text: str) -> list[Record]:
    return list(read_csv(io.BytesIO(text.encode()), clock))


def event_of(raw: bytes) -> Event:
    """The event the workers will make of `raw`."""
    event = parse_record(raw, NOW_MS)
    assert isinstance(event, Event), event
    return event


def route_of(raw: bytes) -> Route:
    """Where a valid record goes, by `parse_record`."""
    event = event_of(raw)
    return Route(event.topic, event.lead_id)


# --- format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("export/a.json", "jsonl"),
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("-", "jsonl"),
    ],
)
def test_format_from_extension(path: str, fmt: str) -> None:
    assert detect_format(path) == fmt


def test_format_override_wins_and_unknown_extension_is_an_error() -> None:
    assert detect_format("events.txt", "csv") == "csv"
    assert detect_format("-", "csv") == "csv"
    with pytest.raises(ValueError, match=r"events\.txt.*--format"):
        detect_format("events.txt")


# --- JSON Lines -----------------------------------------------------------------------


def test_jsonl_keeps_each_line_byte_for_byte() -> None:
    odd = (
        b'{ "lead_id" : "L\\u00e9", "event_id":"e-2" ,"type":"lead.qualified","stage":"mql",'
        b'"occurred_at":"2026-11-02T10:00:00+01:00"}  '
    )
    records = jsonl(LEAD + b"\n" + odd + b"\r\n")
    assert [r.raw for r in records] == [LEAD, odd]
    assert [r.result for r in records] == [route_of(LEAD), route_of(odd)]


def test_jsonl_skips_blank_lines_and_counts_physical_lines() -> None:
    records = jsonl(b"\n" + LEAD + b"\n   \n\r\nnot json\n" + LEAD)  # no final newline
    assert [r.line for r in records] == [2, 5, 6]
    assert isinstance(records[1].result, Rejection) and records[1].result.code == "invalid_json"
    assert records[1].raw == b"not json"
    assert records[2].raw == LEAD


def test_jsonl_rejections_keep_the_raw_bytes() -> None:
    bad = b'{"event_id":"\xff\xfe"}'
    (record,) = jsonl(bad + b"\n")
    assert record.raw == bad
    assert isinstance(record.result, Rejection) and record.result.code == "not_utf8"


def test_an_over_long_line_is_cut_not_loaded_and_the_next_line_still_reads() -> None:
    huge = b'{"pad":"' + b"x" * (5 * MAX_RECORD_BYTES) + b'"}'
    records = jsonl(huge + b"\r\n" + LEAD + b"\n")
    assert records[0].raw == huge[:MAX_RECORD_BYTES]
    assert records[0].result == Rejection("too_large", f"{len(huge)} bytes")
    assert (records[1].raw, records[1].line) == (LEAD, 2)


def test_a_line_of_exactly_the_limit_is_read_whole() -> None:
    pad = MAX_RECORD_BYTES - len(LEAD) - len(b',"pad":""')
    line = LEAD[:-1] + b',"pad":"' + b"x" * pad + b'"}'
    assert len(line) == MAX_RECORD_BYTES
    (record,) = jsonl(line + b"\r\n")
    assert record.raw == line and record.result == route_of(line)


class _CountingRaw(io.RawIOBase):
    """An endless JSON Lines source that counts how much was read from it."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = (LEAD + b"\n") * (len(buffer) // (len(LEAD) + 1) or 1)
        n = min(len(buffer), len(chunk))
        buffer[:n] = chunk[:n]
        self.served += n
        return n


def test_reading_is_lazy() -> None:
    raw = _CountingRaw()
    records = read_jsonl(io.BufferedReader(raw), clock)
    first = [next(records) for _ in range(10)]
    assert all(r.raw == LEAD for r in first)
    assert raw.served < 64 * 1024


def test_the_clock_is_read_per_record() -> None:
    """A long-running stdin stream must judge "future" against the time each record arrives."""
    future = b'{"event_id":"e","type":"lead.created","occurred_at":"2026-11-04T10:00:00Z","lead_id":"L","source":"s"}'
    times = iter([NOW_MS, NOW_MS + 2 * 86_400_000])
    results = [r.result for r in read_jsonl(io.BytesIO(future + b"\n" + future), lambda: next(times))]
    assert isinstance(results[0], Rejection) and results[0].code == "future_timestamp"
    assert results[1] == Route("leadpulse.leads", "L")


# --- CSV ------------------------------------------------------------------------------

CRM_EXPORT = (
    "event_id,type,occurred_at,lead_id,source,campaign,attributes.persona,attributes.region,deal_id,amount\n"
    "e-1,lead.created,2026-11-02T10:00:00Z,L1,Paid Search,,CMO,EMEA,,\n"
    "e-2,deal.won,2026-11-02T11:00:00+01:00,L1,,,,,D1,1200.50\n"
)


def test_csv_rows_become_json_objects() -> None:
    first, second = csv_rows(CRM_EXPORT)
    assert orjson.loads(first.raw) == {
        "event_id": "e-1",
        "type": "lead.created",
        "occurred_at": "2026-11-02T10:00:00Z",
        "lead_id": "L1",
        "source": "Paid Search",
        "attributes": {"persona": "CMO", "region": "EMEA"},
    }
    assert orjson.loads(second.raw) == {
        "event_id": "e-2",
        "type": "deal.won",
        "occurred_at": "2026-11-02T11:00:00+01:00",
        "lead_id": "L1",
        "deal_id": "D1",
        "amount": 1200.5,
    }
    assert (first.line, second.line) == (2, 3)
    for record in (first, second):
        assert record.raw == orjson.dumps(orjson.loads(record.raw))  # compact serialisation is what is sent
        assert record.result == route_of(record.raw)


def test_a_csv_touch_row_is_a_lead_contacted_with_its_channel_and_owner() -> None:
    export = (
        "event_id,type,occurred_at,lead_id,channel,attributes.owner\n"
        "t-1,lead.contacted,2026-11-02T10:20:00Z,L1,Phone Call,Ana\n"
        "t-2,lead.contacted,2026-11-02T11:00:00Z,L2,,\n"
    )
    touch, bare = csv_rows(export)
    assert touch.result == route_of(touch.raw) and bare.result == route_of(bare.raw)
    touched, untouched = event_of(touch.raw), event_of(bare.raw)
    assert (touched.type, touched.channel, touched.attributes) == ("lead.contacted", "phone_call", {"owner": "ana"})
    assert (untouched.channel, untouched.attributes, untouched.topic) == ("unknown", {}, "leadpulse.leads")


@pytest.mark.parametrize(
    ("cell", "amount"),
    [
        ("1200", 1200),
        ("0", 0),
        ("99.90", 99.9),
        (" 5e3 ", 5000.0),
        ("-3", -3),
        ("12 EUR", "12 EUR"),
        ("nan", "nan"),
        ("1e999", "1e999"),
        ("1_000", "1_000"),
        ("12345678901234567890123", 1.2345678901234568e22),  # too long for int64: a float
    ],
)
def test_csv_amount_is_a_number_when_it_looks_like_one(cell: str, amount: object) -> None:
    (record,) = csv_rows(f"event_id,amount\ne,{cell}\n")
    value = orjson.loads(record.raw)["amount"]
    assert value == amount and type(value) is type(amount)


def test_csv_non_numeric_or_negative_amounts_are_rejected() -> None:
    header = "event_id,type,occurred_at,lead_id,deal_id,amount\n"
    for cell in ("12 EUR", "-3"):
        (record,) = csv_rows(f"{header}e,deal.won,2026-11-02T10:00:00Z,L,D,{cell}\n")
        assert isinstance(record.result, Rejection) and record.result.code == "invalid_field"


def test_csv_bom_quotes_multiline_cells_and_blank_rows() -> None:
    text = '\ufeffevent_id , lead_id,reason\n\ne-1,L1,"said ""no"",\nthen left"\n,,\ne-2,L2,\n'
    records = csv_rows(text)
    assert [orjson.loads(r.raw) for r in records] == [
        {"event_id": "e-1", "lead_id": "L1", "reason": 'said "no",\nthen left'},
        {"event_id": "e-2", "lead_id": "L2"},
    ]
    assert [r.line for r in records] == [3, 6]


def test_csv_row_with_extra_cells_is_rejected_whole() -> None:
    (record,) = csv_rows("event_id,lead_id\ne-1,L1,oops\n")
    assert record.result == Rejection("invalid_field", "row has 3 cells for 2 columns")
    assert orjson.loads(record.raw) == {"event_id": "e-1", "lead_id": "L1", EXTRA_CELLS: ["oops"]}


def test_csv_cell_that_is_not_utf8_is_rejected_with_its_bytes_escaped() -> None:
    (record,) = list(read_csv(io.BytesIO(b"event_id,source\ne-1,caf\xe9\n"), clock))
    assert isinstance(record.result, Rejection) and record.result.code == "not_utf8"
    assert orjson.loads(record.raw.replace(b"\\udce9", b"?")) == {"event_id": "e-1", "source": "caf?"}


def test_csv_field_over_the_csv_limit_is_rejected_and_reading_goes_on() -> None:
    records = csv_rows("event_id,source\ne-1," + "x" * 200_000 + "\ne-2,ads\n")
    assert isinstance(records[0].result, Rejection) and records[0].result.code == "too_large"
    assert orjson.loads(records[1].raw) == {"event_id": "e-2", "source": "ads"}


def test_csv_over_the_record_limit_keeps_its_first_bytes() -> None:
    (record,) = csv_rows("event_id,source\ne-1," + "x" * (MAX_RECORD_BYTES + 10) + "\n")
    assert isinstance(record.result, Rejection) and record.result.code == "too_large"
    assert len(record.raw) == MAX_RECORD_BYTES


@pytest.mark.parametrize("text", ["", "event_id,lead_id\n", "\n\n"])
def test_csv_without_data_rows_yields_nothing(text: str) -> None:
    assert csv_rows(text) == []


def test_csv_leaves_the_stream_open() -> None:
    stream = io.BytesIO(CRM_EXPORT.encode())
    assert len(list(read_records(stream, "csv", clock))) == 2
    assert not stream.closed


# --- stdin ----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "data"), [("jsonl", LEAD + b"\nnot json\n"), ("csv", CRM_EXPORT.encode())])
def test_stdin_streams_through(fmt: str, data: bytes) -> None:
    script = (
        "import sys\n"
        "from streams.ingest.records import read_records\n"
        f"for r in read_records(sys.stdin.buffer, {fmt!r}):\n"
        "    print(r.line, type(r.result).__name__)\n"
    )
    root = REPO
    done = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, cwd=root, check=True, timeout=60
    )
    expected = "1 Route\n2 Rejection\n" if fmt == "jsonl" else "2 Route\n3 Route\n"
    assert done.stdout.decode() == expected

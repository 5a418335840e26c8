"""The spool gives back every record written, byte for byte and in order, with its file and row."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, strategies as st

from streams.imports.spool import Spool

#: Events whose strings hold tabs, newlines and any other character a CRM cell may hold.
EVENTS = st.dictionaries(st.text(max_size=8), st.text() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False), max_size=4)
RECORDS = st.lists(st.tuples(st.sampled_from(["contacts.csv", "deals\tpart 2.csv", "Lead.xlsx"]), st.integers(1, 10**7), EVENTS))


@given(RECORDS)
def test_records_come_back_in_order_with_their_file_and_row_whatever_their_strings_hold(
    records: list[tuple[str, int, dict[str, object]]],
) -> None:
    written = [(origin, number, orjson.dumps(event)) for origin, number, event in records]
    with Spool() as spool:
        for record in written:
            spool.write(*record)
        assert list(spool.records()) == written
        assert list(spool.records()) == written  # read again: the send starts from the top


def test_the_spool_is_closed_when_the_import_fails_midway() -> None:
    with pytest.raises(RuntimeError), Spool() as spool:
        spool.write("contacts.csv", 2, b"{}")
        raise RuntimeError("an unreadable date")
    with pytest.raises(ValueError):
        list(spool.records())

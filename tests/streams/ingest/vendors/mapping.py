"""Helpers the vendor tests share: a body through a mapper, and any JSON value for property tests."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from streams.events import Event, Rejection
from streams.ingest.vendors.common import Mapper, map_notifications

NOW_MS = 1_794_268_800_000  # 2026-11-10T00:00Z
T1, T2 = 1_793_613_600_000, 1_793_700_000_000  # 2026-11-02T10:00Z, 2026-11-03T10:00Z

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


def mapped(mapper: Mapper, body: Any) -> tuple[list[dict[str, Any]], list[tuple[int, str, bytes]], int]:
    """(event objects sent, (index, reason, raw) of rejections, ignored count) for `body` through `mapper`."""
    records, ignored = map_notifications(mapper, body, NOW_MS)
    events = [orjson.loads(r.raw) for r in records if isinstance(r.result, Event)]
    rejected = [(r.line, str(r.result), r.raw) for r in records if isinstance(r.result, Rejection)]
    return events, rejected, ignored


def assert_total(mapper: Mapper, body: Any) -> None:
    """Every notification of `body` is events, a rejection or ignored, and mapping never raises."""
    notes = body if isinstance(body, list) else [body]
    records, ignored = map_notifications(mapper, body, NOW_MS)
    assert {r.line for r in records} <= set(range(len(notes)))
    assert len({r.line for r in records}) + ignored == len(notes)

"""Where a valid input record goes, judged without building its event: the ingest paths' check.

`publish`, `import` and the ingest API send a record's bytes unchanged; all they need from
validation is whether the record is valid and, if it is, its topic and key. The compiled
`streams._native.route` (Rust, `streams/native/`) answers that for a well-formed record
in a fraction of a microsecond, without building an `Event`: docs/bench.md has the
figures. It answers only when it is sure; every other record goes to `parse_record`, so
the rules of CONTRACT section 1 and every rejection reason stay in one place, and
`tests/streams/ingest/test_routes.py` holds the two equal on arbitrary records.
"""

from __future__ import annotations

from typing import Final

from streams._native import Route, Router
from streams.events import Rejection, parse_record
from streams.settings import DEALS_TOPIC, LEADS_TOPIC

__all__ = ["Route", "route_record"]

#: The compiled check, bound to this process's topics.
_route: Final = Router(LEADS_TOPIC, DEALS_TOPIC).route


def route_record(raw: bytes, now_ms: int) -> Route | Rejection:
    """The route of `raw` if it is a valid record at `now_ms`, else why not (as `parse_record` says)."""
    routed = _route(raw, now_ms)
    if routed is not None:
        return routed
    result = parse_record(raw, now_ms)
    return result if isinstance(result, Rejection) else Route(result.topic, result.lead_id)

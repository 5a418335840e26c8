"""The peers' core job stated plainly: per-source leads and customers of a feed, in memory.

What each peer's counts must equal (the benchmark checks them every round). A lead
counts once, under the source of its first lead.created; it is a customer once it has
both that and any deal.won. Records that are not a JSON object with a string type and
lead_id (and, for lead.created, a string source) count for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson


def expected_counts(records: Iterable[bytes]) -> dict[str, tuple[int, int]]:
    """Source -> (leads, customers) for `records` in the order one partition delivers a lead's records."""
    sources: dict[str, str] = {}
    won: set[str] = set()
    for raw in records:
        try:
            fields = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(fields, dict) or not isinstance(lead := fields.get("lead_id"), str):
            continue
        if fields.get("type") == "deal.won":
            won.add(lead)
        elif fields.get("type") == "lead.created" and isinstance(source := fields.get("source"), str):
            sources.setdefault(lead, source)
    counts: dict[str, tuple[int, int]] = {}
    for lead, source in sources.items():
        leads, customers = counts.get(source, (0, 0))
        counts[source] = (leads + 1, customers + (lead in won))
    return counts

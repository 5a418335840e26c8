"""What an import will send, counted before anything is sent: the operator's check.

Memory: counters and the few distinct sources only. The distinct leads (with their
source, for customers per source), customers and deals are 8-byte hashes in the
import's temporary database (`store`), written once per chunk of rows (`flush`).
Row numbers are kept only for the first few skipped rows.
"""

from __future__ import annotations

import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from streams.events import normalise_segment
from streams.imports.rows import Skip

#: Row numbers shown per skip reason.
FIRST_ROWS: Final = 5
#: Unmapped values shown, most frequent first.
SHOWN_VALUES: Final = 20


@dataclass
class Summary:
    """Counts of rows, events, leads, customers, deals; skipped rows; values no setting maps."""

    db: sqlite3.Connection
    rows: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: dict[str, list[str]] = field(default_factory=dict)
    unmapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    first: str | None = None
    last: str | None = None
    #: Written at the next `flush`: (lead hash, order of arrival, source), customers' and deals' hashes.
    _leads: list[tuple[int, int, str]] = field(default_factory=list)
    _customers: list[tuple[int]] = field(default_factory=list)
    _deals: list[tuple[int]] = field(default_factory=list)
    _arrivals: int = 0

    def add_row(self, origin: str, number: int, result: list[dict[str, Any]] | Skip) -> None:
        self.rows[origin] += 1
        if isinstance(result, Skip):
            self.skipped[result.reason] += 1
            rows = self.first_skipped.setdefault(result.reason, [])
            if len(rows) < FIRST_ROWS:
                rows.append(f"{origin}:{number}")
            return
        for event in result:
            self._add_event(event)

    def _add_event(self, event: dict[str, Any]) -> None:
        kind, moment = event["type"], event["occurred_at"]
        self.events[kind] += 1
        if self.first is None or moment < self.first:
            self.first = moment
        if self.last is None or moment > self.last:
            self.last = moment
        if kind == "lead.created":
            self._arrivals += 1
            self._leads.append((hash(event["lead_id"]), self._arrivals, _segment(event["source"])))
        elif kind == "deal.won":
            self._customers.append((hash(event["lead_id"]),))
        if kind.startswith("deal."):
            self._deals.append((hash((event["deal_id"], event["lead_id"])),))

    def flush(self) -> None:
        """Write the chunk's leads (a lead's last source wins), customers and deals to the database."""
        self.db.executemany("INSERT INTO leads VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET source = excluded.source", self._leads)
        self.db.executemany("INSERT OR IGNORE INTO customers VALUES (?)", self._customers)
        self.db.executemany("INSERT OR IGNORE INTO deals VALUES (?)", self._deals)
        self._leads, self._customers, self._deals = [], [], []

    def _count(self, table: str) -> int:
        self.flush()
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    @property
    def leads(self) -> int:
        return self._count("leads")

    @property
    def customers(self) -> int:
        return self._count("customers")

    def render(self) -> str:
        lines = ["import summary:"]
        lines += [f"  {origin}: {count:,} rows read" for origin, count in self.rows.items()]
        events = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.events.items())) or "none"
        lines.append(f"  events: {sum(self.events.values()):,} ({events})")
        lines.append(f"  leads {self.leads:,}, customers {self.customers:,}, deals {self._count('deals'):,}")
        if self.first is not None:
            lines.append(f"  dates: {self.first[:10]} .. {(self.last or self.first)[:10]}")
        lines += self._by_source()
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped {count:,} rows: {reason} (first: {', '.join(self.first_skipped[reason])})")
        for (column, value), count in self.unmapped.most_common(SHOWN_VALUES):
            lines.append(f"  not mapped by any setting: {column} {value!r} ({count:,} rows)")
        if len(self.unmapped) > SHOWN_VALUES:
            lines.append(f"  ... and {len(self.unmapped) - SHOWN_VALUES} more unmapped values")
        return "\n".join(lines)

    def _by_source(self) -> list[str]:
        """Most leads first; a tie in the order each source was first seen among the leads (as a Counter of them orders it)."""
        self.flush()
        customers = dict(self.db.execute("SELECT source, count(*) FROM customers JOIN leads USING (key) GROUP BY source"))
        leads = self.db.execute("SELECT source, count(*) FROM leads GROUP BY source ORDER BY count(*) DESC, min(seq)")
        return [f"  source {source}: {count:,} leads, {customers.get(source, 0):,} customers" for source, count in leads]


@lru_cache(maxsize=1024)  # a file names a few sources, again on every row
def _segment(source: str) -> str:
    """A lead's source as its segment label, one string for every lead of that source."""
    return sys.intern(normalise_segment(source))

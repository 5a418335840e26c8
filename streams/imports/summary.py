"""What an import will send, counted before anything is sent: the operator's check.

Memory: besides counters, one 8-byte hash per lead (its source, for customers per
source), per customer and per deal, about 100 bytes each in Python: ~100 MB for a
1,000,000-lead export. Row numbers are kept only for the first few skipped rows.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
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

    rows: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: dict[str, list[str]] = field(default_factory=dict)
    unmapped: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    first: str | None = None
    last: str | None = None
    _lead_sources: dict[int, str] = field(default_factory=dict)
    _customers: set[int] = field(default_factory=set)
    _deals: set[int] = field(default_factory=set)

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
        self.first = moment if self.first is None else min(self.first, moment)
        self.last = moment if self.last is None else max(self.last, moment)
        if kind == "lead.created":
            self._lead_sources[hash(event["lead_id"])] = sys.intern(normalise_segment(event["source"]))
        elif kind == "deal.won":
            self._customers.add(hash(event["lead_id"]))
        if kind.startswith("deal."):
            self._deals.add(hash((event["deal_id"], event["lead_id"])))

    @property
    def leads(self) -> int:
        return len(self._lead_sources)

    @property
    def customers(self) -> int:
        return len(self._customers)

    def render(self) -> str:
        lines = ["import summary:"]
        lines += [f"  {origin}: {count:,} rows read" for origin, count in self.rows.items()]
        events = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.events.items())) or "none"
        lines.append(f"  events: {sum(self.events.values()):,} ({events})")
        lines.append(f"  leads {self.leads:,}, customers {self.customers:,}, deals {len(self._deals):,}")
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
        leads = Counter(self._lead_sources.values())
        customers = Counter(self._lead_sources[lead] for lead in self._customers if lead in self._lead_sources)
        return [f"  source {source}: {count:,} leads, {customers[source]:,} customers" for source, count in leads.most_common()]

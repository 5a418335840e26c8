"""Generated HubSpot exports of any size, for the import benchmark and the import memory test.

Rows look like HubSpot's UI export (labels, times without an offset in the portal's zone,
names and emails beside the columns the import reads) so the reader does its real work.
Every tenth contact is disqualified, four in ten reach MQL, two in ten SQL; each SQL
contact has a deal, two in three of which are closed (won or lost).
"""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Final

CONTACT_HEADER: Final = (
    "Record ID", "First Name", "Last Name", "Email", "Create Date", "Lifecycle Stage", "Lead Status", "Original Source",
    "Became a Marketing Qualified Lead Date", "Became a Sales Qualified Lead Date", "Contact owner",
)  # fmt: skip
DEAL_HEADER: Final = ("Record ID", "Deal Name", "Create Date", "Close Date", "Deal Stage", "Pipeline", "Amount", "Associated Contact IDs")
SOURCES: Final = ("Organic Search", "Paid Search", "Direct Traffic", "Referrals", "Email Marketing", "Social Media", "Offline Sources")
DAY0: Final = datetime(2025, 1, 1, 8)
DAY: Final = 24 * 60  # minutes
#: Contact ids start here, deal ids at twice it: numbers like HubSpot's.
FIRST_ID: Final = 10_000_000


@lru_cache(maxsize=4096)
def _stamp(minutes: int) -> str:
    """The time `minutes` after DAY0 as the UI writes it; cached, as neighbouring rows share their minute."""
    return (DAY0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")


def hubspot_export(folder: Path, contacts: int) -> tuple[Path, Path]:
    """A contacts export of `contacts` rows and its deals export, written to `folder` (times in the portal's zone)."""
    contacts_path, deals_path = folder / f"contacts-{contacts}.csv", folder / f"deals-{contacts}.csv"
    with contacts_path.open("w", newline="", encoding="utf-8-sig") as c_stream, deals_path.open("w", newline="", encoding="utf-8-sig") as d_stream:
        contact_rows, deal_rows = csv.writer(c_stream), csv.writer(d_stream)
        contact_rows.writerow(CONTACT_HEADER)
        deal_rows.writerow(DEAL_HEADER)
        for i in range(contacts):
            created = i * 31 // 60
            kind = i % 10
            mql = _stamp(created + 2 * DAY) if kind < 4 else ""
            sql = _stamp(created + 5 * DAY) if kind < 2 else ""
            stage, status = ("salesqualifiedlead", "IN_PROGRESS") if sql else ("lead", "UNQUALIFIED" if kind == 9 else "NEW")
            contact = FIRST_ID + i
            contact_rows.writerow((contact, f"First{i}", f"Last{i}", f"contact{i}@example.com", _stamp(created), stage, status,
                                   SOURCES[i % len(SOURCES)], mql, sql, 1000 + i % 40))  # fmt: skip
            if sql:
                outcome = ("closedwon", "closedlost", "contractsent")[i // 10 % 3]
                closed = _stamp(created + 30 * DAY) if outcome != "contractsent" else ""
                deal_rows.writerow((2 * FIRST_ID + i, f"Deal {i}", sql, closed, outcome, "default", 100 + i % 900, contact))
    return contacts_path, deals_path

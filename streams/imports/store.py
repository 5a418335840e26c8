"""What an import must remember per record, kept on disk so its memory does not grow with the file.

An import answers exact questions about every record it has read: was this row seen
before, how many distinct leads, customers and deals, which source each lead came from,
which contact a merged id became, which lead a converted deal came from, when a record
entered a stage. Held in Python sets and dicts that cost ~200-300 bytes per row.
They live instead in one temporary SQLite database (stdlib, exact keys rather than a
probabilistic filter, B-tree pages beyond a fixed cache spilled to a file that SQLite
unlinks as it opens it, so nothing is left behind whatever happens), written with one
`executemany` per chunk of rows so the per-row work stays in C.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Final

import orjson

#: The database's page cache, in KiB: the whole of its memory, whatever the file's size.
CACHE_KIB: Final = 16 * 1024
_SCHEMA: Final = """
CREATE TABLE seen_rows (key INTEGER PRIMARY KEY);
CREATE TABLE merged (merged TEXT PRIMARY KEY, survivor TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE deal_leads (deal TEXT PRIMARY KEY, lead TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE stage_times (object TEXT, record TEXT, meaning TEXT, at_us INTEGER NOT NULL,
                          PRIMARY KEY (object, record, meaning)) WITHOUT ROWID;
CREATE TABLE leads (key INTEGER PRIMARY KEY, seq INTEGER NOT NULL, source TEXT NOT NULL);
CREATE TABLE customers (key INTEGER PRIMARY KEY);
CREATE TABLE deals (key INTEGER PRIMARY KEY);
"""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND: Final = timedelta(microseconds=1)


@contextlib.contextmanager
def temporary_database() -> Iterator[sqlite3.Connection]:
    """A private on-disk database (SQLite's empty file name), gone when closed; no journal, no sync: it is scratch."""
    db = sqlite3.connect("", isolation_level=None)
    try:
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(_SCHEMA)
        db.execute("BEGIN")  # one transaction for the whole import: a commit per chunk would only write pages sooner
        yield db
    finally:
        db.close()


def first_seen(db: sqlite3.Connection, keys: Sequence[int]) -> list[bool]:
    """For each key of a chunk, in order: whether it is new (not in an earlier chunk, not earlier in this one)."""
    batch = orjson.dumps(keys)
    before = {key for (key,) in db.execute("SELECT key FROM seen_rows WHERE key IN (SELECT value FROM json_each(?))", (batch,))}
    fresh = []
    for key in keys:
        fresh.append(key not in before)
        before.add(key)
    db.execute("INSERT OR IGNORE INTO seen_rows SELECT value FROM json_each(?)", (batch,))
    return fresh


@dataclass
class Links:
    """What one object's rows need from another's, learnt in the first pass: merged ids, converted deals, stage times.

    Without a database (one record pushed live) every answer is None. Lookups skip a
    table nothing was written to, and a lead's stage times are fetched once for all
    its meanings (the last record's are kept), so an import without history or merged
    ids asks SQLite nothing per row.
    """

    db: sqlite3.Connection | None = None
    #: Whether a lead's customer date is its conversion: only when no deals are imported.
    lead_wins: bool = True
    #: History files' rows read, by path (they yield no events of their own).
    history_rows: dict[str, int] = field(default_factory=dict)
    _filled: set[str] = field(default_factory=set)
    _last_stages: tuple[tuple[str, str], dict[str, datetime]] | None = None

    def add_merged(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(merged-away id, surviving id) pairs; the first survivor named for an id wins."""
        self._insert("merged", "INSERT OR IGNORE INTO merged VALUES (?, ?)", pairs)

    def add_deal_leads(self, pairs: Iterable[tuple[str, str]]) -> None:
        """(deal, the lead it was converted from) pairs; the first lead named for a deal wins."""
        self._insert("deal_leads", "INSERT OR IGNORE INTO deal_leads VALUES (?, ?)", pairs)

    def add_stage_times(self, later: bool, entries: Iterable[tuple[str, str, str, datetime]]) -> None:
        """(object singular, record, meaning, when) entries; per key the latest is kept when `later`, else the earliest."""
        keep = "max" if later else "min"
        rows = ((singular, record, meaning, _micros(moment)) for singular, record, meaning, moment in entries)
        self._insert("stage_times", "INSERT INTO stage_times VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE "
                                    f"SET at_us = {keep}(at_us, excluded.at_us)", rows)  # fmt: skip

    def survivor(self, merged: str) -> str | None:
        """The contact a merged-away id became (HubSpot's Merged Contact IDs), or None."""
        return self._one("merged", "SELECT survivor FROM merged WHERE merged = ?", merged)

    def deal_lead(self, deal: str) -> str | None:
        """The lead a deal was converted from (Salesforce's ConvertedOpportunityId), or None."""
        return self._one("deal_leads", "SELECT lead FROM deal_leads WHERE deal = ?", deal)

    def stage_time(self, singular: str, record: str, meaning: str) -> datetime | None:
        """When the record entered a status or stage of that meaning, by its history: a lead's first time, a deal's last."""
        if self.db is None or "stage_times" not in self._filled:
            return None
        if self._last_stages is None or self._last_stages[0] != (singular, record):
            found = self.db.execute("SELECT meaning, at_us FROM stage_times WHERE object = ? AND record = ?", (singular, record))
            self._last_stages = (singular, record), {meaning: _moment(at_us) for meaning, at_us in found}
        return self._last_stages[1].get(meaning)

    def _insert(self, table: str, statement: str, rows: Iterable[tuple[object, ...]]) -> None:
        assert self.db is not None, "an import's links are written to its database"
        cursor = self.db.executemany(statement, rows)
        if cursor.rowcount:
            self._filled.add(table)

    def _one(self, table: str, statement: str, key: str) -> str | None:
        if self.db is None or table not in self._filled:
            return None
        found = self.db.execute(statement, (key,)).fetchone()
        return None if found is None else str(found[0])


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


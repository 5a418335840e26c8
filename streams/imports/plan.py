"""An import's files, checked and read in passes: links, then every row mapped once.

Every check that can refuse the import (a missing required column, a file that is
another object's export, opportunities that cannot reach their leads, an unreadable
date anywhere) runs before anything is sent, so a refused import sends nothing.

Passes over the files, each streaming one row at a time, in chunks of `CHUNK` rows:
1. links: the history files' stage times, the lead files' merged ids and converted deals;
2. every row mapped once and counted (`summary.Summary`), which also proves every date
   readable, its events serialised into a sink (the command's spool) for the send.
A duplicated row (the same cells again, in one file or in overlapping parts) is skipped.
What these passes remember per record (the links, each row's 8-byte hash, the summary's
leads, customers and deals) is in the import's temporary database (`store`), so memory
does not grow with the file. Two versions of a record (a later export where the deal has
closed) are both mapped: their events share ids where they describe the same fact, and
add the new facts' events.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final, TypeVar

import orjson

from streams.imports.mapping import CrmMapping, ObjectMapping, column_key
from streams.imports.rows import CellError, Columns, RowMapper, Skip
from streams.imports.store import Links, first_seen
from streams.imports.summary import Summary
from streams.imports.tables import Row, TableError, is_readable, open_table

#: Rows per chunk: one batch of database writes (and one duplicate look-up) per chunk.
CHUNK: Final = 1024
#: Where each event's record goes: (file, row number, the serialised event).
Sink = Callable[[str, int, bytes], None]
_T = TypeVar("_T")


class ImportRefused(ValueError):
    """The import cannot run as given; the one-line message names the file, column or flag to fix."""


@dataclass(frozen=True)
class Source:
    """One file of one object (`contacts`, `deals`, ...) and the mapper its header resolved to."""

    object_name: str
    path: str
    mapper: RowMapper
    #: A history file's: the object whose statuses or stages it records.
    records: ObjectMapping | None = None


def prepare(mapping: CrmMapping, files: Sequence[tuple[str, str]], zone: tzinfo | None) -> tuple[list[Source], list[str]]:
    """The sources of `(object, path)` pairs in import order (leads before deals), and warnings.

    Refuses (`ImportRefused`) an unreadable file, a missing required column, a file
    that is another object's export, and deals with no way to reach their leads.
    """
    sources, warnings = [], []
    for object_name, path in files:
        if object_name not in mapping.objects:
            raise ImportRefused(f"{object_name}={path}: the mapping has no object {object_name!r}; it has {', '.join(mapping.objects)}")
        problem = is_readable(path)
        if problem:
            raise ImportRefused(problem)
        try:
            with open_table(path) as (header, _):
                columns = Columns.resolve(mapping.objects[object_name], header)
        except TableError as exc:
            raise ImportRefused(str(exc)) from exc
        _check_object(mapping, object_name, path, columns)
        warnings += [f"{path}: no {role} column, so {what}" for role, what in columns.mapping.missing.items()
                     if role not in columns.index]  # fmt: skip
        records = mapping.objects[columns.mapping.of] if columns.mapping.of else None
        sources.append(Source(object_name, path, RowMapper(mapping.crm, columns, zone, mapping.salesforce_ids), records))
    sources.sort(key=lambda source: ("history", "lead", "deal").index(source.mapper.mapping.kind))
    _check_deals_reach_leads(sources)
    return sources, warnings


def _check_object(mapping: CrmMapping, object_name: str, path: str, columns: Columns) -> None:
    """Refuse another object's export (it has that object's marks and none of this one's), then missing columns."""
    own = {column_key(alias) for alias in columns.mapping.identify}
    for other, other_mapping in mapping.objects.items():
        theirs = {column_key(alias) for alias in other_mapping.identify}
        marks = [name for name in columns.header if column_key(name) in theirs]
        if other != object_name and marks and not any(column_key(name) in own for name in columns.header):
            raise ImportRefused(f"{path} looks like a {other} export (it has {', '.join(marks)}), not {object_name}: check which file goes with which flag")
    missing = [role for role in columns.mapping.required if role not in columns.index]
    if not missing:
        return
    role = missing[0]
    aliases = columns.mapping.aliases(role)
    raise ImportRefused(f"{path}: no column {aliases[0]!r} (any of: {', '.join(aliases)}) for the {object_name}' {role}; "
                        f"{columns.mapping.export_hint}")  # fmt: skip


def _check_deals_reach_leads(sources: Sequence[Source]) -> None:
    joins = any("converted_deal" in s.mapper.columns.index for s in sources if s.mapper.mapping.kind == "lead")
    for source in sources:
        columns = source.mapper.columns
        if columns.mapping.kind == "deal" and "lead" not in columns.index and not joins:
            raise ImportRefused(
                f"{source.path}: the {source.object_name} cannot reach their leads: export the column {columns.label('lead')!r} "
                f"(any of: {', '.join(columns.mapping.aliases('lead'))}), or import the leads file with its converted-deal column too"
            )


def history_object(mapping: CrmMapping, path: str) -> str:
    """Which of the mapping's history objects the file at `path` is (LeadHistory or OpportunityHistory), by its header."""
    histories = {name: m for name, m in mapping.objects.items() if m.kind == "history"}
    try:
        with open_table(path) as (header, _):
            for name, history in histories.items():
                if all(role in Columns.resolve(history, header).index for role in history.required):
                    return name
    except (TableError, OSError) as exc:
        raise ImportRefused(str(exc)) from exc
    wanted = "; or ".join(", ".join(h.aliases(role)[0] for role in h.required) for h in histories.values())
    raise ImportRefused(f"{path}: not a history export: it needs the columns {wanted}")


def links(sources: Sequence[Source], db: sqlite3.Connection) -> Links:
    """Pass 1: stage times from history files, merged ids and converted deals from the lead files."""
    found = Links(db, lead_wins=not any(s.mapper.mapping.kind == "deal" for s in sources))
    for source in sources:
        mapper = source.mapper
        if source.records is not None:
            _read_history(source, source.records, found)
            continue
        if mapper.mapping.kind != "lead" or not {"merged", "converted_deal"} & set(mapper.columns.index):
            continue
        with open_table(source.path) as (_, rows):
            for chunk in _chunks(rows):
                ids = [(mapper.record_id(row), row) for row in chunk]
                found.add_merged((merged, record) for record, row in ids if record is not None for merged in mapper.merged_ids(row))
                deals = ((mapper.converted_deal(row), record) for record, row in ids if record is not None)
                found.add_deal_leads((deal, record) for deal, record in deals if deal is not None)
    return found


def _read_history(source: Source, records: ObjectMapping, found: Links) -> None:
    """Each record's first entry into a lead status, or last into a deal stage, of each meaning."""
    rows = 0
    with open_table(source.path) as (_, table):
        for chunk in _chunks(table):
            rows += len(chunk)
            found.add_stage_times(records.kind == "deal", _stage_entries(source, records, chunk))
    found.history_rows[source.path] = rows


def _stage_entries(source: Source, records: ObjectMapping, chunk: Sequence[Row]) -> Iterator[tuple[str, str, str, datetime]]:
    for row in chunk:
        try:
            entry = source.mapper.history_entry(row)
        except CellError as exc:
            raise ImportRefused(f"{source.path}: {exc}") from None
        meaning = records.meaning(entry[1]) if entry else None
        if entry is not None and meaning is not None:
            yield records.singular, entry[0], meaning, entry[2]


def read(sources: Sequence[Source], found: Links, warnings: Sequence[str], db: sqlite3.Connection, sink: Sink | None) -> Summary:
    """Pass 2: every row mapped once and counted, its events serialised into `sink` (none for a dry run).

    `ImportRefused` at the first unreadable cell: the caller then discards what the sink holds.
    """
    summary = Summary(db, warnings=list(warnings))
    summary.rows.update(found.history_rows)
    for source in sources:
        if source.records is None:
            _read_rows(source, found, summary, sink)
    summary.flush()
    return summary


def _read_rows(source: Source, found: Links, summary: Summary, sink: Sink | None) -> None:
    mapper, path = source.mapper, source.path
    with open_table(path) as (_, rows):
        for chunk in _chunks(rows):
            results = [_row_events(source, row, found) for row in chunk]
            mapped = [i for i, result in enumerate(results) if not isinstance(result, Skip)]
            fresh = first_seen(summary.db, [hash((source.object_name, chunk[i].cells)) for i in mapped])
            for i, new in zip(mapped, fresh):
                if not new:
                    results[i] = Skip("duplicate row (the same cells again)")
            for row, result in zip(chunk, results):
                summary.unmapped.update(mapper.unmapped(row))
                summary.add_row(path, row.number, result)
                if sink is not None and not isinstance(result, Skip):
                    for event in result:
                        sink(path, row.number, orjson.dumps(event))
            summary.flush()


def _row_events(source: Source, row: Row, found: Links) -> list[dict[str, Any]] | Skip:
    try:
        return source.mapper.events(row, found)
    except CellError as exc:
        raise ImportRefused(f"{source.path}: {exc}") from None


def _chunks(items: Iterable[_T]) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, CHUNK)):
        yield chunk

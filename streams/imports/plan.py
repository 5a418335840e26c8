"""An import's files, checked and read in passes: links, then the summary, then the events to send.

Every check that can refuse the import (a missing required column, a file that is
another object's export, opportunities that cannot reach their leads, an unreadable
date anywhere) runs before anything is sent, so a refused import sends nothing.

Passes over the files, each streaming one row at a time:
1. links: the lead files' merged ids and converted deals (`rows.Links`, small maps);
2. the summary: every row mapped and counted (`summary.Summary`), which also proves
   every date readable;
3. the events, generated lazily for `send`.
A duplicated row (the same cells again, in one file or in overlapping parts) is skipped;
that takes one 8-byte hash per row, ~60 MB per million rows. Two versions of a record
(a later export where the deal has closed) are both mapped: their events share ids where
they describe the same fact, and add the new facts' events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from streams.imports.mapping import CrmMapping, ObjectMapping, column_key
from streams.imports.rows import CellError, Columns, Links, RowMapper, Skip
from streams.imports.summary import Summary
from streams.imports.tables import TableError, is_readable, open_table


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


def links(sources: Sequence[Source]) -> Links:
    """Pass 1: stage times from history files, merged ids and converted deals from the lead files."""
    found = Links(lead_wins=not any(s.mapper.mapping.kind == "deal" for s in sources))
    for source in sources:
        mapper = source.mapper
        if source.records is not None:
            _read_history(source, source.records, found)
            continue
        if mapper.mapping.kind != "lead" or not {"merged", "converted_deal"} & set(mapper.columns.index):
            continue
        with open_table(source.path) as (_, rows):
            for row in rows:
                record = mapper.record_id(row)
                if record is None:
                    continue
                for merged in mapper.merged_ids(row):
                    found.merged.setdefault(merged, record)
                deal = mapper.converted_deal(row)
                if deal is not None:
                    found.deal_leads.setdefault(deal, record)
    return found


def _read_history(source: Source, records: ObjectMapping, found: Links) -> None:
    """Each record's first entry into a lead status, or last into a deal stage, of each meaning."""
    later = max if records.kind == "deal" else min
    rows = 0
    with open_table(source.path) as (_, table):
        for row in table:
            rows += 1
            try:
                entry = source.mapper.history_entry(row)
            except CellError as exc:
                raise ImportRefused(f"{source.path}: {exc}") from None
            meaning = records.meaning(entry[1]) if entry else None
            if entry is None or meaning is None:
                continue
            key = (records.singular, entry[0], meaning)
            found.stage_times[key] = later(found.stage_times.get(key, entry[2]), entry[2])
    found.history_rows[source.path] = rows


def summarise(sources: Sequence[Source], found: Links, warnings: Sequence[str]) -> Summary:
    """Pass 2: every row mapped and counted; `ImportRefused` at the first unreadable cell."""
    summary = Summary(warnings=list(warnings))
    summary.rows.update(found.history_rows)
    for source, number, result in _results(sources, found, summary):
        summary.add_row(source.path, number, result)
    return summary


def events(sources: Sequence[Source], found: Links) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Pass 3: `(path, row number, event)` of every row, lazily, in file order."""
    for source, number, result in _results(sources, found, None):
        if not isinstance(result, Skip):
            for event in result:
                yield source.path, number, event


def _results(
    sources: Sequence[Source], found: Links, summary: Summary | None
) -> Iterator[tuple[Source, int, list[dict[str, Any]] | Skip]]:
    seen: set[int] = set()
    for source in sources:
        mapper = source.mapper
        if source.records is not None:
            continue
        with open_table(source.path) as (_, rows):
            for row in rows:
                try:
                    result = mapper.events(row, found)
                except CellError as exc:
                    raise ImportRefused(f"{source.path}: {exc}") from None
                if not isinstance(result, Skip):
                    key = hash((source.object_name, row.cells))
                    if key in seen:
                        result = Skip("duplicate row (the same cells again)")
                    seen.add(key)
                if summary is not None:
                    summary.unmapped.update(mapper.unmapped(row))
                yield source, row.number, result

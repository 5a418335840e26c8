"""One export row to contract events, by its object's mapping: pure, the engine of every preset.

A lead row yields `lead.created` (source, campaign, owner), `lead.qualified` mql/sql at
their stage dates, `lead.disqualified`, and, where the export records a conversion,
`deal.created` (a converted lead) or `deal.won` (a customer date, when no deals file is
imported: deal `<crm>-<object>-<id>`, as the HubSpot webhook names it). A deal row
yields `deal.created` and its outcome for each lead it is tied to.

Event ids are `<crm>:<object>:<record id>:<type>[:<stage>]`; deal events also carry the
lead (`<crm>:<object>:<deal>:<lead>:<type>`), since one deal may belong to several
leads. They depend on nothing but the record, so a re-import, an overlapping export and a
duplicated row all send the same ids, which the aggregates count once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime, tzinfo
from typing import Any, Final

from streams.imports.ids import cell_text, id_list, salesforce_18
from streams.imports.mapping import ObjectMapping, column_key
from streams.imports.store import Links
from streams.imports.tables import Row
from streams.imports.times import Cell, ColumnTimes, NeedsTimezone, TimeError, rfc3339
from streams.ingest.vendors.common import join_id

_TRUE: Final = frozenset({"true", "1", "yes", "y", "t", "x"})
_AMOUNT_NOISE: Final = re.compile(r"[\s,$€£¥]|[A-Z]{3}")
_QUALIFYING: Final = ("mql", "sql")


class CellError(ValueError):
    """A cell that cannot be read refuses the whole import: the message names its row and column."""

    def __init__(self, row: int, column: str, problem: str) -> None:
        super().__init__(f"row {row}, column {column!r}: {problem}")


@dataclass(frozen=True)
class Skip:
    """A row that yields no events, and why (counted in the summary)."""

    reason: str


@dataclass(frozen=True)
class Columns:
    """An export's header resolved against its object's mapping: role -> column indices."""

    mapping: ObjectMapping
    header: tuple[str, ...]
    index: dict[str, tuple[int, ...]]

    @classmethod
    def resolve(cls, mapping: ObjectMapping, header: Sequence[str]) -> Columns:
        keys = [column_key(name) for name in header]
        index: dict[str, tuple[int, ...]] = {}
        for role in mapping.columns:
            # In the aliases' order, so where an export has two (HubSpot's `Associated Contact`
            # names beside `Associated Contact IDs`), the first alias's column is read first.
            wanted = dict.fromkeys(column_key(alias) for alias in mapping.aliases(role))
            found = tuple(i for key in wanted for i, name in enumerate(keys) if name == key)
            if found:
                index[role] = found
        return cls(mapping, tuple(header), index)

    def label(self, role: str) -> str:
        """The column's name in this file, else the mapping's first alias for it."""
        found = self.index.get(role)
        if found:
            return self.header[found[0]]
        aliases = self.mapping.aliases(role)
        return aliases[0] if aliases else role


@dataclass(frozen=True)
class RowMapper:
    """Turns the rows of one export into events; `zone` reads times without an offset."""

    crm: str
    columns: Columns
    zone: tzinfo | None
    salesforce_ids: bool = False
    #: Column index -> its time reader, which remembers the column's format.
    _times: dict[int, ColumnTimes] = field(default_factory=dict, init=False, compare=False, repr=False)

    @cached_property
    def mapping(self) -> ObjectMapping:
        """The columns' mapping, kept on the instance: it is read several times for every row."""
        return self.columns.mapping

    @cached_property
    def _index(self) -> dict[str, tuple[int, ...]]:
        """Role -> its column indices, kept on the instance: every cell read looks its role up here."""
        return self.columns.index

    @cached_property
    def _id_prefix(self) -> str:
        """`<crm>:<object>:`, the start of every event id of this export (as `join_id` writes it)."""
        return join_id(self.crm, self.mapping.singular, "")

    def record_id(self, row: Row) -> str | None:
        return self._id(self._cell(row, "id"))

    def merged_ids(self, row: Row) -> list[str]:
        """The contacts merged into this row's (HubSpot's `Merged Contact IDs`)."""
        return [self._canonical(i) for i in id_list(self._cell(row, "merged"))]

    def converted_deal(self, row: Row) -> str | None:
        """The deal a converted lead became (Salesforce's ConvertedOpportunityId)."""
        if self.mapping.kind != "lead" or ("converted" in self.columns.index and not self._flag(row, "converted")):
            return None
        return self._id(self._cell(row, "converted_deal"))

    def history_entry(self, row: Row) -> tuple[str, str, datetime] | None:
        """A history row's (record, new status or stage, when): None for other fields' changes and deleted rows."""
        record, value = self._id(self._cell(row, "record")), cell_text(self._cell(row, "value"))
        field_name = cell_text(self._cell(row, "field"))
        tracked = field_name is None or column_key(field_name) in {column_key(name) for name in self.mapping.tracked}
        if record is None or value is None or not tracked or self._flag(row, "deleted"):
            return None
        moment = self._time(row, "at")
        return None if moment is None else (record, value, moment)

    def unmapped(self, row: Row) -> list[tuple[str, str]]:
        """(column, value) of status and stage values that no setting or mapping value covers."""
        found = []
        for role in ("status", "stage"):
            value = cell_text(self._cell(row, role))
            if value is not None and self.mapping.meaning(value) is None:
                found.append((self.columns.label(role), value))
        return found

    def events(self, row: Row, links: Links) -> list[dict[str, Any]] | Skip:
        """The events of one row, or why it has none; `CellError` for a cell that cannot be read."""
        record = self.record_id(row)
        if record is None:
            return Skip(f"no {self.columns.label('id')}")
        if self._flag(row, "deleted"):
            return Skip(f"deleted ({self.columns.label('deleted')})")
        created = self._time(row, "created")
        if created is None:
            return Skip(f"no {self.columns.label('created')}")
        if self.mapping.kind == "lead":
            survivor = links.survivor(record)
            if survivor is not None and survivor != record:
                return Skip("merged into another record (Merged Contact IDs)")
            return self._lead_events(row, record, created, links)
        return self._deal_events(row, record, created, links)

    def _lead_events(self, row: Row, lead: str, created: datetime, links: Links) -> list[dict[str, Any]]:
        events = [self._lead_created(row, lead, created)]
        values = [value for value in (cell_text(self._cell(row, "status")), cell_text(self._cell(row, "stage"))) if value]
        meanings = {self.mapping.meaning(value) for value in values}
        singular = self.mapping.singular
        for stage in _QUALIFYING:  # a stage the history shows it passed through counts, whatever its status now
            found = [t for t in (self._time(row, stage), links.stage_time(singular, lead, stage)) if t is not None]
            moment = min(found, default=created if stage in meanings else None)
            if moment is not None:
                events.append(self._lead_event(lead, "lead.qualified", moment, stage=stage))
        entered = links.stage_time(singular, lead, "disqualified") or created  # only while it still is disqualified
        moment = self._time(row, "disqualified") or (entered if "disqualified" in meanings else None)
        if moment is not None:
            reason = " ".join(values)
            events.append(self._lead_event(lead, "lead.disqualified", moment, reason=reason or "disqualified"))
        won = self._time(row, "customer") or (created if "customer" in meanings else None)
        if won is not None and links.lead_wins:
            deal = f"{self.crm}-{self.mapping.singular}-{lead}"
            events.append(self._lead_event(lead, "deal.won", won, deal_id=deal))
        # The first touch: the earliest of the touch columns (Salesforce's first call and first
        # email) and the record's first entry into a contacted status in its history.
        found = [t for t in (self._time(row, "contacted"), links.stage_time(singular, lead, "contacted")) if t is not None]
        if found:
            events.append(self._lead_event(lead, "lead.contacted", min(found)))
        deal_id = self.converted_deal(row)
        if deal_id is not None:
            moment = self._time(row, "converted_at") or created
            events.append(self._lead_event(lead, "deal.created", moment, deal_id=deal_id))
        return events

    def _lead_created(self, row: Row, lead: str, created: datetime) -> dict[str, Any]:
        event = self._lead_event(lead, "lead.created", created, source=cell_text(self._cell(row, "source")) or "unknown")
        campaign = cell_text(self._cell(row, "campaign"))
        if campaign is not None:
            event["campaign"] = campaign
        owner = self._id(self._cell(row, "owner"))
        if owner is not None:
            event["attributes"] = {"owner": owner}
        return event

    def _lead_event(self, lead: str, kind: str, moment: datetime, **fields: str) -> dict[str, Any]:
        stage = fields.get("stage")
        event_id = f"{self._id_prefix}{lead}:{kind}:{stage}" if stage else f"{self._id_prefix}{lead}:{kind}"
        return {"event_id": event_id, "type": kind, "occurred_at": rfc3339(moment), "lead_id": lead, **fields}

    def _deal_events(self, row: Row, deal: str, created: datetime, links: Links) -> list[dict[str, Any]] | Skip:
        leads = self._deal_leads(row, deal, links)
        if not leads:
            return Skip(f"no lead ({self.columns.label('lead')})")
        outcome = self._outcome(row)
        entered = links.stage_time(self.mapping.singular, deal, outcome.removeprefix("deal.")) if outcome else None
        closed = entered or self._time(row, "closed") or created
        amount = self._amount(row) if outcome == "deal.won" else None
        events = []
        for lead in leads:
            events.append(self._deal_event(deal, lead, "deal.created", created))
            if outcome is not None:
                events.append(self._deal_event(deal, lead, outcome, closed, amount))
        return events

    def _deal_event(self, deal: str, lead: str, kind: str, moment: datetime, amount: float | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"event_id": f"{self._id_prefix}{deal}:{lead}:{kind}", "type": kind,
                 "occurred_at": rfc3339(moment), "lead_id": lead, "deal_id": deal}  # fmt: skip
        if amount is not None:
            event["amount"] = amount
        return event

    def _deal_leads(self, row: Row, deal: str, links: Links) -> list[str]:
        named = [self._canonical(i) for i in id_list(self._cell(row, "lead"))] or [
            lead for lead in (links.deal_lead(deal),) if lead is not None
        ]
        return list(dict.fromkeys(links.survivor(lead) or lead for lead in named))

    def _outcome(self, row: Row) -> str | None:
        """Won by the won flag, else lost when closed, else by what the stage value means."""
        if "won" in self.columns.index and self._flag(row, "won"):
            return "deal.won"
        if "is_closed" in self.columns.index and self._flag(row, "is_closed"):
            return "deal.lost" if "won" in self.columns.index else self._stage_outcome(row) or "deal.lost"
        return self._stage_outcome(row)

    def _stage_outcome(self, row: Row) -> str | None:
        stage = cell_text(self._cell(row, "stage"))
        meaning = self.mapping.meaning(stage) if stage else None
        return {"won": "deal.won", "lost": "deal.lost"}.get(meaning or "")

    def _amount(self, row: Row) -> float | None:
        cell = self._cell(row, "amount")
        if cell is None or isinstance(cell, (int, float)) and not isinstance(cell, bool):
            return None if cell is None else float(cell)
        text = _AMOUNT_NOISE.sub("", str(cell))
        try:
            value = float(text)
        except ValueError:
            raise CellError(row.number, self.columns.label("amount"), f"{cell!r} is not an amount") from None
        if not 0 <= value < float("inf"):
            raise CellError(row.number, self.columns.label("amount"), f"{cell!r} is not an amount of 0 or more")
        return value

    def _time(self, row: Row, role: str) -> datetime | None:
        """The earliest time among the role's columns (a HubSpot stage may have two), or None."""
        earliest = None
        cells = row.cells
        for i in self._index.get(role, ()):
            cell = cells[i] if i < len(cells) else None
            if cell is None:
                continue
            reader = self._times.get(i)
            if reader is None:  # a column's reader is made once, when its first cell is read
                reader = self._times[i] = ColumnTimes(self.zone, calendar_date=role in self.mapping.calendar_dates)
            try:
                moment = reader.read(cell)
            except NeedsTimezone:
                raise CellError(row.number, self.columns.header[i],
                                f"{cell_text(cell)!r} has no UTC offset: pass --timezone (an IANA name such as America/New_York)") from None  # fmt: skip
            except TimeError as exc:
                raise CellError(row.number, self.columns.header[i], str(exc)) from None
            earliest = moment if earliest is None else min(earliest, moment)
        return earliest

    def _cell(self, row: Row, role: str) -> Cell:
        """The role's first non-empty cell."""
        cells = row.cells
        for i in self._index.get(role, ()):
            if i < len(cells) and cells[i] is not None:
                return cells[i]
        return None

    def _flag(self, row: Row, role: str) -> bool:
        cell = self._cell(row, role)
        return cell is True or (isinstance(cell, str) and cell.strip().lower() in _TRUE) or cell == 1

    def _id(self, cell: Cell) -> str | None:
        text = cell_text(cell)
        return self._canonical(text) if text is not None else None

    def _canonical(self, record_id: str) -> str:
        return salesforce_18(record_id) if self.salesforce_ids else record_id

"""One Salesforce record's fields to contract events, exactly as `leadpulse import salesforce` maps a row.

For the Salesforce Outbound Messages hook, whose `sObject` carries the same API field
names as a Data Loader extract: the same preset, settings, ids and rules, so a lead
imported from history and the same lead pushed live are one lead with one set of events.
An Opportunity names its lead only through `LEADPULSE_SALESFORCE_LEAD_FIELD`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from streams.events import Rejection
from streams.imports.mapping import preset
from streams.imports.rows import CellError, Columns, RowMapper, Skip
from streams.imports.store import Links
from streams.imports.tables import Row
from streams.settings import Settings

#: The outbound message's object name -> the preset's object.
OBJECTS: Final = {"lead": "leads", "opportunity": "opportunities"}


def object_events(
    object_name: Literal["lead", "opportunity"], fields: Mapping[str, str], settings: Settings
) -> list[dict[str, Any]] | Rejection:
    """The events of one Lead or Opportunity record (fields by API name, as text).

    [] when the record means nothing yet (deleted, an opportunity without its lead);
    a `Rejection` when a field the import requires is missing or unreadable.
    """
    mapping = preset("salesforce", settings)
    header = list(fields)
    columns = Columns.resolve(mapping.objects[OBJECTS[object_name]], header)
    for role in columns.mapping.required:
        if role not in columns.index:
            return Rejection("missing_field", columns.label(role))
    row = Row(1, tuple(fields[name] if str(fields[name]).strip() else None for name in header))
    mapper = RowMapper(mapping.crm, columns, zone=None, salesforce_ids=mapping.salesforce_ids)
    try:
        events = mapper.events(row, Links(lead_wins=False))
    except CellError as exc:
        return Rejection("invalid_timestamp", str(exc).removeprefix("row 1, "))
    return [] if isinstance(events, Skip) else events

"""Record ids as events name them: Salesforce's 15/18-character rule, list cells, text of numbers.

Salesforce report exports write 15-character ids, case-sensitive; Data Loader, the APIs
and outbound messages write the 18-character form, whose last three characters encode
the case of the first fifteen. Canonicalising to 18 makes both kinds of export (and the
live hook) name the same lead.
"""

from __future__ import annotations

import re
from typing import Final

from streams.imports.times import Cell

_CHECKSUM_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SALESFORCE_15: Final = re.compile(r"[0-9A-Za-z]{15}")
#: An id inside a list cell: anything else (a name, an email) cannot be joined on.
_LIST_ID: Final = re.compile(r"[0-9A-Za-z_.:-]{1,128}")
_LIST_SEPARATORS: Final = re.compile(r"[;,]")


def salesforce_18(record_id: str) -> str:
    """The 18-character form of a Salesforce id (unchanged when it is not a 15-character one)."""
    if not _SALESFORCE_15.fullmatch(record_id):
        return record_id
    suffix = ""
    for chunk in (record_id[0:5], record_id[5:10], record_id[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _CHECKSUM_ALPHABET[bits]
    return record_id + suffix


def cell_text(cell: Cell) -> str | None:
    """A cell as text: whole numbers without `.0` (a spreadsheet turns ids into floats), None when empty."""
    if cell is None:
        return None
    if type(cell) is str:  # nearly every cell of a CSV export: answered before the other types are tried
        return cell.strip() or None
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return str(cell)
    if not isinstance(cell, str):
        return cell.isoformat() if hasattr(cell, "isoformat") else str(cell)
    return cell.strip() or None


def id_list(cell: Cell) -> list[str]:
    """The ids of a list cell (`123;456`, `123, 456`), leaving out what cannot be an id (names, emails)."""
    text = cell_text(cell)
    if text is None:
        return []
    return [part.strip() for part in _LIST_SEPARATORS.split(text) if _LIST_ID.fullmatch(part.strip())]

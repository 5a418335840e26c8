"""The serialised events of an import's one mapping pass, kept on disk until the summary has been shown.

A line per event, `origin<TAB>row<TAB>record`: the record is orjson's output, which
escapes every control character inside strings and writes no newline or tab between
tokens, so the record holds neither and a line splits unambiguously. The file is
`tempfile`'s unnamed kind, unlinked as it is made, so it is gone whatever happens.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO


class Spool:
    """Write each event's record once while the summary counts; read them back, in order, to send or write."""

    def __init__(self) -> None:
        #: The files written from, by their number in the spool's lines.
        self._origins: list[str] = []
        self._index: dict[str, int] = {}
        self._file: BinaryIO = tempfile.TemporaryFile(prefix="leadpulse-import-")

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._file.close()

    def write(self, origin: str, number: int, raw: bytes) -> None:
        index = self._index.get(origin)
        if index is None:
            index = self._index[origin] = len(self._origins)
            self._origins.append(origin)
        self._file.write(b"%d\t%d\t%b\n" % (index, number, raw))

    def records(self) -> Iterator[tuple[str, int, bytes]]:
        """`(origin, row number, record)` of every event written, in the order written."""
        self._file.seek(0)
        origins = self._origins
        for line in self._file:
            origin, number, raw = line.split(b"\t", 2)
            yield origins[int(origin)], int(number), raw[:-1]

"""The import's memory grows with the file by a few hundred bytes per row, never by the rows themselves."""

from __future__ import annotations

import os
from pathlib import Path

from tests.bench.import_ import import_once
from tests.exports import hubspot_export

SMALL, LARGE = 3_000, 15_000
#: What one more row may cost at peak. The duplicate check's and the summary's hashes are in
#: the import's temporary database, whose pages fill a fixed 16 MB cache (~100-200 bytes per
#: row at these sizes) and then spill to disk, so from ~150,000 rows on the peak stops
#: growing (docs/import.md: 100,000 vs 1,000,000 rows); keeping rows or events would cost
#: kilobytes per row.
BYTES_PER_ROW = 500


def test_importing_a_five_times_larger_export_grows_peak_memory_by_under_500_bytes_per_extra_row(tmp_path: Path) -> None:
    env = dict(os.environ)
    runs = []
    for rows in (SMALL, LARGE):
        contacts, deals = hubspot_export(tmp_path, rows)
        runs.append(import_once(env, rows, contacts, deals, "--output", str(tmp_path / "events.jsonl")))
    small, large = runs
    assert large.events > 4 * small.events  # the large export really was imported in full
    growth = (large.peak_mb - small.peak_mb) * 2**20
    assert growth < BYTES_PER_ROW * (LARGE - SMALL), f"{growth / (LARGE - SMALL):.0f} bytes per extra row"

"""`leadpulse import` of a generated HubSpot export: rows/s, events/s and the import's peak memory.

A 1,000,000-row contacts export and its deals export (tests/exports.py: UI labels, times
without an offset, ~2 events per contact) are imported into the bench stack by the real
command, as an operator runs it; so is a 100,000-row one. The time covers the whole
command (the links pass, the one mapping pass into a spool, then publishing the spool
until Kafka acknowledged every event); the peak memory is the command process's ru_maxrss. The two sizes side by side
show how memory grows with the file.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from streams.settings import Settings
from tests.bench.common import BenchError, Figure, Section, progress
from tests.exports import hubspot_export
from tests.pipeline import LEADPULSE, Pipeline

SIZES: Final = (100_000, 1_000_000)
_EVENTS: Final = re.compile(r"events: ([\d,]+)")


@dataclass(frozen=True)
class ImportRun:
    """One `leadpulse import` run: its wall time, events sent and peak resident memory."""

    rows: int
    events: int
    seconds: float
    peak_mb: float


def run(settings: Settings) -> Section:
    """Generate each size's export, import it into the running bench stack, and report the figures."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="leadpulse-import-bench-") as folder:
        env = Pipeline(settings, Path(folder)).env()
        for rows in SIZES:
            progress(f"generating a {rows:,}-row HubSpot contacts export and its deals (untimed)")
            contacts, deals = hubspot_export(Path(folder), rows)
            progress(f"leadpulse import hubspot: {rows:,} contacts")
            runs.append(import_once(env, rows, contacts, deals))
            contacts.unlink()
            deals.unlink()
    small, large = runs
    return Section("import", "leadpulse import hubspot of generated exports, into the bench stack", [
        Figure(f"contact rows/s ({large.rows:,}, deals beside them)", "rows/s", (large.rows / large.seconds,)),
        Figure(f"events/s ({large.events:,} events)", "events/s", (large.events / large.seconds,)),
        Figure(f"peak memory at {large.rows:,} rows", "MB", (large.peak_mb,)),
        Figure(f"peak memory at {small.rows:,} rows", "MB", (small.peak_mb,)),
        Figure("memory per extra row", "bytes", ((large.peak_mb - small.peak_mb) * 2**20 / (large.rows - small.rows),)),
    ], [f"{small.rows:,} rows: {small.seconds:.0f} s, {small.events / small.seconds:,.0f} events/s",
        f"{large.rows:,} rows: {large.seconds:.0f} s; one run per size (a million rows take minutes)"])  # fmt: skip


def import_once(env: dict[str, str], rows: int, contacts: Path, deals: Path, *extra: str) -> ImportRun:
    """Run the command (with `extra` arguments) to the end; its peak RSS comes from wait4, so it is the import's own."""
    command = [LEADPULSE, "import", "hubspot", "--contacts", str(contacts), "--deals", str(deals), "--timezone", "UTC", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    found = _EVENTS.search(output)
    if process.returncode != 0 or found is None:
        raise BenchError(f"leadpulse import exited {process.returncode}: {output.strip().splitlines()[-1:]}")
    return ImportRun(rows, int(found.group(1).replace(",", "")), seconds, usage.ru_maxrss / 1024)

"""`leadpulse import`: a CRM's exports, summarised, then sent through `publish`'s one producer path."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from streams.imports.mapping import MappingError, load_mapping, preset
from streams.imports.plan import ImportRefused, history_object, links, prepare, read
from streams.imports.spool import Spool
from streams.imports.store import temporary_database
from streams.ingest.publish import PublishError, report_outcome, send
from streams.ingest.records import Record, wall_clock_ms
from streams.ingest.routes import route_record
from streams.settings import Settings

#: Each preset's file flags -> the preset's object.
#: A history file's object is told by its header: LeadHistory or OpportunityHistory.
HISTORY = "history"
PRESET_FLAGS = {"hubspot": {"contacts": "contacts", "deals": "deals"},
                "salesforce": {"leads": "leads", "opportunities": "opportunities", "history": HISTORY}}  # fmt: skip
PROGRESS_EVERY = 4096


class Refused(click.ClickException):
    """The import was refused before anything was sent: one `Error:` line, exit 2."""

    exit_code = 2


@click.command("import")
@click.argument("specs", nargs=-1, metavar="hubspot|salesforce | OBJECT=FILE...")
@click.option("--contacts", multiple=True, metavar="FILE", help="hubspot: a Contacts export (CSV or XLSX); repeat for parts")
@click.option("--deals", multiple=True, metavar="FILE", help="hubspot: a Deals export with Associated Contact IDs")
@click.option("--leads", multiple=True, metavar="FILE", help="salesforce: a Lead extract or report export")
@click.option("--opportunities", multiple=True, metavar="FILE", help="salesforce: an Opportunity extract or report export")
@click.option("--history", multiple=True, metavar="FILE",
              help="salesforce: a LeadHistory or OpportunityHistory extract, for the exact time each status or stage was entered")
@click.option("--mapping", "mapping_path", type=click.Path(path_type=Path), help="a mapping file for any other CRM (docs/import.md)")
@click.option("--timezone", "zone_name", metavar="ZONE", help="IANA zone of times written without an offset (e.g. Europe/Berlin)")
@click.option("--dry-run", is_flag=True, help="print the summary and send nothing")
@click.option("--output", type=click.Path(path_type=Path), help="write the events as JSON Lines to this file instead of sending")
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: LEADPULSE_KAFKA_BOOTSTRAP)")
def import_command(
    specs: tuple[str, ...], contacts: tuple[str, ...], deals: tuple[str, ...], leads: tuple[str, ...],
    opportunities: tuple[str, ...], history: tuple[str, ...], mapping_path: Path | None, zone_name: str | None, dry_run: bool,
    output: Path | None, bootstrap: str | None,
) -> None:  # fmt: skip
    """Turn a CRM's own exports into lead and deal events and publish them (docs/import.md).

    One row per contact, lead, deal or opportunity becomes lead.created, lead.qualified
    (mql, sql), lead.disqualified, deal.created and deal.won/lost, with ids derived from
    the record, so importing the same or an overlapping export again changes nothing.
    A summary comes first (--dry-run stops there); then `sent N, rejected M` as publish
    prints it. Exits 2 when the import is refused (nothing sent), 1 when Kafka did not
    acknowledge every event.

    \b
    Examples:
      leadpulse import hubspot --contacts contacts.csv --deals deals.csv --timezone Europe/Berlin
      leadpulse import salesforce --leads Lead.csv --opportunities Opportunity.csv
      leadpulse import --mapping pipedrive.yaml persons=persons.csv deals=deals.csv --dry-run
    """
    settings = Settings()
    if bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    with Spool() as spool:
        with temporary_database() as db:  # closed (and its memory freed) before the send
            try:
                mapping, files = _files(specs, mapping_path, settings, {"contacts": contacts, "deals": deals, "leads": leads,
                                                                         "opportunities": opportunities, "history": history})  # fmt: skip
                sources, warnings = prepare(mapping, files, _zone(zone_name))
                summary = read(sources, links(sources, db), warnings, db, None if dry_run else spool.write)
            except (ImportRefused, MappingError) as exc:
                raise Refused(str(exc)) from exc
            for warning in summary.warnings:
                click.echo(f"warning: {warning}", err=True)
            click.echo(summary.render())
        if dry_run:
            click.echo("dry run: nothing sent")
        elif output is not None:
            written = _write(output, spool.records())
            click.echo(f"wrote {written} events to {output}")
        else:
            _publish(spool, settings, sum(summary.rows.values()))


def _files(
    specs: Sequence[str], mapping_path: Path | None, settings: Settings, flags: dict[str, tuple[str, ...]]
) -> tuple[Any, list[tuple[str, str]]]:
    """The mapping and `(object, path)` pairs the arguments name, or `ImportRefused` saying which flag is wrong."""
    given = {flag: paths for flag, paths in flags.items() if paths}
    if mapping_path is not None:
        if given:
            raise ImportRefused(f"--{next(iter(given))} belongs to a preset; with --mapping name files as OBJECT=FILE")
        pairs = [spec.partition("=") for spec in specs]
        bad = [spec for spec, (name, eq, path) in zip(specs, pairs) if not (name and eq and path)]
        if bad or not pairs:
            raise ImportRefused(f"with --mapping, name each file as OBJECT=FILE (got {bad[0] if bad else 'no files'!r})")
        return load_mapping(mapping_path, settings), [(name, path) for name, _, path in pairs]
    if len(specs) != 1 or specs[0] not in PRESET_FLAGS:
        raise ImportRefused("name the CRM (hubspot or salesforce) or give --mapping FILE.yaml with OBJECT=FILE arguments")
    crm = specs[0]
    wrong = sorted(set(given) - set(PRESET_FLAGS[crm]))
    if wrong:
        raise ImportRefused(f"--{wrong[0]} is not a {crm} flag; {crm} takes {', '.join('--' + f for f in PRESET_FLAGS[crm])}")
    mapping = preset(crm, settings)
    files = [(PRESET_FLAGS[crm][flag], path) for flag, paths in given.items() for path in paths]
    if not any(name != HISTORY for name, _ in files):
        raise ImportRefused(f"give {crm} at least one export: {', '.join('--' + f for f in PRESET_FLAGS[crm] if f != HISTORY)}")
    return mapping, [(history_object(mapping, path) if name == HISTORY else name, path) for name, path in files]


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportRefused(f"--timezone {name!r} is not an IANA time zone name (such as Europe/Berlin or UTC)") from None


def _write(output: Path, records: Iterator[tuple[str, int, bytes]]) -> int:
    written = 0
    with output.open("wb") as stream:
        for _, _, raw in records:
            stream.write(raw + b"\n")
            written += 1
    return written


def _publish(spool: Spool, settings: Settings, total: int) -> None:
    with _progress_bar(total) as on_progress:
        try:
            summary = send(_records(spool.records(), on_progress), settings)
        except PublishError as exc:
            click.echo(str(exc.summary))
            raise click.ClickException(str(exc)) from exc
    report_outcome(summary, settings)


def _records(
    records: Iterator[tuple[str, int, bytes]], on_progress: Callable[[int], None] | None
) -> Iterator[tuple[str, Record]]:
    """Each spooled record judged as publish judges a record, at the time it is sent; progress counted in rows."""
    rows, last = 0, None
    for origin, number, raw in records:
        if (origin, number) != last:
            rows, last = rows + 1, (origin, number)
            if on_progress is not None and rows % PROGRESS_EVERY == 0:
                on_progress(rows)
        yield origin, Record(raw, route_record(raw, wall_clock_ms()), number)


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None] | None]:
    """A rich bar on stderr when it is a terminal, over the rows the summary counted."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:  # fmt: skip
        task = bar.add_task("import", total=total)
        yield lambda rows: bar.update(task, completed=rows)

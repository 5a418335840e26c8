"""`leadpulse publish`: send records from files or stdin to Kafka, each one acknowledged or counted.

Valid events go to their topic keyed by `lead_id` (so one lead's events stay in order
on one partition); invalid records go to `leadpulse.rejected`, unchanged, with the
reason in headers (`streams.kafka.rejected`). Nothing is dropped silently: every send future
is waited for, and the exit code says whether Kafka acknowledged all of them.
"""

from __future__ import annotations

import contextlib
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Final, Iterable, Iterator, Sequence

import click
import orjson

from streams.events import MAX_ID_CHARS, Event
from streams.ingest.records import FORMATS, STDIN, Format, Record, detect_format, read_records, wall_clock_ms
from streams.kafka.clients import client_options
from streams.kafka.diagnose import ACL_HINT, diagnose_sync
from streams.kafka.rejected import rejection_headers
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings

if TYPE_CHECKING:  # kafka and rich load only when a command runs, keeping `leadpulse --help` instant
    from kafka import KafkaProducer
    from kafka.producer.future import FutureRecordMetadata

# Kafka timeouts: an unreachable broker must fail the command within 30 s. Bootstrap
# gives up after 10 s; a metadata wait after 20 s, as one broker's death among several
# takes Kafka's controller 9 s (`broker.session.timeout.ms`) to notice before new
# leaders are elected, and a send must outlast that; a request after 10 s; a record
# that Kafka has not acknowledged 25 s after `send` (retries included) counts as failed.
CONNECT_TIMEOUT_MS: Final = 10_000
METADATA_TIMEOUT_MS: Final = 20_000
REQUEST_TIMEOUT_MS: Final = 10_000
DELIVERY_TIMEOUT_MS: Final = 25_000
#: 20 ms of lingering fills 256 KiB batches at full speed and costs a lone record little.
LINGER_MS: Final = 20
BATCH_BYTES: Final = 256 * 1024
#: Unacknowledged sends held at once: bounds memory on huge files, keeps the pipe full.
SEND_WINDOW: Final = 50_000
PROGRESS_EVERY: Final = 4096
#: Called as on_progress(records read, input bytes read).
ProgressCallback = Callable[[int, int], None]


@dataclass
class PublishSummary:
    """What became of the records: acknowledged events, acknowledged rejects, failed sends."""

    sent: int = 0
    rejected: int = 0
    failed: int = 0
    first_failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def __str__(self) -> str:
        line = f"sent {self.sent}, rejected {self.rejected}"
        return f"{line}, failed {self.failed}" if self.failed else line


class PublishError(Exception):
    """Publishing stopped early; `summary` says what Kafka had acknowledged by then."""

    def __init__(self, message: str, summary: PublishSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary or PublishSummary()


class InputError(PublishError):
    """An input file is missing, unreadable or of unknown format; nothing was sent. Fix the path or pass --format."""


class KafkaUnreachable(PublishError):
    """Kafka did not answer in time. Check that it runs (`leadpulse stack status`) and the bootstrap address."""


def publish(
    paths: Sequence[str],
    settings: Settings,
    fmt: Format | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    now_ms: Callable[[], int] = wall_clock_ms,
) -> PublishSummary:
    """Send every record of `paths` (`-` is stdin) and wait until Kafka acknowledged or refused each.

    Raises `InputError` before sending anything if a path cannot be read, and
    `KafkaUnreachable` if Kafka cannot be reached (its summary counts what got through).
    `on_progress(records, bytes)` is called every PROGRESS_EVERY records.
    """
    inputs = check_inputs(paths, fmt)
    return send(_file_records(inputs, on_progress, now_ms), settings)


def send(records: Iterable[tuple[str, Record]], settings: Settings) -> PublishSummary:
    """Send each `(origin, record)` and wait until Kafka acknowledged or refused every one.

    The one producer path of `publish` and `import`: events to their topic keyed by
    `lead_id`, rejections to `leadpulse.rejected` with `origin:line` in their headers.
    `records` is consumed lazily, so its memory stays bounded; an `OSError` it raises
    mid-way ends the run as a `PublishError`, and a Kafka that stops answering as
    `KafkaUnreachable`, each with the summary of what Kafka had acknowledged by then.
    """
    from kafka.errors import KafkaTimeoutError

    producer = connect(settings)
    deliveries = _Deliveries()
    try:
        for origin, record in records:
            deliveries.track(_send(producer, origin, record), isinstance(record.result, Event))
        return deliveries.drain()
    except KafkaTimeoutError as exc:  # `send` got no topic metadata in time: the broker went away
        summary = deliveries.drain()
        raise KafkaUnreachable(_why_unreachable(settings, exc), summary) from exc
    except OSError as exc:  # an input failed mid-read (after the inputs were checked)
        raise PublishError(f"reading input failed: {exc}", deliveries.drain()) from exc
    finally:
        producer.close(timeout=DELIVERY_TIMEOUT_MS / 1000)


def _file_records(
    inputs: Sequence[tuple[str, Format]], on_progress: ProgressCallback | None, now_ms: Callable[[], int]
) -> Iterator[tuple[str, Record]]:
    """The records of every input in turn, each with its origin, reporting progress as they are read."""
    records = bytes_done = 0
    for path, path_fmt in inputs:
        origin = "stdin" if path == STDIN else path
        with _open_input(path) as stream:
            for record in read_records(stream, path_fmt, now_ms):
                yield origin, record
                records += 1
                if on_progress is not None and records % PROGRESS_EVERY == 0:
                    on_progress(records, bytes_done + _position(stream))
            bytes_done += _position(stream)


def check_inputs(paths: Sequence[str], fmt: Format | None) -> list[tuple[str, Format]]:
    """Each path with its format, after making sure every one can be opened (so no half-sent run)."""
    problems: list[str] = []
    inputs: list[tuple[str, Format]] = []
    for path in paths:
        try:
            if path != STDIN:
                Path(path).open("rb").close()
            inputs.append((path, detect_format(path, fmt)))
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("\n".join(problems))
    return inputs


def connect(settings: Settings) -> KafkaProducer:
    """A durable, batching producer, or `KafkaUnreachable` within CONNECT_TIMEOUT_MS.

    `enable_idempotence` is left at kafka-python's default (on), which it switches off
    by itself for a broker too old to support it; forcing it would refuse such a broker.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        return KafkaProducer(
            **client_options(settings).kwargs(),
            client_id="leadpulse-publish",
            acks="all",
            linger_ms=LINGER_MS,
            batch_size=BATCH_BYTES,
            bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
            max_block_ms=METADATA_TIMEOUT_MS,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        )
    except KafkaError as exc:
        raise KafkaUnreachable(_why_unreachable(settings, exc)) from exc


def _why_unreachable(settings: Settings, exc: Exception) -> str:
    """The diagnosed cause (credentials, certificates, ACLs, address), else what the client said."""
    topics = [*INPUT_TOPICS, REJECTED_TOPIC]
    return diagnose_sync(client_options(settings), topics) or f"Kafka at {settings.kafka_bootstrap} is unreachable: {exc}"


def _send(producer: KafkaProducer, origin: str, record: Record) -> FutureRecordMetadata:
    result = record.result
    if isinstance(result, Event):
        return producer.send(result.topic, record.raw, key=result.lead_id.encode())
    headers = rejection_headers(result, f"{origin}:{record.line}")
    return producer.send(REJECTED_TOPIC, record.raw, key=rejected_key(record.raw), headers=headers)


def rejected_key(raw: bytes) -> bytes | None:
    """The record's `lead_id` when it has a usable one, so a lead's rejects share its partition."""
    try:
        lead_id = orjson.loads(raw).get("lead_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(lead_id, str) and 1 <= len(lead_id) <= MAX_ID_CHARS:
        return lead_id.encode()  # orjson refuses lone surrogates, so this always encodes
    return None


class _Deliveries:
    """Send futures in flight, settled oldest first; at most SEND_WINDOW wait at once."""

    def __init__(self) -> None:
        self._pending: deque[tuple[FutureRecordMetadata, bool]] = deque()
        self.summary = PublishSummary()

    def track(self, future: FutureRecordMetadata, is_event: bool) -> None:
        self._pending.append((future, is_event))
        if len(self._pending) > SEND_WINDOW:
            self._settle(*self._pending.popleft())

    def drain(self) -> PublishSummary:
        while self._pending:
            self._settle(*self._pending.popleft())
        return self.summary

    def _settle(self, future: FutureRecordMetadata, is_event: bool) -> None:
        try:
            # The delivery timeout resolves every future; the margin only guards against a stuck client.
            future.get(timeout=DELIVERY_TIMEOUT_MS / 1000 + 5)
        except Exception as exc:  # any refusal (Kafka error, timeout) means not acknowledged
            self.summary.failed += 1
            self.summary.first_failure = self.summary.first_failure or f"{type(exc).__name__}: {exc}"
        else:
            if is_event:
                self.summary.sent += 1
            else:
                self.summary.rejected += 1


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[BinaryIO]:
    if path == STDIN:
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as stream:
            yield stream


def _position(stream: BinaryIO) -> int:
    """Bytes consumed so far; 0 for a pipe, whose size is unknown anyway."""
    return stream.tell() if stream.seekable() else 0


@contextlib.contextmanager
def _progress_bar(paths: Sequence[str]) -> Iterator[ProgressCallback | None]:
    """A rich bar on stderr when it is a terminal, over input bytes (a record count for stdin)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    try:
        total: int | None = None if STDIN in paths else sum(Path(path).stat().st_size for path in paths)
    except OSError:
        total = None  # `publish` reports the unreadable path
    sized: tuple[ProgressColumn, ...] = (BarColumn(), DownloadColumn()) if total is not None else (SpinnerColumn(),)
    columns = (TextColumn("publishing"), *sized, TextColumn("{task.fields[records]:,} records"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("publish", total=total, records=0)
        yield lambda records, done: bar.update(task, completed=done, records=records)


@click.command("publish")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="input format of every FILE (default: by extension: .jsonl/.ndjson/.json, .csv; stdin is jsonl)",
)
@click.option("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (default: LEADPULSE_KAFKA_BOOTSTRAP)")
def publish_command(files: tuple[str, ...], fmt: Format | None, bootstrap: str | None) -> None:
    """Send lead and deal events from JSON Lines or CSV FILEs (`-` for stdin) to Kafka.

    Valid events go to leadpulse.leads / leadpulse.deals keyed by lead_id; invalid
    records go unchanged to leadpulse.rejected with the reason in headers (see
    docs/events.md). Prints `sent N, rejected M`. Exits 0 only when Kafka acknowledged
    every record, 1 when some were not (or Kafka is unreachable), 2 for unreadable FILEs.

    \b
    Examples:
      leadpulse publish events.jsonl crm-export.csv
      crm-export-tool | leadpulse publish --format csv -
    """
    settings = Settings()
    if bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    try:
        with _progress_bar(files) as on_progress:
            summary = publish(files, settings, fmt, on_progress=on_progress)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except PublishError as exc:
        click.echo(str(exc.summary))
        raise click.ClickException(str(exc)) from exc
    report_outcome(summary, settings)


def report_outcome(summary: PublishSummary, settings: Settings) -> None:
    """Print `sent N, rejected M`; a `ClickException` (exit 1) when Kafka did not acknowledge every record."""
    click.echo(str(summary))
    if not summary.ok:
        hint = f": its user may not write there; {ACL_HINT}" if "AuthorizationFailed" in (summary.first_failure or "") else ""
        raise click.ClickException(
            f"Kafka at {settings.kafka_bootstrap} did not acknowledge {summary.failed} records"
            f" (first: {summary.first_failure}){hint}"
        )

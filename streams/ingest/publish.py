"""`leadpulse publish`: send records from files or stdin to Kafka, each one acknowledged or counted.

Valid events go to their topic keyed by `lead_id` (so one lead's events stay in order
on one partition); invalid records go to `leadpulse.rejected`, unchanged, with the
reason in headers (`streams.kafka.rejected`). Nothing is dropped silently: every record's
delivery report is waited for, and the exit code says whether Kafka acknowledged all of them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Final, Iterable, Iterator, Sequence

import click
import orjson

from streams.events import MAX_ID_CHARS, Rejection
from streams.ingest.records import FORMATS, STDIN, Format, Record, detect_format, read_records, wall_clock_ms
from streams.kafka.clients import client_options
from streams.kafka.diagnose import ACL_HINT, diagnose_sync
from streams.kafka.rejected import rejection_headers
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings

if TYPE_CHECKING:  # Kafka clients and rich load only when a command runs, keeping `leadpulse --help` instant
    from confluent_kafka import KafkaError, Message, Producer

# Kafka timeouts: an unreachable broker must fail the command within 30 s. Connecting
# gives up after 10 s; a request after 10 s; a record that Kafka has not acknowledged
# 25 s after `produce` (retries included) counts as failed and ends the run. One
# broker's death among several takes Kafka's controller 9 s (`broker.session.timeout.ms`)
# to notice before new leaders are elected, and a record must outlast that.
CONNECT_TIMEOUT_MS: Final = 10_000
REQUEST_TIMEOUT_MS: Final = 10_000
DELIVERY_TIMEOUT_MS: Final = 25_000
#: 20 ms of lingering fills librdkafka's 1 MB batches at full speed and costs a lone record little.
LINGER_MS: Final = 20
#: Unacknowledged records held at once, by count and by size: bounds memory on any file
#: while keeping a few batches per partition in flight.
SEND_WINDOW: Final = 100_000
SEND_WINDOW_KBYTES: Final = 32 * 1024
#: How long a full window waits for acknowledgements before looking again.
WINDOW_WAIT_S: Final = 0.1
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
    `records` is consumed lazily and at most SEND_WINDOW records wait for their
    acknowledgement at once, so memory stays bounded on any input. An `OSError` it raises
    mid-way ends the run as a `PublishError`, a Kafka that stops answering as
    `KafkaUnreachable`, each with the summary of what Kafka had acknowledged by then.
    """
    from confluent_kafka import KafkaException

    deliveries = Deliveries()
    producer = connect(settings, deliveries)
    events = rejects = 0
    try:
        for origin, record in records:
            result = record.result
            topic: str
            key: str | bytes | None
            headers: list[tuple[str, bytes]] | None
            if isinstance(result, Rejection):
                topic, key, headers = REJECTED_TOPIC, rejected_key(record.raw), rejection_headers(result, f"{origin}:{record.line}")
            else:
                topic, key, headers = result.topic, result.lead_id, None
            try:  # the common case inline: a call per record costs ~5% of the run
                producer.produce(topic, record.raw, key, headers=headers)  # type: ignore[arg-type]  # its stub's list is invariant
            except BufferError:
                produce(producer, deliveries, topic, record.raw, key, headers)
            if headers is None:  # counted once queued: a record `produce` refused is no delivery
                events += 1
            else:
                rejects += 1
    except KafkaUnreachable as exc:  # Kafka stopped answering mid-run
        raise KafkaUnreachable(_why_unreachable(settings, exc), deliveries.settle(producer, events, rejects)) from exc
    except KafkaException as exc:  # the producer failed for good (librdkafka's fatal errors)
        raise PublishError(f"the Kafka producer failed: {exc}", deliveries.settle(producer, events, rejects)) from exc
    except OSError as exc:  # an input failed mid-read (after the inputs were checked)
        raise PublishError(f"reading input failed: {exc}", deliveries.settle(producer, events, rejects)) from exc
    return deliveries.settle(producer, events, rejects)


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


def connect(settings: Settings, deliveries: Deliveries) -> Producer:
    """An idempotent (`acks=all`) batching producer that reports refusals to `deliveries`, or `KafkaUnreachable`.

    librdkafka (confluent-kafka) rather than kafka-python or aiokafka: docs/bench.md has
    the measurements.
    """
    from confluent_kafka import KafkaException, Producer

    config: dict[str, Any] = {
        **client_options(settings).durable_producer("leadpulse-publish"),
        "linger.ms": LINGER_MS,
        "queue.buffering.max.messages": SEND_WINDOW,
        "queue.buffering.max.kbytes": SEND_WINDOW_KBYTES,
        "socket.connection.setup.timeout.ms": CONNECT_TIMEOUT_MS,
        "request.timeout.ms": REQUEST_TIMEOUT_MS,
        "message.timeout.ms": DELIVERY_TIMEOUT_MS,
        "on_delivery": deliveries.delivered,
        "delivery.report.only.error": True,
        "logger": _quiet_logger(),  # the outcome is in the summary and the one-line error
    }
    producer = Producer(config)
    try:
        producer.list_topics(timeout=CONNECT_TIMEOUT_MS / 1000)
    except KafkaException as exc:
        raise KafkaUnreachable(_why_unreachable(settings, exc)) from exc
    return producer


def _quiet_logger() -> logging.Logger:
    """librdkafka's log, kept off stderr unless the application configures logging."""
    logger = logging.getLogger(f"{__name__}.librdkafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def _why_unreachable(settings: Settings, exc: Exception) -> str:
    """The diagnosed cause (credentials, certificates, ACLs, address), else what the client said."""
    topics = [*INPUT_TOPICS, REJECTED_TOPIC]
    return diagnose_sync(client_options(settings), topics) or f"Kafka at {settings.kafka_bootstrap} is unreachable: {exc}"


def produce(
    producer: Producer,
    deliveries: Deliveries,
    topic: str,
    value: bytes,
    key: str | bytes | None,
    headers: list[tuple[str, bytes]] | None,
) -> None:
    """Queue one record; while SEND_WINDOW records are unacknowledged, wait for acknowledgements first.

    Raises `KafkaUnreachable` once a record went unacknowledged for the whole delivery timeout.
    """
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)  # type: ignore[arg-type]  # its stub's list is invariant
            return
        except BufferError:
            producer.poll(WINDOW_WAIT_S)  # runs `deliveries.delivered` for what Kafka answered
            if deliveries.timed_out is not None:
                raise KafkaUnreachable(f"records unacknowledged for {DELIVERY_TIMEOUT_MS} ms: {deliveries.timed_out}")


def rejected_key(raw: bytes) -> bytes | None:
    """The record's `lead_id` when it has a usable one, so a lead's rejects share its partition."""
    try:
        lead_id = orjson.loads(raw).get("lead_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if isinstance(lead_id, str) and 1 <= len(lead_id) <= MAX_ID_CHARS:
        return lead_id.encode()  # orjson refuses lone surrogates, so this always encodes
    return None


class Deliveries:
    """Counts the records Kafka refused; with every report in, all others were acknowledged.

    librdkafka reports only failures (`delivery.report.only.error`): a Python call per
    acknowledged record cost a fifth of the run's throughput.
    """

    def __init__(self) -> None:
        self.failed_events = 0
        self.failed_rejects = 0
        self.first_failure: str | None = None
        self.timed_out: str | None = None  # the first "not acknowledged in time", which ends the run

    def delivered(self, error: KafkaError, message: Message) -> None:
        if message.topic() == REJECTED_TOPIC:
            self.failed_rejects += 1
        else:
            self.failed_events += 1
        failure = f"{error.name()}: {error.str()}"
        self.first_failure = self.first_failure or failure
        if error.name() == "_MSG_TIMED_OUT" and self.timed_out is None:
            self.timed_out = failure

    def settle(self, producer: Producer, events: int, rejects: int) -> PublishSummary:
        """Wait for every outstanding report of the `events` and `rejects` queued, and sum up.

        The delivery timeout bounds the wait (librdkafka reports every record within it);
        the margin guards a stuck client. Should records still be unanswered after it, they
        count as failed and are taken off the acknowledged events first, then the rejects:
        the summary never claims more than Kafka acknowledged.
        """
        unanswered = producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 5)
        summary = PublishSummary(
            sent=events - self.failed_events,
            rejected=rejects - self.failed_rejects,
            failed=self.failed_events + self.failed_rejects + unanswered,
            first_failure=self.first_failure or (f"{unanswered} records never answered" if unanswered else None),
        )
        from_events = min(unanswered, summary.sent)
        summary.sent -= from_events
        summary.rejected -= unanswered - from_events
        return summary


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
        hint = f": its user may not write there; {ACL_HINT}" if "AUTHORIZATION_FAILED" in (summary.first_failure or "") else ""
        raise click.ClickException(
            f"Kafka at {settings.kafka_bootstrap} did not acknowledge {summary.failed} records"
            f" (first: {summary.first_failure}){hint}"
        )

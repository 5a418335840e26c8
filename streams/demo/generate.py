"""`leadpulse generate`: the synthetic feed of `streams.demo.simulation`, to a file or into Kafka.

The thin I/O around the pure simulation: a file gets the whole history up to now at
once (for `leadpulse publish`), Kafka gets it paced against the wall clock, so a
scheduled drop happens when the scenario says and the numbers move while one watches.
Records go to Kafka as a form or CRM connector would send them: raw, malformed ones
included, for the workers to validate.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Final, TypeVar

import click

from streams.settings import Settings
from streams.demo.simulation import SOURCES, Drop, Feed, Pace, Simulation, Stop, parse_drop, parse_stop, rfc3339

log = logging.getLogger(__name__)
Scenario = TypeVar("Scenario", Drop, Stop)
Command = TypeVar("Command", bound=Callable[..., None])

#: Simulated history before now: the 90-day window plus 30 days, so deals closing early
#: in the window have their leads (a window starting empty would look like a slump).
HISTORY_DAYS: Final = 120.0
#: 12 simulated hours per second: the history replays in 4 minutes.
DEFAULT_SPEED: Final = 43_200.0
#: How often the Kafka feed wakes up to send what became due.
TICK_S: Final = 0.1
PROGRESS_EVERY_S: Final = 10.0


@dataclass
class FeedSummary:
    """What the Kafka feed sent and how many sends Kafka refused."""

    sent: int = 0
    failed: int = 0


def write_history(sim: Simulation, out: BinaryIO) -> int:
    """Write every record due by the pace's start (its "now") as JSON Lines; returns the count."""
    written = 0
    for message in sim.advance(sim.pace.start_ms):
        out.write(message.value + b"\n")
        written += 1
    return written


def feed_kafka(
    sim: Simulation, settings: Settings, rate: float | None, duration_s: float | None, stop: threading.Event
) -> FeedSummary:
    """Send the feed to Kafka as simulated time passes, until `duration_s` or `stop`.

    At most `rate` records per second: when that binds, the feed lags behind simulated
    time and catches up later; it never sends a record before its delivery time.
    """
    from streams.ingest.publish import Deliveries, connect, produce

    deliveries = Deliveries()
    producer = connect(settings, deliveries)
    summary = FeedSummary()
    started = time.monotonic()
    deadline = started + duration_s if duration_s is not None else math.inf
    reported = started
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            horizon = sim.pace.sim_ms(time.monotonic() - started)
            for message in sim.advance(horizon):
                if rate is not None:  # sleep off any lead over `rate` records per second
                    stop.wait(summary.sent / rate - (time.monotonic() - started))
                if stop.is_set() or time.monotonic() >= deadline:
                    break
                produce(producer, deliveries, message.topic, message.value, message.key, None)
                summary.sent += 1
            producer.poll(0)  # count what Kafka answered so far
            if time.monotonic() - reported >= PROGRESS_EVERY_S:
                reported = time.monotonic()
                log.info("simulated time %s, %d records sent", rfc3339(horizon), summary.sent)
            stop.wait(TICK_S)
    finally:
        summary.failed = deliveries.settle(producer, summary.sent, 0).failed
    return summary


def checked_drop(spec: str) -> Drop:
    """`parse_drop` for a command line: a drop of a source the feed has, or a usage error."""
    return _checked(parse_drop, spec)


def checked_stop(spec: str) -> Stop:
    """`parse_stop` for a command line: a stop of a source the feed has, or a usage error."""
    return _checked(parse_stop, spec)


def _checked(parse: Callable[[str], Scenario], spec: str) -> Scenario:
    try:
        scenario = parse(spec)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    known = [source.name for source in SOURCES]
    if scenario.source not in known:
        raise click.BadParameter(f"unknown source {scenario.source!r}; choose from {', '.join(known)}")
    return scenario


def _scenarios(name: str, check: Callable[[str], object], metavar: str, help: str) -> Callable[[Command], Command]:
    """A repeatable scenario option `--NAME` whose values arrive checked, as a tuple named NAMEs."""
    return click.option(
        f"--{name}",
        f"{name}s",
        multiple=True,
        callback=lambda _, __, specs: tuple(map(check, specs)),
        metavar=metavar,
        help=f"{help} (repeatable)",
    )


@click.command("generate")
@click.option("-o", "--output", default="-", show_default=True, help="JSON Lines file to write (`-`: stdout)")
@click.option(
    "--kafka", is_flag=True, help="feed Kafka (LEADPULSE_KAFKA_BOOTSTRAP) as simulated time passes, instead of writing"
)
@click.option("--seed", type=int, default=1, show_default=True, help="same seed, same clock: same records")
@click.option(
    "--days", type=click.FloatRange(min=1), default=HISTORY_DAYS, show_default=True, help="simulated history before now"
)
@click.option(
    "--leads-per-day",
    type=click.FloatRange(min=0),
    default=1000.0,
    show_default=True,
    help="mean leads per day (fewer at weekends)",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    default=DEFAULT_SPEED,
    show_default=True,
    help="simulated seconds per wall second until the feed reaches now",
)
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="with --kafka: at most this many records per second"
)
@_scenarios(
    "drop", checked_drop, "SOURCE:FACTOR@WHEN", "from WHEN (wall clock: 90s, 10m) on, SOURCE converts FACTOR times as well"
)
@_scenarios(
    "stop", checked_stop, "SOURCE@WHEN", "from WHEN on, nobody follows up SOURCE's leads: they go untouched and its open deals slip"
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    help="with --kafka: stop after this many seconds (default: until Ctrl-C or SIGTERM)",
)
@click.option(
    "--now",
    "now",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    help="without --kafka: pretend the clock reads this (UTC if no offset), for reproducible files",
)
def generate_command(
    output: str,
    kafka: bool,
    seed: int,
    days: float,
    leads_per_day: float,
    speed: float,
    rate: float | None,
    drops: tuple[Drop, ...],
    stops: tuple[Stop, ...],
    duration: float | None,
    now: datetime | None,
) -> None:
    """Generate a synthetic marketing feed: leads, funnel stages and deals from seven sources.

    Inbound channels (organic and paid search, paid social, email) convert 1.5-4% of
    their leads, targeted programmes (referral, partner, abm) 11-14%. Junk leads are
    disqualified, deals are won or lost weeks after the lead; sales touches most leads
    within the hour in office hours (Mon-Fri 09:00-17:30 London); a share of the
    events arrives late, re-sent or malformed, as real feeds do.

    The feed starts --days before now and replays that history --speed times faster
    than the clock, then goes on at the clock's pace; no event is ever in the future.
    --drop and --stop times count from the start on the wall clock (in a file, where
    simulated time at --speed would have reached by then).

    \b
    Examples:
      leadpulse generate -o events.jsonl && leadpulse publish events.jsonl
      leadpulse generate --kafka --drop paid_search:0.5@10m
      leadpulse generate --kafka --stop paid_search@10m
    """
    if kafka and now is not None:
        raise click.UsageError("--now pins a file's clock; Kafka is fed as of the real clock")
    if not kafka and (rate is not None or duration is not None):
        raise click.UsageError("--rate and --duration pace the Kafka feed; add --kafka")
    clock = now.replace(tzinfo=now.tzinfo or timezone.utc) if now is not None else datetime.now(timezone.utc)
    pace = Pace(start_ms=round(clock.timestamp() * 1000), history_days=days, speed=speed)
    sim = Simulation(Feed(seed=seed, leads_per_day=leads_per_day, drops=drops, stops=stops), pace)
    for source, at_ms in sim.stop_times():
        click.echo(f"scenario: nobody follows up {source} from simulated {rfc3339(at_ms)}", err=True)
    for source, factor, at_ms in sim.drop_times():
        click.echo(f"scenario: {source} converts x{factor:g} from simulated {rfc3339(at_ms)}", err=True)
    if not kafka:
        if output == "-":
            written = write_history(sim, sys.stdout.buffer)
        else:
            with Path(output).open("wb") as out:
                written = write_history(sim, out)
        click.echo(f"wrote {written} records up to {rfc3339(pace.start_ms)}", err=True)
        return
    _run_kafka_feed(sim, rate, duration)


def _run_kafka_feed(sim: Simulation, rate: float | None, duration: float | None) -> None:
    """Feed Kafka until done; SIGTERM and Ctrl-C stop it after flushing what was sent."""
    from streams.logs import configure_logging
    from streams.ingest.publish import KafkaUnreachable

    configure_logging("info")
    settings = Settings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info(
        "feeding %s: %.0f days of history at %gx, then live (catches up in %.0f s)",
        settings.kafka_bootstrap,
        sim.pace.history_days,
        sim.pace.speed,
        sim.pace.catch_up_s,
    )
    try:
        summary = feed_kafka(sim, settings, rate, duration, stop)
    except KafkaUnreachable as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"sent {summary.sent}, failed {summary.failed}", err=True)
    if summary.failed:
        raise click.ClickException(f"Kafka did not acknowledge {summary.failed} records")

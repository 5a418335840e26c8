"""`leadpulse demo`: the whole pipeline on a synthetic marketing feed, with a live view.

An orchestration of the commands an operator would type: `stack up`, then `leadpulse
worker`, `leadpulse exporter` and `leadpulse generate --kafka` with a drop scenario,
each a subprocess in a session of its own (so Ctrl-C reaches only the demo, which then
stops them in order) with its log under $LEADPULSE_HOME/logs. The view reads what
they produce the way an operator's tools would: aggregates from Redis, consumer lag
from Kafka, alerts from Alertmanager's API.

The feed replays 120 days of history in two minutes, then goes on at the clock's pace.
The scenario: 10 simulated days before now nobody follows up paid search any more, so
the 7 days both `LeadFollowUpSlow` and `LeadConversionDrop` look at all come after it.
The follow-up series show the break in full (its leads go untouched), the customers
won only the slipping deals (the untouched leads would have converted weeks later);
the follow-up alert fires first and the conversion alert after it, an order the
demo's shortened waits keep (streams.demo.alerts says why).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from streams import stack
from streams.demo.generate import HISTORY_DAYS, checked_drop, checked_stop
from streams.settings import Settings
from streams.demo.simulation import DAY_MS, SLIPPED_WINS, Drop, Pace, Stop

if TYPE_CHECKING:  # rich, yaml and the clients load only when the demo runs: `leadpulse --help` stays quick
    from rich.console import Console

    from streams.demo.view import Context, Sample, Timeline

log = logging.getLogger(__name__)

#: 1,500 leads a day put about 450 paid-search leads in a day: enough for its slipping
#: deals (won a quarter as often; at 0.4 one of two runs missed) to reach z <= -3.09 in
#: one week, few enough that the worker keeps up with the 120-day replay (about 550,000
#: records, touches included) on two cores.
LEADS_PER_DAY: Final = 1500.0
REPLAY_S: Final = 120.0
STOPPED: Final = "paid_search"
BREAK_DAYS_BEFORE_NOW: Final = 10.0
SAMPLE_EVERY_S: Final = 1.0
PRINT_EVERY_S: Final = 15.0  # progress lines when stdout is not a terminal
STOP_TIMEOUT_S: Final = 30.0  # a worker finishes its batch and leaves the group in a few seconds
#: Ctrl-C, `kill` and a closed terminal all stop the demo the same way.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DemoError(click.ClickException):
    """The demo could not go on (a process died, the stack did not start); the message names the log."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The demo's feed: how much, how fast, which scenario (a stop of follow-up, drops)."""

    seed: int
    leads_per_day: float
    replay_s: float
    stops: tuple[Stop, ...] = ()
    drops: tuple[Drop, ...] = ()

    @property
    def speed(self) -> float:
        return replay_speed(self.replay_s)

    def pace(self, start_ms: int) -> Pace:
        """The generator's simulated clock when it starts at `start_ms`."""
        return Pace(start_ms, HISTORY_DAYS, self.speed)

    def generate_args(self) -> list[str]:
        scenario = [f"--stop={s.source}@{s.after_s:.1f}s" for s in self.stops]
        scenario += [f"--drop={d.source}:{d.factor:g}@{d.after_s:.1f}s" for d in self.drops]
        return [
            "generate",
            "--kafka",
            "--seed",
            str(self.seed),
            "--days",
            f"{HISTORY_DAYS:g}",
            "--leads-per-day",
            f"{self.leads_per_day:g}",
            "--speed",
            f"{self.speed:.3f}",
            *scenario,
        ]

    def scenario(self, pace: Pace, feed_started_s: float) -> str:
        """The scenario in words, with the simulated day each part lands on."""

        def when(after_s: float) -> str:
            return f"from {feed_started_s + after_s:.0f} s into the demo (simulated {_day(pace.sim_ms(after_s) / 1000)})"

        parts = [
            f"nobody follows up {s.source} {when(s.after_s)}: its leads go untouched, its open deals slip"
            f" (won x{SLIPPED_WINS:g})"
            for s in self.stops
        ]
        parts += [f"{d.source} converts x{d.factor:g} {when(d.after_s)}" for d in self.drops]
        return "; ".join(parts)


def replay_speed(replay_s: float) -> float:
    """Simulated seconds per wall second with which the history reaches now after `replay_s`."""
    return HISTORY_DAYS * DAY_MS / 1000 / replay_s + 1


def default_stop(replay_s: float) -> Stop:
    """Nobody follows up STOPPED from BREAK_DAYS_BEFORE_NOW simulated days before now."""
    return Stop(STOPPED, (HISTORY_DAYS - BREAK_DAYS_BEFORE_NOW) * DAY_MS / 1000 / replay_speed(replay_s))


class Processes:
    """The demo's subprocesses: each in its own session, its output in `<logs>/<name>.log`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as out:
            self._running[name] = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
                start_new_session=True,
            )
        log.info("started %s (pid %d)", name, self._running[name].pid)

    def states(self) -> dict[str, str]:
        return {
            name: "running" if p.poll() is None else f"exited ({p.returncode})" for name, p in self._running.items()
        }

    def check(self) -> None:
        """Fail the demo when one of them stopped by itself."""
        for name, process in self._running.items():
            if process.poll() is not None:
                raise DemoError(
                    f"leadpulse {name} exited with code {process.returncode}; see {self.logs / f'{name}.log'}"
                )

    def stop(self) -> None:
        """SIGTERM in reverse start order (the feed first), SIGKILL for any that outlive STOP_TIMEOUT_S."""
        for name, process in reversed(self._running.items()):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.warning("%s ignored SIGTERM for %.0f s; killing it", name, STOP_TIMEOUT_S)
                    process.kill()
                    process.wait()
            log.info("%s stopped (%s)", name, process.returncode)


class Probe:
    """Takes one `Sample`: aggregates and health from Redis, lag from Kafka, alerts from Alertmanager."""

    def __init__(self, settings: Settings) -> None:
        from aggregates.connect import redis_client
        from aggregates.store import AggregateStore
        from exporters.lag import EndOffsets
        from streams.kafka.clients import client_options

        self.settings = settings
        self.client = redis_client(settings, timeout_s=5)
        self.store = AggregateStore(self.client, settings)
        self.end_offsets = EndOffsets(client_options(settings))

    def sample(self, at_s: float, as_of: date, processes: dict[str, str]) -> Sample:
        from aggregates.read import read_health, read_series
        from exporters.lag import consumer_lag
        from streams.demo.alerts import fetch_alerts
        from streams.demo.view import Sample, segment_stats

        health = read_health(self.client, self.settings)
        ends = self.end_offsets.read()
        lag = sum(consumer_lag(ends, self.store.read_offsets()).values()) if ends is not None else None
        stats = segment_stats(read_series(self.client, self.settings, as_of))
        return Sample(at_s, as_of, stats, health, lag, fetch_alerts(self.settings.alertmanager_port), processes)

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *_: object) -> None:
        self.end_offsets.close()
        self.client.close()


def run_demo(
    settings: Settings, plan: Plan, duration_s: float | None, keep_stack: bool, live: bool, snapshot: Path | None = None
) -> str:
    """Run the demo until `duration_s` (or Ctrl-C); returns the summary; saves the last view to `snapshot`."""
    from rich.console import Console

    from streams.demo.alerts import fast_alerts
    from streams.demo.view import Timeline, save_svg, summary

    console = Console()
    started = time.monotonic()
    for signum in STOP_SIGNALS[1:]:  # SIGINT raises KeyboardInterrupt already
        signal.signal(signum, _interrupt)
    owns_stack = all(s.state in ("stopped", "not installed") for s in stack.status(settings))
    processes = Processes(settings.home.expanduser().resolve() / "logs")
    timeline = Timeline()
    context: Context | None = None
    try:
        console.print(f"starting the stack in {settings.home} …")
        statuses = stack.up(settings)
        console.print("stack: " + ", ".join(f"{s.name} {s.state}" for s in statuses))
        feed_started = time.monotonic()
        pace = plan.pace(time.time_ns() // 1_000_000)  # the generator's clock, give or take its start-up
        scenario = plan.scenario(pace, feed_started - started)
        context = _context(settings, scenario, feed_started - started + plan.replay_s, owns_stack and not keep_stack)
        prometheus_ours = any(s.name == "prometheus" and s.state == "running/ours" for s in statuses)
        with fast_alerts(settings, prometheus_ours) as fast, Probe(settings) as probe:
            if not fast:
                console.print("[yellow]Prometheus was not started by this stack: alerts keep their 30-minute timing[/]")
            processes.start("worker", "worker")
            processes.start("exporter", "exporter")
            processes.start("generator", *plan.generate_args())
            watch = _Watch(settings, probe, processes, timeline, started, pace, feed_started)
            watch.run(duration_s, context, console if live else None)
    except stack.StackError as error:
        raise DemoError(str(error)) from error
    except KeyboardInterrupt:
        console.print("stopping …")
    finally:
        for signum in STOP_SIGNALS:  # a second Ctrl-C must not strand the processes
            signal.signal(signum, signal.SIG_IGN)
        processes.stop()
        if owns_stack and not keep_stack:
            stack.down(settings)
    if context is None:
        return "leadpulse demo: stopped while the stack was starting"
    if snapshot is not None:
        save_svg(timeline, context, snapshot)
    return summary(timeline, context)


def _interrupt(signum: int, _: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@dataclass
class _Watch:
    """The sampling loop: a `Sample` every SAMPLE_EVERY_S into the timeline, shown live or as progress lines."""

    settings: Settings
    probe: Probe
    processes: Processes
    timeline: Timeline
    started: float  # monotonic start of the demo
    pace: Pace  # the generator's clock
    feed_started: float  # monotonic start of the generator

    def run(self, duration_s: float | None, context: Context, console: Console | None) -> None:
        from aggregates.errors import REDIS_ERRORS
        from rich.live import Live

        from streams.demo.view import progress, render

        display = (
            Live(render(self.timeline, context), console=console, refresh_per_second=2) if console is not None else None
        )
        printed = 0.0
        with display or nullcontext():
            while duration_s is None or time.monotonic() - self.started < duration_s:
                tick = time.monotonic()
                self.processes.check()
                simulated_ms = self.pace.sim_ms(tick - self.feed_started)
                as_of = min(self.settings.today(), _day(simulated_ms / 1000))  # windows move with the replay
                try:
                    sample = self.probe.sample(tick - self.started, as_of, self.processes.states())
                except REDIS_ERRORS as error:
                    raise DemoError(f"Redis at {self.settings.redis_shown} stopped answering: {error}") from error
                self.timeline.add(sample, datetime.now(timezone.utc).strftime("%H:%M:%S UTC"))
                if display is not None:
                    display.update(render(self.timeline, context))
                elif tick - printed >= PRINT_EVERY_S:
                    printed = tick
                    print(progress(self.timeline), flush=True)
                # At least twice as long as the sample took: on a busy 2-core machine reading
                # every series each second would take the CPU the worker needs.
                took = time.monotonic() - tick
                time.sleep(max(SAMPLE_EVERY_S - took, 2 * took))


def _day(epoch_s: float) -> date:
    return datetime.fromtimestamp(epoch_s, timezone.utc).date()


def _context(settings: Settings, scenario: str, live_at_s: float, stops_stack: bool) -> Context:
    from streams.demo.view import Context

    prometheus = f"http://127.0.0.1:{settings.prometheus_port}"
    links = (
        ("metrics", f"http://127.0.0.1:{settings.exporter_port}/metrics"),
        ("Prometheus", f"{prometheus}/alerts"),
        ("Alertmanager", f"http://127.0.0.1:{settings.alertmanager_port}/#/alerts"),
        ("Grafana", f"Prometheus data source {prometheus} (uid prometheus) + deploy/grafana/dashboards/leadpulse.json"),
    )
    stops = (
        "the processes it started and the stack"
        if stops_stack
        else "the processes it started (the stack was already up and stays up)"
    )
    return Context(scenario, live_at_s, links, f"Ctrl-C stops {stops}; logs in {settings.home}/logs")


@click.command("demo")
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    help="run this many seconds, then stop and print a summary (default: until Ctrl-C)",
)
@click.option("--seed", type=int, default=1, show_default=True, help="seed of the synthetic feed")
@click.option(
    "--leads-per-day", type=click.FloatRange(min=1), default=LEADS_PER_DAY, show_default=True, help="volume of the feed"
)
@click.option(
    "--replay",
    "replay_s",
    type=click.FloatRange(min=1),
    default=REPLAY_S,
    show_default=True,
    help=f"seconds the {HISTORY_DAYS:g} days of history take",
)
@click.option(
    "--stop",
    callback=lambda _, __, spec: checked_stop(spec) if spec else None,
    metavar="SOURCE@WHEN",
    help=f"the scenario: from WHEN nobody follows up SOURCE (default: {STOPPED},"
    f" {BREAK_DAYS_BEFORE_NOW:g} simulated days before now)",
)
@click.option(
    "--drop",
    callback=lambda _, __, spec: checked_drop(spec) if spec else None,
    metavar="SOURCE:FACTOR@WHEN",
    help="a scenario instead of (or with --stop, beside) the default: from WHEN SOURCE converts FACTOR times as well",
)
@click.option("--keep-stack", is_flag=True, help="leave the stack running at the end even if the demo started it")
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="at the end, save the last live view as an SVG picture",
)
def demo_command(
    duration: float | None,
    seed: int,
    leads_per_day: float,
    replay_s: float,
    stop: Stop | None,
    drop: Drop | None,
    keep_stack: bool,
    snapshot: Path | None,
) -> None:
    """Run the whole pipeline on a synthetic marketing feed and watch conversion live.

    Starts the stack (what of it is not running), a worker, the exporter and
    `leadpulse generate --kafka`, which replays the last 120 days of seven lead
    sources and then goes on live. Ten simulated days before now nobody follows up
    paid search any more: Prometheus (evaluating every 5 s while the demo runs) sees
    its leads go untouched and LeadFollowUpSlow fires first; LeadConversionDrop follows
    as its open deals slip.

    Ctrl-C (or the end of --duration) stops the worker, the exporter and the feed, and
    the stack too if the demo started it (unless --keep-stack); then a summary is
    printed: conversion per source and the alerts that fired. Settings come from
    LEADPULSE_* variables; logs go to $LEADPULSE_HOME/logs.
    """
    settings = Settings()
    logs = settings.home.expanduser().resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, filename=logs / "demo.log", format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stops = (stop,) if stop else () if drop else (default_stop(replay_s),)
    plan = Plan(seed, leads_per_day, replay_s, stops, (drop,) if drop else ())
    click.echo(run_demo(settings, plan, duration, keep_stack, live=sys.stdout.isatty(), snapshot=snapshot))

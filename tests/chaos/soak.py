"""The chaos soak: steady traffic through every way in while faults hit the pipeline, then an exact count.

A stack of its own (three brokers and Redis under `Options.home`, on free ports; or a
Redis Cluster of local servers) with workers, the ingest API and the exporter. For
`Options.minutes`, each second's traffic is offered through signed API batches, the
form and Segment hooks and `leadpulse publish`, retried until acknowledged; every 20-60 s a fault
from `tests.chaos.faults` breaks something and repairs it. Then the traffic drains, the
workers catch up and stop, and `report --json` is held against the reference model over
exactly the events that were acknowledged. Everything started is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from aggregates.series import Series
from streams import stack
from streams.events import Event as Parsed
from streams.events import parse_record
from streams.settings import Settings
from tests.aggregates.reference import reference_series
from tests.chaos import faults as f
from tests.chaos.clients import Clients, session
from tests.chaos.figures import FaultRecord, Figures, Verify, render, summarise
from tests.chaos.traffic import Event, Feed, kinds, tallies
from tests.pipeline import LEADPULSE, Pipeline
from tests.services import free_port_run, redis_cluster

BROKERS: Final = 3
STACK_START_TIMEOUT_S: Final = 300.0
#: Traffic is offered in ticks of this length; `publish` runs at most this often, with what accumulated.
TICK_S: Final = 1.0
PUBLISH_EVERY_S: Final = 5.0
SIGNED_BATCH: Final = 10
#: The freshness probe scrapes the exporter this often.
PROBE_S: Final = 1.0
#: After the traffic stops: how long offers may still retry, and how long the workers may take to catch up.
DRAIN_TIMEOUT_S: Final = 600.0
CATCH_UP_TIMEOUT_S: Final = 600.0


@dataclass(frozen=True)
class Options:
    minutes: float
    home: Path
    rate: int = 40  # events per second offered
    gap_s: tuple[float, float] = (20.0, 60.0)
    cluster: bool = False
    workers: int = 2
    seed: int | None = None
    faults: tuple[str, ...] = tuple(f.FAULTS)  # the kinds to inject


@dataclass
class Run:
    figures: Figures
    text: str
    stack: Settings  # the soak stack's, to check it was left stopped


def run(options: Options) -> Run:
    """One soak, start to stop; prints progress as it goes and returns its figures."""
    rng = random.Random(options.seed)
    started = datetime.now(timezone.utc)
    with _cast(options) as cast:
        secret = {name: value.encode() for name, value in cast.secrets.items()}
        clients = Clients(f"http://127.0.0.1:{cast.api_port}", secret["LEADPULSE_INGEST_SECRET"],
                          secret["LEADPULSE_FORM_SECRET"], secret["LEADPULSE_SEGMENT_SHARED_SECRET"], cast.pipe.env())  # fmt: skip
        records: list[FaultRecord] = []
        asyncio.run(_soak(options, cast, clients, records, rng))
        end = time.monotonic()
        _progress("traffic drained; waiting for the workers to catch up")
        cast.pipe.wait_caught_up(CATCH_UP_TIMEOUT_S)
        cast.stop()
        report = cast.pipe.report()
        s = cast.pipe.settings
        now_ms = int(time.time() * 1000)
        events = [parse_record(orjson.dumps(e), now_ms) for e in clients.ledger.acknowledged.values()]
        expected = reference_series([e for e in events if isinstance(e, Parsed)], s.today(), s.window_days,
                                    s.max_segments, s.attribute_keys)  # fmt: skip
        verdict = verify(cast.pipe)
    figures = summarise(
        offered=len(clients.ledger.offered), acknowledged=clients.ledger.acknowledged.values(), report=report,
        expected=expected, faults=records, api=clients.api, publish=clients.publish, refusals=clients.refusals,
        end=end, verify=verdict,
    )  # fmt: skip
    minutes = (datetime.now(timezone.utc) - started).total_seconds() / 60
    redis = "a Redis Cluster (3 masters, 3 replicas)" if options.cluster else "Redis with its AOF"
    header = (f"leadpulse chaos soak {started:%Y-%m-%d %H:%M} UTC: {options.minutes:g} min of traffic "
              f"({minutes:.0f} min in all), {options.rate} events/s offered, {BROKERS} brokers, {redis}, "
              f"{options.workers} workers; {_load()} at the end")  # fmt: skip
    return Run(figures, render(figures, header), cast.stack)


def verify(pipe: Pipeline) -> Verify:
    """`leadpulse verify` over the soak's aggregates, where this checkout has the command."""
    env = pipe.env()
    known = subprocess.run([LEADPULSE, "verify", "--help"], env=env, capture_output=True, timeout=300)
    if known.returncode != 0:
        return Verify(None, "not run: this checkout has no `leadpulse verify`")
    done = subprocess.run([LEADPULSE, "verify"], env=env, capture_output=True, timeout=1800)
    last = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()[-1:] or [""]
    return Verify(done.returncode == 0, f"exit {done.returncode}: {last[0]}")


async def _soak(options: Options, cast: f.Cast, clients: Clients, records: list[FaultRecord], rng: random.Random) -> None:
    deadline = time.monotonic() + options.minutes * 60
    feed = Feed(uuid.uuid4().hex[:8], random.Random(rng.random()))
    async with session() as http:
        probe = asyncio.create_task(_probe(http, cast, records))
        injector = asyncio.create_task(_inject(options, cast, clients, records, rng, deadline))
        offers = await _traffic(options, feed, clients, http, deadline)
        _progress(f"traffic stopped; {sum(not o.done() for o in offers)} offers still retrying")
        await injector
        await asyncio.wait_for(asyncio.gather(*offers), DRAIN_TIMEOUT_S)  # raises what any offer raised
        await asyncio.sleep(2 * PROBE_S)  # the probe sees the numbers fresh after the last repair
        probe.cancel()


async def _traffic(options: Options, feed: Feed, clients: Clients, http: aiohttp.ClientSession,
                   deadline: float) -> list[asyncio.Task[None]]:  # fmt: skip
    """Offer `options.rate` events per second until `deadline`; every offer's task, done or not."""
    buffer: list[Event] = []
    stopped = asyncio.Event()
    tasks = [asyncio.create_task(_publisher(clients, buffer, stopped))]
    next_tick = time.monotonic()
    while next_tick < deadline:
        tick = feed.tick(options.rate, int(time.time() * 1000))
        offers = [clients.post_events(http, tick.api[i : i + SIGNED_BATCH]) for i in range(0, len(tick.api), SIGNED_BATCH)]
        offers += [clients.post_hook(http, call) for call in tick.hook]
        tasks += [asyncio.create_task(offer) for offer in offers]
        buffer += tick.publish
        next_tick += TICK_S
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    stopped.set()
    return tasks


async def _publisher(clients: Clients, buffer: list[Event], stopped: asyncio.Event) -> None:
    """One `publish` at a time, of what accumulated meanwhile, like a job every PUBLISH_EVERY_S that never overlaps
    itself: runs in parallel would pile up on a loaded machine and load it further."""
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopped.wait(), PUBLISH_EVERY_S)
        if buffer:
            events = list(buffer)
            buffer.clear()
            await clients.run_publish(events)
        elif stopped.is_set():
            return


async def _inject(options: Options, cast: f.Cast, clients: Clients, records: list[FaultRecord], rng: random.Random,
                  deadline: float) -> None:  # fmt: skip
    """One fault every `options.gap_s`, each kind once per round in random order, until `deadline`."""
    round_: list[str] = []
    while True:
        gap = rng.uniform(*options.gap_s)
        if time.monotonic() + gap >= deadline:
            return  # the next fault would come after the traffic: no need to sit out its gap
        await asyncio.sleep(gap)
        if time.monotonic() >= deadline:
            return
        round_ = round_ or f.schedule(options.faults, rng)
        kind = round_.pop()
        record = FaultRecord(kind, time.monotonic())
        records.append(record)
        _progress(f"fault: {kind}")
        await f.FAULTS[kind](cast, rng)
        record.target = kinds(clients.ledger.acknowledged.values())["lead.created"]
        record.repaired = time.monotonic()


async def _probe(http: aiohttp.ClientSession, cast: f.Cast, records: list[FaultRecord]) -> None:
    """Scrape the exporter: a repaired fault is over once it counts every lead acknowledged by the repair."""
    url = f"http://127.0.0.1:{cast.exporter_port}/metrics"
    while True:
        await asyncio.sleep(PROBE_S)
        waiting = [r for r in records if r.repaired is not None and r.fresh is None]
        if not waiting:
            continue
        try:
            async with http.get(url) as response:
                page = await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            continue
        series = [Series(s.name, s.labels, s.value) for family in text_string_to_metric_families(page) for s in family.samples]
        counted = tallies(series)["lead.created"]
        now = time.monotonic()
        for record in waiting:
            if counted >= record.target:
                record.fresh = now


@contextmanager
def _cast(options: Options) -> Iterator[f.Cast]:
    """The soak's own stack and processes, started empty under `options.home` and stopped at the end."""
    # Below the ephemeral range, so no outgoing connection takes a port that a process restarted
    # by a fault binds again: the brokers', their controllers', Redis's, the API's and the exporter's.
    first = free_port_run(2 * BROKERS + 3)
    brokers, controllers, (redis, api, exporter) = first, first + BROKERS, range(first + 2 * BROKERS, first + 2 * BROKERS + 3)
    bootstrap = ",".join(f"127.0.0.1:{brokers + n}" for n in range(BROKERS))
    settings = Settings(home=options.home, kafka_bootstrap=bootstrap, kafka_controller_port=controllers,
                        redis_url=f"redis://127.0.0.1:{redis}/0")  # fmt: skip
    stack.down(settings)  # leftovers of an interrupted run in this home
    shutil.rmtree(options.home, ignore_errors=True)
    options.home.mkdir(parents=True)
    with ExitStack() as cleanup:
        cleanup.callback(stack.down, settings)
        cluster = None
        if options.cluster:
            cluster = cleanup.enter_context(redis_cluster())
            settings = settings.model_copy(update={"redis_url": cluster.url, "redis_cluster": True})
        _progress(f"starting {BROKERS} brokers{'' if cluster else ' and Redis'} in {options.home}")
        stack.up(settings, ["kafka"] if cluster else ["kafka", "redis"], timeout=STACK_START_TIMEOUT_S)
        logs = options.home / "logs"
        logs.mkdir()
        secret_env = {name: secrets.token_hex(16) for name in
                      ("LEADPULSE_INGEST_SECRET", "LEADPULSE_FORM_SECRET", "LEADPULSE_SEGMENT_SHARED_SECRET")}  # fmt: skip
        cast = f.Cast(settings, Pipeline(settings, logs), options.workers, api, exporter, secret_env, cluster)
        cleanup.callback(cast.stop)
        cast.start_workers()
        cast.start_api()
        cast.start_exporter()
        yield cast


def _load() -> str:
    """The load average: on a shared machine it says how much the timings were disturbed."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def _progress(message: str) -> None:
    print(f"  .. {datetime.now(timezone.utc):%H:%M:%S} {message}", flush=True)

"""Scaling: one and two workers against one Redis and against a 3-master Redis Cluster.

On a bench stack of its own (Kafka and one Redis) a feed of LEADS leads is published
once; then each of the four set-ups (1 or 2 workers, one Redis or a 3-master/3-replica
Cluster of local `redis-server`s, `tests.services.redis_cluster`) drains it with a fresh
consumer group and key prefix, timed as the pipeline's (c) (`pipeline.worker_rate`).
Beside each rate: the CPU each Redis server used (`INFO cpu`, user + system) over the
run's wall time, so where the work went can be read off: on a 2-core machine the
workers, Kafka and every Redis share the same two cores, and a Cluster cannot show more
throughput than one server there; on a machine with cores to spare the per-node CPU is
what spreads.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import redis

from aggregates.connect import primaries, redis_client
from streams.positions import TopicPartition
from streams.settings import Settings
from tests import services
from tests.bench import pipeline
from tests.bench.common import Figure, Section, bench_stack, progress
from tests.feeds import synthetic_feed
from tests.pipeline import Pipeline

LEADS: Final = 40_000  # ~160k records: a run of some seconds per set-up
WORKERS: Final = (1, 2)


def run() -> Section:
    with bench_stack() as settings:
        feed = synthetic_feed(LEADS, int(time.time() * 1000), seed=5, tag="scale")
        progress(f"publishing {len(feed):,} records (untimed)")
        asyncio.run(pipeline.publish(settings, feed))
        ends = asyncio.run(pipeline.input_ends(settings))
        progress("starting a 3-master, 3-replica Redis Cluster")
        with services.redis_cluster() as cluster:
            clustered = settings.model_copy(update={"redis_url": cluster.url, "redis_cluster": True})
            figures, notes = [], []
            for label, redis_settings in (("one Redis", settings), ("3-master Cluster", clustered)):
                for workers in WORKERS:
                    rate, cpu = _measured(redis_settings, ends, workers)
                    name = f"{workers} worker{'s' if workers > 1 else ''}, {label}"
                    progress(f"{name}: {rate:,.0f} events/s")
                    figures.append(Figure(name, "events/s", (rate,)))
                    notes.append(f"{name}: Redis CPU per master (cores) " + ", ".join(f"{c:.2f}" for c in cpu))
    notes.append(f"{sum(ends.values()):,} records ({LEADS:,} leads); one run per set-up; replicas' CPU not shown")
    return Section("scaling", "workers and Redis servers", figures, notes)


def _measured(settings: Settings, ends: dict[TopicPartition, int], workers: int) -> tuple[float, list[float]]:
    """Events/s of `workers` workers draining the input, and each master's CPU (cores) meanwhile."""
    pipe = Pipeline(settings, settings.home / "logs")
    pipe.logs.mkdir(parents=True, exist_ok=True)
    with redis_client(settings) as client:
        nodes = primaries(client)
        before, started = [_cpu_s(node) for node in nodes], time.perf_counter()
        try:
            rate = pipeline.worker_rate(pipe, ends, workers)
        finally:
            elapsed = time.perf_counter() - started
            after = [_cpu_s(node) for node in nodes]
            pipeline.retire(pipe)
    return rate, [(a - b) / elapsed for a, b in zip(after, before)]


def _cpu_s(node: redis.Redis) -> float:
    info = node.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

"""A worker either works or exits non-zero at once, and always stops soon after SIGTERM.

Real processes: `leadpulse worker` against the test stack's Kafka, and Redis servers
that cannot serve it (a cluster node without slots, a port nothing listens on).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streams import stack
from streams.settings import Settings
from tests.feeds import synthetic_feed
from tests.pipeline import LEADPULSE, Pipeline
from tests.services import free_port
from tests.streams.worker.test_consumer import assert_matches_reference

pytestmark = pytest.mark.integration

SIGTERM_BUDGET_S = 30.0


@pytest.fixture
def pipeline(stack_settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(stack_settings, tmp_path)
    yield pipe
    pipe.stop_workers(signal.SIGKILL)


@pytest.fixture
def cluster_node_without_slots(tmp_path: Path) -> Iterator[str]:
    """A real `redis-server` in cluster mode that serves no slot: every key command is refused."""
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         # The bus port must be given: port + 10000, Redis's default, overflows for high free ports.
         "--cluster-enabled", "yes", "--cluster-port", str(free_port()), "--cluster-config-file", str(tmp_path / "nodes.conf"),
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the cluster-mode redis-server did not start"
            time.sleep(0.05)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def worker_log(pipeline: Pipeline, index: int = 0) -> str:
    return next(pipeline.logs.glob(f"worker-{pipeline.tag}-{index}.log")).read_text(errors="replace")


def wait_for_log(pipeline: Pipeline, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker_log(pipeline):
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{worker_log(pipeline)[-2000:]}"
        time.sleep(0.2)


def start_worker_with(pipeline: Pipeline, cwd: Path | None = None, **env: str) -> subprocess.Popen[bytes]:
    log = (pipeline.logs / f"worker-{pipeline.tag}-{len(pipeline.workers)}.log").open("wb")
    worker = subprocess.Popen(
        [LEADPULSE, "worker"],
        env={**pipeline.env(), **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    pipeline.workers.append(worker)
    return worker


def stopped_within(worker: subprocess.Popen[bytes], seconds: float) -> float:
    started = time.monotonic()
    worker.wait(seconds)
    return time.monotonic() - started


def test_a_worker_whose_redis_refuses_its_commands_exits_non_zero_within_seconds_saying_why(
    pipeline: Pipeline, cluster_node_without_slots: str
) -> None:
    pipeline.publish_raw(synthetic_feed(20, int(time.time() * 1000), seed=21, tag=pipeline.tag))
    worker = start_worker_with(pipeline, LEADPULSE_REDIS_URL=cluster_node_without_slots)
    elapsed = stopped_within(worker, 60)
    assert worker.returncode != 0
    assert elapsed < 60
    errors = [line for line in worker_log(pipeline).splitlines() if "worker stopped:" in line]
    assert errors and "Hash slot not served" in errors[-1], worker_log(pipeline)[-3000:]


def test_a_worker_writes_nothing_into_its_working_directory(pipeline: Pipeline, tmp_path: Path) -> None:
    """Faust's data directory (`<consumer group>-data` by default) is a temporary one."""
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    worker = start_worker_with(pipeline, cwd=workdir)
    wait_for_log(pipeline, "Redis holds offsets")
    assert list(workdir.iterdir()) == []
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(SIGTERM_BUDGET_S) == 0
    assert list(workdir.iterdir()) == []


def test_a_worker_stops_within_30_s_of_sigterm_while_redis_is_unreachable(pipeline: Pipeline) -> None:
    pipeline.publish_raw(synthetic_feed(20, int(time.time() * 1000), seed=22, tag=pipeline.tag))
    worker = start_worker_with(pipeline, LEADPULSE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    wait_for_log(pipeline, "Redis unavailable")
    worker.send_signal(signal.SIGTERM)
    assert stopped_within(worker, SIGTERM_BUDGET_S) < SIGTERM_BUDGET_S


def test_a_worker_stops_within_30_s_of_sigterm_while_kafka_is_frozen(pipeline: Pipeline) -> None:
    pipeline.publish_raw(synthetic_feed(200, int(time.time() * 1000), seed=23, tag=pipeline.tag))
    worker = pipeline.start_worker()
    pipeline.wait_caught_up()
    kafka = stack.kill_service(pipeline.base, "kafka", signal.SIGSTOP)  # connections hang, nothing answers
    try:
        time.sleep(1)
        worker.send_signal(signal.SIGTERM)
        assert stopped_within(worker, SIGTERM_BUDGET_S) < SIGTERM_BUDGET_S
    finally:
        os.kill(kafka, signal.SIGCONT)


def test_a_zombie_worker_resumed_after_its_partitions_moved_on_corrupts_nothing(pipeline: Pipeline) -> None:
    feed = synthetic_feed(3000, int(time.time() * 1000), seed=24, tag=pipeline.tag)
    zombie = pipeline.start_worker()
    pipeline.publish_raw(feed[: len(feed) // 2])
    wait_for_log(pipeline, "Redis holds offsets")
    time.sleep(1.0)  # mid-stream: batches in flight
    zombie.send_signal(signal.SIGSTOP)
    try:
        pipeline.start_worker()
        pipeline.publish_raw(feed[len(feed) // 2 :])
        time.sleep(pipeline.settings.session_timeout_s + 5)  # the group evicts the zombie; the other takes over
        pipeline.wait_caught_up()
    finally:
        zombie.send_signal(signal.SIGCONT)  # wakes up with its old batch and stale positions
    time.sleep(5)
    pipeline.wait_caught_up()
    assert_matches_reference(pipeline)

"""The local stack: idempotent `up`, honest `status`, side-by-side homes, a `down` that
stops only its own processes, and the kill/restart helpers the fault tests use."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streams import stack
from streams.settings import Settings
from tests.services import free_port

pytestmark = pytest.mark.integration



def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.fixture
def side_settings(tmp_path: Path) -> Iterator[Settings]:
    """A second stack with its own home and free ports; stopped after the test."""
    settings = Settings(
        home=tmp_path / "side",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        prometheus_port=free_port(),
        alertmanager_port=free_port(),
        exporter_port=free_port(),
    )
    yield settings
    stack.down(settings)


def test_up_again_is_a_quick_noop(stack_settings: Settings) -> None:
    before = {row.name: row.pid for row in stack.status(stack_settings)}
    started = time.monotonic()
    again = stack.up(stack_settings)
    assert time.monotonic() - started < 10
    assert {row.name: row.pid for row in again} == before


def test_status_reports_the_stack_running(stack_settings: Settings) -> None:
    states = {row.name: row.state for row in stack.status(stack_settings)}
    assert states["kafka"].startswith("running/")
    assert states["redis"].startswith("running/")
    for name in stack.OPTIONAL:
        assert states[name].startswith("running/") or states[name] == "not installed"


def test_topics_exist_with_the_configured_partitions(stack_settings: Settings) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
    try:
        described = admin.describe_topics(list(stack.TOPICS))
    finally:
        admin.close()
    assert {topic["name"]: len(topic["partitions"]) for topic in described} == {
        name: stack_settings.topic_partitions for name in stack.TOPICS
    }


def test_a_second_stack_runs_beside_the_first(
    stack_settings: Settings, side_settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    (side,) = stack.up(side_settings, ["redis"])
    (main,) = stack.status(stack_settings, ["redis"])
    assert side.state == "running/ours"
    assert side.address != main.address and side.pid != main.pid
    side_client = redis.Redis.from_url(side_settings.redis_url)
    side_client.set(f"{key_prefix}:where", "side")
    assert redis_client.get(f"{key_prefix}:where") is None
    side_client.close()


def test_down_stops_only_what_its_home_started(side_settings: Settings, tmp_path: Path) -> None:
    light = [row.name for row in stack.status(side_settings) if row.name != "kafka" and row.state != "not installed"]
    started = [row for row in stack.up(side_settings, light) if row.state == "running/ours"]
    assert {row.name for row in started} == set(light)

    guest = side_settings.model_copy(update={"home": tmp_path / "guest"})
    (reused,) = stack.up(guest, ["redis"])
    assert reused.state == "running/external"
    stack.down(guest)
    assert stack.status(side_settings, ["redis"])[0].state == "running/ours"

    stack.down(side_settings)
    assert all(_gone(row.pid) for row in started if row.pid)
    assert {row.state for row in stack.status(side_settings, light)} == {"stopped"}
    assert not list(side_settings.home.glob("*/pid.json"))


def test_a_killed_redis_restarts_with_its_data(side_settings: Settings, key_prefix: str) -> None:
    stack.up(side_settings, ["redis"])
    client = redis.Redis.from_url(side_settings.redis_url)
    client.set(f"{key_prefix}:kept", "yes")  # in the AOF before the reply, so SIGKILL keeps it

    pid = stack.kill_service(side_settings, "redis", signal.SIGKILL)
    assert _gone(pid)
    assert stack.status(side_settings, ["redis"])[0].state == "stopped"

    restarted = stack.start_service(side_settings, "redis")
    assert restarted.state == "running/ours" and restarted.pid != pid
    assert client.get(f"{key_prefix}:kept") == b"yes"
    client.close()


def test_kill_service_refuses_what_is_not_ours(side_settings: Settings) -> None:
    with pytest.raises(stack.StackError, match="not running as ours"):
        stack.kill_service(side_settings, "redis")

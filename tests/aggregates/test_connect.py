"""Every component on a real Redis Cluster: 3 masters, 3 replicas of local `redis-server`s.

The cluster starts once for the module (tests/services.py). Through redis-py's cluster
clients built by `aggregates.connect`: the contract examples and the law's property
(imported from their own modules, with the Redis they read swapped for the cluster),
the scrape's round trips, and the exactness of two workers and an exporter through the
SIGKILL of a master in mid-stream.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from aggregates.connect import SyncRedis, moving_slots, primaries
from aggregates.connect import redis_client as connect
from aggregates.keys import CLUSTER_SHARDS, KeyLayout
from aggregates.read import read_series
from aggregates.review.build import read_review
from aggregates.store import AggregateStore, StoreSteps
from streams.events import Event, parse_record
from streams.positions import OffsetAdvance
from streams.settings import Settings
from tests import contract_examples, services
from tests.aggregates.reference import assert_same_series
from tests.aggregates.review import conftest as review_conftest
from tests.aggregates.review.test_build import flat, reference_figures
from tests.aggregates.test_aggregates_law import (  # noqa: F401  # collected here, on the cluster
    test_any_order_duplication_and_split_gives_the_reference_aggregates,
)
from tests.aggregates.test_contract_examples import (  # noqa: F401  # collected here, on the cluster
    expected,
    parsed,
    published,
    source,
    test_every_expected_series_is_published_with_its_value,
    test_replaying_the_feed_changes_no_series,
    test_store_and_reference_model_publish_identical_series,
)
from tests.contract_examples import AS_OF
from tests.feeds import synthetic_feed
from tests.pipeline import LEADPULSE, Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[services.RedisCluster]:
    with services.redis_cluster() as started:
        yield started


@pytest.fixture(scope="module")
def redis_settings(stack_settings: Settings, cluster: services.RedisCluster) -> Settings:
    """The test stack's Kafka with the cluster as Redis; the URL names one node only."""
    return stack_settings.model_copy(update={"redis_url": cluster.url, "redis_cluster": True})


@pytest.fixture(autouse=True)
def cluster_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `Settings()` of every test here, imported ones too, says what a Cluster's user sets:
    so the shards are the Cluster's default (16) and spread over the masters."""
    monkeypatch.setenv("LEADPULSE_REDIS_CLUSTER", "true")


@pytest.fixture
def redis_client(redis_settings: Settings) -> Iterator[SyncRedis]:
    """Overrides the suite's single-node client for the imported tests."""
    client = connect(redis_settings)
    yield client
    client.close()


def test_the_default_shards_of_a_cluster_spread_over_every_master(redis_client: SyncRedis, key_prefix: str) -> None:
    settings = Settings(key_prefix=key_prefix)
    store = AggregateStore(redis_client, settings)
    assert isinstance(redis_client, RedisCluster)
    assert store.layout.shards == CLUSTER_SHARDS
    nodes = {redis_client.get_node_from_key(store.layout.health(shard)).name for shard in range(store.layout.shards)}
    assert len(nodes) == 3


def test_a_batch_and_a_scrape_are_one_script_call_per_shard_and_no_key_lookup_on_the_server(
    redis_client: SyncRedis, key_prefix: str
) -> None:
    settings = Settings(key_prefix=key_prefix, as_of=AS_OF)
    store = AggregateStore(redis_client, settings)
    store.read_offsets()  # scripts loaded, layout stamped
    events = _events(key_prefix, 50)
    touched = len(StoreSteps(settings).encode(events).per_shard)
    nodes = primaries(redis_client)
    before = [_calls(node) for node in nodes]
    store.apply(events, offsets={("leadpulse.leads", 0): OffsetAdvance(-1, 49)})
    read_series(redis_client, settings, AS_OF)
    after = [_calls(node) for node in nodes]
    calls = {name: sum(a.get(name, 0) - b.get(name, 0) for a, b in zip(after, before)) for name in ("evalsha", "eval", "command|getkeys")}
    shards = store.layout.shards
    # touched shards apply and move their offsets in one call, the others only move them;
    # a scrape reads each shard with one call, and the last verify result with one more
    assert calls == {"evalsha": shards, "eval": shards + 1, "command|getkeys": 0}


def test_clear_deletes_the_prefix_on_every_master(redis_client: SyncRedis, key_prefix: str) -> None:
    settings = Settings(key_prefix=key_prefix, as_of=AS_OF)
    store = AggregateStore(redis_client, settings)
    store.apply(_events(key_prefix, 200))
    assert store.clear() > store.layout.shards
    assert not any(node.scan(0, match=f"{key_prefix}:*", count=1000)[1] for node in primaries(redis_client))


def test_the_html_reviews_figures_on_the_cluster_equal_the_reference(redis_settings: Settings, key_prefix: str) -> None:
    settings = redis_settings.model_copy(update={"key_prefix": key_prefix})
    events = contract_examples.feed_events()
    review_conftest.load(settings, events)
    with connect(settings) as client:
        review = read_review(client, settings, "month", AS_OF, f"http://127.0.0.1:{services.free_port()}")
    assert review.current.overall.leads
    for view in (review.current, review.previous, review.year_before):
        got, want = flat(view.figures), reference_figures(events, view.period)
        assert got.keys() == want.keys()
        for segment, values in got.items():
            assert values == pytest.approx(want[segment], rel=1e-12, nan_ok=True), (view.period, segment)


def test_two_workers_and_the_exporter_carry_on_through_a_master_sigkill_exactly(
    redis_settings: Settings, cluster: services.RedisCluster, tmp_path: Path
) -> None:
    pipe = Pipeline(redis_settings, tmp_path)
    exporter_port = services.free_port()
    env = pipe.env() | {"LEADPULSE_EXPORTER_PORT": str(exporter_port)}
    exporter = subprocess.Popen([LEADPULSE, "exporter"], env=env, stdout=(tmp_path / "exporter.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        pipe.start_worker(), pipe.start_worker()
        now_ms = int(time.time() * 1000)
        feed = synthetic_feed(3000, now_ms, seed=32, tag=pipe.tag)
        pipe.publish_raw(feed[: len(feed) // 2])
        time.sleep(6)  # both workers joined, batches in flight on every master
        assert "leadpulse_redis_up 1.0" in _scrape(exporter_port)
        # The URL's own node when it is a master: `report` must then find the cluster through the others.
        victim = cluster.url_port if cluster.url_port in cluster.masters() else cluster.masters()[0]
        pipe.publish_raw(feed[len(feed) // 2 :])
        cluster.kill(victim)
        cluster.wait_healthy()
        pipe.wait_caught_up(timeout=180)
        assert all(w.poll() is None for w in pipe.workers), "the workers carried on through the failover"
        assert "leadpulse_redis_up 1.0" in _scrape(exporter_port)
        assert victim not in cluster.masters()
        pipe.stop_workers()
        assert_same_series(pipe.report(), pipe.expected())
    finally:
        pipe.stop_workers(signal.SIGKILL)
        exporter.terminate()
        exporter.wait(30)


def test_workers_refuse_to_write_while_a_slot_of_their_shards_is_resharded_and_resume_exactly_after(
    redis_settings: Settings, tmp_path: Path
) -> None:
    pipe = Pipeline(redis_settings, tmp_path)
    layout = KeyLayout.from_settings(pipe.settings)
    client = connect(pipe.settings)
    assert isinstance(client, RedisCluster)
    slot = key_slot(layout.health(0).encode())
    source = client.get_node_from_key(layout.health(0))
    target = next(node for node in client.get_primaries() if node.name != source.name)
    ids = {node.name: client.execute_command("CLUSTER MYID", target_nodes=node) for node in (source, target)}
    pipe.publish_raw(synthetic_feed(300, int(time.time() * 1000), seed=33, tag=pipe.tag))
    # What `redis-cli --cluster reshard` does first, before it moves any key.
    client.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source.name], target_nodes=target)
    client.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target.name], target_nodes=source)
    try:
        worker = pipe.start_worker()
        assert worker.wait(60) != 0
        log = (tmp_path / f"worker-{pipe.tag}-0.log").read_text()
        reasons = [line for line in log.splitlines() if "worker stopped:" in line]
        assert len(reasons) == 1 and f"slot {slot} (shard 0)" in reasons[0], log[-2000:]
        assert "stop the workers while resharding" in reasons[0]
        written = [key for node in primaries(client) for key in node.scan_iter(match=layout.shard_key_pattern)]
        assert written == [], "nothing of the batch reached Redis"
    finally:
        for node in (source, target):
            client.execute_command("CLUSTER SETSLOT", slot, "STABLE", target_nodes=node)
    pipe.workers.clear()
    pipe.start_worker()
    try:
        pipe.wait_caught_up(timeout=120)
    finally:
        pipe.stop_workers()
    assert_same_series(pipe.report(), pipe.expected())
    client.close()


def test_moving_slots_are_read_from_cluster_nodes_as_text_or_as_redis_pys_node_map() -> None:
    text = ("07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 [5461->-e7d1] [93-<-292f]\n"
            "e7d1 127.0.0.1:30002@40002 master - 0 0 2 connected 5462-10922\n")
    assert moving_slots(text) == moving_slots(text.encode()) == {5461, 93}
    parsed = {"127.0.0.1:30001": {"flags": "myself,master", "migrations": [{"slot": "5461", "state": "migrating"}]},
              "127.0.0.1:30002": {"flags": "master", "migrations": []}}
    assert moving_slots(parsed) == {5461}
    assert moving_slots({"node-a": parsed, "node-b": text}) == {5461, 93}


def _events(tag: str, count: int) -> list[Event]:
    now_ms = int(time.time() * 1000)
    records = synthetic_feed(count, now_ms, seed=31, tag=tag, bad_share=0)
    return [e for e in (parse_record(r, now_ms) for r in records) if isinstance(e, Event)]


def _calls(node: object) -> dict[str, int]:
    stats = node.info("commandstats")  # type: ignore[attr-defined]
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _scrape(port: int, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

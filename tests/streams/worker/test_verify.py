"""`leadpulse verify` on the real stack: exact while workers run, and it names what was damaged.

The aggregates under test are built by real workers or by `rebuild` from the shared
topics; damage is done by hand in Redis, as an operator's mistake or a bad restore
would. Retention runs on a private broker, whose records may be deleted.
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaPartition

from aggregates.connect import redis_client as connect
from aggregates.keys import KeyLayout
from aggregates.read import read_aggregates, read_series
from aggregates.reconcile import Mismatch, compare_series
from aggregates.series import Series
from aggregates.store import AggregateStore
from streams import stack
from streams.events import Event, parse_record
from streams.kafka.clients import client_options
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, Settings
from streams.worker.rebuild import rebuild
from streams.worker.verify import FAILED, MATCHED, run_verify, unrecountable, verify
from tests import services
from tests.feeds import synthetic_feed
from tests.pipeline import LEADPULSE, Pipeline
from tests.secured import run_command

pytestmark = pytest.mark.integration

SUMMARY = re.compile(r"verify: 0 of (\d+) series and 0 of (\d+) leads differ \((\d+) events recounted up to the applied offsets\)")
LEADS = (LEADS_TOPIC, 0)


def now_ms() -> int:
    return int(time.time() * 1000)


def rebuilt(pipe: Pipeline) -> Pipeline:
    """The pipeline's aggregates built by `leadpulse rebuild` from everything the topics hold."""
    done = run_command(["rebuild", "--yes"], pipe.env(), timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return pipe


def scratch_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}-verify-*"))


# --- pure: which topics can no longer be recounted -----------------------------------


def test_logs_holding_every_record_from_the_first_to_the_last_applied_are_recountable() -> None:
    assert unrecountable([({LEADS: 9}, {}), ({LEADS: 4}, {})], {LEADS: 0}, {LEADS: 10}) is None
    assert unrecountable([({LEADS: 9}, {LEADS: 3}), ({LEADS: 4}, {LEADS: 5})], {LEADS: 3}, {LEADS: 10}) is None


@pytest.mark.parametrize(
    ("starts", "ends", "says"),
    [
        ({LEADS: 3}, {LEADS: 10}, "now starts at offset 3 but the aggregates hold records from 2 on: retention or delete_records"),
        ({}, {}, "no longer exists"),
        ({LEADS: 0}, {LEADS: 5}, "ends at offset 5 but the aggregates hold records up to 9"),
    ],
    ids=["retention", "deleted-topic", "recreated-topic"],
)
def test_a_log_missing_applied_records_is_named_in_one_line(
    starts: dict[tuple[str, int], int], ends: dict[tuple[str, int], int], says: str
) -> None:
    problem = unrecountable([({LEADS: 9}, {LEADS: 2})], starts, ends)
    assert problem is not None and says in problem and "\n" not in problem


# --- the shared test stack ----------------------------------------------------------


@pytest.fixture(scope="module")
def own_kafka(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The shared Redis with a broker of its own: verify recounts whole topics, and the shared
    ones hold every earlier test's records (minutes of recount by the end of `make test`)."""
    with services.own_broker(stack_settings, tmp_path_factory.mktemp("verify-kafka")) as settings:
        yield settings


@pytest.fixture(scope="module")
def busy(own_kafka: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, subprocess.CompletedProcess[str], bool]:
    """`leadpulse verify` run while two workers apply a feed that keeps coming; then the
    workers stop, and the tests below damage what they left by hand."""
    pipe = Pipeline(own_kafka, tmp_path_factory.mktemp("verify"))
    stop = threading.Event()

    def keep_publishing() -> None:
        seed = 100
        while not stop.is_set():
            # A tag per feed: every feed's event ids are its tag's, and an id names one event.
            pipe.publish_raw(synthetic_feed(100, now_ms(), seed=seed, tag=f"{pipe.tag}-{seed}"))
            seed += 1

    pipe.publish_raw(synthetic_feed(400, now_ms(), seed=31, tag=pipe.tag))
    pipe.start_worker()
    pipe.start_worker()
    publisher = threading.Thread(target=keep_publishing)
    try:
        pipe.wait_caught_up()
        publisher.start()
        before = pipe.stored_offsets()
        done = subprocess.run([LEADPULSE, "verify"], env=pipe.env(), capture_output=True, text=True, timeout=300)
        moved = pipe.stored_offsets() != before
    finally:
        stop.set()
        if publisher.is_alive():
            publisher.join()
        pipe.stop_workers()
    return pipe, done, moved


def test_verify_matches_exactly_while_two_workers_apply_a_busy_feed(busy: tuple[Pipeline, subprocess.CompletedProcess[str], bool]) -> None:
    pipe, done, moved = busy
    assert moved, "the workers applied nothing while verify ran: the stack was not busy"
    assert done.returncode == MATCHED, done.stdout[-3000:] + done.stderr[-2000:]
    summary = SUMMARY.fullmatch(done.stdout.strip())
    assert summary is not None, done.stdout[-3000:]
    assert all(int(n) > 0 for n in summary.groups())
    with connect(pipe.settings) as client:
        assert scratch_keys(client, pipe.settings.key_prefix) == []
        result = read_aggregates(client, pipe.settings, pipe.settings.today())[1].verified
    assert result["mismatched_series"] == 0 and result["checked_events"] == int(summary.group(3))
    assert time.time() - 300 < result["last_success_timestamp_seconds"] <= time.time()


@pytest.fixture
def built(busy: tuple[Pipeline, subprocess.CompletedProcess[str], bool]) -> Pipeline:
    """The busy pipeline's aggregates, its workers stopped."""
    return busy[0]


def bump_cohort_leads(client: Any, settings: Settings, shards: range) -> tuple[Series, str, str, bytes]:
    """Add 5 leads by hand to a published week cohort's source segment in the first of
    `shards` that counts it; returns the series, the key, the field and the old vector."""
    layout = KeyLayout.from_settings(settings)
    for target in read_series(client, settings, settings.today()):
        if (target.name, target.labels["dimension"]) != ("leadpulse_cohort_leads", "source") or target.labels["segment"] == "other":
            continue
        field = f"source|{target.labels['segment']}"
        for shard in shards:
            key = layout.cohorts(shard, [target.labels["cohort"]])[0]
            vector = client.hget(key, field)
            if vector:
                leads, comma, rest = vector.partition(b",")
                client.hset(key, field, b"%d%s%s" % (int(leads or 0) + 5, comma, rest))
                return target, key, field, vector
    raise AssertionError("no week cohort of a source segment to damage")


def labelled(series: list[Mismatch] | list[Series]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s.name, tuple(sorted(s.labels.items()))) for s in series}


def test_verify_names_exactly_a_counter_and_a_lead_state_changed_by_hand(built: Pipeline, redis_client: redis.Redis) -> None:
    settings = built.settings
    bucket, lead_field, core = next(
        (key, f, v) for key in redis_client.scan_iter(match=f"{settings.key_prefix}:*:l:*")
        for f, v in redis_client.hgetall(key).items() if f.startswith(b"c") and len(msgpack.unpackb(v[2:], raw=True)) > 4
    )  # fmt: skip
    state = msgpack.unpackb(core[2:], raw=True)
    state[0] = 2 if state[0] != 2 else 0  # the stage reached
    redis_client.hset(bucket, lead_field, core[:2] + msgpack.packb(state, use_bin_type=False))
    target, counter, field, vector = bump_cohort_leads(redis_client, settings, range(1))
    try:
        outcome = verify(settings)
    finally:
        redis_client.hset(counter, field, vector)
        redis_client.hset(bucket, lead_field, core)
    named = labelled(outcome.series)
    assert ("leadpulse_cohort_leads", tuple(sorted(target.labels.items()))) in named
    assert {labels for _, labels in named} == {tuple(sorted(target.labels.items()))}  # that cohort's series only
    assert [m.lead_id for m in outcome.leads] == [lead_field[1:].decode()]


def test_verify_finds_an_offset_lowered_by_hand_naming_the_series_of_the_records_it_uncovers(built: Pipeline, redis_client: redis.Redis) -> None:
    settings = built.settings
    offsets = built.stored_offsets()
    tp = max(offsets, key=lambda p: offsets[p] if p[0] == LEADS_TOPIC else -1)
    lowered = {**offsets, tp: offsets[tp] - 40}
    key, field = KeyLayout.from_settings(settings).offsets(0), f"{tp[0]}|{tp[1]}"
    redis_client.hset(key, field, lowered[tp])
    try:
        outcome = verify(settings)
    finally:
        redis_client.hset(key, field, offsets[tp])
    pinned = settings.model_copy(update={"as_of": settings.today()})  # as verify reads both sides: at one instant
    want = compare_series(read_series(redis_client, pinned, settings.today()), _aggregates_of(built, redis_client, lowered))
    assert want, "the 40 records uncovered changed no series: pick more"
    assert labelled(outcome.series) == labelled(want)
    assert outcome.leads  # their leads' state holds more than the recount, too


def _aggregates_of(pipe: Pipeline, client: redis.Redis, offsets: dict[tuple[str, int], int]) -> list[Series]:
    """The series of exactly the records up to `offsets`, applied at once under a prefix of their own."""
    now = now_ms()
    events = [e for e in (parse_record(r, now) for r in pipe.records_up_to(offsets)) if isinstance(e, Event)]
    settings = pipe.settings.model_copy(update={"key_prefix": f"{pipe.settings.key_prefix}x", "as_of": pipe.settings.today()})
    store = AggregateStore(client, settings)
    try:
        store.apply(events)
        return read_series(client, settings, settings.today())
    finally:
        store.clear()


class Picks(random.Random):
    """Draws exactly the given (shard x buckets + bucket) numbers as the sample."""

    def __init__(self, picks: list[int]) -> None:
        super().__init__(0)
        self.picks = picks

    def sample(self, population: Sequence[int], k: int, *, counts: Iterable[int] | None = None) -> list[int]:  # type: ignore[override]
        return self.picks


def test_verify_sample_checks_the_leads_of_random_buckets_and_names_a_damaged_one(built: Pipeline, redis_client: redis.Redis) -> None:
    settings = built.settings
    layout = KeyLayout.from_settings(settings)
    sampled = verify(settings, sample=40, rng=random.Random(5))
    assert sampled.differing == 0 and sampled.series == [] and 0 < sampled.compared_leads < 200
    bucket = next(iter(redis_client.scan_iter(match=f"{settings.key_prefix}:*:l:*")))
    field, state = next((f, v) for f, v in redis_client.hgetall(bucket).items() if f.startswith(b"c"))
    shard, number = layout.place(field[1:].decode())
    redis_client.hdel(bucket, field)  # the lead's state lost, its counters untouched
    try:
        damaged = verify(settings, sample=1, rng=Picks([shard * layout.buckets + number]))
    finally:
        redis_client.hset(bucket, field, state)
    assert [m.lead_id for m in damaged.leads] == [field[1:].decode()]
    assert damaged.leads[0].recounted is not None and (damaged.leads[0].live or ((),))[0] == ()  # its core is gone
    assert sampled.checked_events > 0 and damaged.compared_leads >= 1


# --- a Redis Cluster -----------------------------------------------------------------


@pytest.fixture
def cluster_pipeline(stack_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    monkeypatch.setenv("LEADPULSE_REDIS_CLUSTER", "true")
    with services.redis_cluster() as cluster:
        pipe = Pipeline(stack_settings.model_copy(update={"redis_url": cluster.url, "redis_cluster": True, "home": tmp_path}), tmp_path)
        yield rebuilt(pipe)


def test_verify_on_a_redis_cluster_matches_and_names_a_counter_changed_on_another_master(cluster_pipeline: Pipeline) -> None:
    settings = cluster_pipeline.settings
    with connect(settings) as client:
        target, key, _, _ = bump_cohort_leads(client, settings, range(1, KeyLayout.from_settings(settings).shards))
        outcome = verify(settings)
        assert scratch_keys(client, settings.key_prefix) == []
    assert ("leadpulse_cohort_leads", tuple(sorted(target.labels.items()))) in labelled(outcome.series)
    assert {tuple(sorted(m.labels.items())) for m in outcome.series} == {tuple(sorted(target.labels.items()))}
    assert outcome.leads == [] and "{" in key  # and every other series and lead matched


# --- retention on a broker of its own ----------------------------------------------


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[Settings]:
    """Kafka and Redis of our own: deleting records or topics there disturbs nobody."""
    free = services.free_port
    settings = Settings(
        home=tmp_path / "home", kafka_bootstrap=f"127.0.0.1:{free()}", kafka_controller_port=free(),
        redis_url=f"redis://127.0.0.1:{free()}/0", prometheus_port=free(), alertmanager_port=free(),
        exporter_port=free(), api_port=free(), topic_partitions=2,
    )  # fmt: skip
    try:
        stack.up(settings, ["kafka", "redis"])
        yield settings
    finally:
        stack.down(settings)


def test_verify_says_in_one_line_when_retention_or_a_deleted_topic_took_applied_records(
    private_stack: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = Pipeline(private_stack, tmp_path, own_group=False)
    pipe.publish_raw(synthetic_feed(60, now_ms(), seed=33, tag=pipe.tag))
    assert rebuild(pipe.settings) == 0
    assert run_verify(pipe.settings, None) == MATCHED
    capsys.readouterr()
    admin = KafkaAdminClient(**client_options(private_stack).kwargs())
    try:
        admin.delete_records({KafkaPartition(LEADS_TOPIC, 0): 5})
        retained = run_verify(pipe.settings, None), capsys.readouterr()
        admin.delete_topics([DEALS_TOPIC])
        deleted = run_verify(pipe.settings, None), capsys.readouterr()
    finally:
        admin.close()
    for (status, out), says in ((retained, "LEADPULSE_TOPIC_RETENTION_MS"), (deleted, f"{DEALS_TOPIC}[")):
        assert status == FAILED
        assert out.out == "" and len(out.err.strip().splitlines()) == 1 and says in out.err, out.err
    assert "no longer exists" in deleted[1].err or "deleted and created again" in deleted[1].err

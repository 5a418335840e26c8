"""The exporter: a real `leadpulse exporter` process scraped over HTTP, against real Redis and Kafka."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aggregates.keys import VERIFY_FIELDS, KeyLayout
from aggregates.read import read_series
from aggregates.store import AggregateStore
from exporters.collector import LeadpulseCollector
from exporters.lag import EndOffsets, consumer_lag
from streams.cli import main
from streams.events import Event, parse_record
from streams.kafka.clients import client_options
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, Settings
from tests import contract_examples
from tests.contract_examples import AS_OF, NOW_MS, feed_events
from tests.monitoring import exporter, free_port, http_get, running

pytestmark = pytest.mark.integration

#: Series of the exporter that are not business series of `report --json`.
OPERATIONAL = {
    "leadpulse_redis_up",
    "leadpulse_scrape_duration_seconds",
    "leadpulse_events_total",
    "leadpulse_last_event_timestamp_seconds",
    "leadpulse_kafka_up",
    "leadpulse_consumer_lag_messages",
    *(f"leadpulse_verify_{name}" for name in VERIFY_FIELDS),
}

Sample = tuple[str, tuple[tuple[str, str], ...]]


def samples(text: str) -> dict[Sample, float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def business(scraped: dict[Sample, float]) -> dict[Sample, float]:
    return {key: v for key, v in scraped.items() if key[0].startswith("leadpulse_") and key[0] not in OPERATIONAL}


def promtool_findings(text: str) -> list[str]:
    """`promtool check metrics` on the text: its lint findings; fails on anything it cannot parse."""
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode in (0, 3), f"promtool could not parse the exposition: {done.stderr}"
    return [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def scrape(url: str) -> str:
    body = http_get(url)
    assert body is not None, f"no answer from {url}"
    return body.decode()


def filled(client: redis.Redis, settings: Settings) -> None:
    """The contract examples as `leadpulse worker` would apply them (one record rejected)."""
    AggregateStore(client, settings).apply(feed_events(), rejected={LEADS_TOPIC: 1})


@pytest.fixture(scope="module")
def examples_settings(stack_settings: Settings) -> Iterator[Settings]:
    settings = stack_settings.model_copy(update={"key_prefix": f"tcol{time.time_ns() % 10**9}", "as_of": AS_OF})
    with redis.Redis.from_url(settings.redis_url) as client:
        filled(client, settings)
        yield settings
        AggregateStore(client, settings).clear()


@pytest.fixture(scope="module")
def exporter_url(examples_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "LEADPULSE_REDIS_URL": examples_settings.redis_url,
        "LEADPULSE_KEY_PREFIX": examples_settings.key_prefix,
        "LEADPULSE_AS_OF": AS_OF.isoformat(),
        "LEADPULSE_KAFKA_BOOTSTRAP": examples_settings.kafka_bootstrap,
    }
    with exporter(env, tmp_path_factory.mktemp("exporter")) as url:
        yield url


def test_exposition_passes_promtool_check_metrics_with_no_finding_at_all(exporter_url: str) -> None:
    assert promtool_findings(scrape(exporter_url)) == []


def test_business_series_are_exactly_what_read_series_returns(exporter_url: str, examples_settings: Settings) -> None:
    with redis.Redis.from_url(examples_settings.redis_url) as client:
        expected = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in read_series(client, examples_settings, AS_OF)}
    assert business(samples(scrape(exporter_url))) == expected


@pytest.fixture(scope="module")
def follow_up_url(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """An exporter over the follow-up examples (contract v1.2), T pinned by LEADPULSE_AS_OF."""
    settings = stack_settings.model_copy(update={"key_prefix": f"tfu{time.time_ns() % 10**9}", "as_of": AS_OF})
    env = {
        "LEADPULSE_REDIS_URL": settings.redis_url,
        "LEADPULSE_KEY_PREFIX": settings.key_prefix,
        "LEADPULSE_AS_OF": AS_OF.isoformat(),
        "LEADPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
    }
    with redis.Redis.from_url(settings.redis_url) as client:
        AggregateStore(client, settings).apply(feed_events(contract_examples.FOLLOW_UP))
        with exporter(env, tmp_path_factory.mktemp("exporter-follow-up")) as url:
            yield url, settings
        AggregateStore(client, settings).clear()


def test_follow_up_series_on_metrics_are_read_series_and_the_examples_numbers(follow_up_url: tuple[str, Settings]) -> None:
    url, settings = follow_up_url
    text = scrape(url)
    assert promtool_findings(text) == []
    assert "# TYPE leadpulse_window_first_touch_seconds histogram" in text
    scraped = business(samples(text))
    with redis.Redis.from_url(settings.redis_url) as client:
        assert scraped == {(s.name, tuple(sorted(s.labels.items()))): s.value for s in read_series(client, settings, AS_OF)}
    for want in contract_examples.expected(contract_examples.FOLLOW_UP)["series"]:
        assert scraped[(want["name"], tuple(sorted(want["labels"].items())))] == pytest.approx(want["value"], abs=1e-9)
    # `report --json --as-of T` pins T for the clock-dependent series as LEADPULSE_AS_OF does.
    env = {"LEADPULSE_REDIS_URL": settings.redis_url, "LEADPULSE_KEY_PREFIX": settings.key_prefix}
    answer = CliRunner().invoke(main, ["report", "--json", "--as-of", AS_OF.isoformat()], env=env)
    assert answer.exit_code == 0, answer.output
    assert {(s["name"], tuple(sorted(s["labels"].items()))): s["value"] for s in json.loads(answer.stdout)} == scraped


def test_business_series_carry_the_contract_examples_numbers(exporter_url: str) -> None:
    scraped = business(samples(scrape(exporter_url)))
    want = contract_examples.expected()["series"]
    checked = 0
    for series in want:
        key = (series["name"], tuple(sorted((k, str(v)) for k, v in series["labels"].items())))
        if key in scraped or series["value"] != 0:  # the expected file may list zero counts that are not published
            assert scraped[key] == pytest.approx(series["value"], abs=1e-9), key
            checked += 1
    assert checked > 100


def test_histogram_is_one_family_with_buckets_in_bound_order(exporter_url: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scrape(exporter_url))}
    histogram = families["leadpulse_window_time_to_convert_seconds"]
    assert histogram.type == "histogram"
    all_7d = [s for s in histogram.samples if s.labels.get("dimension") == "all" and s.labels["window"] == "7d"]
    assert [s.labels.get("le") for s in all_7d if s.name.endswith("_bucket")] == [
        "86400.0", "259200.0", "604800.0", "1209600.0", "2592000.0", "5184000.0", "7776000.0", "15552000.0", "+Inf"
    ]  # fmt: skip
    count = next(s.value for s in all_7d if s.name.endswith("_count"))
    assert count == all_7d[8].value == 4  # L1, L2, L6, L8 converted in the 7 days to 2026-06-15


def test_health_series_count_every_outcome_and_the_newest_event_per_topic(exporter_url: str) -> None:
    scraped = samples(scrape(exporter_url))
    events = {key: v for key, v in scraped.items() if key[0] == "leadpulse_events_total"}
    by_outcome: dict[str, float] = {}
    for (_, labels), value in events.items():
        outcome = dict(labels)["outcome"]
        by_outcome[outcome] = by_outcome.get(outcome, 0) + value
    assert by_outcome == {"applied": 21, "duplicate": 1, "rejected": 1}
    newest = {topic: max(e.occurred_ms for e in feed_events() if e.topic == topic) / 1000 for topic in (LEADS_TOPIC, DEALS_TOPIC)}
    for topic, seconds in newest.items():
        assert scraped[("leadpulse_last_event_timestamp_seconds", (("topic", topic),))] == seconds
    assert scraped[("leadpulse_redis_up", ())] == 1
    assert scraped[("leadpulse_kafka_up", ())] == 1
    assert 0 < scraped[("leadpulse_scrape_duration_seconds", ())] < 1


def test_label_values_are_the_normalised_segments_only(exporter_url: str) -> None:
    labels: dict[str, set[str]] = {}
    for _, pairs in business(samples(scrape(exporter_url))):
        for key, value in pairs:
            labels.setdefault(key, set()).add(value)
    assert labels["dimension"] == {"all", "source", "campaign"}
    sources = {"all", "paid_search", "partners", "email", "social_media", "referral"}
    assert labels["segment"] == sources | {"none", "summer_launch", "webinar_q2"}  # never "Paid Search", L1 or ex-01


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test alone, so stopping it disturbs nobody."""
    server = shutil.which("redis-server")
    assert server, "redis-server is needed (make install)"
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]

    def answers() -> bool:
        with redis.Redis(port=port) as client:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

    with running(command, tmp_path / "redis.log", answers) as process:
        yield f"redis://127.0.0.1:{port}/0", process


def test_redis_down_gives_redis_up_0_and_no_business_series(private_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    url, server = private_redis
    settings = Settings(redis_url=url, key_prefix="tdown", as_of=AS_OF)
    with redis.Redis.from_url(url) as client:
        filled(client, settings)
    env = {"LEADPULSE_REDIS_URL": url, "LEADPULSE_KEY_PREFIX": "tdown", "LEADPULSE_AS_OF": AS_OF.isoformat(), "LEADPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    with exporter(env, tmp_path) as metrics:
        before = samples(scrape(metrics))
        assert before[("leadpulse_redis_up", ())] == 1 and business(before)
        server.terminate()
        server.wait(10)
        text = scrape(metrics)
        after = samples(text)
        assert after[("leadpulse_redis_up", ())] == 0
        assert business(after) == {}
        assert not any(name in ("leadpulse_events_total", "leadpulse_consumer_lag_messages") for name, _ in after)
        assert promtool_findings(text) == []


class CountingConnection(redis.Connection):
    """A connection that counts its writes: a pipeline is one write, so one round trip."""

    writes = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        super().send_packed_command(command, check_health)


def round_trips_of_one_scrape(settings: Settings) -> int:
    host, port = settings.redis_host_port
    with redis.Redis(connection_pool=redis.ConnectionPool(host=host, port=port, connection_class=CountingConnection)) as client:
        client.ping()  # the connection handshake is not the scrape's
        registry = CollectorRegistry()
        registry.register(LeadpulseCollector(client, settings))
        before = CountingConnection.writes
        generate_latest(registry)
        return CountingConnection.writes - before


def test_a_scrape_costs_the_same_few_round_trips_whatever_the_number_of_segments(
    examples_settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    many = examples_settings.model_copy(update={"key_prefix": key_prefix})
    events = [
        parse_record(json.dumps({"event_id": f"m{i}", "type": "lead.created", "occurred_at": "2026-06-10T10:00:00Z",
                                 "lead_id": f"M{i}", "source": f"source_{i}", "campaign": f"campaign_{i}"}), NOW_MS)
        for i in range(150)
    ]  # fmt: skip
    store = AggregateStore(redis_client, many)
    store.apply([e for e in events if isinstance(e, Event)])
    try:
        assert len(read_series(redis_client, many, AS_OF)) > 10 * len(read_series(redis_client, examples_settings, AS_OF))
        assert round_trips_of_one_scrape(many) == round_trips_of_one_scrape(examples_settings) == 1
    finally:
        store.clear()


def test_consumer_lag_counts_records_after_the_applied_offset() -> None:
    end = {(LEADS_TOPIC, 0): 100, (LEADS_TOPIC, 1): 7, (DEALS_TOPIC, 0): 0}
    applied = {(LEADS_TOPIC, 0): 89, (LEADS_TOPIC, 1): 6}
    assert consumer_lag(end, applied) == {(LEADS_TOPIC, 0): 10, (LEADS_TOPIC, 1): 0, (DEALS_TOPIC, 0): 0}
    assert consumer_lag({(DEALS_TOPIC, 3): 5}, {}) == {(DEALS_TOPIC, 3): 5}


def end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    reader = EndOffsets(client_options(settings), timeout_s=10)
    try:
        offsets = reader.read()
    finally:
        reader.close()
    assert offsets, "the test stack's Kafka did not answer"
    return offsets


def test_consumer_lag_per_partition_against_the_real_kafka(examples_settings: Settings, redis_client: redis.Redis, key_prefix: str) -> None:
    settings = examples_settings.model_copy(update={"key_prefix": key_prefix})
    before = end_offsets(settings)
    applied = {tp: max(end - 6, -1) for tp, end in before.items()}  # 5 records behind where there are 5
    layout = KeyLayout.from_settings(settings)
    for shard in range(layout.shards):  # every shard holds them: a partition's offset is the least of its shards'
        redis_client.hset(layout.offsets(shard), mapping={f"{t}|{p}": o for (t, p), o in applied.items()})
    reader = EndOffsets(client_options(settings))
    registry = CollectorRegistry()
    registry.register(LeadpulseCollector(redis_client, settings, reader))
    try:
        scraped = samples(generate_latest(registry).decode())
    finally:
        reader.close()
        redis_client.delete(*(layout.offsets(shard) for shard in range(layout.shards)))
    after = end_offsets(settings)
    lag = {(dict(labels)["topic"], int(dict(labels)["partition"])): v for (name, labels), v in scraped.items() if name == "leadpulse_consumer_lag_messages"}
    assert set(lag) == set(before) and {t for t, _ in lag} == {LEADS_TOPIC, DEALS_TOPIC}
    for tp, behind in lag.items():
        assert before[tp] - applied[tp] - 1 <= behind <= after[tp] - applied[tp] - 1, tp


def test_kafka_down_drops_only_the_lag_and_stays_fast(examples_settings: Settings) -> None:
    unreachable = examples_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    reader = EndOffsets(client_options(unreachable), timeout_s=0.5, retry_after_s=60)
    kafka_waits: list[float] = []  # time each scrape spent asking Kafka (the Redis read is not Kafka's)
    read = reader.read

    def timed_read() -> dict[tuple[str, int], int] | None:
        started = time.perf_counter()
        try:
            return read()
        finally:
            kafka_waits.append(time.perf_counter() - started)

    reader.read = timed_read  # type: ignore[method-assign]
    attempts = 0
    attempt = reader._read

    def counted_attempt() -> dict[tuple[str, int], int]:
        nonlocal attempts
        attempts += 1
        return attempt()

    reader._read = counted_attempt  # type: ignore[method-assign]
    registry = CollectorRegistry()
    with redis.Redis.from_url(examples_settings.redis_url) as client:
        registry.register(LeadpulseCollector(client, examples_settings, reader))
        for _ in range(2):
            scraped = samples(generate_latest(registry).decode())
            assert scraped[("leadpulse_kafka_up", ())] == 0 and scraped[("leadpulse_redis_up", ())] == 1
            assert business(scraped) and not any(name == "leadpulse_consumer_lag_messages" for name, _ in scraped)
    reader.close()
    assert attempts == 1, "the second scrape does not ask Kafka again within retry_after_s"
    assert len(kafka_waits) == 2 and kafka_waits[0] < 3, kafka_waits  # bounded by the 0.5 s timeout, not a hang


def collected(client: redis.Redis, settings: Settings) -> dict[Sample, float]:
    registry = CollectorRegistry()
    registry.register(LeadpulseCollector(client, settings))
    return samples(generate_latest(registry).decode())


def test_the_last_verify_result_is_published_once_a_run_left_one(redis_client: redis.Redis, key_prefix: str) -> None:
    settings = Settings(key_prefix=key_prefix, as_of=AS_OF)
    assert not [s for s in collected(redis_client, settings) if s[0].startswith("leadpulse_verify_")]
    redis_client.hset(f"{key_prefix}:verify", mapping=dict(zip(VERIFY_FIELDS, (3, 1200, 1796662692.5))))
    try:
        published = {s[0]: v for s, v in collected(redis_client, settings).items() if s[0].startswith("leadpulse_verify_")}
    finally:
        redis_client.delete(f"{key_prefix}:verify")
    assert published == {
        "leadpulse_verify_mismatched_series": 3,
        "leadpulse_verify_checked_events": 1200,
        "leadpulse_verify_last_success_timestamp_seconds": 1796662692.5,
    }

"""The real worker on the real Kafka and Redis gives exactly the contract's numbers.

Each test has its own consumer group and key prefix, so its workers read the topics from
the start; the expectation is the reference model over everything the topics hold.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streams import stack
from streams.kafka.rejected import REASON_CODE_HEADER
from streams.settings import REJECTED_TOPIC, Settings
from tests import contract_examples
from tests.aggregates.reference import assert_same_series
from tests.feeds import BAD_RECORDS, synthetic_feed
from tests.pipeline import LEADPULSE, Pipeline, read_up_to

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(stack_settings: Settings, tmp_path: Path) -> Iterator[Pipeline]:
    pipe = Pipeline(stack_settings, tmp_path)
    yield pipe
    pipe.stop_workers(signal.SIGKILL)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_worker_report_equals_reference_for_shuffled_duplicated_feed_with_bad_records(pipeline: Pipeline) -> None:
    """With the follow-up examples in the feed, in a source of their own: through Kafka and the
    worker, `report --json --as-of T` gives that source the expected file's numbers."""
    examples = follow_up_examples(pipeline.tag)
    pipeline.publish_raw(synthetic_feed(800, now_ms(), seed=11, tag=pipeline.tag, touches=True) + examples)
    pipeline.start_worker()
    pipeline.wait_caught_up()
    pipeline.stop_workers()
    source = f"fx_{pipeline.tag}"
    got = {
        (s.name, tuple(sorted({**s.labels, "dimension": "all", "segment": "all"}.items()))): s.value
        for s in pipeline.report(contract_examples.AS_OF)
        if s.labels.get("dimension") == "source" and s.labels.get("segment") == source
    }
    for want in contract_examples.expected(contract_examples.FOLLOW_UP)["series"]:
        assert got[(want["name"], tuple(sorted(want["labels"].items())))] == pytest.approx(want["value"]), want
    assert_matches_reference(pipeline)


def follow_up_examples(tag: str) -> list[bytes]:
    """The follow-up examples with ids of their own and every lead in source `fx_<tag>`."""
    lines = (contract_examples.EXAMPLES / f"{contract_examples.FOLLOW_UP}.jsonl").read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    for record in records:
        record.update(event_id=f"{tag}-{record['event_id']}", lead_id=f"{tag}-{record['lead_id']}")
        if "source" in record:
            record["source"] = f"fx_{tag}"
    return [orjson.dumps(record) for record in records]


def test_sigkilled_worker_restarts_and_loses_nothing_nor_counts_twice(pipeline: Pipeline) -> None:
    feed = synthetic_feed(1500, now_ms(), seed=12, tag=pipeline.tag)
    thirds = [feed[i::3] for i in range(3)]
    for part in thirds:
        pipeline.publish_raw(part)
        worker = pipeline.start_worker()
        time.sleep(4)  # mid-stream: joined the group, some batches applied, not all
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    pipeline.start_worker()
    pipeline.wait_caught_up()
    assert_matches_reference(pipeline)


def test_sigkilled_redis_restarts_and_worker_rereads_what_it_lost(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    pipeline.start_worker()
    feed = synthetic_feed(1500, now_ms(), seed=13, tag=pipeline.tag)
    for part in (feed[0::2], feed[1::2]):
        pipeline.publish_raw(part)
        time.sleep(0.5)  # writes in flight, the last second not yet fsynced
        stack.kill_service(settings, "redis", signal.SIGKILL)
        stack.start_service(settings, "redis")
    pipeline.wait_caught_up()
    time.sleep(6)  # one verify interval: a loss after the last batch is noticed too
    pipeline.wait_caught_up()
    assert_matches_reference(pipeline)


def test_two_workers_share_partitions_and_survive_one_stopping(pipeline: Pipeline) -> None:
    first, second = pipeline.start_worker(), pipeline.start_worker()
    feed = synthetic_feed(1500, now_ms(), seed=14, tag=pipeline.tag)
    pipeline.publish_raw(feed[: len(feed) // 2])
    time.sleep(8)
    second.send_signal(signal.SIGTERM)
    second.wait(60)
    pipeline.publish_raw(feed[len(feed) // 2 :])
    pipeline.wait_caught_up()
    assert first.poll() is None, "the remaining worker took over the partitions and kept running"
    assert_matches_reference(pipeline)


def test_bad_records_written_straight_to_input_topics_go_to_rejected_and_worker_goes_on(pipeline: Pipeline) -> None:
    marker = f'{{"event_id": "bad-{pipeline.tag}", "type": "lead.created"}}'.encode()
    pipeline.publish_raw([*BAD_RECORDS, marker])
    pipeline.publish_raw(synthetic_feed(50, now_ms(), seed=15, tag=pipeline.tag, bad_share=0))
    pipeline.start_worker()
    pipeline.wait_caught_up()
    assert pipeline.workers[0].poll() is None, "bad records must not stop the worker"
    assert_matches_reference(pipeline)
    reasons = rejected_reasons_of(pipeline.settings, marker)
    assert reasons and all(r == b"missing_field" for r in reasons)


def assert_matches_reference(pipeline: Pipeline) -> None:
    pipeline.stop_workers()
    assert_same_series(pipeline.report(), pipeline.expected())


def rejected_reasons_of(settings: Settings, value: bytes) -> list[bytes]:
    """Reason codes of every copy of `value` on the rejected topic."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(REJECTED_TOPIC, p) for p in consumer.partitions_for_topic(REJECTED_TOPIC) or ()]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    last = {(tp.topic, tp.partition): end - 1 for tp, end in ends.items() if end > 0}
    return [dict(r.headers)[REASON_CODE_HEADER] for r in read_up_to(settings, last, timeout_s=60) if r.value == value]


def test_rebuild_recomputes_exactly_what_the_worker_had(pipeline: Pipeline) -> None:
    pipeline.publish_raw(synthetic_feed(300, now_ms(), seed=16, tag=pipeline.tag))
    worker = pipeline.start_worker()
    pipeline.wait_caught_up()
    refused = subprocess.run([LEADPULSE, "rebuild", "--yes"], env=pipeline.env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "stop them" in refused.stderr
    assert worker.poll() is None
    pipeline.stop_workers()
    before = pipeline.report()
    rebuilt = subprocess.run([LEADPULSE, "rebuild", "--yes"], env=pipeline.env(), capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert_same_series(pipeline.report(), before)
    assert_same_series(before, pipeline.expected())

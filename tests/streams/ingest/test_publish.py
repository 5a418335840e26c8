"""`leadpulse publish` against the real test Kafka: routing, keys, bytes, envelope, exit codes.

Tests share the stack's topics, so each one marks its records with a fresh id and reads
back only what arrived after the offsets it noted before publishing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from click.testing import CliRunner
from confluent_kafka import KafkaError
from confluent_kafka import Message as DeliveredMessage
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from streams.ingest import publish as publish_module
from streams.ingest.publish import Deliveries, PublishSummary, publish, publish_command, rejected_key
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from tests import REPO

_SCRIPT = Path(sys.executable).with_name("leadpulse")
#: The installed console script when there is one, else its target module.
LEADPULSE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "streams.cli"]
TOPICS = (LEADS_TOPIC, DEALS_TOPIC, REJECTED_TOPIC)


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


class TopicTail:
    """The messages that reach the three topics after construction (offsets noted up front)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self.start = self._end_offsets()

    def _end_offsets(self) -> dict[TopicPartition, int]:
        self.consumer.topics()  # refresh metadata
        partitions = [
            TopicPartition(topic, p) for topic in TOPICS for p in self.consumer.partitions_for_topic(topic) or ()
        ]
        return dict(self.consumer.end_offsets(partitions))

    def read(self, marker: str) -> list[Message]:
        """Everything published since construction whose value contains `marker`."""
        end = self._end_offsets()
        todo = {tp: offset for tp, offset in end.items() if offset > self.start.get(tp, 0)}
        self.consumer.assign(list(todo))
        for tp in todo:
            self.consumer.seek(tp, self.start.get(tp, 0))
        found: list[Message] = []
        deadline = time.monotonic() + 30
        while any(self.consumer.position(tp) < offset for tp, offset in todo.items()):
            assert time.monotonic() < deadline, "timed out reading back"
            for tp, batch in self.consumer.poll(timeout_ms=500).items():
                found += [
                    Message(tp.topic, tp.partition, m.key, m.value, dict(m.headers))
                    for m in batch
                    if m.offset < todo[tp] and marker.encode() in m.value
                ]
        self.consumer.close()
        return found


def cli(
    *args: str, bootstrap: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `leadpulse publish` with Kafka from the environment."""
    env = {**os.environ, "LEADPULSE_KAFKA_BOOTSTRAP": bootstrap}
    return subprocess.run(
        [*LEADPULSE, "publish", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL if stdin is None else None,
    )


def line(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def lead(marker: str, n: int, lead_id: str, kind: str = "lead.created", **extra: Any) -> bytes:
    fields = {"event_id": f"{marker}-{n}", "type": kind, "occurred_at": "2026-11-02T10:00:00+01:00", "lead_id": lead_id}
    return line(**fields, **({"source": "Paid Search"} if kind == "lead.created" else {}), **extra)


@pytest.fixture
def marker() -> str:
    return f"t{uuid.uuid4().hex}"


# --- integration: the real Kafka of the test stack ------------------------------------


@pytest.mark.integration
def test_mixed_files_are_routed_keyed_and_byte_identical(kafka_bootstrap: str, marker: str, tmp_path: Path) -> None:
    leads = [lead(marker, n, f"{marker}-L{n % 3}") for n in range(6)]
    leads.append(lead(marker, 6, f"{marker}-L0", "lead.qualified", stage="mql"))
    deals = [lead(marker, 7, f"{marker}-L0", "deal.won", deal_id="D1", amount=1200)]
    invalid = {
        b'{"event_id": "' + marker.encode() + b'-8", "broken': None,  # not JSON: no key
        lead(marker, 9, f"{marker}-L1", "lead.qualified"): f"{marker}-L1".encode(),  # no stage
    }
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(b"\n".join([*leads[:3], b"", *invalid, *leads[3:], *deals]) + b"\n")
    crm = tmp_path / "crm.csv"
    crm.write_text(
        "event_id,type,occurred_at,lead_id,source,attributes.persona,amount\n"
        f"{marker}-c1,lead.created,2026-11-02T10:00:00Z,{marker}-L9,Organic,CMO,\n"
        f"{marker}-c2,deal.won,2026-11-02T11:00:00Z,{marker}-L9,,,12.50\n"
    )
    tail = TopicTail(kafka_bootstrap)

    done = cli(str(jsonl), str(crm), bootstrap=kafka_bootstrap)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent 9, rejected 3"
    messages = tail.read(marker)
    by_topic: dict[str, list[Message]] = defaultdict(list)
    for m in messages:
        by_topic[m.topic].append(m)
    csv_lead = (
        f'{{"event_id":"{marker}-c1","type":"lead.created","occurred_at":"2026-11-02T10:00:00Z",'
        f'"lead_id":"{marker}-L9","source":"Organic","attributes":{{"persona":"CMO"}}}}'
    ).encode()
    assert sorted(m.value for m in by_topic[LEADS_TOPIC]) == sorted([*leads, csv_lead])
    assert [m.value for m in by_topic[DEALS_TOPIC]] == deals
    for m in by_topic[LEADS_TOPIC] + by_topic[DEALS_TOPIC]:
        assert m.key == orjson.loads(m.value)["lead_id"].encode()
        assert m.headers == {}
    for topic in (LEADS_TOPIC, DEALS_TOPIC):
        partitions: dict[bytes | None, set[int]] = defaultdict(set)
        for m in by_topic[topic]:
            partitions[m.key].add(m.partition)
        assert all(len(p) == 1 for p in partitions.values())
    # The Java client's partitioner (kafka-python's and aiokafka's too): the API and the workers' rejects agree.
    partition_counts = Counter(tp.topic for tp in tail.start)
    for m in messages:
        assert m.key is None or m.partition == (murmur2(m.key) & 0x7FFFFFFF) % partition_counts[m.topic]

    rejected = {m.value: m for m in by_topic[REJECTED_TOPIC]}
    assert len(rejected) == 3 and set(rejected) > set(invalid)
    for raw, key in invalid.items():
        assert rejected[raw].key == key
    broken, no_stage = (rejected[raw].headers for raw in invalid)
    assert broken["leadpulse-reason-code"] == b"invalid_json"
    assert broken["leadpulse-source"] == f"{jsonl}:5".encode()
    assert no_stage == {
        "leadpulse-reason": b"missing_field: stage",
        "leadpulse-reason-code": b"missing_field",
        "leadpulse-source": f"{jsonl}:6".encode(),
    }
    (csv_reject,) = [m for m in rejected.values() if m.headers["leadpulse-source"] == f"{crm}:3".encode()]
    assert csv_reject.headers["leadpulse-reason"] == b"missing_field: deal_id"
    assert orjson.loads(csv_reject.value)["amount"] == 12.5


@pytest.mark.integration
def test_stdin(kafka_bootstrap: str, marker: str) -> None:
    tail = TopicTail(kafka_bootstrap)
    data = lead(marker, 1, f"{marker}-L") + b"\n" + line(event_id=f"{marker}-2", type="lead.deleted") + b"\n"

    done = cli("-", bootstrap=kafka_bootstrap, stdin=data)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent 1, rejected 1"
    messages = {m.topic: m for m in tail.read(marker)}
    assert messages[LEADS_TOPIC].value == data.splitlines()[0]
    assert messages[REJECTED_TOPIC].headers["leadpulse-source"] == b"stdin:2"
    assert messages[REJECTED_TOPIC].headers["leadpulse-reason-code"] == b"unknown_type"
    assert messages[REJECTED_TOPIC].key is None


@pytest.mark.integration
def test_publish_function_counts_and_reports_progress(
    stack_settings: Settings, marker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish_module, "PROGRESS_EVERY", 10)  # the shared topics need not grow by thousands
    path = tmp_path / "many.ndjson"
    path.write_bytes(b"".join(lead(marker, n, f"{marker}-L{n}") + b"\n" for n in range(25)) + b"oops\n")
    progress: list[tuple[int, int]] = []

    summary = publish([str(path)], stack_settings, on_progress=lambda records, done: progress.append((records, done)))

    assert (summary.sent, summary.rejected, summary.failed, summary.ok) == (25, 1, 0, True)
    assert [records for records, _ in progress] == [10, 20]
    assert all(0 < done <= path.stat().st_size for _, done in progress)


@pytest.mark.integration
def test_unreadable_inputs_stop_everything_before_sending(kafka_bootstrap: str, marker: str, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(lead(marker, 1, f"{marker}-L") + b"\n")
    directory = tmp_path / "dir.jsonl"  # root reads any file, so a directory stands in for "unreadable"
    directory.mkdir()
    missing = tmp_path / "missing.csv"
    tail = TopicTail(kafka_bootstrap)

    done = cli(str(good), str(missing), str(directory), bootstrap=kafka_bootstrap)

    assert done.returncode == 2
    assert f"{missing}: cannot read: No such file or directory" in done.stderr
    assert f"{directory}: cannot read: Is a directory" in done.stderr
    assert done.stdout == ""
    assert tail.read(marker) == []


#: `publish` in a fresh process with a send window of 500 records (1 MiB): prints its peak
#: RSS in KiB (VmHWM: its own, where `ru_maxrss` would count the forking pytest's).
_PEAK_RSS = """
import sys
from streams.ingest import publish
from streams.settings import Settings
publish.SEND_WINDOW, publish.SEND_WINDOW_KBYTES = 500, 1024
summary = publish.publish([sys.argv[1]], Settings())
assert summary.ok and summary.rejected == int(sys.argv[2]), summary
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


@pytest.mark.integration
def test_peak_memory_stays_flat_on_a_file_of_many_send_windows(kafka_bootstrap: str, marker: str, tmp_path: Path) -> None:
    # 2 KB records of an unknown type: they take the whole path (read, validate, produce,
    # acknowledge) to leadpulse.rejected, which no worker of the shared stack reads.
    record = line(event_id=marker, type="padding", lead_id=f"{marker}-L", filler="x" * 2000) + b"\n"
    env = {**os.environ, "LEADPULSE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    peaks = []
    for windows in (1, 24):
        path = tmp_path / f"{windows}.jsonl"
        path.write_bytes(record * 500 * windows)
        done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path), str(500 * windows)],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stdout) / 1024)
    large_file_mib = len(record) * 500 * 24 / 2**20
    assert large_file_mib > 20
    assert peaks[1] - peaks[0] < large_file_mib / 4, f"peak RSS {peaks[0]:.0f} MiB, then {peaks[1]:.0f} MiB"


def test_kafka_down_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(lead("x", 1, "L") + b"\n")
    started = time.monotonic()

    done = cli(str(path), "--bootstrap", "127.0.0.1:1", bootstrap="127.0.0.1:19092", timeout=60)

    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert "Kafka at 127.0.0.1:1 is unreachable" in done.stderr
    assert done.stdout.strip() == "sent 0, rejected 0"


def test_unknown_extension_asks_for_format(tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text("{}\n")
    done = cli(str(path), bootstrap="127.0.0.1:1")
    assert done.returncode == 2
    assert "pass --format" in done.stderr


# --- units: no Kafka needed -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"lead_id": "L-1", "type": "nope"}', b"L-1"),
        (b'{"lead_id": "L-\\u00e9"}', "L-é".encode()),
        (b'{"lead_id": 42}', None),
        (b'{"lead_id": ""}', None),
        (b"[1]", None),
        (b"not json", None),
    ],
)
def test_rejected_key_is_the_lead_id_when_usable(raw: bytes, key: bytes | None) -> None:
    assert rejected_key(raw) == key


class _Flushed:
    """A producer whose flush leaves `unanswered` records without a report."""

    def __init__(self, unanswered: int) -> None:
        self.unanswered = unanswered

    def flush(self, timeout: float) -> int:
        return self.unanswered


def test_refusal_reports_are_taken_off_the_queued_events_and_rejects_with_the_first_failure() -> None:
    deliveries = Deliveries()
    refusals = [(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), DEALS_TOPIC), (KafkaError(KafkaError._MSG_TIMED_OUT), REJECTED_TOPIC)]
    for error, topic in refusals:
        deliveries.delivered(error, DeliveredMessage(topic))
    summary = deliveries.settle(_Flushed(0), events=5, rejects=2)  # type: ignore[arg-type]
    assert (summary.sent, summary.rejected, summary.failed) == (4, 1, 2)
    assert summary.first_failure is not None and summary.first_failure.startswith("TOPIC_AUTHORIZATION_FAILED: ")
    assert deliveries.timed_out is not None and deliveries.timed_out.startswith("_MSG_TIMED_OUT")
    assert str(summary) == "sent 4, rejected 1, failed 2"


@given(events=st.integers(0, 50), rejects=st.integers(0, 50), data=st.data())
def test_records_left_unanswered_never_count_as_acknowledged(events: int, rejects: int, data: st.DataObject) -> None:
    unanswered = data.draw(st.integers(0, events + rejects))
    summary = Deliveries().settle(_Flushed(unanswered), events, rejects)  # type: ignore[arg-type]
    assert summary.sent + summary.rejected + summary.failed == events + rejects
    assert summary.failed == unanswered and 0 <= summary.sent <= events and 0 <= summary.rejected <= rejects


def test_cli_exits_1_when_kafka_did_not_acknowledge_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("{}\n")
    summary = PublishSummary(sent=3, rejected=1, failed=2, first_failure="_MSG_TIMED_OUT: x")
    monkeypatch.setattr(publish_module, "publish", lambda *args, **kwargs: summary)

    result = CliRunner().invoke(publish_command, [str(path), "--bootstrap", "k:9092"])

    assert result.exit_code == 1
    assert "sent 3, rejected 1, failed 2" in result.output
    assert "Kafka at k:9092 did not acknowledge 2 records (first: _MSG_TIMED_OUT: x)" in result.output


def test_the_publish_command_loads_neither_the_api_nor_the_demo_before_sending() -> None:
    """Start-up is part of every run's time: `leadpulse publish` resolves only its own module."""
    script = (
        "import sys, click\n"
        "from streams.cli import main\n"
        "main.get_command(click.Context(main), 'publish')\n"
        "print(sorted(m for m in ('aiohttp', 'streams.ingest.api', 'streams.demo.run', 'exporters.server') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=REPO, check=True, timeout=60)
    assert done.stdout.decode().strip() == "[]"

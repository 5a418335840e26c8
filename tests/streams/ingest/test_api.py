"""The ingest API against the real Kafka of the test stack: what it answers, and what reaches Kafka.

The app runs on a free port in a background thread (`RunningApi`), so tests, hypothesis
included, talk plain HTTP to it. Tests share the stack's topics, so each marks its
events with a fresh id and reads back only what carries it (`TopicTail`).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from tests.streams.ingest.test_publish import TopicTail

from streams.ingest.api import MAX_BODY_BYTES, api_command, create_app
from streams.ingest.publish import publish
from streams.kafka.rejected import ORIGIN_HEADER, REASON_CODE_HEADER
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, REJECTED_TOPIC, Settings
from streams.ingest.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE_S, sign
from tests import REPO

SECRET = "api-test-secret"
JSON, NDJSON = "application/json", "application/x-ndjson"

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class RunningApi:
    """An app served on a free 127.0.0.1 port by an event loop in a background thread."""

    def __init__(self, app: web.Application, **runner: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(app, **runner)
        self.port: int = self._call(self._start())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def _stop(self) -> None:
        await self._runner.cleanup()
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:  # handlers of connections a test left open
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    async def _start(self) -> int:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return int(self._runner.addresses[0][1])

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            chunked = not isinstance(body, bytes | None)  # an iterator is sent with Transfer-Encoding: chunked
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
            response = conn.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    def post(
        self, path: str, body: bytes, content_type: str = JSON, *, secret: str | None = SECRET, **headers: str
    ) -> Answer:
        """POST `body`, signed with `secret` unless it is None or `headers` bring their own signature."""
        if secret is not None and SIGNATURE_HEADER not in headers:
            headers[SIGNATURE_HEADER] = sign(secret.encode(), body)
        return self.request("POST", path, body, {"Content-Type": content_type, **headers})

    def close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[RunningApi]:
    running = RunningApi(create_app(stack_settings.model_copy(update={"ingest_secret": SecretStr(SECRET)})))
    yield running
    running.close()


@pytest.fixture(scope="module")
def dead_kafka_api() -> Iterator[RunningApi]:
    """The API pointed at a port where no Kafka listens."""
    running = RunningApi(create_app(Settings(kafka_bootstrap="127.0.0.1:1", ingest_secret=SECRET)))
    yield running
    running.close()


@pytest.fixture
def marker() -> str:
    return f"a{uuid.uuid4().hex}"


def event(marker: str, n: int, kind: str = "lead.created", lead: int = 0, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": f"{marker}-{n}",
        "type": kind,
        "occurred_at": "2026-11-02T10:00:00+01:00",
        "lead_id": f"{marker}-L{lead}",
    }
    if kind == "lead.created":
        fields["source"] = "Paid Search"
    if kind.startswith("deal."):
        fields["deal_id"] = f"{marker}-D{lead}"
    return {**fields, **extra}


def metric(api: RunningApi, line_start: str) -> float:
    """The value of the first /metrics sample starting with `line_start` (0 when absent)."""
    for line in api.request("GET", "/metrics").body.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- accepted requests reach the right topics ------------------------------------------


def test_signed_array_lands_on_event_topics_keyed_by_lead_and_invalid_records_on_rejected(
    api: RunningApi, kafka_bootstrap: str, marker: str
) -> None:
    records = [
        event(marker, 0, lead=0),
        event(marker, 1, "lead.qualified", lead=0, stage="sql"),
        {"event_id": f"{marker}-2", "type": "lead.created"},  # no time
        event(marker, 3, "deal.won", lead=0, amount=1200),
        f"{marker} is not an object",
    ]
    tail = TopicTail(kafka_bootstrap)
    answer = api.post("/v1/events", orjson.dumps(records))
    assert answer.status == 202
    assert answer.json == {
        "accepted": 3,
        "rejected": [
            {"index": 2, "reason": "missing_field: occurred_at"},
            {"index": 4, "reason": "not_an_object: str"},
        ],
    }
    messages = tail.read(marker)
    lead = f"{marker}-L0".encode()
    assert {(m.topic, m.key, m.value) for m in messages if m.topic != REJECTED_TOPIC} == {
        (LEADS_TOPIC, lead, orjson.dumps(records[0])),
        (LEADS_TOPIC, lead, orjson.dumps(records[1])),
        (DEALS_TOPIC, lead, orjson.dumps(records[3])),
    }
    rejects = [m for m in messages if m.topic == REJECTED_TOPIC]
    assert {(m.value, m.headers[REASON_CODE_HEADER], m.headers[ORIGIN_HEADER]) for m in rejects} == {
        (orjson.dumps(records[2]), b"missing_field", b"api /v1/events#2"),
        (orjson.dumps(records[4]), b"not_an_object", b"api /v1/events#4"),
    }


def test_json_lines_each_line_is_a_record_and_a_broken_line_is_rejected_not_a_400(
    api: RunningApi, kafka_bootstrap: str, marker: str
) -> None:
    lines = [
        orjson.dumps(event(marker, 0)),
        b"",
        b'{"event_id": "' + marker.encode() + b'-broken", ',
        b"  " + orjson.dumps(event(marker, 1, lead=1)),
        b"[" + orjson.dumps(event(marker, 2)) + b"]",
    ]
    tail = TopicTail(kafka_bootstrap)
    answer = api.post("/v1/events", b"\r\n".join(lines) + b"\n", NDJSON)
    assert answer.status == 202
    assert answer.json["accepted"] == 2
    assert [(r["index"], r["reason"].split(":")[0]) for r in answer.json["rejected"]] == [
        (2, "invalid_json"),
        (4, "not_an_object"),
    ]
    assert sorted(m.value for m in tail.read(marker)) == sorted([lines[0], lines[2], lines[3], lines[4]])


def test_a_single_object_is_sent_byte_for_byte(api: RunningApi, kafka_bootstrap: str, marker: str) -> None:
    body = b'{ "event_id": "%s-0", "type": "lead.created", "occurred_at": "2026-11-02T10:00:00Z",\n' % marker.encode()
    body += b'  "lead_id": "L", "source": "Webinar", "crm_note": "kept" }'
    tail = TopicTail(kafka_bootstrap)
    assert api.post("/v1/events", body).json == {"accepted": 1, "rejected": []}
    assert [(m.topic, m.key, m.value) for m in tail.read(marker)] == [(LEADS_TOPIC, b"L", body)]


def test_posting_json_lines_puts_the_same_messages_on_kafka_as_publishing_the_file(
    api: RunningApi, kafka_bootstrap: str, stack_settings: Settings, marker: str, tmp_path: Path
) -> None:
    """Same messages (topic, partition, key, value) means the workers compute the same aggregates.

    A record without a usable lead_id has no key, so its partition is the producer's choice.
    """
    records = [event(marker, n, lead=n % 7) for n in range(40)]
    records += [event(marker, 40 + n, "deal.won" if n % 2 else "deal.lost", lead=n) for n in range(10)]
    records += [{"event_id": f"{marker}-bad", "type": "deal.won"}]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(map(orjson.dumps, records)) + b"\n")

    def sent(send: Any) -> Counter[tuple[str, int | None, bytes | None, bytes]]:
        tail = TopicTail(kafka_bootstrap)
        send()
        return Counter((m.topic, m.partition if m.key else None, m.key, m.value) for m in tail.read(marker))

    via_api = sent(lambda: api.post("/v1/events", path.read_bytes(), NDJSON))
    via_publish = sent(lambda: publish([str(path)], stack_settings))
    assert via_api == via_publish
    assert sum(via_api.values()) == len(records)


def test_a_timestamped_signature_is_accepted_inside_the_window(api: RunningApi, marker: str) -> None:
    body = orjson.dumps(event(marker, 0))
    now = int(time.time())
    signed = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(SECRET.encode(), body, now)}
    answer = api.post("/v1/events", body, **signed)
    assert answer.status == 202 and answer.json["accepted"] == 1


# --- refused requests send nothing --------------------------------------------------


def refusals(marker: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """Requests the API must refuse, each with the status it must answer and POST arguments."""
    body = orjson.dumps([event(marker, 0), event(marker, 1)])
    secret, stale = SECRET.encode(), int(time.time()) - TOLERANCE_S - 60

    def oversize() -> Iterator[bytes]:
        line = orjson.dumps(event(marker, 0)) + b"\n"
        for _ in range(MAX_BODY_BYTES // len(line) + 1):
            yield line

    return {
        "unsigned": (401, {"body": body, "secret": None}),
        "signed with another secret": (401, {"body": body, "secret": "guess"}),
        "signature of another body": (401, {"body": body, SIGNATURE_HEADER: sign(secret, b"[]")}),
        "stale timestamp": (401, {"body": body, TIMESTAMP_HEADER: str(stale),
                                  SIGNATURE_HEADER: sign(secret, body, stale)}),
        "form content type": (415, {"body": body, "content_type": "application/x-www-form-urlencoded"}),
        "no content type": (415, {"body": body, "content_type": ""}),
        "truncated JSON": (400, {"body": body[:-3]}),
        "JSON Lines sent as JSON": (400, {"body": body + b"\n" + body}),
        "gzip encoding that is not gzip": (400, {"body": body, "Content-Encoding": "gzip"}),
        "over 1 MiB by Content-Length": (413, {"body": b"[" + b" " * MAX_BODY_BYTES + body + b"]"}),
        "over 1 MiB chunked": (413, {"body": oversize(), "content_type": NDJSON, "secret": None}),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(refusals("x")))
def test_refused_requests_get_their_status_and_send_nothing(
    api: RunningApi, kafka_bootstrap: str, marker: str, case: str
) -> None:
    status, args = refusals(marker)[case]
    tail = TopicTail(kafka_bootstrap)
    answer = api.post("/v1/events", **args)
    assert answer.status == status
    assert "error" in answer.json
    assert tail.read(marker) == []


def test_oversize_is_refused_from_the_header_before_the_body_is_sent(api: RunningApi) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.putrequest("POST", "/v1/events")
    conn.putheader("Content-Type", JSON)
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()  # and no body: the answer must not wait for it
    assert conn.getresponse().status == 413
    conn.close()


def test_exactly_1_mib_is_not_too_large(api: RunningApi) -> None:
    assert api.post("/v1/events", b"[" + b" " * (MAX_BODY_BYTES - 2) + b"]").json == {"accepted": 0, "rejected": []}


# --- Kafka, health and metrics -----------------------------------------------------------


def test_kafka_unreachable_gives_503_and_counts_nothing_accepted(dead_kafka_api: RunningApi, marker: str) -> None:
    answer = dead_kafka_api.post("/v1/events", orjson.dumps([event(marker, 0), {"broken": True}]))
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "5"
    assert "accepted" not in answer.json
    assert metric(dead_kafka_api, 'leadpulse_api_events_total{outcome="accepted"}') == 0
    assert metric(dead_kafka_api, 'leadpulse_api_events_total{outcome="rejected"}') == 0
    assert metric(dead_kafka_api, 'leadpulse_api_requests_total{route="/v1/events",status="503"}') == 1
    assert dead_kafka_api.request("GET", "/healthz").status == 503


def test_healthz_is_200_when_kafka_answers(api: RunningApi) -> None:
    answer = api.request("GET", "/healthz")
    assert (answer.status, answer.json) == (200, {"kafka": "ok"})


def test_metrics_count_requests_by_status_events_by_outcome_and_produce_latency(api: RunningApi, marker: str) -> None:
    def snapshot() -> tuple[float, ...]:
        return (
            metric(api, 'leadpulse_api_requests_total{route="/v1/events",status="202"}'),
            metric(api, 'leadpulse_api_requests_total{route="/v1/events",status="401"}'),
            metric(api, 'leadpulse_api_events_total{outcome="accepted"}'),
            metric(api, 'leadpulse_api_events_total{outcome="rejected"}'),
            metric(api, "leadpulse_api_kafka_produce_seconds_count"),
        )

    before = snapshot()
    api.post("/v1/events", orjson.dumps([event(marker, 0), event(marker, 1), {}]))
    api.post("/v1/events", b"[]", secret=None)
    assert [after - was for after, was in zip(snapshot(), before)] == [1, 1, 2, 1, 1]


# --- any body: a contracted answer, never another 5xx ------------------------------------------


INT64 = st.integers(-(2**63), 2**63 - 1)  # what orjson writes


def _event_like(marker: str) -> st.SearchStrategy[dict[str, Any]]:
    value = st.none() | st.booleans() | INT64 | st.text(max_size=8) | st.sampled_from(["lead.created", "mql"])

    def one_id_one_content(fields: dict[str, Any]) -> dict[str, Any]:
        # These land on the shared topics: an id reused with other content would break the
        # law the worker tests check (the aggregates are a function of the set of event ids).
        rest = {key: value for key, value in fields.items() if key != "event_id"}
        digest = hashlib.sha1(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return {**fields, "event_id": f"{marker}-{digest}"}

    return st.builds(
        lambda n, kind, extra: one_id_one_content({**event(marker, n, kind), **extra}),
        st.integers(0, 9),
        st.sampled_from(["lead.created", "lead.qualified", "deal.won", "deal.lost", "nope"]),
        st.dictionaries(st.sampled_from(["occurred_at", "lead_id", "stage", "amount", "source", "deal_id"]), value),
    )


BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(_event_like("hypothesis"), max_size=4).map(orjson.dumps),
    st.lists(_event_like("hypothesis") | st.text(max_size=5), max_size=4).map(
        lambda lines: b"\n".join(map(orjson.dumps, lines))
    ),
    st.recursive(st.none() | INT64 | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)).map(orjson.dumps),
)  # fmt: skip


def records_in(body: bytes, content_type: str) -> int:
    """How many records a `/v1/events` body that was answered 202 holds."""
    if content_type == NDJSON:
        return sum(1 for line in body.split(b"\n") if line.strip())
    parsed = orjson.loads(body)
    return len(parsed) if isinstance(parsed, list) else 1


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=BODIES,
    path=st.sampled_from(["/v1/events", "/v1/events", "/v1/hooks/salesforce"]),  # vendor hooks: test_api_hooks.py
    content_type=st.sampled_from([JSON, JSON, NDJSON, "text/plain"]),
    signed=st.sampled_from([True, True, True, False]),
    encoding=st.sampled_from([None, None, "gzip", "claimed gzip"]),
)
def test_any_body_is_accepted_with_reasons_or_refused_with_a_contracted_status(
    api: RunningApi, body: bytes, path: str, content_type: str, signed: bool, encoding: str | None
) -> None:
    headers = {SIGNATURE_HEADER: sign(SECRET.encode(), body)} if signed else {}
    sent = gzip.compress(body) if encoding == "gzip" else body  # the signature covers the decoded body
    if encoding is not None:
        headers["Content-Encoding"] = "gzip"
    answer = api.post(path, sent, content_type, secret=None, **headers)
    assert answer.status in (202, 400, 401, 415), answer.body
    if not signed:
        assert answer.status != 202
    if answer.status == 202:
        rejected = answer.json["rejected"]
        indexes = [r["index"] for r in rejected]
        assert indexes == sorted(indexes) and all(isinstance(i, int) and i >= 0 for i in indexes)
        assert all(isinstance(r["reason"], str) and r["reason"] for r in rejected)
        if path == "/v1/events":
            assert answer.json["accepted"] + len(rejected) == records_in(body, content_type)


# --- the command ---------------------------------------------------------------------------


def test_command_refuses_to_start_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADPULSE_INGEST_SECRET", raising=False)
    result = CliRunner().invoke(api_command, ["--port", "1"])
    assert result.exit_code == 2
    assert "LEADPULSE_INGEST_SECRET is not set" in result.output


def test_command_serves_with_insecure_no_auth_and_stops_on_sigterm(kafka_bootstrap: str, marker: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LEADPULSE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    env.pop("LEADPULSE_INGEST_SECRET", None)
    command = ["api", "--host", "127.0.0.1", "--port", str(port), "--insecure-no-auth"]
    server = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *command], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                assert conn.getresponse().status == 200
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/v1/events", body=orjson.dumps(event(marker, 0)), headers={"Content-Type": JSON})
        assert conn.getresponse().status == 202
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "UNSIGNED requests accepted" in stderr

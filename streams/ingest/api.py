"""`leadpulse api`: the ingest HTTP API of CONTRACT section 5, signed events and vendor webhooks into Kafka.

It never claims an event it has not handed over: a request gets 202 only after Kafka
acknowledged every record of it (events to their topics keyed by `lead_id`, invalid
records to `leadpulse.rejected`). If Kafka cannot take them all within PRODUCE_TIMEOUT_S
the answer is 503 and nothing counts as accepted; some records may still have reached
Kafka, and a retry re-sends them under the same `event_id`s, which the workers count
once. Validation is `decode_record`, the same as `publish` and the workers.

Logs carry paths, client addresses, counts and errors: never a payload, never the secret.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import click
import orjson
from aiohttp import web
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.decoding import decode_record
from streams.events import MAX_RECORD_BYTES, Event, Rejection
from streams.ingest.publish import rejected_key
from streams.ingest.records import Record, read_jsonl, wall_clock_ms
from streams.kafka.clients import KafkaClientOptions, client_options
from streams.kafka.diagnose import diagnose
from streams.kafka.rejected import rejection_headers
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC, Settings
from streams.ingest.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from streams.ingest.vendors import SECRET_SETTINGS, Hook, MisconfiguredHook, hooks
from streams.ingest.vendors.common import SignedRequest, map_notifications

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES: Final = 1024 * 1024
JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
# Kafka gets 10 s (connecting included) to acknowledge a request's records: enough to ride
# out a leader election (a few seconds) while the sender waits; past that a 503 lets it
# retry rather than hang. healthz gets 2 s, as probes time out quickly.
PRODUCE_TIMEOUT_S: Final = 10.0
HEALTH_TIMEOUT_S: Final = 2.0
RETRY_AFTER_S: Final = 5
#: After a failed produce, why Kafka refused is diagnosed (and logged with the 503) at most
#: this often, within DIAGNOSE_TIMEOUT_S, so a flood of failing requests costs one check.
DIAGNOSE_EVERY_S: Final = 30.0
DIAGNOSE_TIMEOUT_S: Final = 5.0
#: No lingering: records batch up anyway while produce requests are in flight; in
#: `tests/bench/api.py`, 5 ms doubled a lone event's latency and gained nothing at batch
#: sizes 100 and 1,000.
LINGER_MS: Final = 0
#: How long the reports thread waits for librdkafka before checking whether to stop.
REPORTS_POLL_S: Final = 0.1
#: Everything that means "Kafka did not take it": refusals and failures, a full producer queue, our timeouts.
_KAFKA_FAILURES: Final = (KafkaException, BufferError, asyncio.TimeoutError)


class MissingSecret(Exception):
    """The API would accept unsigned requests. Set LEADPULSE_INGEST_SECRET (or pass --insecure-no-auth to test)."""


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge every record in time; the client should retry the whole request."""


class Refused(Exception):
    """Answer `status` with JSON `{"error": message}`: raised by handlers, rendered by the middleware."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


class ApiMetrics:
    """The API's own series, in a registry of their own (not the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadpulse_api_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.events = Counter(
            "leadpulse_api_events",
            "records of 202 answers: accepted events, rejected records, ignored webhook notifications",
            ["outcome"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "leadpulse_api_kafka_produce_seconds",
            "time until Kafka acknowledged all records of a request (or gave up)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        for outcome in ("accepted", "rejected", "ignored"):
            self.events.labels(outcome)


class KafkaSink:
    """The API's one idempotent librdkafka producer, its delivery reports served by a thread of its own.

    Created on first use. librdkafka connects (and reconnects) in the background, so the
    API serves while Kafka is down: its requests time out into 503s.
    """

    def __init__(self, kafka: KafkaClientOptions) -> None:
        self._kafka = kafka
        self._producer: Producer | None = None
        self._reports: threading.Thread | None = None
        self._closing = threading.Event()
        self._pending: set[_Acks] = set()  # the requests waiting for Kafka
        self._brokers_down = threading.Event()  # librdkafka lost every broker; cleared once one answers
        self._cause: tuple[float, str | None] | None = None  # when the last diagnosis ran, and what it found

    async def send(self, records: Sequence[Record], origin: str) -> None:
        """Produce every record and wait for all acknowledgements; `KafkaUnavailable` if any is missing."""
        try:
            await asyncio.wait_for(self._send(records, origin), PRODUCE_TIMEOUT_S)
        except _KAFKA_FAILURES as exc:
            raise KafkaUnavailable(await self._why(exc)) from exc

    async def _why(self, exc: BaseException) -> str:
        """The diagnosed cause (credentials, certificates, ACLs), at most one diagnosis per DIAGNOSE_EVERY_S."""
        now = time.monotonic()
        if self._cause is None or now - self._cause[0] > DIAGNOSE_EVERY_S:
            try:
                cause = await asyncio.wait_for(diagnose(self._kafka, [*INPUT_TOPICS, REJECTED_TOPIC]), DIAGNOSE_TIMEOUT_S)
            except asyncio.TimeoutError:
                cause = None
            self._cause = (now, cause)
        return self._cause[1] or str(exc) or type(exc).__name__

    async def reachable(self) -> bool:
        """Whether Kafka answers a metadata request within HEALTH_TIMEOUT_S (connecting included)."""
        try:
            await asyncio.wait_for(self._probe(self._started()), HEALTH_TIMEOUT_S + 1)
        except _KAFKA_FAILURES:
            return False
        return True

    async def _probe(self, producer: Producer) -> None:
        """A metadata request within HEALTH_TIMEOUT_S, or `KafkaException`; an answer means the brokers are back."""
        await asyncio.to_thread(producer.list_topics, None, HEALTH_TIMEOUT_S)
        self._brokers_down.clear()

    async def close(self) -> None:
        """Stop serving reports; give what is still queued HEALTH_TIMEOUT_S to reach Kafka.

        Every request has been answered by then, so those records belong to 503s and their
        senders will retry: the wait is a courtesy, kept short for a Kafka that is down.
        """
        if self._producer is not None and self._reports is not None:
            self._closing.set()
            await asyncio.to_thread(self._reports.join)
            await asyncio.to_thread(self._producer.flush, HEALTH_TIMEOUT_S)

    async def _send(self, records: Sequence[Record], origin: str) -> None:
        producer = self._started()
        if self._brokers_down.is_set():  # a quick 503 while Kafka is away, rather than one at PRODUCE_TIMEOUT_S
            await self._probe(producer)
        acks = _Acks(asyncio.get_running_loop(), len(records))
        self._pending.add(acks)
        acks.done.add_done_callback(lambda _: self._pending.discard(acks))
        for record in records:
            key: str | bytes | None
            if isinstance(record.result, Event):
                topic, key, headers = record.result.topic, record.result.lead_id, None
            else:
                topic, key = REJECTED_TOPIC, rejected_key(record.raw)
                headers = rejection_headers(record.result, f"{origin}#{record.line}")
            producer.produce(topic, record.raw, key, headers=headers, on_delivery=acks.delivered)  # type: ignore[arg-type]  # its stub's list is invariant
        await acks.done

    def _started(self) -> Producer:
        """The producer, created on the running loop's first use."""
        if self._producer is None:
            config = {
                **self._kafka.durable_producer("leadpulse-api"),
                "linger.ms": LINGER_MS,
                "message.timeout.ms": int(PRODUCE_TIMEOUT_S * 1000),
                "logger": log.getChild("librdkafka"),
                "error_cb": functools.partial(self._client_error, asyncio.get_running_loop()),
            }
            self._producer = producer = Producer(config)
            self._reports = threading.Thread(target=self._serve_reports, args=(producer,), name="kafka-reports", daemon=True)
            self._reports.start()
        return self._producer

    def _client_error(self, loop: asyncio.AbstractEventLoop, error: KafkaError) -> None:
        """On the reports thread: with every broker down, waiting requests fail now (503) rather than at their timeout."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down.set()
            loop.call_soon_threadsafe(self._fail_pending, error)

    def _fail_pending(self, error: KafkaError) -> None:
        for acks in list(self._pending):
            acks.fail(error)

    def _serve_reports(self, producer: Producer) -> None:
        """librdkafka calls `_Acks.delivered` from here, the one thread that polls."""
        while not self._closing.is_set():
            producer.poll(REPORTS_POLL_S)


class _Acks:
    """One request's delivery reports: `done` resolves, on the event loop, once all of them are in.

    Every outcome is waited for, so no refusal is left unobserved; the first one fails `done`.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._left = expected
        self._failure: KafkaError | None = None

    def delivered(self, error: KafkaError | None, message: Message) -> None:
        """Runs on the reports thread."""
        self._failure = self._failure or error
        self._left -= 1
        if self._left == 0:
            self._loop.call_soon_threadsafe(self._settle)

    def fail(self, error: KafkaError) -> None:
        """Give up waiting (on the event loop): Kafka cannot acknowledge in time."""
        if not self.done.done():
            self.done.set_exception(KafkaException(error))

    def _settle(self) -> None:
        if self._failure is not None:
            self.fail(self._failure)
        elif not self.done.done():  # else it timed out or failed meanwhile
            self.done.set_result(None)


def decode_events(body: bytes, ndjson: bool, now_ms: int) -> list[Record]:
    """The records of a `POST /v1/events` body; a record's `line` is its 0-based index (JSON Lines: line).

    A JSON array is one record per element; any other JSON value is one record. Raises
    `Refused(400)` when a JSON body is not JSON at all; JSON Lines never does, since
    each line stands alone.
    """
    if ndjson:
        return [record._replace(line=record.line - 1) for record in read_jsonl(io.BytesIO(body), lambda: now_ms)]
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, f"body is not JSON: {exc}") from exc
    raws = [orjson.dumps(item) for item in parsed] if isinstance(parsed, list) else [body]
    # A rejected record is sent as received but cut to the record limit, as `publish` does.
    return [Record(raw[:MAX_RECORD_BYTES], decode_record(raw, now_ms), index) for index, raw in enumerate(raws)]


class IngestApi:
    """The handlers, with what they share: the Kafka sink, the secret (None: unsigned), the hooks and the metrics.

    `public_url` is the base URL senders call (behind a proxy), for signatures that cover the URL.
    """

    def __init__(
        self,
        sink: KafkaSink,
        secret: bytes | None,
        metrics: ApiMetrics,
        served: Mapping[str, Hook] | None = None,
        public_url: str | None = None,
    ) -> None:
        self.sink = sink
        self.secret = secret
        self.metrics = metrics
        self.hooks = dict(served or {})
        self.public_url = public_url.rstrip("/") if public_url else None

    async def post_events(self, request: web.Request) -> web.Response:
        """`POST /v1/events`: one event, a JSON array of them, or JSON Lines."""
        body = await self._signed_body(request)
        if request.content_type not in (JSON, NDJSON):
            raise Refused(415, f"Content-Type must be {JSON} or {NDJSON}")
        records = decode_events(body, request.content_type == NDJSON, wall_clock_ms())
        return await self._ingest(request, records)

    async def post_hook(self, request: web.Request) -> web.Response:
        """`POST /v1/hooks/<name>`: a vendor's webhook, verified its way and mapped by `streams.ingest.vendors`."""
        name = request.match_info["name"]
        hook = self.hooks.get(name)
        if hook is None:
            if name in SECRET_SETTINGS:
                raise Refused(404, f"hook {name} is not served: {SECRET_SETTINGS[name]} is not set")
            raise Refused(404, f"unknown hook; known: {', '.join(sorted(SECRET_SETTINGS))}")
        body = await self._body(request)
        signed = SignedRequest(request.method, self._called_url(request), request.headers, body, time.time())
        try:
            hook.verify(signed)
        except SignatureError as exc:
            log.info("refused %s from %s: %s", request.path, request.remote, exc)
            raise Refused(401, str(exc)) from exc
        if request.content_type != JSON:
            raise Refused(415, f"Content-Type must be {JSON}")
        try:
            notifications = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Refused(400, f"body is not JSON: {exc}") from exc
        wrong = hook.recognise(notifications)
        if wrong is not None:
            raise Refused(400, wrong)
        records, ignored = map_notifications(hook.mapper, notifications, wall_clock_ms())
        return await self._ingest(request, records, ignored)

    def _called_url(self, request: web.Request) -> str:
        """The URL the sender called: `public_url` + the path as sent, else what this server saw."""
        base = self.public_url or f"{request.scheme}://{request.host}"
        return base + request.raw_path

    async def healthz(self, request: web.Request) -> web.Response:
        """`GET /healthz`: 200 when Kafka answers a metadata request, else 503."""
        if await self.sink.reachable():
            return _json(200, {"kafka": "ok"})
        return _json(503, {"kafka": "unreachable"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        """`GET /metrics`: the API's own registry in the Prometheus text format."""
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @web.middleware
    async def answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Render `Refused` as JSON and count every answer by route and status."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            try:
                response = await handler(request)
            except Refused as exc:
                response = _json(exc.status, {"error": str(exc)}, exc.headers)
            status = response.status
            return response
        except web.HTTPException as exc:  # aiohttp's own answers (404, 405)
            status = exc.status
            raise
        finally:
            self.metrics.requests.labels(route, str(status)).inc()

    async def _signed_body(self, request: web.Request) -> bytes:
        """The body, 401 unless signed with leadpulse's own scheme (when a secret is set)."""
        body = await self._body(request)
        if self.secret is not None:
            headers = request.headers
            try:
                verify(self.secret, body, headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER), time.time())
            except SignatureError as exc:
                log.info("refused %s from %s: %s", request.path, request.remote, exc)
                raise Refused(401, str(exc), {"WWW-Authenticate": f'HMAC-SHA256 header="{SIGNATURE_HEADER}"'}) from exc
        return body

    async def _body(self, request: web.Request) -> bytes:
        """The body; 413 over MAX_BODY_BYTES (by its header before reading, if sent)."""
        too_large = Refused(413, f"body is over {MAX_BODY_BYTES} bytes")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise too_large
        try:
            body = await request.read()  # the app's client_max_size stops a chunked body at the limit
        except web.HTTPRequestEntityTooLarge as exc:
            raise too_large from exc
        except web.RequestPayloadError as exc:  # e.g. a Content-Encoding: gzip body that is not gzip
            raise Refused(400, f"body cannot be read: {exc}") from exc
        return body

    async def _ingest(self, request: web.Request, records: list[Record], ignored: int | None = None) -> web.Response:
        """Produce `records`, then answer 202 with per-record reasons, or 503 with nothing accepted."""
        if records:
            started = time.perf_counter()
            try:
                await self.sink.send(records, f"api {request.path}")
            except KafkaUnavailable as exc:
                log.warning("503 for %s (%d records): %s", request.path, len(records), exc)
                raise Refused(
                    503, "Kafka is unavailable; nothing was accepted, retry later", {"Retry-After": str(RETRY_AFTER_S)}
                ) from exc
            finally:
                self.metrics.produce_seconds.observe(time.perf_counter() - started)
        rejected = [
            {"index": record.line, "reason": str(record.result)}
            for record in records
            if isinstance(record.result, Rejection)
        ]
        answer: dict[str, Any] = {"accepted": len(records) - len(rejected), "rejected": rejected}
        self.metrics.events.labels("accepted").inc(answer["accepted"])
        self.metrics.events.labels("rejected").inc(len(rejected))
        if ignored is not None:
            answer["ignored"] = ignored
            self.metrics.events.labels("ignored").inc(ignored)
        log.debug("202 for %s: accepted %d, rejected %d", request.path, answer["accepted"], len(rejected))
        return _json(202, answer)


def _json(status: int, data: object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type=JSON, headers=headers)


def create_app(settings: Settings, *, insecure_no_auth: bool = False) -> web.Application:
    """The ingest API on `settings.kafka_bootstrap`.

    Requests must be signed with `settings.ingest_secret`, vendor hooks their vendor's way
    with their own secret (a hook without one is not served); `insecure_no_auth` turns every
    check off. Raises `MissingSecret` when there is no secret and no such choice, and
    `MisconfiguredHook` when a vendor's mapping settings are invalid.
    """
    secret = settings.ingest_secret.get_secret_value().encode() if settings.ingest_secret is not None else b""
    if not secret and not insecure_no_auth:
        raise MissingSecret("LEADPULSE_INGEST_SECRET is not set; refusing to accept unsigned requests")
    served = hooks(settings, insecure_no_auth=insecure_no_auth)
    log.info("vendor hooks served: %s", ", ".join(sorted(served)) or "none (their secrets are not set)")
    api = IngestApi(
        KafkaSink(client_options(settings)), None if insecure_no_auth else secret, ApiMetrics(), served, settings.api_public_url
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[api.answer])
    app.add_routes(
        [
            web.post("/v1/events", api.post_events),
            web.post("/v1/hooks/{name}", api.post_hook),
            web.get("/healthz", api.healthz),
            web.get("/metrics", api.metrics_page),
        ]
    )

    async def close_sink(_: web.Application) -> None:
        await api.sink.close()

    app.on_cleanup.append(close_sink)
    return app


@click.command("api")
@click.option("--port", type=int, help="port to listen on (default: LEADPULSE_API_PORT, 9817)")
@click.option("--host", default="0.0.0.0", show_default=True, help="address to listen on")
@click.option("--insecure-no-auth", is_flag=True, help="accept unsigned requests (local experiments only)")
def api_command(port: int | None, host: str, insecure_no_auth: bool) -> None:
    """Serve the ingest API: signed events and CRM webhooks into Kafka.

    POST /v1/events, POST /v1/hooks/{hubspot,segment,form,salesforce}, GET /healthz,
    GET /metrics. Events must be signed with LEADPULSE_INGEST_SECRET, vendor hooks the
    vendor's way with LEADPULSE_HUBSPOT_CLIENT_SECRET, _SEGMENT_SHARED_SECRET, _FORM_SECRET
    (see docs/api.md); events go to Kafka at LEADPULSE_KAFKA_BOOTSTRAP and are answered
    202 only once Kafka acknowledged them.
    """
    from streams.logs import configure_logging

    settings = Settings()
    try:
        app = create_app(settings, insecure_no_auth=insecure_no_auth)
    except MissingSecret as exc:
        raise click.UsageError(f"{exc}; set it, or pass --insecure-no-auth for local experiments") from exc
    except MisconfiguredHook as exc:
        raise click.UsageError(str(exc)) from exc
    configure_logging("info")
    port = port or settings.api_port
    auth = "UNSIGNED requests accepted (--insecure-no-auth)" if insecure_no_auth else "signatures required"
    log.info("ingest API on http://%s:%d, Kafka at %s, %s", host, port, settings.kafka_bootstrap, auth)
    web.run_app(app, host=host, port=port, print=None)

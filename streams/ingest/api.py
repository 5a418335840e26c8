"""`leadpulse api`: the ingest HTTP API of CONTRACT section 5, signed events and vendor webhooks into Kafka.

It never claims an event it has not handed over: a request gets 202 only after Kafka
acknowledged every record of it (events to their topics keyed by `lead_id`, invalid
records to `leadpulse.rejected`). If Kafka cannot take them all within PRODUCE_TIMEOUT_S
the answer is 503 and nothing counts as accepted; some records may still have reached
Kafka, and a retry re-sends them under the same `event_id`s, which the workers count
once. Validation is `route_record`, the same as `publish`, and gives the workers' verdict.

Salesforce's Outbound Messages are SOAP: their route answers an Ack or a SOAP fault
(`streams.ingest.vendors.salesforce_outbound`), never JSON.

Logs carry paths, client addresses, counts and errors: never a payload, never the secret.
A Salesforce outbound path ends in its secret token, so logs and the access log name the
route pattern instead of the path.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import click
import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.events import MAX_RECORD_BYTES, Rejection
from streams.imports.salesforce import object_events
from streams.ingest.records import Record, read_jsonl, wall_clock_ms
from streams.ingest.routes import route_record
from streams.kafka.clients import client_options
from streams.settings import Settings
from streams.ingest.openapi import document_json
from streams.ingest.sink import KafkaSink, KafkaUnavailable
from streams.ingest.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from streams.ingest.vendors import SECRET_SETTINGS, Hook, MisconfiguredHook, hooks, outbound_hook
from streams.ingest.vendors import salesforce_outbound as outbound
from streams.ingest.vendors.common import SignedRequest, map_notifications

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_BODY_BYTES: Final = 1024 * 1024
JSON: Final = "application/json"
NDJSON: Final = "application/x-ndjson"
RETRY_AFTER_S: Final = 5


class MissingSecret(Exception):
    """The API would accept unsigned requests. Set LEADPULSE_INGEST_SECRET (or pass --insecure-no-auth to test)."""


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
    return [Record(raw[:MAX_RECORD_BYTES], route_record(raw, now_ms), index) for index, raw in enumerate(raws)]


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
        salesforce_outbound: outbound.OutboundHook | None = None,
    ) -> None:
        self.sink = sink
        self.secret = secret
        self.metrics = metrics
        self.hooks = dict(served or {})
        self.public_url = public_url.rstrip("/") if public_url else None
        self.outbound = salesforce_outbound

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

    async def post_salesforce_outbound(self, request: web.Request) -> web.Response:
        """`POST /v1/hooks/salesforce/outbound/<token>`: Salesforce's SOAP notifications, Ack'ed once all are in Kafka.

        Every answer is SOAP, as Salesforce shows a fault's text in its delivery status.
        """
        headers: Mapping[str, str] = {}
        try:
            records = await self._outbound_records(request)
            await self._produce(records, f"api {outbound.ROUTE}")
        except (Refused, outbound.Fault) as exc:
            headers = exc.headers if isinstance(exc, Refused) else {}
            body = outbound.fault(exc.status, str(exc))
            return web.Response(status=exc.status, body=body, content_type=outbound.CONTENT_TYPE, charset="utf-8", headers=headers)
        return web.Response(body=outbound.ack(), content_type=outbound.CONTENT_TYPE, charset="utf-8")

    async def _outbound_records(self, request: web.Request) -> list[Record]:
        """The records of a Salesforce message; a malformed one's body goes to the rejected topic before its fault."""
        hook = self.outbound
        if hook is None:
            raise Refused(404, f"hook salesforce/outbound is not served: {outbound.TOKEN_SETTING} is not set")
        if not hook.authorised(request.match_info["token"]):
            log.info("refused %s from %s: not the configured token", outbound.ROUTE, request.remote)
            raise Refused(404, "no such hook")
        body = await self._body(request)
        try:
            return hook.records(body, wall_clock_ms())
        except outbound.Malformed as exc:
            log.info("400 for %s from %s: %s", outbound.ROUTE, request.remote, exc)
            await self._produce([outbound.malformed_record(body, exc)], f"api {outbound.ROUTE}")
            raise
        except outbound.Fault as exc:
            log.warning("%d for %s from %s: %s", exc.status, outbound.ROUTE, request.remote, exc)
            raise

    def _called_url(self, request: web.Request) -> str:
        """The URL the sender called: `public_url` + the path as sent, else what this server saw."""
        base = self.public_url or f"{request.scheme}://{request.host}"
        return base + request.raw_path

    async def healthz(self, request: web.Request) -> web.Response:
        """`GET /healthz`: 200 when Kafka answers a metadata request, else 503."""
        if await self.sink.reachable():
            return _json(200, {"kafka": "ok"})
        return _json(503, {"kafka": "unreachable"})

    async def openapi(self, request: web.Request) -> web.Response:
        """`GET /openapi.json`: the OpenAPI 3.1 document of these routes (`streams/ingest/openapi.yaml`)."""
        return web.Response(body=document_json(), content_type=JSON)

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

    async def _produce(self, records: list[Record], origin: str) -> None:
        """Produce `records` and count them; `Refused(503)`, with nothing counted, unless Kafka took them all."""
        if records:
            started = time.perf_counter()
            try:
                await self.sink.send(records, origin)
            except KafkaUnavailable as exc:
                log.warning("503 for %s (%d records): %s", origin, len(records), exc)
                raise Refused(
                    503, "Kafka is unavailable; nothing was accepted, retry later", {"Retry-After": str(RETRY_AFTER_S)}
                ) from exc
            finally:
                self.metrics.produce_seconds.observe(time.perf_counter() - started)
        rejected = sum(isinstance(record.result, Rejection) for record in records)
        self.metrics.events.labels("accepted").inc(len(records) - rejected)
        self.metrics.events.labels("rejected").inc(rejected)

    async def _ingest(self, request: web.Request, records: list[Record], ignored: int | None = None) -> web.Response:
        """Produce `records`, then answer 202 with per-record reasons, or 503 with nothing accepted."""
        await self._produce(records, f"api {request.path}")
        rejected = [
            {"index": record.line, "reason": str(record.result)}
            for record in records
            if isinstance(record.result, Rejection)
        ]
        answer: dict[str, Any] = {"accepted": len(records) - len(rejected), "rejected": rejected}
        if ignored is not None:
            answer["ignored"] = ignored
            self.metrics.events.labels("ignored").inc(ignored)
        log.debug("202 for %s: accepted %d, rejected %d", request.path, answer["accepted"], len(rejected))
        return _json(202, answer)


def _json(status: int, data: object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type=JSON, headers=headers)


def create_app(
    settings: Settings, *, insecure_no_auth: bool = False, salesforce_objects: outbound.ObjectMapper = object_events
) -> web.Application:
    """The ingest API on `settings.kafka_bootstrap`.

    Requests must be signed with `settings.ingest_secret`, vendor hooks their vendor's way
    with their own secret (a hook without one is not served); `insecure_no_auth` turns every
    check off. Salesforce Outbound Messages map by `salesforce_objects`: the import's rules. Raises `MissingSecret` when there is no secret and no such choice, and
    `MisconfiguredHook` when a vendor's mapping settings are invalid.
    """
    secret = settings.ingest_secret.get_secret_value().encode() if settings.ingest_secret is not None else b""
    if not secret and not insecure_no_auth:
        raise MissingSecret("LEADPULSE_INGEST_SECRET is not set; refusing to accept unsigned requests")
    served = hooks(settings, insecure_no_auth=insecure_no_auth)
    salesforce_outbound = outbound_hook(settings, salesforce_objects, insecure_no_auth=insecure_no_auth)
    names = sorted(served) + ["salesforce/outbound"] * (salesforce_outbound is not None)
    log.info("vendor hooks served: %s", ", ".join(names) or "none (their secrets are not set)")
    api = IngestApi(
        KafkaSink(client_options(settings)),
        None if insecure_no_auth else secret,
        ApiMetrics(),
        served,
        settings.api_public_url,
        salesforce_outbound,
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[api.answer])
    app.add_routes(
        [
            web.post("/v1/events", api.post_events),
            web.post("/v1/hooks/{name}", api.post_hook),
            web.post(outbound.ROUTE, api.post_salesforce_outbound),
            web.get("/healthz", api.healthz),
            web.get("/metrics", api.metrics_page),
            web.get("/openapi.json", api.openapi),
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

    POST /v1/events, POST /v1/hooks/{hubspot,segment,form,salesforce}, POST
    /v1/hooks/salesforce/outbound/<token> (Salesforce Outbound Messages), GET /healthz,
    GET /metrics and GET /openapi.json (the OpenAPI 3.1 document of them all). Events must be signed with LEADPULSE_INGEST_SECRET, vendor hooks the
    vendor's way with LEADPULSE_HUBSPOT_CLIENT_SECRET, _SEGMENT_SHARED_SECRET, _FORM_SECRET;
    Outbound Messages must end in LEADPULSE_SALESFORCE_OUTBOUND_TOKEN and carry
    LEADPULSE_SALESFORCE_ORG_ID (see docs/api.md). Events go to Kafka at
    LEADPULSE_KAFKA_BOOTSTRAP and are answered 202 (an Outbound Message: Ack) only once
    Kafka acknowledged them.
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
    web.run_app(app, host=host, port=port, print=None, access_log_class=RouteAccessLogger)


class RouteAccessLogger(AbstractAccessLogger):
    """The access log with the route pattern, not the path: a Salesforce outbound path ends in its secret token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        match_info = getattr(request, "match_info", None)
        resource = match_info.route.resource if match_info is not None else None
        route = resource.canonical if resource is not None else "(no route)"
        self.logger.info("%s %s %s %d %.3fs", request.remote, request.method, route, response.status, time)

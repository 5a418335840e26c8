"""The ingest API's Kafka side: one idempotent librdkafka producer whose acknowledgements requests await.

Kept apart from the HTTP handlers (`streams.ingest.api`) because it owns a thread: librdkafka
delivers its reports to whichever thread polls, so one thread polls and hands each report
to the event loop of the request waiting for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.events import Rejection
from streams.ingest.publish import rejected_key
from streams.ingest.records import Record
from streams.kafka.clients import KafkaClientOptions
from streams.kafka.diagnose import diagnose
from streams.kafka.rejected import rejection_headers
from streams.settings import INPUT_TOPICS, REJECTED_TOPIC

log = logging.getLogger(__name__)

# Kafka gets 10 s (connecting included) to acknowledge a request's records: enough to ride
# out a leader election (a few seconds) while the sender waits; past that a 503 lets it
# retry rather than hang. healthz gets 2 s, as probes time out quickly.
PRODUCE_TIMEOUT_S: Final = 10.0
HEALTH_TIMEOUT_S: Final = 2.0
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



class KafkaUnavailable(Exception):
    """Kafka did not acknowledge every record in time; the client should retry the whole request."""


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
            if isinstance(record.result, Rejection):
                topic, key = REJECTED_TOPIC, rejected_key(record.raw)
                headers = rejection_headers(record.result, f"{origin}#{record.line}")
            else:
                topic, key, headers = record.result.topic, record.result.lead_id, None
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

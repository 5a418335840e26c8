"""Consumer lag per partition: Kafka's end offsets against the offsets applied in Redis.

The offsets Redis holds are the truth of what the aggregates contain (see
`streams.positions`), so lag measured against them, not against the consumer group's
commits, is what an operator needs: records in Kafka that are not in the numbers yet.
Kafka is asked with a short timeout, and after a failure not again for
`RETRY_AFTER_S`, so a dead broker costs one slow scrape, not every scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from streams.kafka.clients import KafkaClientOptions
from streams.kafka.diagnose import diagnose_sync
from streams.positions import TopicPartition
from streams.settings import INPUT_TOPICS

log = logging.getLogger(__name__)

#: Longest a scrape waits for Kafka: a local broker answers in a few ms, and Prometheus
#: gives a whole scrape 10 s by default.
TIMEOUT_S: Final = 1.0
#: Quiet time after a failed attempt: lag goes missing for at most this long after
#: Kafka is back, and a down broker adds TIMEOUT_S to one scrape in this many seconds.
RETRY_AFTER_S: Final = 30.0


def consumer_lag(end_offsets: Mapping[TopicPartition, int], applied: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Records after the last applied offset of each partition Kafka reports.

    A partition nothing was applied from lags by its end offset: the topics keep
    every record (retention -1), so they start at offset 0.
    """
    return {tp: max(0, end - applied.get(tp, -1) - 1) for tp, end in end_offsets.items()}


class EndOffsets:
    """Reads the end offset of every partition of the input topics, or None if Kafka does not answer.

    One admin connection is kept across scrapes (a few ms per read instead of a new
    bootstrap); a lock serialises concurrent scrapes on it.
    """

    def __init__(
        self,
        kafka: KafkaClientOptions,
        topics: Sequence[str] = INPUT_TOPICS,
        timeout_s: float = TIMEOUT_S,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kafka = kafka
        self._topics = list(topics)
        self._timeout_ms = int(timeout_s * 1000)
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._retry_at = 0.0
        self._admin: Any = None
        self._lock = threading.Lock()

    def read(self) -> dict[TopicPartition, int] | None:
        from kafka.errors import KafkaError

        with self._lock:
            if self._clock() < self._retry_at:
                return None
            try:
                return self._read()
            except (KafkaError, OSError) as error:
                cause = diagnose_sync(self._kafka, self._topics) or error
                log.warning("Kafka end offsets unavailable (%s); consumer lag not exported for %.0f s", cause, self._retry_after_s)
                self._close()
                self._retry_at = self._clock() + self._retry_after_s
                return None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _read(self) -> dict[TopicPartition, int]:
        from kafka import KafkaAdminClient, TopicPartition as KafkaPartition
        from kafka.admin import OffsetSpec

        if self._admin is None:
            self._admin = KafkaAdminClient(
                **self._kafka.kwargs(),
                bootstrap_timeout_ms=self._timeout_ms,
                request_timeout_ms=self._timeout_ms,
                client_id="leadpulse-exporter",
            )
        topics = self._admin.describe_topics(self._topics)
        specs = {
            KafkaPartition(topic["name"], partition["partition_index"]): OffsetSpec.LATEST
            for topic in topics
            for partition in topic["partitions"]
        }
        found = self._admin.list_partition_offsets(specs, timeout_ms=self._timeout_ms) if specs else {}
        return {(tp.topic, tp.partition): int(spec.offset) for tp, spec in found.items()}

    def _close(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            try:
                admin.close()
            except Exception as error:  # a half-dead client must not fail the scrape that retires it
                log.debug("closing the Kafka admin client failed: %s", error)

"""The exporter's collector: CONTRACT section 3 read from Redis at every scrape.

Each `collect()` reads Redis afresh through `aggregates.read` (the code behind
`report --json`, so both publish the same numbers) and yields new metric families:
nothing is cached between scrapes and no sample carries a timestamp, so a number on
/metrics is never older than the scrape. A scrape costs two Redis pipeline round trips
(three with consumer lag), however many segments exist. When Redis cannot be read,
the scrape says so with `leadpulse_redis_up 0` and publishes no business series, never
stale ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from aggregates.read import Health, Series, read_health, read_series
from aggregates.store import AggregateStore
from exporters.lag import EndOffsets, consumer_lag
from streams.positions import TopicPartition
from streams.settings import Settings

log = logging.getLogger(__name__)

HISTOGRAM: Final = "leadpulse_window_time_to_convert_days"
_HISTOGRAM_PARTS: Final = tuple(f"{HISTOGRAM}_{part}" for part in ("bucket", "count", "sum"))

#: HELP of every business family; docs/metrics.md says more.
HELP: Final[dict[str, str]] = {
    "leadpulse_cohort_leads": "Leads created in the cohort (week or month, UTC).",
    "leadpulse_cohort_stage_leads": "Leads of the cohort that reached the stage (cumulative: mql, sql, customer).",
    "leadpulse_cohort_qualified_leads": "Leads of the cohort that reached mql and are not disqualified.",
    "leadpulse_cohort_disqualified_leads": "Leads of the cohort that were disqualified and are not customers.",
    "leadpulse_cohort_customers": "Leads of the cohort that became customers (converted any time up to now).",
    "leadpulse_cohort_conversion_ratio": "Customers / leads of the cohort (0..1).",
    "leadpulse_cohort_qualified_conversion_ratio": "Customers / qualified leads of the cohort (0..1).",
    "leadpulse_cohort_leads_per_customer": "Leads / customers of the cohort (the N of N:1).",
    "leadpulse_window_leads": "Leads created in the rolling window.",
    "leadpulse_window_customers": "Customers of the window: basis cohort = of its leads, basis period = converted in it.",
    "leadpulse_window_conversion_ratio": "Window customers / window leads (0..1; basis period may exceed 1).",
    "leadpulse_window_conversion_ratio_lower": "Lower bound of the 95% Wilson interval of the cohort-basis window ratio.",
    "leadpulse_window_conversion_ratio_upper": "Upper bound of the 95% Wilson interval of the cohort-basis window ratio.",
    "leadpulse_window_deals_won": "Deals whose close (won) falls in the window.",
    "leadpulse_window_deals_lost": "Deals whose close (lost) falls in the window.",
    "leadpulse_window_win_ratio": "Won / (won + lost) deals closed in the window (0..1).",
    "leadpulse_window_won_amount": "Sum of the amounts of deals won in the window.",
    HISTOGRAM: "Whole days from lead creation to conversion of the window's period-basis customers.",
    "leadpulse_orphan_deals": "Won or lost deals whose lead has no lead.created yet.",
}
UNDOCUMENTED: Final = "leadpulse business series (see docs/metrics.md)."


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape read from Redis."""

    series: list[Series]
    health: Health
    applied: dict[TopicPartition, int] | None  # None when consumer lag is off


class LeadpulseCollector:
    """A prometheus_client collector over one pipeline's aggregates (one key prefix).

    `end_offsets` is optional: without it (or while Kafka does not answer) the consumer
    lag series are left out and everything else is unaffected.
    """

    def __init__(self, client: redis.Redis, settings: Settings, end_offsets: EndOffsets | None = None) -> None:
        self._client = client
        self._settings = settings
        self._lag = (AggregateStore(client, settings), end_offsets) if end_offsets is not None else None

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        snapshot = self._read()
        yield GaugeMetricFamily(
            "leadpulse_redis_up", "1 when the exporter could read Redis on this scrape.", value=int(snapshot is not None)
        )
        if snapshot is not None:
            yield from business_families(snapshot.series)
            yield from health_families(snapshot.health)
            if self._lag is not None and snapshot.applied is not None:
                yield from lag_families(self._lag[1], snapshot.applied)
        yield GaugeMetricFamily(
            "leadpulse_scrape_duration_seconds",
            "Time this scrape spent reading Redis and Kafka and building the families.",
            value=time.perf_counter() - started,
        )

    def _read(self) -> Snapshot | None:
        try:
            series = read_series(self._client, self._settings, self._settings.today())
            health = read_health(self._client, self._settings)
            applied = self._lag[0].read_offsets() if self._lag is not None else None
        except redis.RedisError as error:
            log.warning("Redis unreadable on this scrape, no business series published: %s", error)
            return None
        return Snapshot(series, health, applied)


def business_families(series: Iterable[Series]) -> Iterator[Metric]:
    """One family per series name; the time-to-convert parts form one histogram family."""
    gauges: dict[str, GaugeMetricFamily] = {}
    histograms: dict[tuple[tuple[str, str], ...], dict[str, list[Series]]] = {}
    for s in series:
        if s.name in _HISTOGRAM_PARTS:
            key = tuple((k, v) for k, v in s.labels.items() if k != "le")
            histograms.setdefault(key, {}).setdefault(s.name, []).append(s)
            continue
        family = gauges.get(s.name)
        if family is None:
            family = gauges[s.name] = GaugeMetricFamily(s.name, HELP.get(s.name, UNDOCUMENTED))
        family.add_sample(s.name, s.labels, s.value)
    yield from gauges.values()
    if histograms:
        yield _histogram(histograms.values())


def _histogram(parts: Iterable[dict[str, list[Series]]]) -> HistogramMetricFamily:
    """Samples grouped per label set, buckets in bound order, as the text format expects."""
    family = HistogramMetricFamily(HISTOGRAM, HELP[HISTOGRAM])
    for by_name in parts:
        buckets = sorted(by_name.get(f"{HISTOGRAM}_bucket", []), key=lambda s: float(s.labels["le"]))
        for s in [*buckets, *by_name.get(f"{HISTOGRAM}_count", []), *by_name.get(f"{HISTOGRAM}_sum", [])]:
            family.add_sample(s.name, s.labels, s.value)
    return family


def health_families(health: Health) -> Iterator[Metric]:
    """`leadpulse_events_total` and `leadpulse_last_event_timestamp_seconds` (CONTRACT section 3)."""
    events = CounterMetricFamily(
        "leadpulse_events", "Events seen by the workers, by outcome (applied, duplicate, rejected).", labels=["topic", "type", "outcome"]
    )
    for (topic, event_type, outcome), count in sorted(health.events.items()):
        events.add_metric([topic, event_type, outcome], count)
    yield events
    last = GaugeMetricFamily(
        "leadpulse_last_event_timestamp_seconds", "Event time (occurred_at) of the newest event applied, per topic.", labels=["topic"]
    )
    for topic, seconds in sorted(health.last_event_seconds.items()):
        last.add_metric([topic], seconds)
    yield last


def lag_families(reader: EndOffsets, applied: dict[TopicPartition, int]) -> Iterator[Metric]:
    """`leadpulse_kafka_up`, and the lag of every input partition when Kafka answered."""
    end_offsets = reader.read()
    yield GaugeMetricFamily(
        "leadpulse_kafka_up", "1 when the exporter could read Kafka's end offsets on this scrape.", value=int(end_offsets is not None)
    )
    if end_offsets is None:
        return
    lag = GaugeMetricFamily(
        "leadpulse_consumer_lag_messages",
        "Records in the partition after the last offset applied to the aggregates.",
        labels=["topic", "partition"],
    )
    for (topic, partition), behind in sorted(consumer_lag(end_offsets, applied).items()):
        lag.add_metric([topic, str(partition)], behind)
    yield lag

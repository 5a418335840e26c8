"""The exporter's collector: CONTRACT section 3 read from Redis at every scrape.

Each `collect()` reads Redis afresh through `aggregates.read` (the code behind
`report --json`, so both publish the same numbers) and yields new metric families:
nothing is cached between scrapes and no sample carries a timestamp, so a number on
/metrics is never older than the scrape. A scrape costs one Redis pipeline round trip
(two with consumer lag), however many segments exist; it reads the last `leadpulse
verify` result too. When Redis cannot be read,
the scrape says so with `leadpulse_redis_up 0` and publishes no business series, never
stale ones.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby, repeat
from operator import add, itemgetter
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample

from aggregates.connect import SyncRedis
from aggregates.errors import REDIS_ERRORS
from aggregates.read import Health, Series, read_aggregates
from aggregates.series import LE_LABELS, TOUCH_LE_LABELS
from aggregates.store import AggregateStore
from exporters.lag import EndOffsets, consumer_lag
from streams.positions import TopicPartition
from streams.settings import Settings

log = logging.getLogger(__name__)

HISTOGRAM: Final = "leadpulse_window_time_to_convert_seconds"
TOUCH_HISTOGRAM: Final = "leadpulse_window_first_touch_seconds"


def _slots(family: str, labels: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """Position of each sample of a histogram within its label set, as the text format wants
    them: buckets in bound order, then count and sum. Keyed by (name, `le` label or "")."""
    return {
        **{(f"{family}_bucket", le): i for i, le in enumerate(labels)},
        (f"{family}_count", ""): len(labels),
        (f"{family}_sum", ""): len(labels) + 1,
    }


_HISTOGRAM_SLOTS: Final = {HISTOGRAM: _slots(HISTOGRAM, LE_LABELS), TOUCH_HISTOGRAM: _slots(TOUCH_HISTOGRAM, TOUCH_LE_LABELS)}

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
    HISTOGRAM: "Seconds from lead creation to conversion of the window's period-basis customers.",
    TOUCH_HISTOGRAM: "Speed to lead: seconds from creation to first touch of the window's touched leads.",
    "leadpulse_window_follow_up_leads": "The window's leads whose touch deadline has passed, by SLA outcome (met, breached).",
    "leadpulse_window_follow_up_customers": "Of the window's leads whose touch deadline has passed, the customers, by SLA outcome.",
    "leadpulse_window_follow_up_met_ratio": "Met / (met + breached): the window's share of leads touched within the SLA (0..1).",
    "leadpulse_leads_awaiting_touch": "Leads created within the follow-up horizon, not touched, disqualified or won.",
    "leadpulse_leads_overdue_touch": "Leads awaiting touch whose deadline has passed.",
    "leadpulse_oldest_awaiting_touch_age_seconds": "Age of the oldest lead awaiting touch.",
    "leadpulse_leads_stalled": "Open leads at the stage for longer than its stall days (mql: no sql; sql: no deal).",
    "leadpulse_window_matured_leads": "Leads created on days T-N-D .. T-N-1 (window D, within N): all at least N days old.",
    "leadpulse_window_matured_customers": "Matured leads that converted within N x 24 h of creation.",
    "leadpulse_window_matured_conversion_ratio": "Matured customers / matured leads: a final N-day rate (0..1).",
    "leadpulse_check_observed_customers": "Customers the alert check counted (conversion: won T-7 .. T-1; quality: leads of T-44 .. T-1, each within 30 days or its age).",
    "leadpulse_check_expected_customers": "Customers the segment's own history predicts for the same check.",
    "leadpulse_check_drop_ratio": "1 - observed / expected, rounded to 9 decimals (negative for a rise).",
    "leadpulse_check_zscore": "(observed + 0.5 - expected) / sd under no change, with 10% extra variation allowed.",
    "leadpulse_orphan_deals": "Won or lost deals whose lead has no lead.created yet.",
}
UNDOCUMENTED: Final = "leadpulse business series (see docs/metrics.md)."
_new: Final = tuple.__new__
#: The defaults of a `Sample`'s fields after name, labels and value (timestamp, exemplar...).
_SAMPLE_TAIL: Final = tuple(Sample._field_defaults[name] for name in Sample._fields[3:])


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

    def __init__(self, client: SyncRedis, settings: Settings, end_offsets: EndOffsets | None = None) -> None:
        self._client = client
        self._settings = settings
        self._lag = (AggregateStore(client, settings), end_offsets) if end_offsets is not None else None

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        applied = None
        # Paused across the yields too: rendering allocates no cycles either. The series
        # are released inside, or the first collection afterwards would traverse them.
        with _gc_paused():
            snapshot = self._read()
            yield GaugeMetricFamily(
                "leadpulse_redis_up",
                "1 when the exporter could read Redis on this scrape.",
                value=int(snapshot is not None),
            )
            if snapshot is not None:
                yield from business_families(snapshot.series)
                yield from health_families(snapshot.health)
                yield from verify_families(snapshot.health.verified)
                applied = snapshot.applied
            del snapshot
        if self._lag is not None and applied is not None:
            yield from lag_families(self._lag[1], applied)
        yield GaugeMetricFamily(
            "leadpulse_scrape_duration_seconds",
            "Time this scrape spent reading Redis and Kafka and building the families.",
            value=time.perf_counter() - started,
        )

    def _read(self) -> Snapshot | None:
        try:
            series, health = read_aggregates(self._client, self._settings, self._settings.today())
            applied = self._lag[0].read_offsets() if self._lag is not None else None
        except REDIS_ERRORS as error:
            log.warning("Redis unreadable on this scrape, no business series published: %s", error)
            return None
        return Snapshot(series, health, applied)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a scrape builds its objects.

    A 50k-series scrape allocates a few hundred thousand tuples, dicts and lists, none
    in a reference cycle (reference counting frees them all), yet their number alone
    triggers full collections that traverse every object of the process: a fifth of
    the scrape's CPU. Leaves garbage collection off if it already was.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def business_families(series: Iterable[Series]) -> Iterator[Metric]:
    """One gauge family per series name; each histogram's parts (time to convert, speed to lead) form one family.

    Samples are built directly, sharing each series' labels dict, a name's run at a time
    (`build_series` sends them grouped by name): `add_metric` costs a call and a dict per
    sample, and `Sample(...)` its Python-level `__new__`, which at 50k series is a
    noticeable part of a scrape; `_new` is the C constructor it ends in, and a gauge's
    sample is its series tuple plus the default tail, mapped without a Python loop.
    """
    gauges: dict[str, GaugeMetricFamily] = {}
    histograms: dict[str, dict[tuple[str, str, str], list[Sample | None]]] = {family: {} for family in _HISTOGRAM_SLOTS}
    for name, run in groupby(series, key=itemgetter(0)):
        family_name = name.rpartition("_")[0]
        slots = _HISTOGRAM_SLOTS.get(family_name)
        if slots is not None:
            histogram = histograms[family_name]
            for s in run:
                labels = s.labels
                key = (labels["dimension"], labels["segment"], labels["window"])
                parts = histogram.get(key)
                if parts is None:
                    parts = histogram[key] = [None] * len(slots)
                parts[slots[(name, labels.get("le", ""))]] = _new(Sample, (name, labels, s.value, *_SAMPLE_TAIL))
            continue
        family = gauges.get(name)
        if family is None:
            family = gauges[name] = GaugeMetricFamily(name, HELP.get(name, UNDOCUMENTED))
        family.samples += map(_new, repeat(Sample), map(add, run, repeat(_SAMPLE_TAIL)))  # series + tail: all in C
    yield from gauges.values()
    for family_name, histogram in histograms.items():
        if histogram:
            parts_family = HistogramMetricFamily(family_name, HELP[family_name])
            parts_family.samples = [sample for parts in histogram.values() for sample in parts if sample is not None]
            yield parts_family


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


#: HELP of the `leadpulse verify` gauges, by the field of `<prefix>:verify` each publishes.
VERIFY_HELP: Final = {
    "mismatched_series": "Series and leads the last `leadpulse verify` run found differing from a recount of the topics.",
    "checked_events": "Events the last `leadpulse verify` run recounted.",
    "last_success_timestamp_seconds": "When the last `leadpulse verify` run that reached a verdict finished.",
}


def verify_families(verified: dict[str, float]) -> Iterator[Metric]:
    """`leadpulse_verify_*` from the last run's figures; nothing before the first run."""
    for name, value in verified.items():
        yield GaugeMetricFamily(f"leadpulse_verify_{name}", VERIFY_HELP[name], value=value)


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

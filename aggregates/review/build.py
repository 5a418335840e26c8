"""Read what a review shows: three periods' figures and the cohort triangle, from Redis.

Each period is one `read_series` call, the exporter's own read, with a single window as
long as the period and ending on its last day; `leadpulse report --json --as-of END`
with `LEADPULSE_WINDOWS=DAYS` prints exactly the series its figures come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from aggregates.connect import SyncRedis
from aggregates.keys import ALL
from aggregates.leads import read_lead_times
from aggregates.read import read_series
from aggregates.review.alerts import AlertHistory, read_fired_alerts
from aggregates.review.cohorts import CohortTriangle, cohort_triangle
from aggregates.review.figures import SegmentFigures, period_figures, segment_counts, window_settings
from aggregates.review.periods import Period, PeriodKind, review_period
from aggregates.review.shift_share import Decomposition, decompose
from aggregates.series import Segment
from exporters.mixin import CONFIG
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class PeriodView:
    """One period and the figures of each (dimension, segment) in it."""

    period: Period
    figures: dict[Segment, SegmentFigures] = field(default_factory=dict)

    @property
    def overall(self) -> SegmentFigures:
        return self.figures.get((ALL, ALL), SegmentFigures())

    def segments(self, dimension: str) -> dict[str, SegmentFigures]:
        return {segment: f for (dim, segment), f in self.figures.items() if dim == dimension}


@dataclass(frozen=True, slots=True)
class Review:
    """Everything the HTML report shows, already read."""

    as_of: date
    current: PeriodView
    previous: PeriodView
    year_before: PeriodView
    triangle: CohortTriangle
    alerts: AlertHistory
    #: the sales owner's attribute key (the dashboard's owners table) when it is a
    #: configured dimension; None: the owner follow-up table cannot be shown
    owner: str | None = None

    def why(self, base: PeriodView) -> Decomposition | None:
        """The mix/rate split of the change from `base` to the current period, by source."""
        return decompose(segment_counts(base.figures), segment_counts(self.current.figures))


def read_period(client: SyncRedis, settings: Settings, period: Period) -> PeriodView:
    series = read_series(client, window_settings(settings, period), period.end)
    return PeriodView(period, period_figures(series, period))


def period_span(period: Period) -> tuple[datetime, datetime]:
    """The period as UTC instants: its first midnight to the midnight after its last day."""
    start = datetime.combine(period.start, time(), timezone.utc)
    return start, datetime.combine(period.end + timedelta(days=1), time(), timezone.utc)


def read_review(
    client: SyncRedis, settings: Settings, kind: PeriodKind, as_of: date, prometheus_url: str
) -> Review:
    """The review of the latest complete `kind` up to day T, against the one before and a year
    before, with the alerts Prometheus at `prometheus_url` saw fire in it."""
    period = review_period(kind, as_of)
    return Review(
        as_of=as_of,
        current=read_period(client, settings, period),
        previous=read_period(client, settings, period.previous()),
        year_before=read_period(client, settings, period.year_before()),
        triangle=cohort_triangle(read_lead_times(client, settings), period.end, as_of, settings.maturity_days),
        alerts=read_fired_alerts(prometheus_url, *period_span(period)),
        owner=CONFIG.owner_dimension if CONFIG.owner_dimension in settings.attribute_keys else None,
    )

"""One period's figures per segment, picked out of the exporter's own series (pure).

A review reads the series `report --json` prints, with one window as long as the
period and ending on its last day (`window_settings`), so every figure here is one of
those series or a sum of them: nothing is counted a second way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from aggregates.review.periods import Period
from aggregates.review.shift_share import Counts
from aggregates.rules import ratio, wilson_interval
from aggregates.series import Segment, Series
from streams.settings import Settings

#: A segment is too small to judge when its 95% interval spans more than this (10
#: points): its rate, and a change of it, would be ranked by noise.
MAX_INTERVAL_WIDTH: Final = 0.10
_TTC_BUCKETS: Final = "leadpulse_window_time_to_convert_seconds_bucket"
_TOUCH_BUCKETS: Final = "leadpulse_window_first_touch_seconds_bucket"
_HISTOGRAMS: Final = (_TTC_BUCKETS, _TOUCH_BUCKETS)


def _too_wide(interval: tuple[float, float] | None) -> bool:
    """No interval (nothing counted), or one too wide for its share to be ranked."""
    return interval is None or interval[1] - interval[0] > MAX_INTERVAL_WIDTH


def window_settings(settings: Settings, period: Period) -> Settings:
    """The settings whose one window covers exactly the period's days (as of its last day)."""
    return settings.model_copy(update={"windows": str(period.days)})


@dataclass(frozen=True, slots=True)
class SegmentFigures:
    """A segment's leads created in the period and what became of them; deals closed in it."""

    leads: int = 0
    customers: int = 0  # of those leads, customers by now (basis cohort)
    interval: tuple[float, float] | None = None  # 95% Wilson interval of the rate
    mql: int = 0
    sql: int = 0
    qualified: int = 0
    won: int = 0
    lost: int = 0
    won_amount: float = 0.0
    median_days_to_convert: float | None = None  # of the customers won in the period
    #: Follow-up (CONTRACT v1.2): of the leads whose touch deadline passed by the period's
    #: end, those touched by it (met) and not (breached); speed to lead of the touched leads.
    met: int = 0
    breached: int = 0
    median_seconds_to_touch: float | None = None
    met_customers: int = 0  # of the met leads, customers by now
    breached_customers: int = 0

    @property
    def rate(self) -> float | None:
        return ratio(self.customers, self.leads)

    @property
    def leads_per_customer(self) -> float | None:
        return ratio(self.leads, self.customers)

    @property
    def qualified_rate(self) -> float | None:
        return ratio(self.customers, self.qualified)

    @property
    def win_rate(self) -> float | None:
        return ratio(self.won, self.won + self.lost)

    @property
    def within_sla(self) -> float | None:
        """The share of the leads past their deadline that were touched by it."""
        return ratio(self.met, self.met + self.breached)

    @property
    def conversion_by_outcome(self) -> tuple[float | None, float | None]:
        """The lead-to-customer rates of the leads touched within the SLA and of those
        touched late or not at all."""
        return ratio(self.met_customers, self.met), ratio(self.breached_customers, self.breached)

    @property
    def too_small(self) -> bool:
        """No leads, or an interval too wide for its rate to mean anything."""
        return _too_wide(self.interval)

    @property
    def sla_too_small(self) -> bool:
        """No lead past its deadline, or a within-SLA share whose 95% Wilson interval is too wide."""
        return _too_wide(wilson_interval(self.met, self.met + self.breached))


def median_from_buckets(buckets: Mapping[float, float]) -> float | None:
    """The median of a cumulative histogram {upper bound: count}, interpolated as Prometheus's
    `histogram_quantile(0.5, ...)` does; None when it is empty."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank, lower, below = total / 2, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower  # Prometheus's answer too: the highest finite bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 86_400


def period_figures(series: Iterable[Series], period: Period) -> dict[Segment, SegmentFigures]:
    """Figures of every (dimension, segment) with leads or deals in the period."""
    return segment_figures(series, f"{period.days}d", period.months)


def segment_figures(series: Iterable[Series], window: str, months: Iterable[str] = ()) -> dict[Segment, SegmentFigures]:
    """Figures of one window's series; the funnel counts are the sums over the month
    cohorts `months` (the same leads when the window is whole months)."""
    months = set(months)
    values: dict[Segment, dict[str, float]] = {}
    buckets: dict[tuple[str, Segment], dict[float, float]] = {}
    for s in series:
        labels = s.labels
        segment = (labels.get("dimension", ""), labels.get("segment", ""))
        if labels.get("window") == window:
            if s.name in _HISTOGRAMS:
                buckets.setdefault((s.name, segment), {})[float(labels["le"])] = s.value
            elif labels.get("basis", "cohort") == "cohort":
                name = f"{s.name}/{labels['outcome']}" if "outcome" in labels else s.name
                values.setdefault(segment, {})[name] = s.value
        elif labels.get("period") == "month" and labels.get("cohort") in months:
            name = f"{s.name}/{labels['stage']}" if "stage" in labels else s.name
            row = values.setdefault(segment, {})
            row[name] = row.get(name, 0.0) + s.value
    out = {}
    for segment, row in values.items():
        lower, upper = row.get("leadpulse_window_conversion_ratio_lower"), row.get("leadpulse_window_conversion_ratio_upper")
        out[segment] = SegmentFigures(
            leads=int(row.get("leadpulse_window_leads", 0)),
            customers=int(row.get("leadpulse_window_customers", 0)),
            interval=(lower, upper) if lower is not None and upper is not None else None,
            mql=int(row.get("leadpulse_cohort_stage_leads/mql", 0)),
            sql=int(row.get("leadpulse_cohort_stage_leads/sql", 0)),
            qualified=int(row.get("leadpulse_cohort_qualified_leads", 0)),
            won=int(row.get("leadpulse_window_deals_won", 0)),
            lost=int(row.get("leadpulse_window_deals_lost", 0)),
            won_amount=row.get("leadpulse_window_won_amount", 0.0),
            median_days_to_convert=_days(median_from_buckets(buckets.get((_TTC_BUCKETS, segment), {}))),
            met=int(row.get("leadpulse_window_follow_up_leads/met", 0)),
            breached=int(row.get("leadpulse_window_follow_up_leads/breached", 0)),
            median_seconds_to_touch=median_from_buckets(buckets.get((_TOUCH_BUCKETS, segment), {})),
            met_customers=int(row.get("leadpulse_window_follow_up_customers/met", 0)),
            breached_customers=int(row.get("leadpulse_window_follow_up_customers/breached", 0)),
        )
    return out


def segment_counts(figures: Mapping[Segment, SegmentFigures], dimension: str = "source") -> dict[str, Counts]:
    """(leads, customers) per segment of a dimension that partitions the leads, as `decompose` takes them."""
    return {segment: (f.leads, f.customers) for (dim, segment), f in figures.items() if dim == dimension}

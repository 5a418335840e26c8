"""Turn raw counters into the business series of CONTRACT section 3 (pure).

`RawCounters` is what Redis holds, already summed over shards; `build_series` folds
small segments into `other`, sums the window days, and emits one `Series` per gauge.
It is the whole of what `/metrics` and `report --json` publish, so the rules for which
series exist live here:

- a cohort (period, cohort, dimension, segment) with at least one lead publishes all of
  its counts, zeros included, and each ratio whose denominator is not 0;
- a window (window, dimension, segment) publishes when any of its leads, customers
  (either basis) or closed deals is not 0: then all of its counts, zeros included, each
  defined ratio, and the time-to-convert histogram when it has a conversion;
- `leadpulse_orphan_deals` always publishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from aggregates import keys as k
from aggregates.rules import TTC_BOUNDS, published_cohorts, ratio, wilson_interval, window_day_range

Segment = tuple[str, str]  # (dimension, segment)
Vectors = dict[Segment, list[int]]


@dataclass(frozen=True, slots=True)
class Series:
    """One published sample: the shape of `report --json` and of a /metrics line."""

    name: str
    labels: dict[str, str]
    value: float

    def sort_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.labels.items()))


@dataclass(slots=True)
class RawCounters:
    """The counters of CONTRACT section 2 as stored, summed over shards."""

    cohorts: dict[str, Vectors] = field(default_factory=dict)  # cohort label -> vectors
    days: dict[int, Vectors] = field(default_factory=dict)  # UTC epoch day -> vectors
    segment_leads: dict[Segment, int] = field(default_factory=dict)  # all-time leads
    orphans: int = 0


def add_vector(into: Vectors, segment: Segment, vector: Sequence[int]) -> None:
    """Element-wise sum; stored vectors drop trailing zeros, so lengths differ."""
    current = into.setdefault(segment, [])
    if len(current) < len(vector):
        current.extend([0] * (len(vector) - len(current)))
    for i, value in enumerate(vector):
        current[i] += value


def folding(segment_leads: Mapping[Segment, int], max_segments: int) -> dict[Segment, str]:
    """Label of each segment after folding all but the `max_segments` biggest into `other`.

    Decided at read time from all-time lead counts (ties by name), so the stored
    counters stay a pure function of the events whatever arrives first.
    """
    by_dimension: dict[str, list[tuple[int, str]]] = {}
    for (dimension, segment), leads in segment_leads.items():
        by_dimension.setdefault(dimension, []).append((-leads, segment))
    labels: dict[Segment, str] = {}
    for dimension, ranked in by_dimension.items():
        for rank, (_, segment) in enumerate(sorted(ranked)):
            keep = dimension == k.ALL or rank < max_segments
            labels[(dimension, segment)] = segment if keep else k.OTHER_SEGMENT
    return labels


def build_series(
    raw: RawCounters, as_of: date, window_days: Iterable[int], max_segments: int
) -> list[Series]:
    """Every business series as of day T, sorted by name then labels."""
    labels = folding(raw.segment_leads, max_segments)

    def fold(vectors: Mapping[Segment, list[int]], into: Vectors) -> None:
        for (dimension, segment), vector in vectors.items():
            add_vector(into, (dimension, labels.get((dimension, segment), segment)), vector)

    out: list[Series] = [Series("leadpulse_orphan_deals", {}, float(raw.orphans))]
    for period, cohort in published_cohorts(as_of):
        folded: Vectors = {}
        fold(raw.cohorts.get(cohort, {}), folded)
        for segment, vector in folded.items():
            out += _cohort_series(period, cohort, segment, vector)
    for days in window_days:
        folded = {}
        for day in window_day_range(as_of, days):
            fold(raw.days.get(day, {}), folded)
        for segment, vector in folded.items():
            out += _window_series(f"{days}d", segment, vector)
    return sorted(out, key=Series.sort_key)


def _padded(vector: Sequence[int], size: int) -> list[int]:
    return list(vector) + [0] * (size - len(vector))


def _cohort_series(period: str, cohort: str, segment: Segment, vector: Sequence[int]) -> list[Series]:
    leads, mql, sql, customers, qualified, disqualified = _padded(vector, k.COHORT_SLOTS)
    if leads <= 0:
        return []
    base = {"dimension": segment[0], "segment": segment[1], "period": period, "cohort": cohort}
    counts = {
        "leadpulse_cohort_leads": leads,
        "leadpulse_cohort_qualified_leads": qualified,
        "leadpulse_cohort_disqualified_leads": disqualified,
        "leadpulse_cohort_customers": customers,
    }
    out = [Series(name, base, float(value)) for name, value in counts.items()]
    for stage, value in (("mql", mql), ("sql", sql), ("customer", customers)):
        out.append(Series("leadpulse_cohort_stage_leads", {**base, "stage": stage}, float(value)))
    ratios = {
        "leadpulse_cohort_conversion_ratio": ratio(customers, leads),
        "leadpulse_cohort_qualified_conversion_ratio": ratio(customers, qualified),
        "leadpulse_cohort_leads_per_customer": ratio(leads, customers),
    }
    out += [Series(name, base, value) for name, value in ratios.items() if value is not None]
    return out


def _window_series(window: str, segment: Segment, vector: Sequence[int]) -> list[Series]:
    size = k.DAY_TTC_BUCKET0 + len(TTC_BOUNDS) + 1
    v = _padded(vector, size)
    leads, cohort_customers, period_customers = v[k.DAY_LEADS], v[k.DAY_COHORT_CUSTOMERS], v[k.DAY_PERIOD_CUSTOMERS]
    won, lost = v[k.DAY_WON], v[k.DAY_LOST]
    if not any((leads, cohort_customers, period_customers, won, lost)):
        return []
    base = {"dimension": segment[0], "segment": segment[1], "window": window}
    cohort_basis, period_basis = {**base, "basis": "cohort"}, {**base, "basis": "period"}
    out = [
        Series("leadpulse_window_leads", base, float(leads)),
        Series("leadpulse_window_customers", cohort_basis, float(cohort_customers)),
        Series("leadpulse_window_customers", period_basis, float(period_customers)),
        Series("leadpulse_window_deals_won", base, float(won)),
        Series("leadpulse_window_deals_lost", base, float(lost)),
        Series("leadpulse_window_won_amount", base, v[k.DAY_WON_CENTS] / 100),
    ]
    ratios = [
        ("leadpulse_window_conversion_ratio", cohort_basis, ratio(cohort_customers, leads)),
        ("leadpulse_window_conversion_ratio", period_basis, ratio(period_customers, leads)),
        ("leadpulse_window_win_ratio", base, ratio(won, won + lost)),
    ]
    out += [Series(name, labels, value) for name, labels, value in ratios if value is not None]
    interval = wilson_interval(cohort_customers, leads)
    if interval is not None:
        out.append(Series("leadpulse_window_conversion_ratio_lower", base, interval[0]))
        out.append(Series("leadpulse_window_conversion_ratio_upper", base, interval[1]))
    if period_customers:
        cumulative = 0
        buckets = v[k.DAY_TTC_BUCKET0 :]
        for bound, count in zip([*map(str, map(float, TTC_BOUNDS)), "+Inf"], buckets):
            cumulative += count
            out.append(Series("leadpulse_window_time_to_convert_days_bucket", {**base, "le": bound}, float(cumulative)))
        out.append(Series("leadpulse_window_time_to_convert_days_sum", base, float(v[k.DAY_TTC_SUM])))
        out.append(Series("leadpulse_window_time_to_convert_days_count", base, float(period_customers)))
    return out

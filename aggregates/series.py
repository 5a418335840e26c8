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
- a window with a touched lead publishes its speed-to-lead histogram, and one with a
  lead whose deadline passed its met and breached leads (zeros included) and their ratio;
- every segment publishes its leads awaiting touch, overdue and stalled at each stage
  (zeros included), and the oldest awaiting lead's age when one awaits
  (`aggregates.follow_up`);
- a matured cell (window, within, dimension, segment) publishes when it has a matured
  lead: its leads, customers (zeros included) and ratio (`aggregates.matured`);
- a check (check, dimension, segment) publishes its observed and expected customers,
  drop and z score when its baseline expects any customer (`aggregates.checks`);
- `leadpulse_orphan_deals` always publishes.

A scrape builds tens of thousands of series, so this is written for speed: series come
out already in `Series.sort_key` order instead of being sorted (see `build_series`),
and series of one segment share their labels dict.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import chain
from operator import add
from typing import Final, NamedTuple

from aggregates import keys as k
from aggregates.checks import CONVERSION, QUALITY, Check, History, conversion_check, quality_check
from aggregates.follow_up import STALL_STAGES, FollowUpView, follow_up_rows, pending, settled
from aggregates.matured import matured
from aggregates.rules import DAY_MS, TOUCH_BOUNDS, TTC_BOUNDS, day_number, published_cohorts, ratio, wilson_interval, window_day_range

Segment = tuple[str, str]  # (dimension, segment)
Vectors = dict[Segment, list[int]]

#: Histogram bucket labels, in bound order (the order of the stored bucket slots).
LE_LABELS: Final = (*map(str, map(float, TTC_BOUNDS)), "+Inf")
#: The speed-to-lead histogram's, as CONTRACT v1.2 writes them (`le="300"`).
TOUCH_LE_LABELS: Final = (*map(str, TOUCH_BOUNDS), "+Inf")
#: A window's summed day vector: the slots up to the follow-up outcomes, then met and
#: breached, then the customers among them (`aggregates.follow_up.settled`).
_DAY_SLOTS: Final = k.DAY_FOLLOW_UP0 + k.FOLLOW_UP_SLOTS
_MET, _BREACHED = k.DAY_FOLLOW_UP0, k.DAY_FOLLOW_UP0 + 1


class Series(NamedTuple):
    """One published sample: the shape of `report --json` and of a /metrics line.

    A named tuple rather than a dataclass: it is built tens of thousands of times per
    scrape, and tuple construction is several times cheaper.
    """

    name: str
    labels: dict[str, str]
    value: float

    def sort_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.labels.items()))


#: Series by run: the name, then any labels that sort before the row's own.
Runs = defaultdict[tuple[str, ...], list[Series]]
#: `Series(...)` calls the named tuple's Python-level `__new__`; this is the C one it ends
#: in, a third cheaper, for the ~50,000 series of a big scrape.
_new: Final = tuple.__new__
#: The runs of the cohort series (`_cohort_series`), built once, with the vector slots they read.
_COHORT_COUNTS: Final = (
    (("leadpulse_cohort_leads",), k.COHORT_LEADS),
    (("leadpulse_cohort_qualified_leads",), k.COHORT_QUALIFIED),
    (("leadpulse_cohort_disqualified_leads",), k.COHORT_DISQUALIFIED),
    (("leadpulse_cohort_customers",), k.COHORT_CUSTOMERS),
)
_COHORT_RATIOS: Final = (  # (run, numerator slot, denominator slot)
    (("leadpulse_cohort_conversion_ratio",), k.COHORT_CUSTOMERS, k.COHORT_LEADS),
    (("leadpulse_cohort_qualified_conversion_ratio",), k.COHORT_CUSTOMERS, k.COHORT_QUALIFIED),
    (("leadpulse_cohort_leads_per_customer",), k.COHORT_LEADS, k.COHORT_CUSTOMERS),
)
_COHORT_STAGES: Final = ("leadpulse_cohort_stage_leads",)
_STAGE_SLOTS: Final = (("customer", k.COHORT_CUSTOMERS), ("mql", k.COHORT_MQL), ("sql", k.COHORT_SQL))  # label order


@dataclass(slots=True)
class RawCounters:
    """The counters of CONTRACT section 2 as stored, summed over shards."""

    cohorts: dict[str, Vectors] = field(default_factory=dict)  # cohort label -> vectors
    days: dict[int, Vectors] = field(default_factory=dict)  # UTC epoch day -> vectors
    segment_leads: dict[Segment, int] = field(default_factory=dict)  # all-time leads
    orphans: int = 0
    lags: dict[int, Vectors] = field(default_factory=dict)  # UTC epoch day of creation -> lag vectors
    #: UTC epoch day of creation -> each segment's leads awaiting touch, as ms after midnight
    awaiting: dict[int, Vectors] = field(default_factory=dict)


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
    raw: RawCounters,
    as_of: date,
    window_days: Iterable[int],
    max_segments: int,
    maturity_days: Iterable[int] = (),
    fresh_day: int | None = None,
    follow_up: FollowUpView | None = None,
) -> list[Series]:
    """Every business series as of day T, in `Series.sort_key` order (name, then sorted labels).

    The alert checks read the complete days before T, or before `fresh_day` (the day of
    the newest deal event applied) when that is earlier: days the pipeline has not seen
    yet (a feed replaying the past, a stalled CRM sync) are not read as days without
    customers. LeadFeedStalled is the alert for those.

    Produced in that order, not sorted afterwards (sorting was a third of a scrape):
    cohort rows are visited by (cohort, dimension, segment) and window rows by
    (dimension, segment, window), which is sorted-label order because `period` follows
    from `cohort`. Each series lands in a run keyed by its name plus the labels that
    sort before the row's own (`basis`; `dimension` and `le` of histogram buckets), and
    the runs are concatenated in key order.

    `follow_up` says when and how the clock-dependent follow-up series are evaluated (by
    default: at the end of day T, with the default settings).
    """
    view = follow_up or FollowUpView((day_number(as_of) + 1) * DAY_MS)
    # Only the segments that fold, each to its `other`: none in most pipelines.
    labels = folding(raw.segment_leads, max_segments)
    folds = {segment: (segment[0], label) for segment, label in labels.items() if label != segment[1]}
    runs: Runs = defaultdict(list)
    runs[("leadpulse_orphan_deals",)].append(Series("leadpulse_orphan_deals", {}, float(raw.orphans)))
    cohort_rows: list[tuple[dict[str, str], list[int]]] = []
    for cohort, period in sorted((label, period) for period, label in published_cohorts(as_of)):
        folded: Vectors = {}
        _fold(raw.cohorts.get(cohort, {}), folds, folded)
        for (dimension, value), vector in sorted(folded.items()):
            if vector and vector[k.COHORT_LEADS] > 0:
                row = {"dimension": dimension, "segment": value, "period": period, "cohort": cohort}
                cohort_rows.append((row, _padded(vector, k.COHORT_SLOTS)))
    _cohort_series(runs, cohort_rows)
    lengths = sorted(set(window_days))
    newest_first = list(reversed(window_day_range(as_of, lengths[-1] if lengths else 0)))
    rows: list[tuple[Segment, str, list[int]]] = []
    summed: Vectors = {}
    covered = 0
    for length in lengths:  # each window is the shorter one plus its older days
        for day in newest_first[covered:length]:
            _fold(settled(raw.days.get(day, {}), view.last_day - day), folds, summed)
        covered = length
        rows += [(segment, f"{length}d", list(vector)) for segment, vector in summed.items()]
    for segment, window, vector in sorted(rows, key=lambda row: (row[0], row[1])):
        _window_series(runs, window, segment, vector)
    found = pending(raw.days, raw.awaiting, folds, view)
    # A segment whose leads all moved away keeps its `seg` field at 0: not a segment any more.
    segments = {folds.get(segment, segment) for segment, leads in raw.segment_leads.items() if leads} | found.keys()
    for segment, awaiting, overdue, oldest, stalled in follow_up_rows(segments, found, view):
        pair = {"dimension": segment[0], "segment": segment[1]}
        _emit(runs, ("leadpulse_leads_awaiting_touch",), pair, awaiting)
        _emit(runs, ("leadpulse_leads_overdue_touch",), pair, overdue)
        if oldest is not None:
            _emit(runs, ("leadpulse_oldest_awaiting_touch_age_seconds",), pair, oldest / 1000)
        for stage, count in zip(STALL_STAGES, stalled):
            _emit(runs, ("leadpulse_leads_stalled", segment[0], segment[1], stage), {**pair, "stage": stage}, count)
    today = day_number(as_of)
    checked = today if fresh_day is None else min(today, fresh_day)
    for segment, history in sorted(histories(raw, folds).items()):
        _matured_series(runs, segment, history, today, lengths, maturity_days)
        _check_series(runs, segment, CONVERSION, conversion_check(history, checked))
        _check_series(runs, segment, QUALITY, quality_check(history, checked))
    return list(chain.from_iterable(map(runs.__getitem__, sorted(runs))))


def histories(raw: RawCounters, folds: Mapping[Segment, Segment]) -> dict[Segment, History]:
    """Each folded segment's leads by creation day and lag vectors, for matured series and checks."""
    leads: dict[Segment, dict[int, int]] = {}
    for day, vectors in raw.days.items():
        for segment, vector in (_folded(vectors, folds) if folds else vectors).items():
            if vector and vector[k.DAY_LEADS]:
                leads.setdefault(segment, {})[day] = vector[k.DAY_LEADS]
    lags: dict[Segment, dict[int, Sequence[int]]] = {}
    for day, vectors in raw.lags.items():
        for segment, vector in (_folded(vectors, folds) if folds else vectors).items():
            lags.setdefault(segment, {})[day] = vector
    return {segment: History(leads.get(segment, {}), lags.get(segment, {})) for segment in leads.keys() | lags.keys()}


def _folded(vectors: Mapping[Segment, Sequence[int]], folds: Mapping[Segment, Segment]) -> Vectors:
    folded: Vectors = {}
    _fold(vectors, folds, folded)
    return folded


def _fold(vectors: Mapping[Segment, Sequence[int]], folds: Mapping[Segment, Segment], into: Vectors) -> None:
    """Add `vectors` into `into` under their folded segments (`folds`: those that fold, to
    their `other`); stored vectors differ in length."""
    for segment, vector in vectors.items():
        key = folds.get(segment, segment)
        current = into.get(key)
        if current is None:
            into[key] = list(vector)
            continue
        if len(current) < len(vector):
            current.extend([0] * (len(vector) - len(current)))
        current[: len(vector)] = map(add, current, vector)


def _matured_series(
    runs: Runs, segment: Segment, history: History, today: int, windows: Sequence[int], ages: Iterable[int]
) -> None:
    """The matured cells of a segment, visited in sorted-label order (window, then within, as text)."""
    cells = matured(history.leads, history.lags, today, windows, ages)
    for cell in sorted(cells, key=lambda c: (f"{c.window}d", f"{c.within}d")):
        if cell.leads <= 0:
            continue
        labels = {"dimension": segment[0], "segment": segment[1], "window": f"{cell.window}d", "within": f"{cell.within}d"}
        _emit(runs, ("leadpulse_window_matured_leads",), labels, cell.leads)
        _emit(runs, ("leadpulse_window_matured_customers",), labels, cell.customers)
        _emit(runs, ("leadpulse_window_matured_conversion_ratio",), labels, cell.customers / cell.leads)


def _check_series(runs: Runs, segment: Segment, check: str, result: Check | None) -> None:
    """A check's inputs and statistic; nothing when its baseline expects no customer (no division by 0)."""
    if result is None or result.drop is None or result.zscore is None:
        return
    labels = {"check": check, "dimension": segment[0], "segment": segment[1]}
    _emit(runs, ("leadpulse_check_observed_customers", check), labels, result.observed)
    _emit(runs, ("leadpulse_check_expected_customers", check), labels, result.expected)
    _emit(runs, ("leadpulse_check_drop_ratio", check), labels, result.drop)
    _emit(runs, ("leadpulse_check_zscore", check), labels, result.zscore)


def _padded(vector: Sequence[int], size: int) -> list[int]:
    return list(vector) + [0] * (size - len(vector))


def _emit(runs: Runs, key: tuple[str, ...], labels: dict[str, str], value: float) -> None:
    """Append a series named `key[0]` to the run `key`."""
    runs[key].append(_new(Series, (key[0], labels, float(value))))


def _cohort_series(runs: Runs, rows: Sequence[tuple[dict[str, str], Sequence[int]]]) -> None:
    """The series of the cohort rows (labels, full vector), two thirds of a big scrape's: a
    gauge's whole run at a time, without a call per series."""
    for key, slot in _COHORT_COUNTS:
        runs[key] += [_new(Series, (key[0], labels, float(v[slot]))) for labels, v in rows]
    for key, numerator, denominator in _COHORT_RATIOS:  # no ratio over a zero (rules.ratio)
        runs[key] += [_new(Series, (key[0], labels, v[numerator] / v[denominator])) for labels, v in rows if v[denominator]]
    name = _COHORT_STAGES[0]
    runs[_COHORT_STAGES] += [
        _new(Series, (name, {**labels, "stage": stage}, float(v[slot])))
        for labels, v in rows
        for stage, slot in _STAGE_SLOTS  # stage is the last label
    ]


def _window_series(runs: Runs, window: str, segment: Segment, vector: Sequence[int]) -> None:
    v = _padded(vector, _DAY_SLOTS)
    leads, cohort_customers, period_customers = v[k.DAY_LEADS], v[k.DAY_COHORT_CUSTOMERS], v[k.DAY_PERIOD_CUSTOMERS]
    won, lost = v[k.DAY_WON], v[k.DAY_LOST]
    if not (leads or cohort_customers or period_customers or won or lost):
        return
    base = {"dimension": segment[0], "segment": segment[1], "window": window}
    _emit(runs, ("leadpulse_window_leads",), base, leads)
    for basis, customers in (("cohort", cohort_customers), ("period", period_customers)):
        labels = {**base, "basis": basis}
        _emit(runs, ("leadpulse_window_customers", basis), labels, customers)
        share = ratio(customers, leads)
        if share is not None:
            _emit(runs, ("leadpulse_window_conversion_ratio", basis), labels, share)
    _emit(runs, ("leadpulse_window_deals_won",), base, won)
    _emit(runs, ("leadpulse_window_deals_lost",), base, lost)
    _emit(runs, ("leadpulse_window_won_amount",), base, v[k.DAY_WON_CENTS] / 100)
    win = ratio(won, won + lost)
    if win is not None:
        _emit(runs, ("leadpulse_window_win_ratio",), base, win)
    interval = wilson_interval(cohort_customers, leads)
    if interval is not None:
        _emit(runs, ("leadpulse_window_conversion_ratio_lower",), base, interval[0])
        _emit(runs, ("leadpulse_window_conversion_ratio_upper",), base, interval[1])
    if period_customers:
        cumulative = 0
        bucket = "leadpulse_window_time_to_convert_seconds_bucket"
        for le, count in zip(LE_LABELS, v[k.DAY_TTC_BUCKET0 :]):  # without a call each: a quarter of the series
            cumulative += count
            runs[(bucket, segment[0], le)].append(_new(Series, (bucket, {**base, "le": le}, float(cumulative))))
        _emit(runs, ("leadpulse_window_time_to_convert_seconds_sum",), base, v[k.DAY_TTC_SUM] / 1000)
        _emit(runs, ("leadpulse_window_time_to_convert_seconds_count",), base, period_customers)
    _follow_up_series(runs, base, segment, v)


def _follow_up_series(runs: Runs, base: dict[str, str], segment: Segment, v: Sequence[int]) -> None:
    """A window's speed-to-lead histogram (when a lead has a first touch) and SLA outcomes."""
    touched = sum(v[k.DAY_TOUCH_BUCKET0 : k.DAY_STALL_MQL])
    if touched:
        cumulative = 0
        bucket = "leadpulse_window_first_touch_seconds_bucket"
        for le, count in zip(TOUCH_LE_LABELS, v[k.DAY_TOUCH_BUCKET0 :]):
            cumulative += count
            runs[(bucket, segment[0], le)].append(_new(Series, (bucket, {**base, "le": le}, float(cumulative))))
        _emit(runs, ("leadpulse_window_first_touch_seconds_sum",), base, v[k.DAY_TOUCH_SUM] / 1000)
        _emit(runs, ("leadpulse_window_first_touch_seconds_count",), base, touched)
    met, breached = v[_MET], v[_BREACHED]
    if met or breached:
        customers = dict(zip(k.FOLLOW_UP_OUTCOMES, v[_BREACHED + 1 : _DAY_SLOTS]))
        for outcome, count in (("breached", breached), ("met", met)):
            _emit(runs, ("leadpulse_window_follow_up_customers", segment[0], outcome), {**base, "outcome": outcome},
                  customers[outcome])
            _emit(runs, ("leadpulse_window_follow_up_leads", segment[0], outcome), {**base, "outcome": outcome}, count)
        _emit(runs, ("leadpulse_window_follow_up_met_ratio",), base, met / (met + breached))

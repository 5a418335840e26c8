"""A reference model of CONTRACT sections 2 and 3, written from the contract alone.

Plain Python over the whole set of events, no Redis and nothing of `aggregates` but the
`Series` record it returns: each lead's facts are recomputed from its events, then every
series is counted directly. Slow and obvious on purpose; the tests hold the real
pipeline to it. Choices the contract leaves open are the documented ones of leadpulse:
a deal's outcome ties in time go to won, then to the larger amount; amounts are summed
in whole cents; segments beyond `max_segments` (ranked by all-time leads, ties by name)
fold into `other`; which zero counts are published follows `aggregates.series`.
The alert checks are leadpulse's, not the contract's: the reference counts their inputs
(leads per creation day, customers per creation day and whole days to convert) from the
events itself and hands them to the statistics of `aggregates.checks`.
The follow-up series (v1.2) are evaluated at the end of day T; a lead's touch deadline
is its creation plus the SLA around the clock unless a `deadline` function is given
(business hours: tests/aggregates/test_business_hours.py holds that maths to hand-computed
cases). A lead ended (disqualified or won) "before its deadline" ended strictly before it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from aggregates.checks import CONVERSION, QUALITY, History, conversion_check, quality_check
from aggregates.series import Series
from streams.events import Event

Z = 1.959963984540054
DAY_S = 86_400
BUCKETS = tuple(days * DAY_S for days in (1, 3, 7, 14, 30, 60, 90, 180))  # seconds


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def utc_date(ms: int) -> date:
    """The UTC day of an instant: whole days since the epoch, rounded down."""
    return date.fromordinal(EPOCH_ORDINAL + ms // (DAY_S * 1000))


@dataclass
class Lead:
    created: Event | None = None
    stage: int = 0
    disqualified: bool = False
    wins: list[int] = field(default_factory=list)
    deals: dict[str, list[Event]] = field(default_factory=dict)
    touches: list[int] = field(default_factory=list)
    qualified: dict[int, list[int]] = field(default_factory=lambda: {1: [], 2: []})  # stage -> times
    disqualified_at: list[int] = field(default_factory=list)
    any_deal: bool = False

    @property
    def conversion(self) -> int | None:
        return min(self.wins) if self.wins else None

    @property
    def first_touch(self) -> int | None:
        return min(self.touches) if self.touches else None

    def reached(self, stage: int) -> int | None:
        """When the lead reached the stage: its earliest qualification to it or a later one."""
        times = [t for s, ts in self.qualified.items() if s >= stage for t in ts]
        return min(times) if times else None

    @property
    def is_open(self) -> bool:
        """Neither disqualified nor a customer."""
        return not self.disqualified and self.conversion is None

    def outcomes(self) -> list[tuple[bool, int, int]]:
        """(won, close ms, won cents) of each closed deal: its latest won/lost event."""
        result = []
        for closing in self.deals.values():
            last = max(closing, key=lambda e: (e.occurred_ms, e.type == "deal.won", cents(e)))
            won = last.type == "deal.won"
            result.append((won, last.occurred_ms, cents(last) if won else 0))
        return result


def cents(event: Event) -> int:
    """A won deal's amount in integer cents, at most the store's cap of 10**15 (10 trillion)."""
    return round(min((event.amount or 0) * 100, 10**15)) if event.type == "deal.won" else 0


def build_leads(events: Iterable[Event]) -> dict[str, Lead]:
    leads: dict[str, Lead] = defaultdict(Lead)
    for event in {e.event_id: e for e in events}.values():
        lead = leads[event.lead_id]
        if event.type == "lead.created":
            if lead.created is None or (event.occurred_ms, event.event_id) < (
                lead.created.occurred_ms,
                lead.created.event_id,
            ):
                lead.created = event
        elif event.type == "lead.qualified":
            lead.stage = max(lead.stage, 2 if event.stage == "sql" else 1)
            lead.qualified[2 if event.stage == "sql" else 1].append(event.occurred_ms)
        elif event.type == "lead.disqualified":
            lead.disqualified = True
            lead.disqualified_at.append(event.occurred_ms)
        elif event.type == "lead.contacted":
            lead.touches.append(event.occurred_ms)
        if event.type.startswith("deal."):
            lead.any_deal = True
        if event.type in ("deal.won", "deal.lost"):
            assert event.deal_id is not None
            lead.deals.setdefault(event.deal_id, []).append(event)
            if event.type == "deal.won":
                lead.wins.append(event.occurred_ms)
    return leads


def segments_of(lead: Lead, attribute_keys: tuple[str, ...]) -> list[tuple[str, str]]:
    assert lead.created is not None
    created = lead.created
    pairs = [("all", "all"), ("source", created.source), ("campaign", created.campaign)]
    return pairs + [(key, created.attributes.get(key, "unknown")) for key in attribute_keys]


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    denominator = 1 + Z**2 / n
    centre = p + Z**2 / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def reference_series(
    events: Iterable[Event],
    as_of: date,
    windows: tuple[int, ...] = (7, 30, 90),
    max_segments: int = 200,
    attribute_keys: tuple[str, ...] = (),
    ages: tuple[int, ...] = (7, 30, 90),
    deadline: Callable[[int], int] = lambda created: created + 86_400_000,
) -> list[Series]:
    events = list(events)
    leads = build_leads(events)
    known = [lead for lead in leads.values() if lead.created is not None]
    out = [Series("leadpulse_orphan_deals", {}, float(sum(len(l.deals) for l in leads.values() if l.created is None)))]

    popularity: dict[tuple[str, str], int] = defaultdict(int)
    for lead in known:
        for pair in segments_of(lead, attribute_keys):
            popularity[pair] += 1
    kept = set()
    for dimension in {d for d, _ in popularity}:
        ranked = sorted((-n, s) for (d, s), n in popularity.items() if d == dimension)
        kept |= {(dimension, s) for _, s in (ranked if dimension == "all" else ranked[:max_segments])}

    def labelled(lead: Lead) -> list[dict[str, str]]:
        return [
            {"dimension": d, "segment": s if (d, s) in kept else "other"} for d, s in segments_of(lead, attribute_keys)
        ]

    weeks = []
    for back in range(12):
        year, week, _ = (as_of - timedelta(days=7 * back)).isocalendar()
        weeks.append(f"{year}-W{week:02d}")
    months: list[str] = []
    y, m = as_of.year, as_of.month
    for _ in range(12):
        months.append(f"{y}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)

    cohort: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(lambda: [0] * 6)
    for lead in known:
        assert lead.created is not None
        day = utc_date(lead.created.occurred_ms)
        year, week, _ = day.isocalendar()
        customer = lead.conversion is not None
        mql = lead.stage >= 1 or customer
        sql = lead.stage >= 2 or customer
        disqualified = lead.disqualified and not customer
        qualified = mql and not disqualified
        for period, label, published in (
            ("week", f"{year}-W{week:02d}", weeks),
            ("month", f"{day.year}-{day.month:02d}", months),
        ):
            if label not in published:
                continue
            for segment in labelled(lead):
                key = tuple(sorted({**segment, "period": period, "cohort": label}.items()))
                for i, flag in enumerate((True, mql, sql, customer, qualified, disqualified)):
                    cohort[key][i] += int(flag)
    for key, (n, mql_n, sql_n, customers, qualified_n, disqualified_n) in cohort.items():
        labels = dict(key)
        for name, value in (
            ("leadpulse_cohort_leads", n),
            ("leadpulse_cohort_qualified_leads", qualified_n),
            ("leadpulse_cohort_disqualified_leads", disqualified_n),
            ("leadpulse_cohort_customers", customers),
        ):
            out.append(Series(name, labels, float(value)))
        for stage, value in (("mql", mql_n), ("sql", sql_n), ("customer", customers)):
            out.append(Series("leadpulse_cohort_stage_leads", {**labels, "stage": stage}, float(value)))
        out.append(Series("leadpulse_cohort_conversion_ratio", labels, customers / n))
        if qualified_n:
            out.append(Series("leadpulse_cohort_qualified_conversion_ratio", labels, customers / qualified_n))
        if customers:
            out.append(Series("leadpulse_cohort_leads_per_customer", labels, n / customers))

    for days in windows:
        first, last = as_of - timedelta(days=days - 1), as_of
        window: dict[tuple[tuple[str, str], ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for lead in known:
            assert lead.created is not None
            created_ms = lead.created.occurred_ms
            created_in = first <= utc_date(created_ms) <= last
            converted_in = lead.conversion is not None and first <= utc_date(lead.conversion) <= last
            closed_in = [(won, won_cents) for won, close_ms, won_cents in lead.outcomes() if first <= utc_date(close_ms) <= last]
            for segment in labelled(lead):
                w = window[tuple(sorted({**segment, "window": f"{days}d"}.items()))]
                if created_in:
                    w["leads"] += 1
                    w["cohort"] += lead.conversion is not None
                if converted_in:
                    assert lead.conversion is not None
                    ttc = max(0, lead.conversion - created_ms) / 1000  # seconds, exact
                    w["period"] += 1
                    w["ttc_sum"] += ttc
                    w[f"ttc_{next((b for b in BUCKETS if ttc <= b), math.inf)}"] += 1
                for won, won_cents in closed_in:
                    w["won" if won else "lost"] += 1
                    w["cents"] += won_cents
        for key, w in window.items():
            if not (w["leads"] or w["cohort"] or w["period"] or w["won"] or w["lost"]):
                continue
            labels = dict(key)
            cohort_basis, period_basis = {**labels, "basis": "cohort"}, {**labels, "basis": "period"}
            out += [
                Series("leadpulse_window_leads", labels, float(w["leads"])),
                Series("leadpulse_window_customers", cohort_basis, float(w["cohort"])),
                Series("leadpulse_window_customers", period_basis, float(w["period"])),
                Series("leadpulse_window_deals_won", labels, float(w["won"])),
                Series("leadpulse_window_deals_lost", labels, float(w["lost"])),
                Series("leadpulse_window_won_amount", labels, w["cents"] / 100),
            ]
            if w["leads"]:
                out.append(Series("leadpulse_window_conversion_ratio", cohort_basis, w["cohort"] / w["leads"]))
                out.append(Series("leadpulse_window_conversion_ratio", period_basis, w["period"] / w["leads"]))
                lower, upper = wilson(w["cohort"], w["leads"])
                out.append(Series("leadpulse_window_conversion_ratio_lower", labels, lower))
                out.append(Series("leadpulse_window_conversion_ratio_upper", labels, upper))
            if w["won"] + w["lost"]:
                out.append(Series("leadpulse_window_win_ratio", labels, w["won"] / (w["won"] + w["lost"])))
            if w["period"]:
                running = 0
                for bound in (*BUCKETS, math.inf):
                    running += w[f"ttc_{bound}"]
                    le = "+Inf" if bound == math.inf else str(float(bound))
                    out.append(Series("leadpulse_window_time_to_convert_seconds_bucket", {**labels, "le": le}, float(running)))
                out.append(Series("leadpulse_window_time_to_convert_seconds_sum", labels, float(w["ttc_sum"])))
                out.append(Series("leadpulse_window_time_to_convert_seconds_count", labels, float(w["period"])))
    out += follow_up_series(known, labelled, as_of, windows, deadline)
    out += matured_series(known, labelled, as_of, windows, ages)
    deals = [e.occurred_ms for e in {e.event_id: e for e in events}.values() if e.type.startswith("deal.")]
    out += check_series(known, labelled, as_of, max(deals) // 86_400_000 if deals else None)
    return sorted(out, key=lambda s: (s.name, sorted(s.labels.items())))


TOUCH_BUCKETS = (300, 900, 3_600, 14_400, 86_400, 259_200, 604_800)  # seconds


def follow_up_series(
    known: list[Lead],
    labelled: Callable[[Lead], list[dict[str, str]]],
    as_of: date,
    windows: tuple[int, ...],
    deadline: Callable[[int], int],
    horizon_days: int = 30,
    stall_days: tuple[int, int] = (14, 30),
) -> list[Series]:
    """CONTRACT v1.2 section 2, evaluated at N = the end of day T."""
    now = int(datetime.combine(as_of + timedelta(days=1), datetime.min.time(), timezone.utc).timestamp() * 1000)
    out = []
    for days in windows:
        first = as_of - timedelta(days=days - 1)
        cells: dict[tuple[tuple[str, str], ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for lead in known:
            assert lead.created is not None
            created = lead.created.occurred_ms
            if not first <= utc_date(created) <= as_of:
                continue
            touch, due = lead.first_touch, deadline(created)
            ends = [t for t in (*lead.disqualified_at, lead.conversion) if t is not None]
            if due > now:
                outcome = None  # not yet
            elif touch is not None and touch <= due:
                outcome = "met"
            elif ends and min(ends) < due:
                outcome = None  # disqualified or won before its deadline, untouched
            else:
                outcome = "breached"
            for segment in labelled(lead):
                cell = cells[tuple(sorted({**segment, "window": f"{days}d"}.items()))]
                if touch is not None:
                    speed = max(0, touch - created) / 1000
                    cell["touched"] += 1
                    cell["sum"] += speed
                    cell[f"le_{next((b for b in TOUCH_BUCKETS if speed <= b), math.inf)}"] += 1
                if outcome:
                    cell[outcome] += 1
                    cell[f"{outcome}_customers"] += lead.conversion is not None
        for key, cell in cells.items():
            labels = dict(key)
            if cell["touched"]:
                running = 0.0
                for bound in (*TOUCH_BUCKETS, math.inf):
                    running += cell[f"le_{bound}"]
                    le = "+Inf" if bound == math.inf else str(bound)
                    out.append(Series("leadpulse_window_first_touch_seconds_bucket", {**labels, "le": le}, running))
                out.append(Series("leadpulse_window_first_touch_seconds_sum", labels, cell["sum"]))
                out.append(Series("leadpulse_window_first_touch_seconds_count", labels, cell["touched"]))
            if cell["met"] + cell["breached"]:
                for outcome in ("met", "breached"):
                    out.append(Series("leadpulse_window_follow_up_leads", {**labels, "outcome": outcome}, cell[outcome]))
                    out.append(Series("leadpulse_window_follow_up_customers", {**labels, "outcome": outcome},
                                      cell[f"{outcome}_customers"]))
                out.append(Series("leadpulse_window_follow_up_met_ratio", labels, cell["met"] / (cell["met"] + cell["breached"])))
    per_segment: dict[tuple[tuple[str, str], ...], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for lead in known:
        assert lead.created is not None
        created = lead.created.occurred_ms
        awaiting = (
            lead.is_open
            and lead.first_touch is None
            and as_of - timedelta(days=horizon_days - 1) <= utc_date(created) <= as_of
        )
        stalled = []
        if lead.is_open:
            for stage, name, days in ((1, "mql", stall_days[0]), (2, "sql", stall_days[1])):
                reached = lead.reached(stage)
                later = lead.reached(stage + 1) is not None if stage == 1 else lead.any_deal
                if reached is not None and not later and days * DAY_S * 1000 < now - reached <= 365 * DAY_S * 1000:
                    stalled.append(name)
        for segment in labelled(lead):
            cell = per_segment[tuple(sorted(segment.items()))]
            if awaiting:
                cell["awaiting"].append(created)
            for name in stalled:
                cell[name].append(created)
    for key, cell in per_segment.items():
        labels = dict(key)
        waiting = cell["awaiting"]
        out.append(Series("leadpulse_leads_awaiting_touch", labels, float(len(waiting))))
        out.append(Series("leadpulse_leads_overdue_touch", labels, float(sum(deadline(c) <= now for c in waiting))))
        if waiting:
            out.append(Series("leadpulse_oldest_awaiting_touch_age_seconds", labels, (now - min(waiting)) / 1000))
        for name in ("mql", "sql"):
            out.append(Series("leadpulse_leads_stalled", {**labels, "stage": name}, float(len(cell[name]))))
    return out


def matured_series(
    known: list[Lead], labelled: Callable[[Lead], list[dict[str, str]]], as_of: date, windows: tuple[int, ...], ages: tuple[int, ...]
) -> list[Series]:
    """CONTRACT section 2: leads created T-N-D .. T-N-1, customers converted within N x 24 h."""
    out = []
    for days in windows:
        for age in ages:
            first, last = as_of - timedelta(days=age + days), as_of - timedelta(days=age + 1)
            cells: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(lambda: [0, 0])
            for lead in known:
                assert lead.created is not None
                if not first <= utc_date(lead.created.occurred_ms) <= last:
                    continue
                converted = lead.conversion is not None and lead.conversion - lead.created.occurred_ms <= age * 86_400_000
                for segment in labelled(lead):
                    cell = cells[tuple(sorted({**segment, "window": f"{days}d", "within": f"{age}d"}.items()))]
                    cell[0] += 1
                    cell[1] += converted
            for key, (leads_n, customers) in cells.items():
                labels = dict(key)
                out += [
                    Series("leadpulse_window_matured_leads", labels, float(leads_n)),
                    Series("leadpulse_window_matured_customers", labels, float(customers)),
                    Series("leadpulse_window_matured_conversion_ratio", labels, customers / leads_n),
                ]
    return out


def check_series(
    known: list[Lead], labelled: Callable[[Lead], list[dict[str, str]]], as_of: date, newest_deal_day: int | None
) -> list[Series]:
    """The checks' inputs counted from the events: leads by creation day, customers by (day, lag).

    They look at the days before T, or before the day of the newest deal event if earlier.
    """
    leads: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    lags: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * 366))
    for lead in known:
        assert lead.created is not None
        day = lead.created.occurred_ms // 86_400_000
        lag = None
        if lead.conversion is not None:
            lag = math.ceil(max(0, lead.conversion - lead.created.occurred_ms) / 86_400_000)
        for segment in labelled(lead):
            pair = (segment["dimension"], segment["segment"])
            leads[pair][day] += 1
            if lag is not None and lag <= 365:
                lags[pair][day][lag] += 1
    today = (as_of - date(1970, 1, 1)).days
    if newest_deal_day is not None:
        today = min(today, newest_deal_day)
    out = []
    for pair in leads.keys() | lags.keys():
        history = History(leads[pair], lags[pair])
        for name, result in ((CONVERSION, conversion_check(history, today)), (QUALITY, quality_check(history, today))):
            if result is None or result.drop is None or result.zscore is None:
                continue
            labels = {"check": name, "dimension": pair[0], "segment": pair[1]}
            out += [
                Series("leadpulse_check_observed_customers", labels, float(result.observed)),
                Series("leadpulse_check_expected_customers", labels, result.expected),
                Series("leadpulse_check_drop_ratio", labels, result.drop),
                Series("leadpulse_check_zscore", labels, result.zscore),
            ]
    return out


def assert_same_series(actual: list[Series], expected: list[Series]) -> None:
    """Same series, same labels, values equal up to float rounding of the ratio maths."""
    assert [(s.name, s.labels) for s in actual] == [(s.name, s.labels) for s in expected]
    for got, want in zip(actual, expected):
        assert math.isclose(got.value, want.value, rel_tol=1e-12, abs_tol=1e-12), (got, want)

"""The review's figures are the exporter's, and both match the reference model of the contract."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from aggregates.connect import redis_client
from aggregates.review.build import PeriodView, Review, read_review
from aggregates.review.cohorts import cohort_triangle
from aggregates.review.figures import SegmentFigures, period_figures
from aggregates.leads import LeadTimes
from aggregates.review.periods import Period
from streams.events import Event
from streams.settings import Settings
from tests.aggregates.reference import build_leads, reference_series, utc_date
from tests.aggregates.review.conftest import AS_OF
from tests.services import free_port


@pytest.fixture(scope="module", params=["month", "quarter"])
def review(request: pytest.FixtureRequest, generated: tuple[Settings, list[Event]]) -> Review:
    settings, _ = generated
    client = redis_client(settings)
    try:
        return read_review(client, settings, request.param, AS_OF, f"http://127.0.0.1:{free_port()}")
    finally:
        client.close()


def flat(figures: dict[tuple[str, str], SegmentFigures]) -> dict[tuple[str, str], list[float]]:
    """Figures as flat lists, to compare with a float tolerance (the reference's Wilson
    interval is its own formula and may differ in the last bits); NaN stands for None."""
    out = {}
    for segment, f in figures.items():
        values = [getattr(f, name) for name in SegmentFigures.__dataclass_fields__ if name != "interval"]
        values += f.interval or (None, None)
        out[segment] = [float("nan") if v is None else float(v) for v in values]
    return out


def reference_figures(events: list[Event], period: Period) -> dict[tuple[str, str], list[float]]:
    series = reference_series(events, period.end, windows=(period.days,))
    return flat(period_figures(series, period))


def test_each_periods_figures_equal_the_reference_models(review: Review, generated: tuple[Settings, list[Event]]) -> None:
    _, events = generated
    assert review.current.overall.leads and review.previous.overall.leads  # the year before may have none
    for view in (review.current, review.previous, review.year_before):
        got, want = flat(view.figures), reference_figures(events, view.period)
        assert got.keys() == want.keys()
        for segment, values in got.items():
            assert values == pytest.approx(want[segment], rel=1e-12, nan_ok=True), (view.period, segment)


def test_the_cohort_triangle_equals_one_counted_from_the_events(review: Review, generated: tuple[Settings, list[Event]]) -> None:
    settings, events = generated
    times = [LeadTimes(lead.created.occurred_ms, lead.conversion) for lead in build_leads(events).values()
             if lead.created is not None]
    assert review.triangle == cohort_triangle(times, review.current.period.end, AS_OF, settings.maturity_days)


def test_the_matured_cells_equal_the_share_converted_within_n_days_counted_from_the_events(
    review: Review, generated: tuple[Settings, list[Event]]
) -> None:
    settings, events = generated
    leads = [lead for lead in build_leads(events).values() if lead.created is not None]
    shown = 0
    for row in review.triangle.rows:
        members = [lead for lead in leads if utc_date(lead.created.occurred_ms).strftime("%Y-%m") == row.cohort]
        first = date.fromisoformat(f"{row.cohort}-01")
        last_day = date(first.year + first.month // 12, first.month % 12 + 1, 1) - timedelta(days=1)
        for age, cell in zip(settings.maturity_days, row.matured, strict=True):
            if not members or (AS_OF - last_day).days < age + 1:
                assert cell is None, (row.cohort, age)
                continue
            within = sum(lead.conversion is not None and lead.conversion - lead.created.occurred_ms <= age * 86_400_000
                         for lead in members)
            assert cell == within / len(members), (row.cohort, age)
            shown += 1
    assert shown >= 20  # a year of cohorts at three ages: most cells are final


def test_the_triangles_cohorts_of_the_period_hold_exactly_its_leads_and_customers(review: Review) -> None:
    rows = {row.cohort: row for row in review.triangle.rows}
    months = review.current.period.months
    assert sum(rows[m].leads for m in months) == review.current.overall.leads
    assert sum(rows[m].customers for m in months) == review.current.overall.customers


def test_the_review_of_the_month_ending_on_day_t_starts_on_the_first(review: Review) -> None:
    assert review.current.period.end < AS_OF and review.current.period.start.day == 1
    assert review.as_of == AS_OF and review.current.period.end >= date(2026, 9, 30)


def test_the_follow_up_figures_of_a_month_and_the_month_before_are_the_hand_computed_ones(follow_up: Settings) -> None:
    client = redis_client(follow_up)
    try:
        review = read_review(client, follow_up, "month", AS_OF, f"http://127.0.0.1:{free_port()}")
    finally:
        client.close()
    assert review.owner == "owner"

    def got(view: PeriodView) -> dict[tuple[str, str], tuple[int, int, float | None, int, int]]:
        return {segment: (f.met, f.breached, f.median_seconds_to_touch, f.met_customers, f.breached_customers)
                for segment, f in view.figures.items() if segment[0] in ("all", "source", "owner")}

    # November: speeds 600, 7200, 108000 s (paid_search) and 300 s (N5, email); medians
    # interpolated in the buckets 300, 900, 3600, 14400, 86400, 259200 s, e.g. all: rank 2
    # of 4 falls in (300, 900] holding 1 of 1 more: 900; paid_search: rank 1.5 in (3600, 14400]: 9000.
    # Customers: N1 (met) and N3 (breached).
    assert got(review.current) == {
        ("all", "all"): (2, 2, 900.0, 1, 1),
        ("source", "paid_search"): (2, 1, 9000.0, 1, 1),
        ("source", "email"): (0, 1, 150.0, 0, 0),
        ("owner", "ana"): (2, 0, 600.0, 1, 0),
        ("owner", "ben"): (0, 2, 172_800.0, 0, 1),
    }
    # October: O1 touched after 3600 s (met, won), O2 after 259200 s (breached).
    assert got(review.previous) == {
        ("all", "all"): (1, 1, 3600.0, 1, 0),
        ("source", "paid_search"): (1, 1, 3600.0, 1, 0),
        ("owner", "ana"): (1, 0, 2250.0, 1, 0),
        ("owner", "ben"): (0, 1, 172_800.0, 0, 0),
    }
    now, paid = review.current.overall, review.current.segments("source")["paid_search"]
    assert (now.within_sla, now.conversion_by_outcome) == (0.5, (0.5, 0.5))
    assert (paid.within_sla, paid.conversion_by_outcome) == (2 / 3, (0.5, 1.0))


def test_without_an_owner_dimension_the_review_has_no_owner(examples: Settings) -> None:
    client = redis_client(examples)
    try:
        review = read_review(client, examples, "month", date(2026, 6, 30), f"http://127.0.0.1:{free_port()}")
    finally:
        client.close()
    assert review.owner is None and not review.current.segments("owner")

"""The cohort triangle: cumulative conversion by age, cells not reached yet left empty."""

from __future__ import annotations

from datetime import date, datetime, timezone

from aggregates.leads import LeadTimes
from aggregates.review.cohorts import cohort_triangle


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_cells_count_conversions_by_the_end_of_each_month_of_age() -> None:
    leads = [
        LeadTimes(ms("2026-09-10"), ms("2026-09-20")),  # converted in its creation month
        LeadTimes(ms("2026-09-30"), ms("2026-11-02")),  # two months later
        LeadTimes(ms("2026-09-15"), None),
        LeadTimes(ms("2026-09-01"), ms("2026-12-05")),  # after day T: only in the rate to date
        LeadTimes(ms("2026-11-03"), None),
    ]
    triangle = cohort_triangle(leads, last_month=date(2026, 11, 1), as_of=date(2026, 11, 30))
    rows = {row.cohort: row for row in triangle.rows}
    assert [row.cohort for row in triangle.rows][:3] == ["2026-11", "2026-10", "2026-09"]
    assert len(triangle.rows) == 12
    september = rows["2026-09"]
    assert september.cumulative[:3] == (0.25, 0.25, 0.5)
    assert september.cumulative[3:] == (None,) * 9  # December has not ended by day T
    assert (september.leads, september.customers, september.rate_to_date) == (4, 3, 0.75)
    assert rows["2026-11"].cumulative[:1] == (0.0,)
    assert rows["2026-10"].leads == 0 and rows["2026-10"].cumulative == (None,) * 12
    assert rows["2026-10"].rate_to_date is None


def test_cohorts_younger_than_the_age_most_customers_convert_by_are_maturing() -> None:
    # Ten conversions, nine after 5 days and one after 60: the 90% quantile is 60 days.
    leads = [LeadTimes(ms("2026-03-01"), ms("2026-03-06")) for _ in range(9)]
    leads += [LeadTimes(ms("2026-03-01"), ms("2026-04-30")), LeadTimes(ms("2026-11-20"), None)]
    triangle = cohort_triangle(leads, last_month=date(2026, 11, 1), as_of=date(2026, 11, 30))
    assert triangle.maturity_days is not None and 50 < triangle.maturity_days <= 60
    rows = {row.cohort: row for row in triangle.rows}
    assert rows["2026-11"].maturing and not rows["2026-03"].maturing
    assert not rows["2026-10"].maturing  # no leads: nothing to mature


def test_no_leads_give_an_empty_triangle_without_errors() -> None:
    triangle = cohort_triangle([], last_month=date(2026, 11, 1), as_of=date(2026, 12, 1))
    assert triangle.maturity_days is None
    assert all(row.leads == 0 and row.rate_to_date is None for row in triangle.rows)


def test_matured_cells_count_conversions_within_n_days_once_the_whole_cohort_is_n_days_old() -> None:
    leads = [
        LeadTimes(ms("2026-09-10"), ms("2026-09-17")),  # exactly 7 x 24 h: within 7 days
        LeadTimes(ms("2026-09-10"), ms("2026-09-17") + 1),  # a millisecond later: within 30 only
        LeadTimes(ms("2026-09-30"), ms("2026-11-20")),  # 51 days: within 90 only
        LeadTimes(ms("2026-09-01"), None),
        LeadTimes(ms("2026-11-02"), ms("2026-11-03")),
    ]
    triangle = cohort_triangle(leads, last_month=date(2026, 11, 1), as_of=date(2026, 12, 1), matured_days=(7, 30, 90))
    rows = {row.cohort: row for row in triangle.rows}
    assert triangle.matured_days == (7, 30, 90)
    # September's last day, 30 September, is on or before T-N-1 for N = 7 and 30, not for 90.
    assert rows["2026-09"].matured == (0.25, 0.5, None)
    # November ends on 30 November: T-7-1 is 23 November, so not even its 7-day rate is final.
    assert rows["2026-11"].matured == (None, None, None)
    assert rows["2026-10"].matured == (None, None, None)  # no leads


def test_a_cohort_is_matured_at_n_days_exactly_when_its_last_day_is_t_minus_n_minus_1() -> None:
    leads = [LeadTimes(ms("2026-10-31"), ms("2026-11-01"))]
    on_the_day = cohort_triangle(leads, last_month=date(2026, 10, 1), as_of=date(2026, 11, 8), matured_days=(7,))
    day_before = cohort_triangle(leads, last_month=date(2026, 10, 1), as_of=date(2026, 11, 7), matured_days=(7,))
    assert on_the_day.rows[0].matured == (1.0,)
    assert day_before.rows[0].matured == (None,)

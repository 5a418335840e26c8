"""A period's figures are picked out of the exporter's series; the median follows histogram_quantile."""

from __future__ import annotations

from datetime import date

from aggregates.review.figures import SegmentFigures, median_from_buckets, period_figures, segment_counts
from aggregates.review.periods import Period
from aggregates.series import Series

INF = float("inf")


def test_median_interpolates_inside_its_bucket_like_prometheus() -> None:
    # 10 conversions: 2 within 1 day, 6 within 3, 10 within 7: rank 5 lies in (1, 3], 3 of its 4.
    assert median_from_buckets({1.0: 2, 3.0: 6, 7.0: 10, INF: 10}) == 1 + 2 * 3 / 4
    assert median_from_buckets({1.0: 4, INF: 4}) == 0.5
    assert median_from_buckets({1.0: 0, 3.0: 0, INF: 5}) == 3.0  # beyond the last bound: the last bound
    assert median_from_buckets({1.0: 0, INF: 0}) is None
    assert median_from_buckets({}) is None


def test_a_segment_is_too_small_to_judge_when_its_interval_is_wider_than_ten_points() -> None:
    assert SegmentFigures(leads=30, customers=1, interval=(0.006, 0.167)).too_small
    assert not SegmentFigures(leads=1000, customers=0, interval=(0.0, 0.004)).too_small
    assert SegmentFigures().too_small  # no leads at all


def test_missing_figures_are_none_never_a_division_by_zero() -> None:
    empty = SegmentFigures()
    assert (empty.rate, empty.leads_per_customer, empty.qualified_rate, empty.win_rate) == (None,) * 4
    no_customers = SegmentFigures(leads=10)
    assert (no_customers.rate, no_customers.leads_per_customer) == (0.0, None)


def test_period_figures_sum_the_month_cohorts_and_take_the_period_long_window() -> None:
    quarter = Period.starting("quarter", date(2026, 7, 1))
    base = {"dimension": "source", "segment": "email"}
    window = {**base, "window": "92d"}
    series = [
        Series("leadpulse_window_leads", window, 40),
        Series("leadpulse_window_customers", {**window, "basis": "cohort"}, 4),
        Series("leadpulse_window_customers", {**window, "basis": "period"}, 9),
        Series("leadpulse_window_leads", {**base, "window": "30d"}, 7),
        Series("leadpulse_window_deals_won", window, 5),
        Series("leadpulse_window_deals_lost", window, 15),
        Series("leadpulse_window_conversion_ratio_lower", window, 0.04),
        Series("leadpulse_window_conversion_ratio_upper", window, 0.23),
        *(Series("leadpulse_cohort_stage_leads", {**base, "period": "month", "cohort": m, "stage": "mql"}, 5)
          for m in ("2026-07", "2026-08", "2026-09", "2026-10")),
        Series("leadpulse_cohort_qualified_leads", {**base, "period": "month", "cohort": "2026-08"}, 8),
        Series("leadpulse_cohort_stage_leads", {**base, "period": "week", "cohort": "2026-W30", "stage": "mql"}, 99),
    ]
    figures = period_figures(series, quarter)[("source", "email")]
    assert (figures.leads, figures.customers, figures.mql, figures.qualified) == (40, 4, 15, 8)
    assert (figures.won, figures.lost, figures.win_rate, figures.interval) == (5, 15, 0.25, (0.04, 0.23))
    assert segment_counts(period_figures(series, quarter)) == {"email": (40, 4)}


def test_the_follow_up_and_the_medians_are_picked_out_of_the_windows_series() -> None:
    month = Period.starting("month", date(2026, 11, 1))
    window = {"dimension": "owner", "segment": "ana", "window": "30d"}
    touch = [(300, 1), (900, 2), (3600, 2), (14400, 3), (INF, 3)]  # seconds
    convert = [(86400, 1), (259200, 3), (INF, 3)]
    series = [
        Series("leadpulse_window_follow_up_leads", {**window, "outcome": "met"}, 2),
        Series("leadpulse_window_follow_up_leads", {**window, "outcome": "breached"}, 1),
        Series("leadpulse_window_follow_up_met_ratio", window, 2 / 3),
        Series("leadpulse_window_follow_up_customers", {**window, "outcome": "met"}, 1),
        Series("leadpulse_window_follow_up_customers", {**window, "outcome": "breached"}, 0),
        *(Series("leadpulse_window_first_touch_seconds_bucket", {**window, "le": "+Inf" if le == INF else str(le)}, n)
          for le, n in touch),
        *(Series("leadpulse_window_time_to_convert_seconds_bucket", {**window, "le": "+Inf" if le == INF else str(le)}, n)
          for le, n in convert),
    ]
    figures = period_figures(series, month)[("owner", "ana")]
    assert (figures.met, figures.breached, figures.within_sla) == (2, 1, 2 / 3)
    assert figures.conversion_by_outcome == (0.5, 0.0)
    assert figures.median_seconds_to_touch == 300 + 600 * (1.5 - 1) / (2 - 1)  # rank 1.5 in (300, 900]
    assert figures.median_days_to_convert == (86400 + 172800 * (1.5 - 1) / (3 - 1)) / 86400  # in days
    assert figures.sla_too_small  # three leads past their deadline rank nothing
    assert not SegmentFigures(met=2000, breached=1000).sla_too_small

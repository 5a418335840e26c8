"""The dashboard's PromQL builders: the bucket ranges and the shapes every query keeps."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from exporters import queries


def test_bucket_names_cover_the_contracts_buckets_as_adjacent_ranges() -> None:
    names = [name for _, name in queries.bucket_names()]
    assert names == ["under 1 day", "1-3 days", "3-7 days", "7-14 days", "14-30 days", "30-60 days", "60-90 days", "90-180 days", "over 180 days"]


@given(st.sampled_from(queries.BUCKET_DAYS), st.booleans())
def test_each_bucket_bound_matches_exactly_one_range_however_the_client_prints_it(days: int, decimal: bool) -> None:
    le = f"{days * queries.DAY}.0" if decimal else str(days * queries.DAY)
    assert sum(bool(re.search(pattern, le)) for pattern, _ in queries.bucket_names()) == 1


def test_one_takes_a_single_replica_of_the_selected_series() -> None:
    assert queries.one("leadpulse_orphan_deals", queries.JOB) == 'max without (instance) (leadpulse_orphan_deals{job=~"$job"})'


def test_leads_per_customer_divides_by_customers_only_where_there_are_some() -> None:
    assert queries.leads_per_customer(queries.ALL).endswith('basis="cohort"}) > 0)')


def test_quantiles_are_in_days_and_only_where_the_histogram_has_customers() -> None:
    expr = queries.ttc_quantile(0.5, "job, segment")
    assert "/ 86400 and on (job, segment) (sum by (job, segment)" in expr and expr.endswith("> 0)")


def test_drill_down_keeps_the_other_variables_and_the_time_range() -> None:
    url = queries.drill_down("${__value.raw}")
    assert url == "/d/leadpulse-conversion?${datasource:queryparam}&${job:queryparam}&${dimension:queryparam}&${window:queryparam}&var-segment=${__value.raw}&${__url_time_range}"

"""Which series exist and what they say, from raw counters alone (no Redis)."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates import keys as k
from aggregates.read import parse_counters
from aggregates.rules import day_number
from aggregates.series import RawCounters, Segment, Series, Vectors, build_series, folding

AS_OF = date(2026, 6, 15)
T = day_number(AS_OF)


def by_key(series: list[Series]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in series}


def day_vector(**slots: int) -> list[int]:
    vector = [0] * (k.DAY_TTC_BUCKET0 + 9)
    for name, value in slots.items():
        vector[getattr(k, f"DAY_{name.upper()}")] = value
    return vector


def test_folding_keeps_the_biggest_segments_ties_by_name_and_never_folds_all() -> None:
    leads = {("all", "all"): 9, ("source", "b"): 3, ("source", "a"): 3, ("source", "c"): 5, ("source", "d"): 1}
    assert folding(leads, 2) == {
        ("all", "all"): "all",
        ("source", "c"): "c",
        ("source", "a"): "a",
        ("source", "b"): "other",
        ("source", "d"): "other",
    }


def test_folded_segments_are_summed_into_other_before_ratios() -> None:
    raw = RawCounters(
        cohorts={
            "2026-06": {
                ("source", "big"): [4, 0, 0, 1],
                ("source", "small"): [1, 0, 0, 1],
                ("source", "tiny"): [1],
            }
        },
        segment_leads={("source", "big"): 4, ("source", "small"): 1, ("source", "tiny"): 1},
    )
    got = by_key(build_series(raw, AS_OF, (7,), max_segments=1))
    other = (("cohort", "2026-06"), ("dimension", "source"), ("period", "month"), ("segment", "other"))
    assert got[("leadpulse_cohort_leads", other)] == 2
    assert got[("leadpulse_cohort_conversion_ratio", other)] == 0.5
    assert not any(("segment", "small") in labels for _, labels in got)


def test_cohort_publishes_zero_counts_but_no_ratio_over_zero() -> None:
    raw = RawCounters(cohorts={"2026-W24": {("all", "all"): [3]}}, segment_leads={("all", "all"): 3})
    names = {s.name: s.value for s in build_series(raw, AS_OF, (7,), 200) if s.labels.get("cohort") == "2026-W24"}
    assert names["leadpulse_cohort_customers"] == 0 and names["leadpulse_cohort_conversion_ratio"] == 0
    assert "leadpulse_cohort_leads_per_customer" not in names
    assert "leadpulse_cohort_qualified_conversion_ratio" not in names


def test_cohorts_outside_the_twelve_published_are_not_read() -> None:
    raw = RawCounters(cohorts={"2025-06": {("all", "all"): [7]}, "2026-07": {("all", "all"): [1]}})
    assert [s.name for s in build_series(raw, AS_OF, (7,), 200)] == ["leadpulse_orphan_deals"]


def test_window_sums_exactly_its_days_and_builds_a_cumulative_histogram() -> None:
    inside = day_vector(leads=2, cohort_customers=1, period_customers=2, won=1, lost=1, won_cents=1050, ttc_sum=9_000_500)
    inside[k.DAY_TTC_BUCKET0 + 0] = 1  # 0-1 days
    inside[k.DAY_TTC_BUCKET0 + 3] = 1  # 8-14 days (milliseconds summed: 9,000.5 s)
    raw = RawCounters(days={T - 6: {("all", "all"): inside}, T - 7: {("all", "all"): day_vector(leads=100)}})
    got = by_key(build_series(raw, AS_OF, (7,), 200))
    base = (("dimension", "all"), ("segment", "all"), ("window", "7d"))
    assert got[("leadpulse_window_leads", base)] == 2
    assert got[("leadpulse_window_won_amount", base)] == 10.5
    assert got[("leadpulse_window_win_ratio", base)] == 0.5
    assert got[("leadpulse_window_conversion_ratio", (("basis", "period"), *base))] == 1.0
    bucket = "leadpulse_window_time_to_convert_seconds_bucket"
    les = ("86400.0", "259200.0", "604800.0", "1209600.0", "+Inf")
    cumulative = [got[(bucket, tuple(sorted({**dict(base), "le": le}.items())))] for le in les]
    assert cumulative == [1, 1, 1, 2, 2]
    assert got[("leadpulse_window_time_to_convert_seconds_count", base)] == 2
    assert got[("leadpulse_window_time_to_convert_seconds_sum", base)] == 9_000.5


def test_window_of_only_period_customers_has_no_conversion_ratio() -> None:
    raw = RawCounters(days={T: {("all", "all"): day_vector(period_customers=1)}})
    names = {s.name for s in build_series(raw, AS_OF, (7,), 200)}
    assert "leadpulse_window_customers" in names
    assert not names & {"leadpulse_window_conversion_ratio", "leadpulse_window_conversion_ratio_lower", "leadpulse_window_win_ratio"}


def test_series_are_sorted_by_name_then_labels() -> None:
    raw = RawCounters(
        cohorts={"2026-06": {("source", "b"): [1], ("source", "a"): [1]}},
        days={T: {("source", "b"): day_vector(leads=1), ("source", "a"): day_vector(leads=1)}},
    )
    series = build_series(raw, AS_OF, (30, 7), 200)
    assert series == sorted(series, key=Series.sort_key)
    assert series[0].name == "leadpulse_cohort_conversion_ratio" and series[0].labels["segment"] == "a"


SEGMENTS = st.tuples(st.sampled_from(("all", "source", "campaign", "persona")), st.sampled_from(("a", "b", "other", "Z", "é")))
COHORT_VECTORS = st.lists(st.integers(0, 3), max_size=k.COHORT_SLOTS)
DAY_VECTORS = st.lists(st.integers(0, 3), max_size=k.DAY_TTC_BUCKET0 + 9)


def consistent(vector: list[int]) -> list[int]:
    """A day vector as Redis could hold it: no more cohort-basis customers than leads."""
    return [*vector[:1], *(min(vector[1], vector[0]) for _ in vector[1:2]), *vector[2:]]


@settings(max_examples=200, deadline=None)
@given(
    cohorts=st.dictionaries(st.sampled_from(("2026-06", "2026-05", "2026-W24", "2026-W23", "2025-12")), st.dictionaries(SEGMENTS, COHORT_VECTORS)),
    days=st.dictionaries(st.integers(T - 95, T + 1), st.dictionaries(SEGMENTS, DAY_VECTORS.map(consistent))),
    leads=st.dictionaries(SEGMENTS, st.integers(0, 5)),
    windows=st.lists(st.sampled_from((1, 7, 30, 90)), min_size=1, max_size=3),
    max_segments=st.integers(1, 3),
    lags=st.dictionaries(st.integers(T - 180, T), st.dictionaries(SEGMENTS, st.lists(st.integers(0, 3), max_size=40))),
    ages=st.lists(st.sampled_from((1, 7, 30, 90)), max_size=3),
)
def test_series_come_out_sorted_whatever_the_counters(
    cohorts: dict[str, Vectors],
    days: dict[int, Vectors],
    leads: dict[Segment, int],
    windows: list[int],
    max_segments: int,
    lags: dict[int, Vectors],
    ages: list[int],
) -> None:
    """Built in sort order rather than sorted: any counters, windows, ages and folding keep that order."""
    series = build_series(RawCounters(cohorts, days, leads, lags=lags), AS_OF, windows, max_segments, ages)
    assert series == sorted(series, key=Series.sort_key)
    assert len({s.sort_key() for s in series}) == len(series)


def test_parse_counters_sums_shards_of_differing_vector_lengths() -> None:
    shard = [
        [b"all|all", b"2,,1"], [b"source|a", b"1"], [b"all|all", b"1,1,,,,,,2"], [b"all|all", b",,3"],
        [b"all|all", b"3", b"source|a", b"2"], [b"orphans", b"1"],
    ]  # fmt: skip
    other = [[b"all|all", b",1"], [], [], [b"all|all", b"1"], [b"source|a", b"1"], [b"orphans", b"2", b"events|t|lead.created|applied", b"9"]]
    raw = parse_counters([shard, other], ["2026-06", "2026-W24"], [T])
    assert raw.cohorts == {"2026-06": {("all", "all"): [2, 1, 1]}, "2026-W24": {("source", "a"): [1]}}
    assert raw.days == {T: {("all", "all"): [1, 1, 0, 0, 0, 0, 0, 2]}}
    assert raw.lags == {T: {("all", "all"): [1, 0, 3]}}
    assert raw.segment_leads == {("all", "all"): 3, ("source", "a"): 3}
    assert raw.orphans == 3


def test_checks_stop_at_the_day_of_the_newest_deal_event_when_the_feed_is_behind() -> None:
    """A feed that has reached only T-20 is not a segment whose customers vanished."""
    leads = {day: {("all", "all"): day_vector(leads=100)} for day in range(T - 200, T - 20)}
    lags = {day: {("all", "all"): [0] * 15 + [10]} for day in range(T - 200, T - 35)}
    raw = RawCounters(days=leads, lags=lags)

    def drop(fresh_day: int | None) -> float | None:
        found = [s.value for s in build_series(raw, AS_OF, (7,), 200, (), fresh_day) if s.name == "leadpulse_check_drop_ratio" and s.labels["check"] == "conversion"]
        return found[0] if found else None

    assert drop(None) == 1.0  # as of T: nothing won T-7 .. T-1 although leads of weeks ago were due
    assert drop(T - 20) == 0.0  # as of the feed's newest day: wins T-27 .. T-21 as expected
    assert drop(T + 1) == 1.0  # a deal dated tomorrow does not move the checks past T

"""Comparing live aggregates with a recount: exact on series, canonical on lead state."""

from __future__ import annotations

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from aggregates.reconcile import Buckets, LeadMismatch, Mismatch, compare_leads, compare_series
from aggregates.series import Series

labels = st.fixed_dictionaries({"dimension": st.sampled_from(["all", "source"]), "segment": st.sampled_from(["all", "ads", "web"])})
series_lists = st.lists(
    st.builds(Series, st.sampled_from(["leadpulse_cohort_leads", "leadpulse_window_leads"]), labels, st.integers(0, 9).map(float)),
    unique_by=lambda s: s.sort_key(),
)


@given(series_lists)
def test_a_series_list_matches_itself_in_any_order(series: list[Series]) -> None:
    assert compare_series(series, list(reversed(series))) == []


@given(series_lists, st.data())
def test_exactly_the_changed_or_missing_series_are_named_with_both_values(series: list[Series], data: st.DataObject) -> None:
    changed = data.draw(st.sets(st.sampled_from(range(len(series))))) if series else set()
    dropped = data.draw(st.sets(st.sampled_from(range(len(series))))) - changed if series else set()
    recounted = [s._replace(value=s.value + 1) if i in changed else s for i, s in enumerate(series) if i not in dropped]
    found = compare_series(series, recounted)
    assert {(m.name, tuple(sorted(m.labels.items()))) for m in found} == {series[i].sort_key() for i in changed | dropped}
    for m in found:
        assert m.live is not None and m.recounted == (None if m.recounted is None else m.live + 1)


def test_a_mismatch_reads_as_name_labels_live_recounted() -> None:
    line = Mismatch("leadpulse_cohort_leads", {"segment": "ads", "dimension": "source"}, 5.0, None)
    assert str(line) == 'leadpulse_cohort_leads{dimension="source",segment="ads"} live 5 recounted (absent)'


def core(day: int, *state: object) -> bytes:
    """A stored core: mql, disqualified, conversion, deal count, sql, first touch, any deal,
    then (created) created ms, event id, segment name ids, touch deadline."""
    return day.to_bytes(2, "big") + msgpack.packb(list(state), use_bin_type=False)


def deal(deal_id: str, ms: int, won: bool, cents: int) -> bytes:
    return msgpack.packb([deal_id, ms, won, cents], use_bin_type=False)


def test_lead_state_is_the_same_whatever_the_change_day_the_name_ids_and_the_deal_order() -> None:
    live = Buckets(
        {b"#1": b"source|ads", b"#2": b"campaign|none"},
        [[b"cL", core(20400, 2, False, 1000, 2, 3, False, 1, 500, "e1", 1, 2, 86400000), b"d1|L", deal("D1", 900, True, 100), b"d2|L", deal("D2", 950, False, 0)]],
    )
    recounted = Buckets(
        {b"#7": b"source|ads", b"#3": b"campaign|none"},
        [[b"d1|L", deal("D2", 950, False, 0), b"cL", core(20431, 2, False, 1000, 2, 3, False, 1, 500, "e1", 7, 3, 86400000), b"d2|L", deal("D1", 900, True, 100)]],
    )
    assert compare_leads(live, recounted) == []


def test_a_lead_whose_state_or_presence_differs_is_named_once() -> None:
    names = {b"#1": b"source|ads"}
    live = Buckets(names, [[b"cL", core(1, 1, False, False, 0, False, False, 0, 500, "e1", 1, 86400000), b"cM", core(1, False, False, False, 0, False, False, 0, 600, "e2", 1, 86400000)]])
    recounted = Buckets(names, [[b"cL", core(1, 2, False, False, 0, False, False, 0, 500, "e1", 1, 86400000), b"cN", core(1, False, False, False, 0, False, False, 0, 700, "e3", 1, 86400000)]])
    found = compare_leads(live, recounted)
    assert [m.lead_id for m in found] == ["L", "M", "N"]
    assert found[1] == LeadMismatch("M", found[1].live, None) and found[2].live is None

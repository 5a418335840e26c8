"""The import's on-disk memory gives exactly the answers of the in-memory sets and dicts it replaced."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from streams.imports.store import Links, first_seen, temporary_database

KEYS = st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 20), max_size=60)
CHUNKS = st.lists(KEYS, max_size=5)
IDS = st.sampled_from(["a", "b", "c", "00Q5e00000AbCdE"])
MOMENTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(timezone.utc))
ZONE = timezone(timedelta(hours=-5))


@given(CHUNKS)
def test_a_key_is_new_only_the_first_time_it_comes_in_any_chunk_as_a_set_would_say(chunks: list[list[int]]) -> None:
    seen: set[int] = set()
    with temporary_database() as db:
        for chunk in chunks:
            expected = []
            for key in chunk:
                expected.append(key not in seen)
                seen.add(key)
            assert first_seen(db, chunk) == expected


@given(st.booleans(), st.lists(st.tuples(IDS, st.sampled_from(["mql", "sql"]), MOMENTS), max_size=30))
def test_a_record_keeps_its_first_entry_into_a_lead_status_and_its_last_into_a_deal_stage(
    later: bool, entries: list[tuple[str, str, datetime]]
) -> None:
    keep = max if later else min
    expected: dict[tuple[str, str], datetime] = {}
    for record, meaning, moment in entries:
        expected[record, meaning] = keep(expected.get((record, meaning), moment), moment)
    with temporary_database() as db:
        links = Links(db)
        half = len(entries) // 2  # written in two chunks, as the pass writes them
        for part in (entries[:half], entries[half:]):
            links.add_stage_times(later, (("lead", record, meaning, moment.astimezone(ZONE)) for record, meaning, moment in part))
        for record in ("a", "b", "c", "00Q5e00000AbCdE"):
            for meaning in ("mql", "sql"):
                assert links.stage_time("lead", record, meaning) == expected.get((record, meaning))
        assert links.stage_time("deal", "a", "mql") is None


@given(st.lists(st.tuples(IDS, IDS), max_size=20), st.lists(st.tuples(IDS, IDS), max_size=20))
def test_the_first_survivor_of_a_merged_id_and_the_first_lead_of_a_converted_deal_win(
    merged: list[tuple[str, str]], deals: list[tuple[str, str]]
) -> None:
    with temporary_database() as db:
        links = Links(db)
        links.add_merged(merged)
        links.add_deal_leads(deals)
        for key in ("a", "b", "c", "00Q5e00000AbCdE", "z"):
            assert links.survivor(key) == dict(reversed(merged)).get(key)
            assert links.deal_lead(key) == dict(reversed(deals)).get(key)


def test_links_without_a_database_know_nothing_as_for_one_record_pushed_live() -> None:
    links = Links(lead_wins=False)
    assert (links.survivor("a"), links.deal_lead("a"), links.stage_time("lead", "a", "mql")) == (None, None, None)

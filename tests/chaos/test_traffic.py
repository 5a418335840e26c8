"""The soak's own count is sound: each event it makes is one count of the aggregates, whatever arrives how often."""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import Event as Parsed
from streams.events import parse_record
from tests.aggregates.reference import reference_series
from streams.ingest.vendors.form import FormConfig
from streams.ingest.vendors.segment import SegmentConfig
from tests.chaos.traffic import KINDS, Feed, form_submission, kinds, segment_track, tallies


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), events=st.integers(1, 300), resend=st.integers(0, 20))
def test_the_reference_counts_each_distinct_event_of_a_feed_once_whatever_the_order_and_resends(
    seed: int, events: int, resend: int
) -> None:
    now_ms = int(time.time() * 1000)
    rng = random.Random(seed)
    tick = Feed("p", random.Random(seed)).tick(events, now_ms)
    distinct = {e["event_id"]: e for e in [*tick.api, *tick.publish, *(s.event for s in tick.hook)]}
    arrivals = list(distinct.values()) + rng.choices(list(distinct.values()), k=resend)
    rng.shuffle(arrivals)
    parsed = [parse_record(orjson.dumps(e), now_ms) for e in arrivals]
    assert all(isinstance(p, Parsed) for p in parsed)
    today = datetime.now(timezone.utc).date()
    assert tallies(reference_series([p for p in parsed if isinstance(p, Parsed)], today)) == kinds(distinct.values())


def test_a_tick_offers_about_the_rate_asked_over_every_way_in_and_every_kind() -> None:
    tick = Feed("t", random.Random(7)).tick(2000, int(time.time() * 1000))
    made = [*tick.api, *tick.publish, *(s.event for s in tick.hook)]
    assert 2000 <= len(made) < 2100  # whole lead lives, and a few re-sent events
    assert tick.api and tick.publish and {call.hook for call in tick.hook} == {"form", "segment"}
    assert all(kinds(made)[kind] > 0 for kind in KINDS)


def test_a_form_submission_is_what_the_form_hook_maps_to_its_lead_created() -> None:
    created = Feed("f", random.Random(1)).lead(int(time.time() * 1000))[0]
    call = form_submission(created)
    assert FormConfig().map(dict(call.body), 0) == [call.event]
    assert call.event == {**created, "event_id": f"form:{created['event_id']}"}


def test_a_segment_track_call_is_what_the_segment_hook_maps_to_its_deal_lost() -> None:
    lost = {"event_id": "s-1-deal.lost", "type": "deal.lost", "occurred_at": "2026-12-07T10:00:00Z",
            "lead_id": "s-1@soak.example", "deal_id": "s-1-lost"}  # fmt: skip
    call = segment_track(lost)
    assert SegmentConfig().map(dict(call.body), 0) == [call.event]
    assert call.event == {**lost, "event_id": "segment:s-1-deal.lost"}

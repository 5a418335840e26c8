"""The follow-up rules at their boundaries, computed by hand, through the real Redis.

Day T is 2026-06-15, so the clock-dependent series are evaluated at N = 2026-06-16T00:00Z;
the SLA is the default one day around the clock. Each case is a lead of its own source,
so each segment's series shows one rule.
"""

from __future__ import annotations

from datetime import date, datetime
from itertools import count

import pytest
import redis

from aggregates import keys as k
from aggregates.follow_up import FollowUpView, settled
from aggregates.read import read_series
from aggregates.store import AggregateStore
from streams.events import Event
from streams.settings import Settings

AS_OF = date(2026, 6, 15)
_ids = count()


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def event(kind: str, lead: str, at: str, **fields: object) -> Event:
    return Event(event_id=f"e{next(_ids)}", type=kind, occurred_ms=ms(at), lead_id=lead, **fields)  # type: ignore[arg-type]


def created(lead: str, at: str) -> Event:
    return event("lead.created", lead, at, source=lead)


CASES = [
    # each side of the met/breached boundary: touched exactly at the deadline, and 1 ms after
    created("at_deadline", "2026-06-10T09:00:00Z"),
    event("lead.contacted", "at_deadline", "2026-06-11T09:00:00Z"),
    created("after_deadline", "2026-06-10T09:00:00Z"),
    event("lead.contacted", "after_deadline", "2026-06-11T09:00:00.001Z"),
    # a deadline exactly at N has passed; 1 ms later it has not
    created("due_at_n", "2026-06-15T00:00:00Z"),
    created("due_after_n", "2026-06-15T00:00:00.001Z"),
    # disqualified or won before the deadline untouched: neither side; at or after it: breached
    created("disqualified_early", "2026-06-12T08:00:00Z"),
    event("lead.disqualified", "disqualified_early", "2026-06-12T09:00:00Z"),
    created("won_early", "2026-06-12T08:00:00Z"),
    event("deal.won", "won_early", "2026-06-13T07:59:59.999Z", deal_id="D1"),
    created("disqualified_at_deadline", "2026-06-12T08:00:00Z"),
    event("lead.disqualified", "disqualified_at_deadline", "2026-06-13T08:00:00Z"),
    # stalled at mql: more than 14 days before N (by 1 ms) yes, exactly 14 days no
    created("mql_stalled", "2026-05-01T00:00:00Z"),
    event("lead.contacted", "mql_stalled", "2026-05-01T00:10:00Z"),
    event("lead.qualified", "mql_stalled", "2026-06-01T23:59:59.999Z", stage="mql"),
    created("mql_fresh", "2026-05-01T00:00:00Z"),
    event("lead.contacted", "mql_fresh", "2026-05-01T00:10:00Z"),
    event("lead.qualified", "mql_fresh", "2026-06-02T00:00:00Z", stage="mql"),
    # the 365-day horizon: exactly 365 days before N counts, 1 ms earlier does not
    created("mql_year", "2025-06-01T00:00:00Z"),
    event("lead.qualified", "mql_year", "2025-06-16T00:00:00Z", stage="mql"),
    created("mql_older", "2025-06-01T00:00:00Z"),
    event("lead.qualified", "mql_older", "2025-06-15T23:59:59.999Z", stage="mql"),
    # stalled at sql: 30 days and a minute without a deal; the same with a deal.created is not
    created("sql_stalled", "2026-05-01T00:00:00Z"),
    event("lead.qualified", "sql_stalled", "2026-05-16T23:59:00Z", stage="sql"),
    created("sql_with_deal", "2026-05-01T00:00:00Z"),
    event("lead.qualified", "sql_with_deal", "2026-05-16T23:59:00Z", stage="sql"),
    event("deal.created", "sql_with_deal", "2026-05-20T00:00:00Z", deal_id="D2"),
    # a disqualified mql is not stalled
    created("mql_disqualified", "2026-05-01T00:00:00Z"),
    event("lead.qualified", "mql_disqualified", "2026-05-02T00:00:00Z", stage="mql"),
    event("lead.disqualified", "mql_disqualified", "2026-05-03T00:00:00Z"),
]


Published = dict[tuple[str, str, str], float]


@pytest.fixture
def published(redis_client: redis.Redis, key_prefix: str) -> Published:
    """(series name, source, outcome or stage) -> value, of the 90-day window and the
    per-segment series; the cases applied newest first."""
    settings = Settings(key_prefix=key_prefix)
    AggregateStore(redis_client, settings).apply(CASES[::-1])
    series = read_series(redis_client, settings, AS_OF)
    return {
        (s.name, s.labels["segment"], s.labels.get("outcome") or s.labels.get("stage") or ""): s.value
        for s in series
        if s.labels.get("dimension") == "source" and s.labels.get("window") in (None, "90d")
    }


def outcome(published: Published, source: str) -> tuple[float | None, float | None]:
    return (
        published.get(("leadpulse_window_follow_up_leads", source, "met")),
        published.get(("leadpulse_window_follow_up_leads", source, "breached")),
    )


def test_a_touch_at_the_deadline_meets_the_sla_and_one_millisecond_later_breaches_it(published: Published) -> None:
    assert outcome(published, "at_deadline") == (1, 0)
    assert outcome(published, "after_deadline") == (0, 1)


def test_a_deadline_at_the_end_of_t_has_passed_and_one_a_millisecond_later_has_not(published: Published) -> None:
    assert outcome(published, "due_at_n") == (0, 1)
    assert published[("leadpulse_leads_overdue_touch", "due_at_n", "")] == 1
    assert outcome(published, "due_after_n") == (None, None)
    assert published[("leadpulse_leads_awaiting_touch", "due_after_n", "")] == 1
    assert published[("leadpulse_leads_overdue_touch", "due_after_n", "")] == 0
    assert published[("leadpulse_oldest_awaiting_touch_age_seconds", "due_after_n", "")] == 86_399.999


def test_leads_disqualified_or_won_before_the_deadline_untouched_count_on_neither_side(published: Published) -> None:
    assert outcome(published, "disqualified_early") == (None, None)
    assert outcome(published, "won_early") == (None, None)
    assert outcome(published, "disqualified_at_deadline") == (0, 1)
    for source in ("disqualified_early", "won_early", "disqualified_at_deadline"):
        assert published[("leadpulse_leads_awaiting_touch", source, "")] == 0


def test_stalled_at_mql_is_more_than_14_days_and_at_most_365(published: Published) -> None:
    sources = ("mql_stalled", "mql_fresh", "mql_year", "mql_older", "mql_disqualified")
    stalled = {source: published[("leadpulse_leads_stalled", source, "mql")] for source in sources}
    assert stalled == {"mql_stalled": 1, "mql_fresh": 0, "mql_year": 1, "mql_older": 0, "mql_disqualified": 0}


def test_stalled_at_sql_needs_30_days_without_any_deal(published: Published) -> None:
    assert published[("leadpulse_leads_stalled", "sql_stalled", "sql")] == 1
    assert published[("leadpulse_leads_stalled", "sql_stalled", "mql")] == 0  # an sql is past mql
    assert published[("leadpulse_leads_stalled", "sql_with_deal", "sql")] == 0


def test_settled_sums_the_outcomes_of_deadlines_due_by_then_and_keeps_the_rest() -> None:
    head = list(range(1, k.DAY_FOLLOW_UP0 + 1))
    # Due the same day: 1 met, 2 breached, of them 10 and 20 customers; next day 3, 4, 30, 40; then 5, 6, 50, 60.
    vector = [*head, 1, 2, 10, 20, 3, 4, 30, 40, 5, 6, 50, 60]
    segment = ("all", "all")
    assert settled({segment: vector}, -1)[segment][k.DAY_FOLLOW_UP0 :] == [0, 0, 0, 0]
    assert settled({segment: vector}, 1)[segment] == [*head, 4, 6, 40, 60]
    assert settled({segment: [1]}, 5)[segment] == [1, *([0] * (k.DAY_FOLLOW_UP0 - 1)), 0, 0, 0, 0]


def test_the_view_of_a_pinned_day_is_its_end_and_of_now_the_day_so_far() -> None:
    end = FollowUpView(ms("2026-06-16T00:00:00Z"))
    assert (end.today, end.last_day) == (20619, 20619)
    now = FollowUpView(ms("2026-06-16T10:00:00Z"))
    assert (now.today, now.last_day) == (20620, 20619)


#: Leads created 2026-06-10T09:00Z (deadline a day later), by source: their touch, their win,
#: in the order they happened; each lead's outcome and whether it is a customer.
CUSTOMER_CASES = {
    "met_won": (("lead.contacted", "2026-06-10T09:30:00Z"), ("deal.won", "2026-06-12T09:00:00Z")),  # met, won later
    "touched_after_win": (("deal.won", "2026-06-10T10:00:00Z"), ("lead.contacted", "2026-06-10T11:00:00Z")),  # met
    "late_won": (("lead.contacted", "2026-06-11T10:00:00Z"), ("deal.won", "2026-06-12T09:00:00Z")),  # breached
    "won_then_late_touch": (("deal.won", "2026-06-11T12:00:00Z"), ("lead.contacted", "2026-06-11T13:00:00Z")),  # breached
    "late_lost": (("lead.contacted", "2026-06-11T10:00:00Z"),),  # breached, no customer
}


def customer_events() -> list[Event]:
    events = [created(lead, "2026-06-10T09:00:00Z") for lead in CUSTOMER_CASES]
    for lead, steps in CUSTOMER_CASES.items():
        events += [event(kind, lead, at, **({"deal_id": f"D-{lead}"} if kind == "deal.won" else {})) for kind, at in steps]
    return events


@pytest.mark.parametrize("order", ["as_they_happened", "reversed"])
def test_customers_land_in_their_leads_outcome_whatever_order_the_touch_and_the_win_arrive_in(
    order: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(key_prefix=key_prefix)
    store = AggregateStore(redis_client, settings)
    events = sorted(customer_events(), key=lambda e: e.occurred_ms, reverse=order == "reversed")
    for one in events:  # one batch each: every event moves the lead's counters by difference
        store.apply([one])
    got = {
        (s.labels["segment"], s.labels["outcome"]): s.value
        for s in read_series(redis_client, settings, AS_OF)
        if s.name == "leadpulse_window_follow_up_customers" and s.labels["dimension"] == "source"
        and s.labels["window"] == "7d"
    }
    assert got == {
        ("met_won", "met"): 1, ("met_won", "breached"): 0,
        ("touched_after_win", "met"): 1, ("touched_after_win", "breached"): 0,
        ("late_won", "met"): 0, ("late_won", "breached"): 1,
        ("won_then_late_touch", "met"): 0, ("won_then_late_touch", "breached"): 1,
        ("late_lost", "met"): 0, ("late_lost", "breached"): 0,
    }

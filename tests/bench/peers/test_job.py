"""The peers' core job in memory: what their counts must equal."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.bench.peers.job import expected_counts
from tests.feeds import BAD_RECORDS, synthetic_feed


def created(lead: str, source: str) -> bytes:
    return orjson.dumps({"type": "lead.created", "lead_id": lead, "source": source})


def won(lead: str) -> bytes:
    return orjson.dumps({"type": "deal.won", "lead_id": lead, "deal_id": f"{lead}-D"})


def test_a_lead_counts_once_under_its_first_source_and_a_customer_once_whatever_the_order() -> None:
    records = [won("a"), created("a", "email"), created("a", "partner"), won("a"), created("b", "email"),
               created("c", "partner")]  # fmt: skip
    assert expected_counts(records) == {"email": (2, 1), "partner": (1, 0)}


def test_a_won_deal_without_a_lead_counts_for_nothing() -> None:
    assert expected_counts([won("ghost")]) == {}


def test_records_that_are_not_a_countable_object_count_for_nothing() -> None:
    malformed = [*BAD_RECORDS, b'{"type": "lead.created", "lead_id": "x"}', b'{"type": "lead.qualified", "lead_id": "y"}',
                 b'{"type": "lead.created", "lead_id": 7, "source": "email"}']  # fmt: skip
    assert expected_counts(malformed) == {}


def created_lead(raw: bytes) -> str | None:
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return fields.get("lead_id") if isinstance(fields, dict) and fields.get("type") == "lead.created" else None


FEED = synthetic_feed(60, 1_800_000_000_000, seed=4) + list(BAD_RECORDS)
CREATED_LEADS = {lead for raw in FEED if (lead := created_lead(raw)) is not None}


@given(st.lists(st.sampled_from(FEED), max_size=100))
def test_re_sending_records_already_delivered_changes_no_count(resent: list[bytes]) -> None:
    assert expected_counts(FEED + resent) == expected_counts(FEED)


@given(st.permutations(FEED))
def test_any_order_gives_every_lead_once_and_customers_within_leads(feed: list[bytes]) -> None:
    counts = expected_counts(feed)
    assert sum(n for n, _ in counts.values()) == len(CREATED_LEADS)
    assert sum(c for _, c in counts.values()) == sum(c for _, c in expected_counts(FEED).values())
    assert all(0 <= customers <= n for n, customers in counts.values())

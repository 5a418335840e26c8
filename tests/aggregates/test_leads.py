"""Lead times read back from the stored lead state are each lead's earliest created and won."""

from __future__ import annotations

import redis

from aggregates.leads import LeadTimes, read_lead_times
from aggregates.store import AggregateStore
from streams.settings import Settings
from tests import contract_examples
from tests.aggregates.reference import build_leads


def test_every_created_lead_is_read_back_with_its_creation_and_conversion_time(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    events = contract_examples.feed_events()
    settings = Settings(key_prefix=key_prefix, as_of=contract_examples.AS_OF)
    AggregateStore(redis_client, settings).apply(events, rejected={})
    want = sorted(LeadTimes(lead.created.occurred_ms, lead.conversion)
                  for lead in build_leads(events).values() if lead.created is not None)
    got = sorted(read_lead_times(redis_client, settings))
    assert got == want
    assert any(t.converted_ms is None for t in got) and any(t.converted_ms is not None for t in got)
    assert len(got) < len(build_leads(events))  # the orphan deal's lead has no lead.created: skipped

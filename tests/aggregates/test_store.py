"""AggregateStore against the real Redis: outcomes, offsets, health, isolation, recovery."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
import redis
import redis.asyncio
from redis.crc import key_slot

from aggregates import store as store_module
from aggregates.errors import LayoutMismatch, ReshardingInProgress
from aggregates.keys import CLUSTER_SHARDS, KeyLayout
from aggregates.read import Series, read_health, read_series
from aggregates.store import MAX_AMOUNT_CENTS, AggregateStore, AsyncAggregateStore, stored_event_id
from streams.events import Event
from streams.positions import OffsetAdvance
from streams.settings import DEALS_TOPIC, LEADS_TOPIC, Settings
from tests import services

AS_OF = date(2026, 6, 15)
T0 = int(datetime(2026, 6, 10, tzinfo=timezone.utc).timestamp() * 1000)
TP = (LEADS_TOPIC, 3)


def created(event_id: str, lead: str, ms: int = T0, source: str = "email") -> Event:
    return Event(event_id=event_id, type="lead.created", occurred_ms=ms, lead_id=lead, source=source)


def won(event_id: str, lead: str, ms: int = T0, amount: float | None = None, deal: str = "D") -> Event:
    return Event(event_id=event_id, type="deal.won", occurred_ms=ms, lead_id=lead, deal_id=deal, amount=amount)


def series_value(series: list[Series], name: str, **labels: str) -> float | None:
    return next((s.value for s in series if s.name == name and s.labels == labels), None)


def test_outcomes_count_a_resent_or_superseded_event_as_duplicate(redis_client: redis.Redis, key_prefix: str) -> None:
    store = AggregateStore(redis_client, Settings(key_prefix=key_prefix))
    mql = Event(event_id="q1", type="lead.qualified", occurred_ms=T0, lead_id="L", stage="mql")
    sql = Event(event_id="q2", type="lead.qualified", occurred_ms=T0, lead_id="L", stage="sql")
    assert store.apply([created("c1", "L"), sql]).counts == {"applied": 2, "duplicate": 0, "rejected": 0}
    assert store.apply([created("c1", "L"), mql, created("c0", "L", T0 + 1)]).counts["duplicate"] == 3


def test_offsets_move_only_over_what_every_shard_holds_and_never_back(redis_client: redis.Redis, key_prefix: str) -> None:
    settings = Settings(key_prefix=key_prefix, shards=4)
    store = AggregateStore(redis_client, settings)
    assert store.read_offsets() == {}
    assert store.apply([created("c1", "L")], offsets={TP: OffsetAdvance(-1, 10)}).refused == {}
    assert store.read_offsets() == {TP: 10}
    # Another owner moved on to 10 while this worker saw 5: its records 6..20 are applied now.
    assert store.apply([created("c2", "M")], offsets={TP: OffsetAdvance(5, 20)}).refused == {}
    assert store.read_offsets() == {TP: 20}
    assert store.apply([], offsets={TP: OffsetAdvance(-1, 15)}).refused == {}
    assert store.read_offsets() == {TP: 20}  # a late worker never moves it back
    # Shard 2's node lost its last writes (a failover): that shard holds less than expected.
    redis_client.hset(store.layout.offsets(2), f"{TP[0]}|{TP[1]}", 12)
    assert store.read_offsets() == {TP: 12}
    assert store.apply([created("c3", "N")], offsets={TP: OffsetAdvance(20, 30)}).refused == {TP: 12}
    assert store.read_offsets() == {TP: 12}
    # Re-read from 13: every shard then holds 30, whatever each held before.
    assert store.apply([created("c3", "N")], offsets={TP: OffsetAdvance(12, 30)}).refused == {}
    assert {int(redis_client.hget(store.layout.offsets(s), f"{TP[0]}|{TP[1]}") or -1) for s in range(4)} == {30}


def test_health_counts_outcomes_rejections_and_the_newest_applied_time(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(key_prefix=key_prefix, shards=4)
    store = AggregateStore(redis_client, settings)
    store.apply([created("c1", "L"), created("c1", "L"), won("w1", "L", T0 + 5000)], rejected={DEALS_TOPIC: 2})
    health = read_health(redis_client, settings)
    assert health.events == {
        (LEADS_TOPIC, "lead.created", "applied"): 1,
        (LEADS_TOPIC, "lead.created", "duplicate"): 1,
        (DEALS_TOPIC, "deal.won", "applied"): 1,
        (DEALS_TOPIC, "invalid", "rejected"): 2,
    }
    assert health.last_event_seconds == {LEADS_TOPIC: T0 / 1000, DEALS_TOPIC: (T0 + 5000) / 1000}


@pytest.mark.parametrize("amount", [1e300, sys.float_info.max], ids=["huge", "float-maximum"])
def test_amounts_are_capped_even_where_their_cents_overflow_a_float(
    redis_client: redis.Redis, key_prefix: str, amount: float
) -> None:
    settings = Settings(key_prefix=key_prefix, as_of=AS_OF)
    AggregateStore(redis_client, settings).apply([created("c1", "L"), won("w1", "L", amount=amount)])
    series = read_series(redis_client, settings, AS_OF)
    assert series_value(series, "leadpulse_window_won_amount", dimension="all", segment="all", window="7d") == (
        MAX_AMOUNT_CENTS / 100
    )


def test_the_sweep_drops_lead_state_unchanged_for_longer_than_the_retention(
    redis_client: redis.Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(key_prefix=key_prefix, shards=1, lead_retention_days=2, as_of=AS_OF)
    store = AggregateStore(redis_client, settings)
    layout = store.layout
    (_, old), (_, fresh) = layout.place("L"), layout.place("M")
    assert old != fresh
    store.apply([created("c1", "L"), won("w1", "L", deal="D1"), won("w2", "L", deal="D2")])
    bucket = layout.leads(0, old)
    assert redis_client.hlen(bucket) == 3  # the lead and its two deals

    def sweep_after(days: int, cursor: int) -> None:
        """Apply an event of M with the clock `days` ahead, the sweep's next bucket `cursor`."""
        monkeypatch.setattr(store_module, "utc_today", lambda: today + days)
        redis_client.hset(layout.health(0), "sweep", cursor - 1)
        store.apply([created(f"m{days}", "M", source="ads")])

    today = store_module.utc_today()
    sweep_after(2, old)
    assert redis_client.hlen(bucket) == 3  # 2 days unchanged: kept
    sweep_after(3, old)
    assert redis_client.exists(bucket) == 0  # gone with its deals
    assert redis_client.hexists(layout.leads(0, fresh), "cM")  # another bucket: untouched
    # An event of a swept lead starts it afresh (counters keep what it contributed).
    assert store.apply([created("c1", "L")]).counts["applied"] == 1
    leads = series_value(read_series(redis_client, settings, AS_OF), "leadpulse_window_leads", dimension="all", segment="all", window="7d")
    assert leads == 3


def test_clear_deletes_this_prefix_only(redis_client: redis.Redis, key_prefix: str) -> None:
    neighbour = f"{key_prefix}x"
    mine = AggregateStore(redis_client, Settings(key_prefix=key_prefix))
    theirs = AggregateStore(redis_client, Settings(key_prefix=neighbour))
    try:
        for store in (mine, theirs):
            store.apply([created("c1", "L"), created("c2", "M")], offsets={TP: OffsetAdvance(-1, 1)})
        assert mine.clear() > 0
        assert list(redis_client.scan_iter(match=f"{key_prefix}:*")) == []
        assert theirs.read_offsets() == {TP: 1}
        assert mine.apply([created("c1", "L")]).counts["applied"] == 1
    finally:
        theirs.clear()


def test_other_shards_or_dimensions_on_the_same_prefix_are_refused(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    AggregateStore(redis_client, Settings(key_prefix=key_prefix, shards=4)).apply([created("c1", "L")])
    with pytest.raises(LayoutMismatch, match="leadpulse rebuild"):
        AggregateStore(redis_client, Settings(key_prefix=key_prefix, shards=8)).apply([created("c2", "M")])
    with pytest.raises(LayoutMismatch):
        AggregateStore(redis_client, Settings(key_prefix=key_prefix, shards=4, attribute_dimensions="persona")).apply([])


def test_a_prefix_of_the_previous_layout_is_refused_until_rebuilt(redis_client: redis.Redis, key_prefix: str) -> None:
    """0.1.0 wrote layout v2 (no lag counters): the upgrade path is `rebuild`, which clears first."""
    settings = Settings(key_prefix=key_prefix)
    redis_client.set(f"{key_prefix}:layout", "v2;shards=16;buckets=1024;attributes=")
    store = AggregateStore(redis_client, settings)
    with pytest.raises(LayoutMismatch, match="v2;shards=16.*leadpulse rebuild"):
        store.apply([created("c1", "L")])
    store.clear()  # what `leadpulse rebuild` does before it re-reads the topics
    assert store.apply([created("c1", "L")]).counts["applied"] == 1
    assert redis_client.get(f"{key_prefix}:layout") == store.layout.fingerprint.encode()
    store.clear()


def test_async_store_writes_what_the_sync_store_writes(
    stack_settings: Settings, redis_client: redis.Redis, key_prefix: str
) -> None:
    events = [created("c1", "L"), won("w1", "L", T0 + 86_400_000, 12.5), created("c2", "M", source="ads")]
    sync_settings = Settings(key_prefix=f"{key_prefix}s", as_of=AS_OF)
    async_settings = Settings(key_prefix=f"{key_prefix}a", as_of=AS_OF)

    async def run_async() -> dict[str, int]:
        client = redis.asyncio.Redis.from_url(stack_settings.redis_url)
        try:
            store = AsyncAggregateStore(client, async_settings)
            outcome = await store.apply(events, offsets={TP: OffsetAdvance(-1, 7)})
            assert await store.read_offsets() == {TP: 7}
            return outcome.counts
        finally:
            await client.aclose()

    sync_store = AggregateStore(redis_client, sync_settings)
    try:
        assert asyncio.run(run_async()) == sync_store.apply(events).counts
        assert read_series(redis_client, async_settings, AS_OF) == read_series(redis_client, sync_settings, AS_OF)
    finally:
        sync_store.clear()
        AggregateStore(redis_client, async_settings).clear()


@pytest.fixture
def private_redis() -> Iterator[redis.Redis]:
    """A server of our own, since emptying the script cache would disturb other tests."""
    with services.private_redis() as client:
        yield client


def test_batch_and_offsets_land_together_after_the_script_cache_is_emptied(private_redis: redis.Redis) -> None:
    settings = Settings(key_prefix="lp", as_of=AS_OF)
    store = AggregateStore(private_redis, settings)
    store.apply([created("c1", "L")], offsets={TP: OffsetAdvance(-1, 1)})
    private_redis.script_flush()
    outcome = store.apply([created("c2", "M"), created("c1", "L")], offsets={TP: OffsetAdvance(1, 2)})
    assert outcome.counts == {"applied": 1, "duplicate": 1, "rejected": 0}
    assert store.read_offsets() == {TP: 2}
    leads = series_value(read_series(private_redis, settings, AS_OF), "leadpulse_window_leads", dimension="all", segment="all", window="7d")
    assert leads == 2


def test_a_moving_slot_of_the_shards_refuses_a_batch_before_and_asks_for_a_rebuild_after() -> None:
    layout = KeyLayout.from_settings(Settings(key_prefix="rs", shards=4))
    slot = key_slot(layout.health(2).encode())
    ours = {key_slot(layout.health(shard).encode()) for shard in range(layout.shards)}
    store_module.refuse_resharding(layout, {min(set(range(16384)) - ours)}, applied=False)  # a slot of no shard
    with pytest.raises(ReshardingInProgress, match=f"slot {slot} \\(shard 2\\).*stop the workers while resharding"):
        store_module.refuse_resharding(layout, {slot}, applied=False)
    with pytest.raises(ReshardingInProgress, match="may be partial.*leadpulse rebuild"):
        store_module.refuse_resharding(layout, {slot}, applied=True)



def test_one_redis_gets_one_shard_a_cluster_sixteen_and_a_set_count_is_kept() -> None:
    assert KeyLayout.from_settings(Settings()).shards == 1
    assert KeyLayout.from_settings(Settings(redis_cluster=True)).shards == CLUSTER_SHARDS == 16
    assert KeyLayout.from_settings(Settings(shards=4, redis_cluster=True)).shards == 4
    with pytest.raises(ValueError, match="LEADPULSE_SHARDS"):
        KeyLayout.from_settings(Settings(shards=-1))


@given(st.integers(1, 64), st.text(min_size=1, max_size=40))
def test_a_lead_lands_in_a_bucket_of_its_shard_and_the_buckets_keep_their_total(shards: int, lead: str) -> None:
    layout = KeyLayout.from_settings(Settings(shards=shards))
    shard, bucket = layout.place(lead)
    assert 0 <= shard < shards and 0 <= bucket < layout.buckets
    assert layout.buckets == max(1024, 16384 // shards)


def canonical_uuid(event_id: str) -> bool:
    """The oracle: the id is a UUID written the way `str(UUID)` writes it (lowercase, dashed)."""
    try:
        return str(uuid.UUID(event_id)) == event_id
    except ValueError:
        return False


CANONICAL_UUIDS = st.uuids().map(str)


@given(st.one_of(CANONICAL_UUIDS, CANONICAL_UUIDS.map(str.upper), CANONICAL_UUIDS.map(lambda u: u[:-1]),
                 CANONICAL_UUIDS.map(lambda u: u + "\n"), CANONICAL_UUIDS.map(lambda u: "{" + u + "}"),
                 CANONICAL_UUIDS.map(lambda u: u.replace("-", "")),
                 st.text(alphabet="0123456789abcdefg-", min_size=35, max_size=37), st.text(max_size=40)))
def test_the_worker_packs_exactly_the_canonical_lowercase_uuids_into_their_16_bytes(event_id: str) -> None:
    sent = stored_event_id(event_id)
    if canonical_uuid(event_id):
        assert isinstance(sent, msgspec.Raw) and bytes(sent) == b"\x91\xb0" + uuid.UUID(event_id).bytes
    else:
        assert sent == event_id


def test_a_lead_created_by_a_uuid_keeps_its_16_bytes_and_a_tie_still_goes_to_the_smaller_id(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    settings = Settings(key_prefix=key_prefix)
    store = AggregateStore(redis_client, settings)
    small, large = "0a000000-0000-0000-0000-000000000000", "0b000000-0000-0000-0000-000000000000"
    store.apply([created(large, "L", source="ads")])
    store.apply([created(small, "L", source="email"), created("1A000000-0000-0000-0000-000000000000", "L", source="web")])
    shard, bucket = store.layout.place("L")
    core = redis_client.hget(store.layout.leads(shard, bucket), "cL")
    assert core is not None and uuid.UUID(small).bytes in core and small.encode() not in core
    series = read_series(redis_client, settings, AS_OF)
    by_source = {s: series_value(series, "leadpulse_window_leads", dimension="source", segment=s, window="7d")
                 for s in ("ads", "email", "web")}
    assert by_source == {"ads": None, "email": 1, "web": None}

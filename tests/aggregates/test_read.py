"""Summing the shards' replies: the cached, pairwise summation equals the plain slot-by-slot one."""

from __future__ import annotations

from itertools import zip_longest

from hypothesis import given
from hypothesis import strategies as st

from aggregates.read import add_vectors, parse_counters

vectors = st.lists(st.integers(0, 10**6), max_size=12)
fields = st.sampled_from([b"all|all", b"source|a", b"source|b", b"campaign|x"])
#: One hash as the shards store it: field -> vector.
hashes = st.dictionaries(fields, vectors, max_size=4)


def stored(vector: list[int]) -> bytes:
    """The stored text: zeros empty, trailing zeros dropped (CONTRACT section 2)."""
    while vector and vector[-1] == 0:
        vector = vector[:-1]
    return b",".join(str(v).encode() if v else b"" for v in vector)


def flat(hash_: dict[bytes, list[int]]) -> list[bytes]:
    return [part for name, vector in hash_.items() for part in (name, stored(vector))]


def plain_sum(parts: list[list[int]]) -> list[int]:
    return [sum(slot) for slot in zip_longest(*parts, fillvalue=0)]


@given(vectors, vectors)
def test_add_vectors_is_the_slot_wise_sum_whatever_the_lengths(a: list[int], b: list[int]) -> None:
    assert add_vectors(a, b) == add_vectors(b, a) == plain_sum([a, b])


@given(st.lists(st.lists(hashes, min_size=3, max_size=3), min_size=1, max_size=5))
def test_parse_counters_sums_every_field_of_every_hash_over_the_shards(shards: list[list[dict[bytes, list[int]]]]) -> None:
    """Three hashes per shard (a cohort, a day, its lags), then segments and health."""
    replies = [[*map(flat, shard), [b"all|all", b"1"], []] for shard in shards]
    raw = parse_counters(replies, ["2026-W24"], [20_000])
    for index, got in ((0, raw.cohorts["2026-W24"]), (1, raw.days[20_000]), (2, raw.lags.get(20_000, {}))):
        names = {name for shard in shards for name in shard[index]}
        want = {}
        for name in names:
            summed = plain_sum([shard[index][name] for shard in shards if name in shard[index]])
            while summed and summed[-1] == 0:  # the stored text had no trailing zeros either
                summed.pop()
            want[tuple(name.decode().split("|"))] = summed
        trimmed = {segment: list(vector) for segment, vector in got.items()}
        for vector in trimmed.values():
            while vector and vector[-1] == 0:
                vector.pop()
        assert trimmed == want
    assert raw.segment_leads == {("all", "all"): len(shards)}

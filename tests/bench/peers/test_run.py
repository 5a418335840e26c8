"""Following a peer's progress lines: when it has caught up, and its rate."""

from __future__ import annotations

import pytest

from tests.bench.peers.run import Follow, Tick


def test_a_progress_line_parses_and_any_other_line_is_ignored() -> None:
    assert Tick.parse("P 1500000 10 4 3\n") == Tick(1_500_000, 10, 4, 3)
    assert Tick.parse('C {"email": [1, 0]}') is None
    assert Tick.parse("[main] INFO org.apache.kafka.streams.KafkaStreams - State transition") is None


def test_caught_up_needs_every_record_read_and_every_emitted_delta_counted() -> None:
    follow = Follow(total=100)
    assert not follow.see(Tick(0, 0, 0, 0))
    assert not follow.see(Tick(1_000_000, 20, 5, 5))
    assert not follow.see(Tick(2_000_000, 100, 30, 29))  # read all, one delta still in the repartition topic
    assert follow.see(Tick(2_500_000, 100, 30, 30))


def test_the_rate_runs_from_the_first_tick_that_read_something_to_caught_up() -> None:
    follow = Follow(total=100)
    for tick in (Tick(0, 0, 0, 0), Tick(1_000_000, 20, 5, 5), Tick(3_000_000, 100, 30, 30)):
        follow.see(tick)
    assert follow.rate == pytest.approx((100 - 20) / 2.0)

"""The shift-share decomposition: its parts add up exactly, and each part means what it says."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from aggregates.review.shift_share import Counts, decompose, explain


@st.composite
def periods(draw: st.DrawFn) -> dict[str, Counts]:
    """Segments with (leads, customers), customers never above leads; at least one lead."""
    names = draw(st.sets(st.sampled_from("abcdef"), min_size=1))
    out = {}
    for name in sorted(names):
        leads = draw(st.integers(0, 10_000))
        out[name] = (leads, draw(st.integers(0, leads)))
    if not sum(leads for leads, _ in out.values()):
        out["a"] = (1, draw(st.integers(0, 1)))
    return out


@given(periods(), periods())
def test_mix_and_rate_effects_add_up_exactly_to_the_change_of_the_overall_rate(
    base: dict[str, Counts], current: dict[str, Counts]
) -> None:
    d = decompose(base, current)
    assert d is not None
    overall = [Fraction(sum(c for _, c in p.values()), sum(n for n, _ in p.values())) for p in (base, current)]
    assert d.total == overall[1] - overall[0]
    assert d.mix + d.rate == d.total
    assert sum(e.mix + e.rate for e in d.effects) == d.total


@given(periods(), st.integers(1, 5))
def test_a_pure_shift_of_leads_between_segments_has_no_rate_effect(base: dict[str, Counts], scale: int) -> None:
    # Every segment keeps its rate (customers scale with leads), only the shares move.
    current = {name: (leads * (scale if i % 2 else 1), customers * (scale if i % 2 else 1))
               for i, (name, (leads, customers)) in enumerate(sorted(base.items()))}
    d = decompose(base, current)
    assert d is not None
    assert all(e.rate == 0 for e in d.effects if base[e.segment][0])
    assert d.rate == 0
    assert d.mix == d.total


@given(periods(), st.data())
def test_rates_changing_within_unchanged_shares_have_no_mix_effect(base: dict[str, Counts], data: st.DataObject) -> None:
    current = {name: (leads, data.draw(st.integers(0, leads))) for name, (leads, _) in base.items()}
    d = decompose(base, current)
    assert d is not None
    assert d.mix == 0
    assert d.rate == d.total


def test_hand_computed_shift_towards_a_low_converting_source() -> None:
    # Base: a 100 leads at 10%, b 100 at 2%: 6%. Now: a 50 at 10%, b 150 at 2%: 4%.
    d = decompose({"a": (100, 10), "b": (100, 2)}, {"a": (50, 5), "b": (150, 3)})
    assert d is not None
    assert (d.base_rate, d.current_rate, d.total) == (Fraction(6, 100), Fraction(4, 100), Fraction(-2, 100))
    by = {e.segment: e for e in d.effects}
    # mean rate 5%: a's share -25 points x (10% - 5%) = -1.25 points; b's +25 x (2% - 5%) = -0.75.
    assert by["a"].mix == Fraction(-125, 10_000) and by["b"].mix == Fraction(-75, 10_000)
    assert d.rate == 0


def test_hand_computed_mix_and_rate_together() -> None:
    # Base: a 100 at 20%, b 100 at 0%: 10%. Now: a 300 at 10%, b 100 at 0%: 7.5%.
    d = decompose({"a": (100, 20), "b": (100, 0)}, {"a": (300, 30), "b": (100, 0)})
    assert d is not None
    # shares 0.5 -> 0.75 and 0.5 -> 0.25; mean overall rate 8.75%;
    # mix: a +0.25 x (15% - 8.75%) + b -0.25 x (0% - 8.75%) = 1.5625 + 2.1875 = +3.75 points;
    # rate: a (10% - 20%) x 0.625 = -6.25 points.
    assert d.mix == Fraction(375, 10_000)
    assert d.rate == Fraction(-625, 10_000)
    assert d.total == Fraction(-25, 1000)


def test_a_segment_new_in_the_current_period_is_pure_mix() -> None:
    d = decompose({"a": (100, 5)}, {"a": (100, 5), "new": (100, 15)})
    assert d is not None
    new = next(e for e in d.effects if e.segment == "new")
    assert new.rate == 0 and new.mix > 0
    assert d.mix + d.rate == d.total == Fraction(5, 100)


def test_a_period_without_leads_has_no_decomposition_and_says_so() -> None:
    assert decompose({}, {"a": (10, 1)}) is None
    assert decompose({"a": (0, 0)}, {"a": (10, 1)}) is None
    assert explain(None, "October 2026") == "No comparison with October 2026: one of the two periods has no leads."


def test_a_negligible_shift_is_not_named() -> None:
    d = decompose({"a": (10_000, 1000), "b": (10_000, 200)}, {"a": (10_001, 900), "b": (10_000, 180)})
    assert explain(d, "May 2026") == ("Conversion fell 0.6 points against May 2026: 0.0 from the mix of leads, "
                                      "-0.6 from lower rates within segments.")


def test_the_sentence_names_the_change_its_parts_and_the_biggest_shift() -> None:
    d = decompose({"a": (100, 10), "b": (100, 2)}, {"a": (50, 5), "b": (150, 3)})
    text = explain(d, "October 2026")
    assert text.startswith("Conversion fell 2.0 points against October 2026: -2.0 from the mix of leads")
    assert "shift away from a, -1.2" in text
    assert text.endswith(", 0.0 from unchanged rates within segments.")

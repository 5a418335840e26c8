"""Why the overall rate moved: a shift-share decomposition into mix and rate effects (pure).

The overall rate is the lead-weighted mean of the segments' rates, R = sum_i s_i r_i,
with s_i = leads_i / leads (segment i's share of the leads) and r_i = customers_i /
leads_i. Between a base period 0 and a current period 1, the symmetric (midpoint)
shift-share split of the change is

    mix_i  = (s1_i - s0_i) * ((r0_i + r1_i) / 2 - (R0 + R1) / 2)   the share of leads moving
    rate_i = (r1_i - r0_i) * (s0_i + s1_i) / 2                     the segment converting better or worse

and sum_i (mix_i + rate_i) = R1 - R0 exactly, with no interaction remainder: it is the
midpoint (Shapley) split of s1 r1 - s0 r0 into its two factors. Centring each mix term
on the overall mean rate changes no sum (the share changes add up to 0) but makes each
segment's term say what a reader expects: a shift towards a segment converting below
average is negative. A segment absent from one period takes its rate from the other
one, so its appearance or disappearance is pure mix. The sums run in exact rational
arithmetic (`Fraction`), so the parts add up to the total exactly, not just to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

#: (leads, customers) of one segment in one period.
Counts = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Effect:
    """One segment's part of the change, as shares of leads (0..1 scale)."""

    segment: str
    share_change: Fraction  # s1 - s0
    mix: Fraction
    rate: Fraction


@dataclass(frozen=True, slots=True)
class Decomposition:
    """The change of the overall rate between two periods and its parts, per segment."""

    base_rate: Fraction
    current_rate: Fraction
    effects: tuple[Effect, ...]

    @property
    def total(self) -> Fraction:
        return self.current_rate - self.base_rate

    @property
    def mix(self) -> Fraction:
        return sum((e.mix for e in self.effects), Fraction(0))

    @property
    def rate(self) -> Fraction:
        return sum((e.rate for e in self.effects), Fraction(0))


def decompose(base: Mapping[str, Counts], current: Mapping[str, Counts]) -> Decomposition | None:
    """Split the change of the overall rate; None when either period has no leads.

    The segments must partition the leads (every lead in exactly one segment, as
    sources do), so that the overall rate is the share-weighted mean of theirs.
    """
    base_leads = sum(leads for leads, _ in base.values())
    current_leads = sum(leads for leads, _ in current.values())
    if base_leads <= 0 or current_leads <= 0:
        return None
    base_rate = Fraction(sum(c for _, c in base.values()), base_leads)
    current_rate = Fraction(sum(c for _, c in current.values()), current_leads)
    mean_rate = (base_rate + current_rate) / 2
    effects = []
    for segment in sorted(set(base) | set(current)):
        leads0, customers0 = base.get(segment, (0, 0))
        leads1, customers1 = current.get(segment, (0, 0))
        if leads0 <= 0 and leads1 <= 0:
            continue
        r0 = Fraction(customers0, leads0) if leads0 > 0 else None
        r1 = Fraction(customers1, leads1) if leads1 > 0 else None
        r0, r1 = (r0 if r0 is not None else r1), (r1 if r1 is not None else r0)
        assert r0 is not None and r1 is not None  # at least one period has leads
        s0, s1 = Fraction(leads0, base_leads), Fraction(leads1, current_leads)
        mix = (s1 - s0) * ((r0 + r1) / 2 - mean_rate)
        effects.append(Effect(segment, s1 - s0, mix, (r1 - r0) * (s0 + s1) / 2))
    return Decomposition(base_rate, current_rate, tuple(effects))


def signed_points(value: Fraction | float) -> str:
    """A 0..1 difference in percentage points with its sign (`-0.9`, `+0.3`), `0.0` when it rounds to nothing."""
    text = f"{float(value) * 100:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def explain(decomposition: Decomposition | None, versus: str) -> str:
    """One sentence: how far the rate moved against `versus`, and how much of it came from where."""
    if decomposition is None:
        return f"No comparison with {versus}: one of the two periods has no leads."
    total, mix, rate = decomposition.total, decomposition.mix, decomposition.rate
    if total == 0 and mix == 0:
        return f"Conversion did not move against {versus}."
    verb = "rose" if total > 0 else "fell" if total < 0 else "held"
    text = f"Conversion {verb} {abs(float(total)) * 100:.1f} points against {versus}: {signed_points(mix)} from the mix of leads"
    biggest = max(decomposition.effects, key=lambda e: (abs(e.mix), e.segment))
    if signed_points(biggest.mix) != "0.0":
        towards = "towards" if biggest.share_change > 0 else "away from"
        text += f" (mostly the shift {towards} {biggest.segment}, {signed_points(biggest.mix)})"
    return text + f", {signed_points(rate)} from {'higher' if rate > 0 else 'lower' if rate < 0 else 'unchanged'} rates within segments."

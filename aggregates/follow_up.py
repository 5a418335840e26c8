"""The follow-up series of CONTRACT v1.2 that depend on the clock, from counters keyed by time (pure).

apply.lua keeps what is a function of the events alone, keyed by the time it depends on
(docs/keys.md): each day's leads' SLA outcomes by the day their deadline falls on,
open leads by the day they reached mql or sql, and the creation times of the leads
awaiting touch. Here the clock meets them, at evaluation time N (the end of the pinned
day T, else now):

- met and breached count the leads whose deadline falls on a day that ended by N;
- awaiting touch is a lead created on days T-H+1 .. T; overdue when its deadline (from
  its exact creation time, `FollowUpClock`) is at or before N; the oldest one's age is N
  minus its creation;
- stalled at a stage: reached it on days T-364 .. T-S for S stall days, i.e. more than
  S days before the end of T and within 365 days of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from aggregates import keys as k
from aggregates.business_hours import FollowUpClock
from aggregates.rules import DAY_MS

Segment = tuple[str, str]  # (dimension, segment)
#: Days a stage reached still counts as stalled (CONTRACT v1.2 section 2).
STALL_HORIZON_DAYS: Final = 365
STALL_STAGES: Final = ("mql", "sql")


@dataclass(frozen=True, slots=True)
class FollowUpView:
    """The settings the clock-dependent series are read with, and the evaluation time N (ms)."""

    now_ms: int
    clock: FollowUpClock = field(default_factory=lambda: FollowUpClock(DAY_MS))
    horizon_days: int = 30
    stall_days: tuple[int, int] = (14, 30)  # mql, sql

    @property
    def last_day(self) -> int:
        """The last UTC day that has ended by N: deadlines on or before it have passed."""
        return self.now_ms // DAY_MS - 1

    @property
    def today(self) -> int:
        """Day T: the UTC day N falls in, or the pinned day whose end N is."""
        return self.last_day if self.now_ms % DAY_MS == 0 else self.now_ms // DAY_MS


def settled(vectors: Mapping[Segment, Sequence[int]], due_days: int) -> dict[Segment, list[int]]:
    """A creation day's vectors with the follow-up slots summed into met, breached and the
    customers among each: of the leads whose deadline falls within `due_days` days after
    it (fewer: none)."""
    out = {}
    first, width = k.DAY_FOLLOW_UP0, k.FOLLOW_UP_SLOTS
    stop = first + width * (due_days + 1) if due_days >= 0 else first
    for segment, vector in vectors.items():
        tail = vector[first:stop]
        out[segment] = [*vector[:first], *([0] * (first - len(vector))), *(sum(tail[i::width]) for i in range(width))]
    return out


@dataclass(slots=True)
class Pending:
    """One segment's leads awaiting touch (creation ms) and stalled candidates."""

    awaiting: list[int] = field(default_factory=list)
    stalled: list[int] = field(default_factory=lambda: [0, 0])


def pending(
    days: Mapping[int, Mapping[Segment, Sequence[int]]],
    awaiting: Mapping[int, Mapping[Segment, Sequence[int]]],
    folds: Mapping[Segment, Segment],
    view: FollowUpView,
) -> dict[Segment, Pending]:
    """Each folded segment's awaiting leads within the horizon and its stalled counts."""
    today = view.today
    by_segment: dict[Segment, Pending] = {}

    def of(segment: Segment) -> Pending:
        segment = folds.get(segment, segment)
        found = by_segment.get(segment)
        if found is None:
            found = by_segment[segment] = Pending()
        return found

    for day, lists in awaiting.items():
        if today - view.horizon_days < day <= today:
            for segment, times in lists.items():
                of(segment).awaiting.extend(day * DAY_MS + t for t in times)
    for stage, (slot, stall) in enumerate(zip((k.DAY_STALL_MQL, k.DAY_STALL_SQL), view.stall_days)):
        for day in range(today - STALL_HORIZON_DAYS + 1, today - stall + 1):
            for segment, vector in days.get(day, {}).items():
                if len(vector) > slot and vector[slot]:
                    of(segment).stalled[stage] += vector[slot]
    return by_segment


def follow_up_rows(
    segments: Iterable[Segment], found: Mapping[Segment, Pending], view: FollowUpView
) -> list[tuple[Segment, int, int, int | None, tuple[int, int]]]:
    """(segment, awaiting, overdue, oldest age in ms or None, stalled (mql, sql)) of every
    segment, zeros included, in segment order."""
    rows = []
    now = view.now_ms
    # A lead awaits in each of its segments: its deadline (a walk over the business
    # calendar when hours are set) is worked out once per creation time, not per segment.
    due: dict[int, bool] = {}
    for created in {created for state in found.values() for created in state.awaiting}:
        due[created] = view.clock.deadline_ms(created) <= now
    for segment in sorted(segments):
        state = found.get(segment, Pending())
        overdue = sum(due[created] for created in state.awaiting)
        oldest = now - min(state.awaiting) if state.awaiting else None
        rows.append((segment, len(state.awaiting), overdue, oldest, (state.stalled[0], state.stalled[1])))
    return rows

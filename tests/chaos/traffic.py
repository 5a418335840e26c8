"""The soak's traffic and its own ledger: lead lives split over the ways in, and what was acknowledged.

Every event the soak makes moves exactly one count of the aggregates by one, so the
soak can say how many events were counted without trusting the pipeline's own
bookkeeping: a lead has one `lead.created`; then either one `lead.qualified` (mql),
perhaps followed by one won deal, or one `lead.disqualified`, or neither; and perhaps one
lost deal. (A qualified count leaves out the disqualified, a disqualified count the
customers: lives that mix them would not count one per event.) `tallies` reads those counts from
any list of series (`report --json`, the exporter's page, the reference model).

Pure: the clock and the random generator are passed in.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aggregates.series import Series
from tests.feeds import stamp

#: Each kind of event and the series (name, fixed labels) that counts it once.
COUNTED_BY: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = {
    "lead.created": ("leadpulse_cohort_leads", {"dimension": "all", "period": "month"}),
    "lead.qualified": ("leadpulse_cohort_qualified_leads", {"dimension": "all", "period": "month"}),
    "lead.disqualified": ("leadpulse_cohort_disqualified_leads", {"dimension": "all", "period": "month"}),
    "deal.won": ("leadpulse_window_deals_won", {"dimension": "all", "window": "7d"}),
    "deal.lost": ("leadpulse_window_deals_lost", {"dimension": "all", "window": "7d"}),
}
KINDS: Final = tuple(COUNTED_BY)
SOURCES: Final = ("google", "linkedin", "referral", "partners", "events")
#: The share of leads created through the form hook, and of lost deals reported through the
#: Segment hook, rather than through a signed batch or `publish`.
HOOK_SHARE: Final = 0.25
#: The share of events the API carries; the rest go to `publish`.
API_SHARE: Final = 0.6
#: The chance that an event already offered is offered again, as a sender's re-delivery.
RESEND_SHARE: Final = 0.03
#: Events of one lead happen within this long before they are sent.
SPREAD_MS: Final = 3_600_000

Event = dict[str, Any]


def tallies(series: Iterable[Series]) -> Counter[str]:
    """Per kind of event, how many the series count (summed over cohorts)."""
    wanted = {name: (kind, labels) for kind, (name, labels) in COUNTED_BY.items()}
    counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
    for s in series:
        if s.name in wanted:
            kind, labels = wanted[s.name]
            if all(s.labels.get(key) == value for key, value in labels.items()):
                counts[kind] += int(s.value)
    return counts


def kinds(events: Iterable[Event]) -> Counter[str]:
    """Per kind, how many events there are: the counts the aggregates must show for them."""
    counts: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
    counts.update(str(event["type"]) for event in events)
    return counts


@dataclass(frozen=True)
class HookCall:
    """A vendor's webhook call (`hook` names it: form or segment), and the event the API must make of it."""

    hook: str
    body: dict[str, Any]
    event: Event


@dataclass
class Tick:
    """What one tick of traffic offers on each way in."""

    api: list[Event] = field(default_factory=list)
    publish: list[Event] = field(default_factory=list)
    hook: list[HookCall] = field(default_factory=list)


@dataclass
class Feed:
    """Lead lives for one run (`tag` keeps its ids apart from any other run's)."""

    tag: str
    rng: random.Random
    leads: int = 0
    offered: list[Event] = field(default_factory=list)

    def lead(self, now_ms: int) -> list[Event]:
        """One lead's events, in time order, all within SPREAD_MS before `now_ms`."""
        n, self.leads = self.leads, self.leads + 1
        lead_id = f"{self.tag}-{n}@soak.example"
        times = iter(sorted(now_ms - self.rng.randrange(1, SPREAD_MS) for _ in range(4)))

        def event(kind: str, **fields: Any) -> Event:
            return {"event_id": f"{self.tag}-{n}-{kind}", "type": kind, "occurred_at": stamp(next(times)),
                    "lead_id": lead_id, **fields}  # fmt: skip

        events = [event("lead.created", source=self.rng.choice(SOURCES))]
        fate = self.rng.random()
        if fate < 0.5:  # qualified leads may win: a customer is qualified already, and never disqualified
            events.append(event("lead.qualified", stage="mql"))
            if self.rng.random() < 0.4:
                events.append(event("deal.won", deal_id=f"{self.tag}-{n}-won", amount=self.rng.randrange(1, 200) * 50))
        elif fate < 0.65:
            events.append(event("lead.disqualified", reason="junk"))
        if self.rng.random() < 0.3:
            events.append(event("deal.lost", deal_id=f"{self.tag}-{n}-lost"))
        return events

    def tick(self, events: int, now_ms: int) -> Tick:
        """About `events` events split over the ways in; a few earlier ones offered again."""
        out = Tick()
        made = 0
        while made < events:
            life = self.lead(now_ms)
            made += len(life)
            if self.rng.random() < HOOK_SHARE:
                out.hook.append(form_submission(life.pop(0)))
            if life and life[-1]["type"] == "deal.lost" and self.rng.random() < HOOK_SHARE:
                out.hook.append(segment_track(life.pop()))
            for event in life:
                (out.api if self.rng.random() < API_SHARE else out.publish).append(event)
            self.offered += life
        resent = [self.rng.choice(self.offered) for _ in range(events) if self.offered and self.rng.random() < RESEND_SHARE]
        for event in resent:
            (out.api if self.rng.random() < API_SHARE else out.publish).append(event)
        return out


def form_submission(created: Event) -> HookCall:
    """The submission a form tool posts for a `lead.created`, and the event the hook makes of it."""
    submission_id = str(created["event_id"])
    body = {"submission_id": submission_id, "email": created["lead_id"], "submitted_at": created["occurred_at"],
            "source": created["source"]}  # fmt: skip
    return HookCall("form", body, {**created, "event_id": f"form:{submission_id}"})


def segment_track(lost: Event) -> HookCall:
    """The Segment track call of a `deal.lost` (its default name, Opportunity Lost), and the event the hook makes of it."""
    message_id = str(lost["event_id"])
    body = {"type": "track", "event": "Opportunity Lost", "messageId": message_id, "userId": lost["lead_id"],
            "timestamp": lost["occurred_at"], "properties": {"deal_id": lost["deal_id"]}}  # fmt: skip
    return HookCall("segment", body, {**lost, "event_id": f"segment:{message_id}"})


@dataclass
class Ledger:
    """What the soak offered and what was acknowledged (a 202, or `publish` exiting 0), by event id."""

    offered: set[str] = field(default_factory=set)
    acknowledged: dict[str, Event] = field(default_factory=dict)

    def offer(self, events: Sequence[Event]) -> None:
        self.offered.update(str(e["event_id"]) for e in events)

    def acknowledge(self, events: Sequence[Event]) -> None:
        self.acknowledged.update((str(e["event_id"]), e) for e in events)

"""A synthetic marketing feed: leads from several sources moving through the funnel (pure).

Pure so that `leadpulse generate`, the demo and the tests see the same events for the
same seed: the wall clock enters only through `Pace`, which the caller builds. Every
random draw happens when a day's leads are created, in day order, so the output does
not depend on how finely a caller advances the clock.

The levels follow the KPI literature (see DOMAIN.md): inbound B2B channels turn 1-5%
of their leads into customers, targeted programmes (referrals, partners, account-based
marketing) 10-15%. A lead is junk (disqualified within hours), stays a raw lead, or
becomes an MQL within days, then maybe an SQL with a deal, which is won or lost two to
eight weeks later. Sales touches the leads (`lead.contacted`) as a team working
Mon-Fri 09:00-17:30 London time does: most within the hour in office hours, the night's
and the weekend's the next working morning, some days late, a few never; a lead nobody
answers seldom becomes an SQL. Delivery is imperfect on purpose: a share of events
arrives hours late (out of order), some are re-sent with the same `event_id`, a few are
malformed.
"""

from __future__ import annotations

import heapq
import math
import random
import re
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import accumulate, count
from typing import Any, Final, NamedTuple

import orjson

from aggregates.business_hours import BusinessHours
from streams.settings import DEALS_TOPIC, LEADS_TOPIC

SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign of a source; `lift` scales the source's conversion (share-weighted lifts average 1)."""

    name: str
    share: float
    lift: float = 1.0


@dataclass(frozen=True, slots=True)
class Source:
    """A lead source and its funnel: junk, MQL and SQL shares, and a win rate that yields `conversion`."""

    name: str
    share: float  # of all leads
    conversion: float  # lead -> customer
    junk: float  # disqualified as junk within hours
    mql: float  # of the other leads, share that becomes an MQL
    sql: float  # of MQLs, share that becomes an SQL with a deal
    deal_size: float  # median won amount
    campaigns: tuple[Campaign, ...]

    @property
    def win_rate(self) -> float:
        """Share of deals won, chosen so that leads convert at `conversion` overall."""
        return self.conversion / ((1 - self.junk) * self.mql * self.sql)


#: The marketing mix: 80% of leads from inbound channels (1.5-4%), 20% from targeted
#: programmes (11-14%); overall about 4.8%.
# fmt: off
SOURCES: Final = (
    #      name              share  conv.  junk   mql   sql   deal size
    Source("organic_search", 0.24, 0.025, 0.15, 0.40, 0.30, 12_000, (
        Campaign("seo-blog", 0.6, 0.9), Campaign("seo-product-pages", 0.4, 1.15))),
    Source("paid_search",    0.30, 0.040, 0.20, 0.45, 0.35, 10_000, (
        Campaign("brand-keywords", 0.3, 1.5), Campaign("generic-keywords", 0.5, 0.8),
        Campaign("competitor-keywords", 0.2, 0.75))),
    Source("paid_social",    0.16, 0.015, 0.30, 0.35, 0.25, 8_000, (
        Campaign("linkedin-lead-gen", 0.6, 1.2), Campaign("retargeting", 0.4, 0.7))),
    Source("email",          0.10, 0.035, 0.10, 0.45, 0.30, 9_000, (
        Campaign("newsletter", 0.5, 0.8), Campaign("nurture-sequence", 0.5, 1.2))),
    Source("referral",       0.08, 0.120, 0.05, 0.70, 0.55, 18_000, (Campaign("customer-referral", 1.0),)),
    Source("partner",        0.07, 0.110, 0.05, 0.65, 0.50, 22_000, (
        Campaign("reseller-program", 0.6, 1.1), Campaign("tech-alliance", 0.4, 0.85))),
    Source("abm",            0.05, 0.140, 0.02, 0.80, 0.55, 60_000, (Campaign("tier1-accounts", 1.0),)),
)
# fmt: on

#: Persona and region attributes; each region's forms stamp events in its own UTC offset.
PERSONAS: Final = (
    ("marketing_ops", 0.25),
    ("head_of_sales", 0.20),
    ("revops", 0.15),
    ("founder", 0.15),
    ("cto", 0.15),
    ("student", 0.10),
)
REGIONS: Final = (("na", 0.45, -300), ("emea", 0.35, 60), ("apac", 0.15, 480), ("latam", 0.05, -180))
JUNK_REASONS: Final = ("spam", "student", "competitor", "invalid_email")
LATE_REASONS: Final = ("no_budget", "bad_fit", "no_response")
#: Leads per weekday (Monday first) relative to the mean: B2B forms are quiet at weekends.
WEEKDAY_LOAD: Final = (1.16, 1.16, 1.16, 1.16, 1.11, 0.64, 0.61)

#: The sales team's office: touches happen in its open hours only.
TEAM_HOURS: Final = BusinessHours.parse("Mon-Fri 09:00-17:30", "Europe/London")
TEAM_DAY_MS: Final = round(8.5 * HOUR_MS)  # one working day of open hours
#: Speed to lead: a touch comes a mean 15 minutes of open office after the lead (95%
#: within the hour), except for the tail: some leads wait 1-5 working days, a few are
#: never touched. Under the default SLA of 1d (24 x 7) about 80% are touched within it:
#: a night's leads are answered next morning, Friday evening's and the weekend's breach.
RESPONSE_MS: Final = 15 * MINUTE_MS
LATE_TOUCH_SHARE: Final = 0.06
NEVER_TOUCHED_SHARE: Final = 0.03
CHANNELS: Final = (("call", 0.45), ("email", 0.4), ("meeting", 0.05), ("message", 0.1))
#: A lead nobody answers still engages with marketing (MQL) but becomes an SQL this
#: many times as often: sales never qualified it.
UNANSWERED_SQL: Final = 0.2
#: The open deals of a source nobody works any more are won this many times as often:
#: nobody chases the proposals, the buyers go quiet.
SLIPPED_WINS: Final = 0.25


@dataclass(frozen=True, slots=True)
class Drop:
    """A scenario: `after_s` seconds of wall clock into the feed, deals of `source` are won `factor` times as often."""

    source: str
    factor: float
    after_s: float


@dataclass(frozen=True, slots=True)
class Stop:
    """A scenario: `after_s` seconds of wall clock into the feed, nobody follows up `source` any more.

    Its leads go untouched (and so seldom become SQLs) and its open deals slip: they
    are won SLIPPED_WINS times as often.
    """

    source: str
    after_s: float


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """Seconds of `90`, `90s`, `10m`, `1h30m`, `2h`."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m or 1h30m")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def parse_drop(spec: str) -> Drop:
    """`paid_search:0.5@10m`: that source's conversion is multiplied by 0.5 after ten minutes."""
    source, _, rest = spec.partition(":")
    factor, _, when = rest.partition("@")
    try:
        value = float(factor)
        after_s = parse_duration(when)
    except ValueError as error:
        raise ValueError(f"{spec!r} is not SOURCE:FACTOR@WHEN like paid_search:0.5@10m ({error})") from None
    if not source or not math.isfinite(value) or value < 0:
        raise ValueError(f"{spec!r} is not SOURCE:FACTOR@WHEN with a source and a factor >= 0")
    return Drop(source, value, after_s)


def parse_stop(spec: str) -> Stop:
    """`paid_search@10m`: nobody follows up that source's leads after ten minutes."""
    source, _, when = spec.partition("@")
    try:
        after_s = parse_duration(when)
    except ValueError as error:
        raise ValueError(f"{spec!r} is not SOURCE@WHEN like paid_search@10m ({error})") from None
    if not source:
        raise ValueError(f"{spec!r} is not SOURCE@WHEN with a source")
    return Stop(source, after_s)


@dataclass(frozen=True, slots=True)
class Pace:
    """Simulated time against the wall clock.

    It starts `history_days` before the wall clock's `start_ms` and runs `speed` times
    faster until it has caught up, then keeps the clock's pace: no event is ever in the
    future, and the windows (as of today) fill with the recent past first.
    """

    start_ms: int
    history_days: float
    speed: float

    @property
    def begin_ms(self) -> int:
        return self.start_ms - round(self.history_days * DAY_MS)

    @property
    def catch_up_s(self) -> float:
        """Wall seconds until simulated time reaches the clock (infinite at speed 1 or less)."""
        return self.history_days * DAY_MS / SECOND_MS / (self.speed - 1) if self.speed > 1 else math.inf

    def sim_ms(self, elapsed_s: float) -> int:
        """Simulated time `elapsed_s` wall seconds after the start."""
        return min(
            self.begin_ms + round(elapsed_s * self.speed * SECOND_MS), self.start_ms + round(elapsed_s * SECOND_MS)
        )


@dataclass(frozen=True, slots=True)
class Feed:
    """What to simulate: the mix, the volume, the scenario and how imperfect delivery is."""

    seed: int = 1
    leads_per_day: float = 1000.0
    sources: tuple[Source, ...] = SOURCES
    drops: tuple[Drop, ...] = ()
    stops: tuple[Stop, ...] = ()
    late_share: float = 0.05  # events a CRM sync delivers 1-12 hours late
    duplicate_share: float = 0.01  # events re-sent (same event_id) minutes to hours later
    malformed_share: float = 0.002  # events followed by a broken copy


class Message(NamedTuple):
    """One record for Kafka (or one JSON Lines line): topic, key and the raw value."""

    deliver_ms: int
    topic: str
    key: bytes
    value: bytes


def _weighted(rng: random.Random, items: tuple[Any, ...], weights: tuple[float, ...]) -> Callable[[], Any]:
    """A draw from `items` by `weights` (what `rng.choices` does, without its per-call set-up)."""
    cumulative = list(accumulate(weights))
    return lambda: items[bisect(cumulative, rng.random() * cumulative[-1], 0, len(items) - 1)]


class Simulation:
    """The feed as a stream of messages in delivery order; `advance(until)` yields what is due."""

    def __init__(self, feed: Feed, pace: Pace) -> None:
        self.feed = feed
        self.pace = pace
        self.run = f"{feed.seed}-{pace.start_ms // SECOND_MS:x}"  # lead ids differ between runs
        self._rng = rng = random.Random(feed.seed)
        self._source = _weighted(rng, feed.sources, tuple(s.share for s in feed.sources))
        self._campaigns = {
            s.name: _weighted(rng, s.campaigns, tuple(c.share for c in s.campaigns)) for s in feed.sources
        }
        self._persona = _weighted(rng, tuple(p for p, _ in PERSONAS), tuple(w for _, w in PERSONAS))
        self._region = _weighted(rng, tuple((r, o) for r, _, o in REGIONS), tuple(w for _, w, _ in REGIONS))
        self._channel = _weighted(rng, tuple(c for c, _ in CHANNELS), tuple(w for _, w in CHANNELS))
        self._drops = [(d.source, d.factor, pace.sim_ms(d.after_s)) for d in feed.drops]
        self._drops += [(s.source, SLIPPED_WINS, pace.sim_ms(s.after_s)) for s in feed.stops]
        self._stops = {s.source: pace.sim_ms(s.after_s) for s in feed.stops}
        self._weekday_mean = sum(WEEKDAY_LOAD) / len(WEEKDAY_LOAD)
        self._queue: list[tuple[int, int, Message]] = []
        self._seq = count()
        self._leads = count(1)
        self._created_until = pace.begin_ms  # leads exist up to here

    def drop_times(self) -> list[tuple[str, float, int]]:
        """(source, factor, simulated ms) of each scheduled drop, a stop's slipping deals included."""
        return list(self._drops)

    def stop_times(self) -> list[tuple[str, int]]:
        """(source, simulated ms) of each scheduled stop of follow-up."""
        return list(self._stops.items())

    def advance(self, until_ms: int) -> Iterator[Message]:
        """Messages delivered up to `until_ms`, in delivery order; exhaust it before the next call."""
        while self._created_until <= until_ms:
            self._create_day()
        while self._queue and self._queue[0][0] <= until_ms:
            yield heapq.heappop(self._queue)[2]

    def _create_day(self) -> None:
        """Create the leads of the rest of the current UTC day (a Poisson count, weekday-shaped)."""
        start = self._created_until
        end = (start // DAY_MS + 1) * DAY_MS
        weekday = datetime.fromtimestamp(start / SECOND_MS, timezone.utc).weekday()
        mean = self.feed.leads_per_day * WEEKDAY_LOAD[weekday] / self._weekday_mean * (end - start) / DAY_MS
        leads = max(0, round(self._rng.gauss(mean, math.sqrt(mean)))) if mean > 0 else 0
        # Office hours (peak 14:00 UTC) inside what is left of the day.
        for created in sorted(
            round(self._rng.triangular(start, end, max(start, end - 10 * HOUR_MS))) for _ in range(leads)
        ):
            self._create_lead(min(created, end - 1))
        self._created_until = end

    def _create_lead(self, created: int) -> None:
        rng = self._rng
        source: Source = self._source()
        campaign: Campaign = self._campaigns[source.name]()
        region, offset = self._region()
        lead = _Lead(f"ld-{self.run}-{next(self._leads)}", timezone(timedelta(minutes=offset)))
        emit = partial(self._emit, lead)
        attributes = {"persona": self._persona(), "region": region}
        emit("c", "lead.created", created, source=source.name, campaign=campaign.name, attributes=attributes)
        touched = self._touch(source.name, created)
        if rng.random() < source.junk:
            junked = created + round(rng.expovariate(1 / (4 * HOUR_MS)))
            if touched is not None and touched < junked:  # else disqualified before anyone called
                emit("t", "lead.contacted", touched, channel=self._channel())
            emit("x", "lead.disqualified", junked, reason=rng.choice(JUNK_REASONS))
            return
        if touched is not None:
            emit("t", "lead.contacted", touched, channel=self._channel())
        if rng.random() >= source.mql:
            return  # never engages: stays a raw lead
        mql = created + round(min(rng.expovariate(1 / DAY_MS), 10 * DAY_MS))
        emit("m", "lead.qualified", mql, stage="mql")
        if rng.random() >= source.sql * (1 if touched is not None else UNANSWERED_SQL):
            if rng.random() < 0.5:
                emit(
                    "x", "lead.disqualified", mql + round(rng.uniform(1, 14) * DAY_MS), reason=rng.choice(LATE_REASONS)
                )
            return
        sql = mql + round(min(rng.expovariate(1 / (4 * DAY_MS)), 21 * DAY_MS))
        emit("s", "lead.qualified", sql, stage="sql")
        deal_id = f"{lead.lead_id}-d1"
        opened = sql + round(rng.expovariate(1 / (6 * HOUR_MS)))
        emit("d", "deal.created", opened, deal_id=deal_id, utc=True)
        closed = opened + round(min(rng.lognormvariate(math.log(18), 0.5), 60) * DAY_MS)
        if rng.random() < source.win_rate * campaign.lift * self._factor(source.name, closed):
            amount = round(rng.lognormvariate(math.log(source.deal_size), 0.6), 2)
            emit("w", "deal.won", closed, deal_id=deal_id, amount=amount, utc=True)
        else:
            emit("l", "deal.lost", closed, deal_id=deal_id, utc=True)

    def _touch(self, source: str, created: int) -> int | None:
        """When sales first touches a lead created at `created`, or None: never (the tail, or a stop)."""
        rng = self._rng
        tail = rng.random()
        if tail < NEVER_TOUCHED_SHARE:
            return None
        wait = rng.uniform(1, 5) * TEAM_DAY_MS if tail < NEVER_TOUCHED_SHARE + LATE_TOUCH_SHARE else 0
        touched = TEAM_HOURS.deadline_ms(created, round(wait + rng.expovariate(1 / RESPONSE_MS)))
        return None if touched >= self._stops.get(source, touched + 1) else touched

    def _factor(self, source: str, at_ms: int) -> float:
        factor = 1.0
        for name, value, since in self._drops:
            if name == source and at_ms >= since:
                factor *= value
        return factor

    def _emit(self, lead: _Lead, suffix: str, kind: str, occurred: int, *, utc: bool = False, **fields: Any) -> None:
        """Queue one event with realistic delivery: sometimes hours late, re-sent, or followed by a broken copy."""
        rng, feed = self._rng, self.feed
        payload = {
            "event_id": f"{lead.lead_id}-{suffix}",
            "type": kind,
            "occurred_at": rfc3339(occurred, timezone.utc if utc else lead.zone),  # the CRM says UTC, forms local time
            "lead_id": lead.lead_id,
            **fields,
        }
        topic = DEALS_TOPIC if kind.startswith("deal.") else LEADS_TOPIC
        key = lead.lead_id.encode()
        late = rng.random() < feed.late_share
        deliver = occurred + round(rng.uniform(HOUR_MS, 12 * HOUR_MS) if late else rng.uniform(0, 30 * SECOND_MS))
        value = orjson.dumps(payload)
        self._push(Message(deliver, topic, key, value))
        if rng.random() < feed.duplicate_share:
            self._push(Message(deliver + round(rng.uniform(MINUTE_MS, 2 * HOUR_MS)), topic, key, value))
        if rng.random() < feed.malformed_share:
            broken = rng.choice(_BREAKAGES)({**payload, "event_id": f"{payload['event_id']}-bad"})
            self._push(Message(deliver, topic, key, broken))

    def _push(self, message: Message) -> None:
        heapq.heappush(self._queue, (message.deliver_ms, next(self._seq), message))


class _Lead(NamedTuple):
    lead_id: str
    zone: timezone  # the offset its region's forms stamp on events


def rfc3339(ms: int, zone: timezone = timezone.utc) -> str:
    """`2026-05-01T10:00:00.123Z`, or with the zone's offset (`...+01:00`)."""
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    text = moment.astimezone(zone).isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


#: What goes wrong on the way from a form or CRM: each turns a valid payload into a record the contract rejects.
_BREAKAGES: Final[tuple[Callable[[dict[str, Any]], bytes], ...]] = (
    lambda p: orjson.dumps(p)[: len(orjson.dumps(p)) // 2],  # cut off by a proxy
    lambda p: orjson.dumps({**p, "occurred_at": p["occurred_at"][:19]}),  # local time without offset
    lambda p: orjson.dumps({**p, "type": "lead.updated"}),  # an event type of another system
    lambda p: orjson.dumps({k: v for k, v in p.items() if k != "lead_id"}),  # lost its lead
    lambda p: orjson.dumps([p]),  # wrapped in an array by a batch export
)

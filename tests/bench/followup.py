"""`make bench-alerts`, follow-up part: LeadFollowUpSlow and LeadStageStalled on simulated segments.

LeadFollowUpSlow is simulated hour by hour, because its series move as deadlines pass:
leads arrive mostly in business hours (Mon-Fri 09:00-17:30, a fifth of a weekday's leads
in the evening and night, weekends and holidays at a quarter of a weekday), the team
works business hours only, and the SLA is the default, one day counted 24 x 7. A lead is
touched in time with probability q x (1 - exp(-W / 1 h)), W the working hours between its
arrival and its deadline: a Friday-evening lead waits for Monday and breaches, as it
would in a real team. q varies from calendar week to calendar week (sd 2 points) and is
set so the usual within-SLA share is about 85%. Every hour the contract's window counts
(met and breached leads of the 7- and 90-day windows whose deadline has passed) are
formed, the recording rules' arithmetic turns them into the check series, and the
shipped conditions (`exporters.rules.FOLLOW_UP_ALERT`) are evaluated; `for: 1h` is two
consecutive hours.

LeadStageStalled is simulated day by day (stalled counts move by days): leads reach mql
on business days, half of them move on to sql (after an exponential wait of mean 10
days), 30% are disqualified (mean 20 days), the rest rot; the stalled count is as
CONTRACT section 2 defines it, and the usual level is the recording rule's exponential
average.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from exporters import rules
from exporters.rules import Alert
from tests.bench import alerts as conversion
from tests.bench.common import Figure, Section, Target, progress

Array = NDArray[np.float64]
DAY: Final = 24
WEEK: Final = 7 * DAY
YEAR_DAYS: Final = 364  # 52 whole weeks: every story starts on a Monday
#: Holidays by day of the year (day 0 a Monday): New Year, Easter Friday and Monday, May
#: Day, Ascension, Whit Monday, a Christmas week: no work, and few leads.
HOLIDAYS: Final = (0, 95, 98, 120, 134, 147, *range(357, 364))
WORK_START, WORK_END = 9.0, 17.5
SLA_HOURS: Final = 24
WEEKLY_SD: Final = 0.02
BROKEN: Final = 0.30 / 0.85  # the within-SLA share falls from ~85% to ~30%
WARMUP_DAYS: Final = 91  # a full 90-day window before the first evaluation
SEGMENT_YEARS: Final = 300
STORY_RUNS: Final = 40
VOLUMES: Final = (10, 50, 200, 1000)  # leads a business day


@dataclass(frozen=True)
class Setup:
    """How the SLA is counted, and whether the year has holidays (and leadpulse knows them)."""

    name: str
    sla_hours: float  # the SLA in business hours, or in clock hours when not `business`
    business: bool  # LEADPULSE_BUSINESS_HOURS=Mon-Fri 09:00-17:30, with the holidays listed
    holidays: bool


DEFAULTS: Final = Setup("defaults (SLA 1d, 24 x 7)", 24, business=False, holidays=False)
UNLISTED: Final = Setup("defaults, holidays not configured", 24, business=False, holidays=True)
CONFIGURED: Final = Setup("SLA 4 business hours, holidays listed", 4, business=True, holidays=True)


def _calendar(days: int, holidays: bool) -> tuple[Array, Array]:
    """(working hours, lead shape) per hour: the team's capacity and each hour's share of a weekday's leads."""
    hour = np.arange(days * DAY)
    day, clock = hour // DAY, hour % DAY
    off = (day % 7 >= 5) | (np.isin(day % YEAR_DAYS, HOLIDAYS) & holidays)
    work = np.clip(np.minimum(clock + 1, WORK_END) - np.maximum(clock, WORK_START), 0.0, 1.0) * ~off
    office = work / (WORK_END - WORK_START)  # 80% of a weekday's leads come in office hours
    shape = np.where(off, 0.25 / DAY, 0.8 * office + 0.2 * (work == 0) / (DAY - 8.5))
    return work, shape


def simulate_follow_up(
    setup: Setup, volume: float, days: int, break_at: int | None, rng: np.random.Generator
) -> tuple[Array, Array, NDArray[np.int64]]:
    """(leads, met, deadline) per creation hour: met = touched within the SLA; deadline: the hour it passes."""
    work, shape = _calendar(days, setup.holidays)
    leads = rng.poisson(volume * shape).astype(float)
    cum_work = np.concatenate([[0.0], np.cumsum(work)])
    hour = np.arange(days * DAY)
    start = cum_work[hour] + work / 2  # working hours done by the middle of the arrival hour
    if setup.business:
        deadline = np.searchsorted(cum_work, start + setup.sla_hours).astype(np.int64)
        window = np.full(len(hour), setup.sla_hours)
    else:
        deadline = hour + int(setup.sla_hours)
        window = cum_work[np.minimum(deadline, len(work))] - start
    q = (setup_q(setup) + rng.normal(0.0, WEEKLY_SD, size=days // 7 + 1)[hour // WEEK]).clip(0.0, 1.0)
    if break_at is not None:
        q = np.where(hour >= break_at, q * BROKEN, q)
    return leads, rng.binomial(leads.astype(np.int64), q * (1 - np.exp(-window))).astype(float), deadline


def setup_q(setup: Setup) -> float:
    """The touch rate that gives the usual ~85% within the SLA (weekend leads breach a 24 x 7 SLA)."""
    return 0.94 if not setup.business else 0.85 / (1 - math.exp(-setup.sla_hours))


def window_counts(leads: Array, met: Array, deadline: NDArray[np.int64], hours: NDArray[np.int64], days: int) -> tuple[Array, Array]:
    """(leads, met) of the `days`-day window at each evaluation hour: created on its UTC days, deadline passed."""
    cum_n, cum_m = (np.concatenate([[0.0], np.cumsum(x)]) for x in (leads, met))
    passed = np.searchsorted(deadline, hours, side="right")  # creation hours whose deadline has passed: < passed
    first = (hours // DAY - days + 1) * DAY
    stop = np.maximum(passed, first)
    return cum_n[stop] - cum_n[first], cum_m[stop] - cum_m[first]


def follow_up_series(leads: Array, met: Array, deadline: NDArray[np.int64], hours: NDArray[np.int64]) -> dict[str, Array]:
    """The check series of the recording rules at each evaluation hour, from the two windows' counts."""
    n, m = window_counts(leads, met, deadline, hours, 7)
    n90, m90 = window_counts(leads, met, deadline, hours, 90)
    n_b, m_b = n90 - n, m90 - m
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n_b > 0, m_b / n_b, np.nan)
        share = np.where(n > 0, m / n, np.nan)
        sd = np.sqrt(n * p * (1 - p) * (1 + n / n_b) + (rules.FOLLOW_UP_VARIATION * n) ** 2)
        z = (m + 0.5 - n * p) / sd
        volume = (n / 7) / (n_b / 83)
    return {rules.SHORTFALL: p - share, rules.FOLLOW_UP_ZSCORE: z, rules.RECENT_LEADS: n, rules.USUAL_LEADS: n_b, rules.VOLUME: volume}


def holds(alert: Alert, series: dict[str, Array]) -> NDArray[np.bool_]:
    """The shipped conditions, element by element (NaN, an absent series, never holds)."""
    return np.logical_and.reduce([c.holds(series[c.series]) for c in alert.conditions])  # type: ignore[arg-type]


def firing(condition: NDArray[np.bool_], steps: int) -> NDArray[np.bool_]:
    """Firing where the condition held for `steps` evaluations before and now (`for:`)."""
    fired = condition.copy()
    for back in range(1, steps + 1):
        fired[back:] &= condition[:-back]
        fired[:back] = False
    return fired


def episodes(fired: NDArray[np.bool_]) -> int:
    return int(fired[0]) + int(np.count_nonzero(fired[1:] & ~fired[:-1]))


def run_follow_up(setup: Setup, volume: float, days: int, break_at: int | None, seed: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    leads, met, deadline = simulate_follow_up(setup, volume, days, break_at, np.random.default_rng(seed))
    hours = np.arange(WARMUP_DAYS * DAY, days * DAY)
    return hours, firing(holds(rules.FOLLOW_UP_ALERT, follow_up_series(leads, met, deadline, hours)), 1)


def _business_days(first: int, last: int) -> float:
    work, _ = _calendar(last // DAY + 1, holidays=False)
    return float(work[first:last].sum()) / (WORK_END - WORK_START)


def _follow_up(section: Section, seed: int) -> None:
    for setup in (DEFAULTS, CONFIGURED, UNLISTED):
        progress(f"LeadFollowUpSlow, no change, {setup.name}: {SEGMENT_YEARS} segment-years per volume")
        for volume in VOLUMES:
            count = sum(episodes(run_follow_up(setup, volume, WARMUP_DAYS + YEAR_DAYS, None, seed + run)[1]) for run in range(SEGMENT_YEARS))
            seed += SEGMENT_YEARS
            target = Target(0.1, at_least=False) if setup is not UNLISTED else None
            section.figures.append(Figure(f"no change, {setup.name}, {volume}/business day", "false LeadFollowUpSlow episodes / segment-year",
                                          (count / SEGMENT_YEARS,), target))  # fmt: skip
    # The break starts on a Monday at 09:00, in an ordinary week (not a holiday's).
    start = (WARMUP_DAYS // 7 + 3) * WEEK + 9
    for setup in (DEFAULTS, CONFIGURED):
        progress(f"LeadFollowUpSlow, the team stops working the source, {setup.name}: {STORY_RUNS} runs per volume")
        for volume in VOLUMES:
            delays = []
            for run in range(STORY_RUNS):
                hours, fired = run_follow_up(setup, volume, start // DAY + 30, start, seed + run)
                first = hours[fired & (hours >= start)]
                delays.append(_business_days(start, int(first[0])) if len(first) else math.inf)
            seed += STORY_RUNS
            target = {50: 1.0, 10: 3.0}.get(volume)
            caught = sum(d < math.inf for d in delays)
            section.figures.append(Figure(f"85% -> 30% within the SLA, {setup.name}, {volume}/business day",
                                          f"median business days to LeadFollowUpSlow ({caught}/{STORY_RUNS} within 30 days)",
                                          (statistics.median(delays),), Target(target, at_least=False) if target else None))  # fmt: skip


def _conversion_for_the_same_break(section: Section, seed: int) -> None:
    """LeadConversionDrop on the same break, taken as the conversion harness's 50% follow-up break."""
    story = conversion.BREAKS[-1]
    progress(f"LeadConversionDrop on the same break: {STORY_RUNS} runs per cell")
    for volume in (10, 50):
        for rate in conversion.RATES:
            delays = []
            for run in range(STORY_RUNS):
                fired = conversion.run_story(story, volume, rate, conversion.START + conversion.AFTER, seed + run)[0]
                delays.append(next((day + 2 / 24 for day, on in enumerate(fired[conversion.START - conversion.WARMUP :]) if on), math.inf))
            caught = sum(d < math.inf for d in delays)
            section.figures.append(Figure(f"50% follow-up break, {volume}/day at {rate:.0%}", f"median days to LeadConversionDrop ({caught}/{STORY_RUNS} within 120)",
                                          (statistics.median(delays),)))  # fmt: skip


MQL_SHARE: Final = 0.3  # of a business day's leads reach mql
STALL_DAYS: Final = 14
HORIZON: Final = 365
OUTCOMES: Final = ((0.5, 10.0), (0.3, 20.0))  # (share, mean days): to sql, disqualified; the rest rot


def simulate_stalled(volume: float, days: int, stop_at: int | None, weekly_sd: float, rng: np.random.Generator) -> Array:
    """Leads stalled at mql at the end of each day; from `stop_at` on, nobody works an mql lead."""
    day = np.arange(days)
    workday = (day % 7 < 5) & ~np.isin(day % YEAR_DAYS, HOLIDAYS)
    swing = rng.normal(1.0, weekly_sd, size=days // 7 + 1)[day // 7].clip(0.0)
    reached = rng.poisson(volume * MQL_SHARE * workday * swing)
    left = np.zeros((days, days))  # left[s, e]: of day s's mql leads, how many moved on or out on day e
    for s in np.nonzero(reached)[0]:
        fate = rng.random(reached[s])
        wait = np.full(reached[s], math.inf)
        low = 0.0
        for share, mean in OUTCOMES:
            pick = (fate >= low) & (fate < low + share)
            wait[pick] = np.ceil(rng.exponential(mean, size=pick.sum()))
            low += share
        exit_day = s + wait
        if stop_at is not None:
            exit_day[exit_day >= stop_at] = math.inf
        np.add.at(left[s], exit_day[exit_day < days].astype(np.int64), 1.0)
    still = reached[:, None] - np.cumsum(left, axis=1)  # still[s, t]: day s's mql leads open at day t
    age = day[None, :] - day[:, None]
    return np.where((age > STALL_DAYS) & (age <= HORIZON), still, 0.0).sum(axis=0)


STALLED_INSTALL: Final = HORIZON + 30  # Prometheus starts once the 365-day horizon has filled


def stalled_series(stalled: Array) -> dict[str, Array]:
    """The recording rules' series, day by day from the install: the learnt level, the rise, z."""
    weight = 1 - math.exp(-1 / rules.STALL_MEMORY_DAYS)
    usual = np.empty_like(stalled)
    usual[STALLED_INSTALL] = stalled[STALLED_INSTALL]
    for t in range(STALLED_INSTALL + 1, len(stalled)):
        usual[t] = usual[t - 1] * (1 - weight) + stalled[t] * weight
    now, usual = stalled[STALLED_INSTALL:], usual[STALLED_INSTALL:]
    floor = np.maximum(usual, 1.0)
    z = (now - usual) / np.sqrt(floor + (rules.STALLED_VARIATION * usual) ** 2)
    return {rules.STALLED_NOW: now, rules.STALLED_RISE: now / floor - 1, rules.STALLED_Z: z}


def run_stalled(volume: float, days: int, stop_at: int | None, seed: int) -> NDArray[np.bool_]:
    """Per day from the install: does LeadStageStalled fire (`for: 6h` within the day)?"""
    stalled = simulate_stalled(volume, days, stop_at, 0.2, np.random.default_rng(seed))
    return holds(rules.STALLED_ALERT, stalled_series(stalled))


def _stalled(section: Section, seed: int) -> None:
    progress(f"LeadStageStalled, no change: {SEGMENT_YEARS} segment-years per volume")
    for volume in VOLUMES:
        count = sum(episodes(run_stalled(volume, STALLED_INSTALL + YEAR_DAYS, None, seed + run)) for run in range(SEGMENT_YEARS))
        section.figures.append(Figure(f"no change, {volume}/business day, LeadStageStalled", "false episodes / segment-year",
                                      (count / SEGMENT_YEARS,), Target(0.1, at_least=False)))  # fmt: skip
    start = STALLED_INSTALL + 35
    progress(f"LeadStageStalled, nobody works mql leads: {STORY_RUNS} runs per volume")
    for volume in VOLUMES:
        delays = []
        for run in range(STORY_RUNS):
            fired = run_stalled(volume, start + 120, start, seed + 1_000_000 + run)[start - STALLED_INSTALL :]
            delays.append(float(np.argmax(fired)) if fired.any() else math.inf)
        caught = sum(d < math.inf for d in delays)
        section.figures.append(Figure(f"mql leads no longer worked, {volume}/business day", f"median days to LeadStageStalled ({caught}/{STORY_RUNS} within 120)",
                                      (statistics.median(delays),)))  # fmt: skip


def run() -> Section:
    section = Section("followup", "follow-up alerts on simulated segments (shipped conditions, the recording rules' arithmetic)")
    _follow_up(section, seed=5_000_000)
    _conversion_for_the_same_break(section, seed=6_000_000)
    _stalled(section, seed=7_000_000)
    section.notes += [
        "LeadFollowUpSlow: hourly; Mon-Fri 09:00-17:30 work, 80% of a weekday's leads in office hours, weekends (and "
        f"{len(HOLIDAYS)} holidays a year, where the setup has them) at a quarter; within-SLA share ~85% with "
        f"{WEEKLY_SD:.0%} week-to-week sd",
        "business days: working hours elapsed / 8.5 from the break (a Monday 09:00); under the SLA of 1d the first "
        "deadline it can miss is a day later, so 2.0 is one business day after it",
        "LeadConversionDrop on the same break: the conversion harness's 50% follow-up break (deals won half as often)",
        f"LeadStageStalled: daily; {MQL_SHARE:.0%} of the leads reach mql on business days (20% week-to-week sd), 50% move "
        "to sql (mean 10 days), 30% are disqualified (mean 20), the rest rot; the story: from a Monday, nobody works an mql lead",
    ]
    return section

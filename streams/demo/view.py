"""What the demo shows: conversion and follow-up by source, funnel, trends, pipeline health, alerts (pure).

Pure so that the live view, the README's picture of it and the plain-text summary at
the end come from the same numbers, and tests render them without a stack. The
numbers are the published series (`aggregates.read.read_series`), so the view shows
exactly what /metrics and `leadpulse report` would.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aggregates.read import Health, Series
from streams.demo.alerts import Alert

#: Windows the view reads: the 30-day view, the 7-day trend, the 90-day summary.
WINDOW, RECENT, QUARTER = "30d", "7d", "90d"
#: The matured cell beside the young 30-day rate: the leads of days T-120 .. T-91, converted within 90 days.
MATURED = "90d"
TREND_WIDTH: Final = 20
#: Narrower terminals get the table without its funnel column (the numbers fit in 100).
FUNNEL_FROM: Final = 112
_BARS: Final = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """One segment's numbers as the view needs them (counts as published)."""

    dimension: str
    segment: str
    counts: dict[str, float]

    def get(self, name: str) -> int:
        return int(self.counts.get(name, 0))

    @property
    def leads(self) -> int:
        """Leads created in the 30-day window."""
        return self.get(f"leads_{WINDOW}")

    @property
    def customers(self) -> int:
        """Of those leads, the ones that became customers (basis cohort)."""
        return self.get(f"cohort_{WINDOW}")

    @property
    def interval(self) -> tuple[float, float] | None:
        if "lower" not in self.counts:
            return None
        return self.counts["lower"], self.counts["upper"]

    def period(self, window: str) -> tuple[int, int]:
        """(customers won, leads created) in `window`: the period basis."""
        return self.get(f"period_{window}"), self.get(f"leads_{window}")

    @property
    def matured(self) -> tuple[int, int]:
        """(customers, leads) of the matured cell: final, unlike the young 30-day cohort's."""
        return self.get("matured_customers"), self.get("matured_leads")

    @property
    def check(self) -> tuple[int, float] | None:
        """(won, expected) customers of the last 7 complete days: what LeadConversionDrop compares."""
        if "expected" not in self.counts:
            return None
        return self.get("observed"), self.counts["expected"]

    @property
    def in_sla(self) -> float | None:
        """Share of the 7-day window's leads past their deadline touched within the SLA: what LeadFollowUpSlow compares."""
        return _rate(self.get("follow_up_met"), self.get("follow_up_met") + self.get("follow_up_breached"))

    @property
    def overdue(self) -> int:
        """Leads awaiting their first touch past their deadline, now."""
        return self.get("overdue")

    @property
    def funnel(self) -> tuple[int, int, int, int]:
        """Leads of the published monthly cohorts and how many reached mql, sql, customer."""
        return self.get("f_leads"), self.get("f_mql"), self.get("f_sql"), self.get("f_customer")


def segment_stats(series: Iterable[Series], dimension: str = "source") -> list[SegmentStats]:
    """The `all` segment first, then each segment of `dimension` by name."""
    counts: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in series:
        key = (s.labels.get("dimension", ""), s.labels.get("segment", ""))
        name = _field(s)
        if key[0] in ("all", dimension) and name is not None:
            counts[key][name] += s.value
    ordered = sorted(counts, key=lambda k: (k[0] != "all", k[1]))
    return [SegmentStats(dim, seg, dict(counts[(dim, seg)])) for dim, seg in ordered]


def _field(s: Series) -> str | None:
    """Which count of `SegmentStats` a series is, if the view uses it."""
    labels = s.labels
    if s.name == "leadpulse_cohort_leads" and labels.get("period") == "month":
        return "f_leads"
    if s.name == "leadpulse_cohort_stage_leads" and labels.get("period") == "month":
        return f"f_{labels['stage']}"
    if labels.get("check") == "conversion" and s.name in _CHECK:
        return _CHECK[s.name]
    if s.name == "leadpulse_leads_overdue_touch":
        return "overdue"
    window = labels.get("window")
    if s.name == "leadpulse_window_follow_up_leads" and window == RECENT:
        return f"follow_up_{labels['outcome']}"
    if s.name in _MATURED and window == WINDOW and labels.get("within") == MATURED:
        return _MATURED[s.name]
    if s.name == "leadpulse_window_leads":
        return f"leads_{window}"
    if s.name == "leadpulse_window_customers":
        return f"{labels['basis']}_{window}"
    if (
        s.name in ("leadpulse_window_conversion_ratio_lower", "leadpulse_window_conversion_ratio_upper")
        and window == WINDOW
    ):
        return s.name.rsplit("_", 1)[1]
    return None


_CHECK: Final = {"leadpulse_check_observed_customers": "observed", "leadpulse_check_expected_customers": "expected"}
_MATURED: Final = {"leadpulse_window_matured_leads": "matured_leads", "leadpulse_window_matured_customers": "matured_customers"}


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the pipeline."""

    at_s: float  # seconds since the demo started
    as_of: date  # day the windows end on
    stats: list[SegmentStats]
    health: Health
    lag: int | None  # records in Kafka not yet in the aggregates; None if unknown
    alerts: list[Alert] | None  # None: Alertmanager does not answer
    processes: dict[str, str]  # name -> "running" or how it ended


@dataclass
class Timeline:
    """The samples so far, reduced to what the view shows: the latest, trends, rates, alerts seen."""

    latest: Sample | None = None
    trends: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    fired: dict[str, str] = field(default_factory=dict)  # alert -> when first seen
    events_per_s: float | None = None

    def add(self, sample: Sample, clock: str) -> None:
        """Take a sample; `clock` is the wall time to note for alerts seen for the first time."""
        if self.latest is not None and sample.at_s > self.latest.at_s:
            seen = _events(sample.health) - _events(self.latest.health)
            self.events_per_s = seen / (sample.at_s - self.latest.at_s)
        for stats in sample.stats:
            self.trends[stats.segment].append(_rate(*stats.period(RECENT)) or 0.0)
        for alert in sample.alerts or []:
            self.fired.setdefault(alert.describe(), clock)
        self.latest = sample


def _events(health: Health) -> int:
    return sum(health.events.values())


def _outcome(health: Health, outcome: str) -> int:
    return sum(n for (_, _, kind), n in health.events.items() if kind == outcome)


def _rate(customers: int, leads: int) -> float | None:
    return customers / leads if leads else None


def percent(value: float | None, decimals: int = 1) -> str:
    return "–" if value is None else f"{value:.{decimals}%}"


def per_customer(customers: int, leads: int) -> str:
    """The "10:1" form: leads per customer."""
    return f"{leads / customers:.0f}:1" if customers else "–"


def sparkline(values: Sequence[float], width: int = TREND_WIDTH) -> str:
    """`values` squeezed into `width` bars (bucket means), scaled from 0 to their maximum."""
    if not values:
        return ""
    cells = min(width, len(values))
    chunks = [values[len(values) * i // cells : len(values) * (i + 1) // cells] for i in range(cells)]
    means = [sum(chunk) / len(chunk) for chunk in chunks]
    top = max(means)
    return "".join(_BARS[math.ceil(m / top * len(_BARS)) - 1] if m > 0 else " " for m in means)


@dataclass(frozen=True, slots=True)
class Context:
    """What the view says around the numbers: the scenario, the links, how to stop."""

    scenario: str
    live_at_s: float  # when the feed has replayed the past and goes on at the clock's pace
    links: tuple[tuple[str, str], ...]
    stop_hint: str


def render(timeline: Timeline, context: Context) -> RenderableType:
    """The live view: header, conversion table, pipeline, alerts, links."""
    sample = timeline.latest
    if sample is None:
        return Text("starting the stack, the worker and the exporter…")
    return Group(
        _header(sample, context),
        _Fitted(lambda width: _table(sample, timeline, width)),
        _pipeline(sample, timeline),
        _alerts(sample, timeline),
        _links(context),
    )


def save_svg(timeline: Timeline, context: Context, path: Path, width: int = 140) -> None:
    """The view as it stands, as an SVG picture (for docs, or to attach to a bug report)."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(render(timeline, context))
    console.save_svg(str(path), title="leadpulse demo")


def _header(sample: Sample, context: Context) -> Text:
    left = context.live_at_s - sample.at_s
    phase = f"replaying the past, live in {_duration(left)}" if left > 0 else "live"
    # Separating spaces stay inside styled runs: SVG converters drop a run's leading spaces.
    header = Text.assemble(
        ("leadpulse demo  ", "bold"), f"{_duration(sample.at_s)} · windows as of {sample.as_of} ({phase})\n"
    )
    header.append(f"scenario: {context.scenario}", style="dim")
    return header


class _Fitted:
    """A renderable built for the width it gets: the live view follows the terminal's size."""

    def __init__(self, build: Callable[[int], RenderableType]) -> None:
        self.build = build

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.build(options.max_width)


def _table(sample: Sample, timeline: Timeline, width: int) -> Table:
    """The conversion table; below FUNNEL_FROM columns without the funnel, and the trend is cropped first."""
    firing = {a.labels.get("segment") for a in sample.alerts or [] if a.labels.get("dimension") == "source"}
    with_funnel = width >= FUNNEL_FROM
    caption = [
        f"leads, customers, rate, 95% CI, N:1: leads created in the last {WINDOW} and the customers among them so far"
        " (young leads: still converting)",
        f"matured: of the leads created 91-120 days ago, the share converted within {MATURED} (final)",
        "won 7d, expected: customers won in the last 7 complete days, and what the lead flow of the weeks they come"
        " from predicts (what LeadConversionDrop compares)",
        f"follow-up: of the leads of the last {RECENT} past their touch deadline, the share touched within the SLA"
        " (what LeadFollowUpSlow compares) · the leads past their deadline still awaiting a touch now",
        *(["funnel: share of the last 12 monthly cohorts that reached MQL › SQL › customer"] if with_funnel else []),
        f"trend: the {RECENT} rate over the demo",
    ]
    table = Table(
        title="Conversion by source",
        caption="\n".join(caption),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,  # one space and the divider between columns: the numbers fit in 100
    )
    numbers = (
        "leads", "customers", "rate", "matured", "95% CI", "N:1", "won 7d", "expected", "follow-up",
        *(["funnel"] if with_funnel else []),
    )
    table.add_column("source", no_wrap=True)
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    # The only wrapable column: on a narrow terminal the trend is cropped before any number is.
    table.add_column(f"trend ({RECENT})", overflow="crop", max_width=TREND_WIDTH)
    for stats in sample.stats:
        style = "bold red" if stats.segment in firing else ""
        interval = stats.interval
        leads, mql, sql, won = stats.funnel
        funnel = " › ".join([*(percent(_rate(n, leads), 0) for n in (mql, sql)), percent(_rate(won, leads))])
        observed, expected = _check_cells(stats)
        table.add_row(
            Text(stats.segment, style="bold" if stats.dimension == "all" else style),
            f"{stats.leads:,}",
            f"{stats.customers:,}",
            percent(_rate(stats.customers, stats.leads)),
            percent(_rate(*stats.matured)),
            f"{interval[0]:.1%}–{interval[1]:.1%}" if interval else "–",
            per_customer(stats.customers, stats.leads),
            Text(observed, style=style),
            expected,
            Text(f"{percent(stats.in_sla, 0)} {stats.overdue:,}", style=style),
            *([funnel] if with_funnel else []),
            Text(sparkline(timeline.trends.get(stats.segment, [])), style="red" if style else "cyan"),
            end_section=stats.dimension == "all",
        )
    return table


def _check_cells(stats: SegmentStats) -> tuple[str, str]:
    """Won and expected customers of the conversion check, or dashes while it has no baseline."""
    check = stats.check
    return ("–", "–") if check is None else (f"{check[0]:,}", f"{check[1]:,.0f}")


def _pipeline(sample: Sample, timeline: Timeline) -> Panel:
    health = sample.health
    rate = "–" if timeline.events_per_s is None else f"{timeline.events_per_s:,.0f}"
    lag = "–" if sample.lag is None else f"{sample.lag:,}"
    line = Text(
        f"events/s {rate} · applied {_outcome(health, 'applied'):,} · duplicates {_outcome(health, 'duplicate'):,}"
        f" · rejected {_outcome(health, 'rejected'):,} · consumer lag {lag} records\n"
    )
    for name, state in sample.processes.items():
        line.append(f"{name} {state} · ", style="green" if state == "running" else "bold red")
    line.right_crop(3)
    return Panel(line, title="pipeline", title_align="left")


def _alerts(sample: Sample, timeline: Timeline) -> Panel:
    if sample.alerts is None:
        body = Text("Alertmanager does not answer (not installed, or not started by this stack)", style="yellow")
    elif not sample.alerts:
        body = Text("none firing", style="green")
    else:
        body = Text()
        for alert in sample.alerts:
            body.append("● ", style="bold red")
            body.append(f"{alert.describe()} · firing since {timeline.fired.get(alert.describe(), '?')}\n")
        body.rstrip()
    return Panel(body, title="alerts (Alertmanager)", title_align="left")


def _links(context: Context) -> Text:
    text = Text()
    for name, target in context.links:
        text.append(f"{name}: ", style="bold")
        text.append(f"{target}\n")
    text.append(context.stop_hint, style="dim")
    return text


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def progress(timeline: Timeline) -> str:
    """One line of news for a log, when there is no terminal for the live view."""
    sample = timeline.latest
    if sample is None:
        return "starting"
    alerts = "unknown" if sample.alerts is None else (", ".join(a.describe() for a in sample.alerts) or "none")
    return (
        f"[{sample.at_s:5.0f}s] windows as of {sample.as_of}: {_outcome(sample.health, 'applied'):,} events applied,"
        f" lag {sample.lag}, alerts: {alerts}"
    )


def summary(timeline: Timeline, context: Context) -> str:
    """The plain-text report of a finished demo: rates per source, alerts that fired, pipeline totals."""
    sample = timeline.latest
    if sample is None:
        return "leadpulse demo: stopped before the first numbers arrived"
    rows = [
        ("source", f"leads {QUARTER}", f"customers {QUARTER}", f"rate {QUARTER}", "N:1", "matured", "won 7d", "expected")
        + (f"in SLA {RECENT}", "overdue")
    ]
    for stats in sample.stats:
        customers, leads = stats.period(QUARTER)
        rows.append(
            (
                stats.segment,
                f"{leads:,}",
                f"{customers:,}",
                percent(_rate(customers, leads)),
                per_customer(customers, leads),
                percent(_rate(*stats.matured)),
                *_check_cells(stats),
                percent(stats.in_sla, 0),
                f"{stats.overdue:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    fired = [f"  {alert}, first seen {when}" for alert, when in timeline.fired.items()] or ["  none"]
    health = sample.health
    lag = "unknown" if sample.lag is None else f"{sample.lag:,}"
    return "\n".join(
        [
            f"leadpulse demo summary: ran {_duration(sample.at_s)}, windows as of {sample.as_of} (UTC)",
            f"scenario: {context.scenario}",
            "",
            "Conversion by source, period basis (customers won / leads created in the window); matured: of the leads"
            f" created 91-120 days ago, the share converted within {MATURED}; won 7d, expected: what LeadConversionDrop"
            f" compares; in SLA {RECENT}: the share of leads touched within the follow-up SLA, what LeadFollowUpSlow"
            " compares; overdue: leads past their deadline awaiting a touch now:",
            *table,
            "",
            "Alerts that fired:",
            *fired,
            "",
            f"Pipeline: {_outcome(health, 'applied'):,} events applied, {_outcome(health, 'duplicate'):,} duplicates,"
            f" {_outcome(health, 'rejected'):,} rejected; consumer lag {lag}",
        ]
    )

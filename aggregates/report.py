"""`leadpulse report`: the series `/metrics` publishes, as tables for people or JSON for scripts.

Both views come from `read_series`, the exporter's own read code, so the report and
the gauges can never disagree.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta

import orjson
from rich.console import Console
from rich.table import Table

from aggregates.connect import redis_client
from aggregates.errors import REDIS_ERRORS
from aggregates.read import read_series
from aggregates.review.figures import segment_counts, segment_figures
from aggregates.review.shift_share import decompose, explain
from aggregates.series import Series
from streams.settings import Settings

#: The window the overview table shows: a month is the review cadence most teams use.
OVERVIEW_DAYS = 30
OVERVIEW_WINDOW = f"{OVERVIEW_DAYS}d"

Row = dict[str, float]


def print_report(settings: Settings, as_of: date, as_json: bool) -> int:
    """Print the report; exit status 1 (with the reason on stderr) when Redis cannot be read."""
    try:
        client = redis_client(settings, timeout_s=10)
        series = read_series(client, settings, as_of)
        before = read_series(client, settings, as_of - timedelta(days=OVERVIEW_DAYS)) if not as_json else []
    except REDIS_ERRORS as exc:
        print(f"error: cannot read the aggregates from Redis at {settings.redis_shown}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        sys.stdout.write(orjson.dumps([series_json(s) for s in series], option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console()
    console.print(overview_table(series, as_of))
    console.print(why_line(series, before))
    console.print(cohort_table(series, "month"))
    return 0


def series_json(series: Series) -> dict[str, object]:
    return {"name": series.name, "labels": series.labels, "value": series.value}


def _window_rows(series: Sequence[Series], window: str) -> dict[tuple[str, str], Row]:
    """One window's series pivoted to {(dimension, segment): {name[/basis or /within]: value}}."""
    rows: dict[tuple[str, str], Row] = defaultdict(dict)
    for s in series:
        if s.labels.get("window") == window and "le" not in s.labels:
            qualifier = s.labels.get("basis", s.labels.get("within"))
            column = s.name.removeprefix("leadpulse_") + (f"/{qualifier}" if qualifier else "")
            rows[(s.labels["dimension"], s.labels["segment"])][column] = s.value
    return rows


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def overview_table(series: Sequence[Series], as_of: date) -> Table:
    """Overall and per source over the last 30 days: leads, customers, rate, N:1, interval.

    The young cohort's rate is still rising (its leads are days old), so the matured
    rates stand beside it: the leads of a 30-day window N days older, converted within
    N days (CONTRACT section 2), final and comparable from one day to the next.
    """
    table = Table(
        title=f"Lead-to-customer conversion, {OVERVIEW_WINDOW} window as of {as_of} (UTC)",
        caption="matured N: of the leads created N+1 .. N+30 days ago, those converted within N days",
        caption_justify="left",
    )
    matured = sorted(
        {s.labels["within"] for s in series if "within" in s.labels and s.labels.get("window") == OVERVIEW_WINDOW},
        key=lambda within: int(within.rstrip("d")),
    )
    for column in ("segment", "leads", "customers", "rate", *(f"matured {w}" for w in matured),
                   "leads per customer", "95% interval", "won in window", "period rate", "win rate"):
        table.add_column(column, justify="left" if column == "segment" else "right")
    rows = _window_rows(series, OVERVIEW_WINDOW)
    for (dimension, segment), row in sorted(rows.items(), key=lambda item: (item[0][0] != "all", item[0])):
        if dimension not in ("all", "source"):
            continue
        leads, customers = row.get("window_leads", 0.0), row.get("window_customers/cohort", 0.0)
        lower, upper = row.get("window_conversion_ratio_lower"), row.get("window_conversion_ratio_upper")
        table.add_row(
            "all sources" if dimension == "all" else segment,
            f"{leads:.0f}",
            f"{customers:.0f}",
            _percent(row.get("window_conversion_ratio/cohort")),
            *(_percent(row.get(f"window_matured_conversion_ratio/{w}")) for w in matured),
            f"{leads / customers:.1f}:1" if customers else "-",
            f"{_percent(lower)} - {_percent(upper)}" if lower is not None else "-",
            f"{row.get('window_customers/period', 0.0):.0f}",
            _percent(row.get("window_conversion_ratio/period")),
            _percent(row.get("window_win_ratio")),
        )
    return table


def why_line(series: Sequence[Series], before: Sequence[Series]) -> str:
    """The overview's change against the 30 days before it, split into mix and rate effects by source."""
    counts = [segment_counts(segment_figures(s, OVERVIEW_WINDOW)) for s in (before, series)]
    return explain(decompose(*counts), f"the {OVERVIEW_DAYS} days before")


def cohort_table(series: Sequence[Series], period: str) -> Table:
    """One row per cohort (all sources): leads, funnel stages, customers, rate, qualified rate."""
    table = Table(title=f"{period.capitalize()} cohorts, all sources")
    for column in ("cohort", "leads", "mql", "sql", "customers", "disqualified", "rate", "qualified rate", "N:1"):
        table.add_column(column, justify="left" if column == "cohort" else "right")
    rows: dict[str, Row] = defaultdict(dict)
    for s in series:
        if s.labels.get("period") == period and s.labels.get("dimension") == "all":
            column = s.labels.get("stage", s.name.removeprefix("leadpulse_cohort_"))
            rows[s.labels["cohort"]][column] = s.value
    for cohort, row in sorted(rows.items(), reverse=True):
        table.add_row(
            cohort,
            f"{row.get('leads', 0):.0f}",
            f"{row.get('mql', 0):.0f}",
            f"{row.get('sql', 0):.0f}",
            f"{row.get('customers', 0):.0f}",
            f"{row.get('disqualified_leads', 0):.0f}",
            _percent(row.get("conversion_ratio")),
            _percent(row.get("qualified_conversion_ratio")),
            f"{row['leads_per_customer']:.1f}:1" if "leads_per_customer" in row else "-",
        )
    return table

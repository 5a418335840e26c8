"""Assemble the review's HTML: one self-contained file, inline SVG and CSS, no script.

Jinja2 renders the template (`templates/review.html.j2`) with autoescaping, so a
campaign called `<b>` is shown, never interpreted. Every figure cell also carries its
raw value (`data-field`, `data-value`), so a script or a test reads the same numbers
the reader sees without parsing formatted text. Missing figures (no leads, no
customers, no closed deals) are words, never NaN or Infinity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from aggregates.review import charts
from aggregates.review.build import PeriodView, Review
from aggregates.review.figures import SegmentFigures
from aggregates.review.shift_share import Decomposition, explain, signed_points
from exporters.mixin import CONFIG

_ENV: Final = Environment(loader=PackageLoader("aggregates.review"), autoescape=True, undefined=StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
#: Per-dimension tables show at most this many segments (by leads); the rest are counted.
MAX_TABLE_ROWS: Final = 25


def percent(value: float | None, none: str = "–") -> str:
    return none if value is None else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    """A difference of two 0..1 rates in percentage points, signed; `0.0 pts` when it rounds to nothing."""
    return "" if value is None else f"{signed_points(value)} pts"


def count(value: float) -> str:
    return f"{value:,.0f}"


def ratio_text(f: SegmentFigures) -> str:
    """`22:1`, or why there is none."""
    n = f.leads_per_customer
    if n is None:
        return "no customers" if f.leads else "no leads"
    return f"{n:,.0f}:1" if n >= 10 else f"{n:.1f}:1"


def speed_text(seconds: float | None) -> str:
    """A speed to lead in minutes, hours or days; words when no lead was touched."""
    if seconds is None:
        return "no touches"
    if seconds < 3_600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3_600:.1f} h" if seconds < 172_800 else f"{seconds / 86_400:.1f} d"


def relative(current: float, base: float) -> str:
    """`+12%` against the base; words when the base is 0."""
    if base == 0:
        return "new" if current else ""
    return f"{100 * (current - base) / base:+.0f}%"


def difference(current: float | None, base: float | None) -> float | None:
    return None if current is None or base is None else current - base


@dataclass(frozen=True, slots=True)
class Cell:
    """One table cell: its text, the change against the previous period, its raw value."""

    field: str
    text: str
    change: str = ""
    value: float | None = None


@dataclass(frozen=True, slots=True)
class Row:
    segment: str
    too_small: bool
    cells: tuple[Cell, ...]


def segment_row(segment: str, now: SegmentFigures, before: SegmentFigures) -> Row:
    """The per-segment table row; a segment too small to judge shows no changes to rank."""
    def change(text: str) -> str:
        return "" if now.too_small else text

    def share(figures: SegmentFigures, stage: int) -> float | None:
        return stage / figures.leads if figures.leads else None

    median, median_before = now.median_days_to_convert, before.median_days_to_convert
    cells = (
        Cell("leads", count(now.leads), change(relative(now.leads, before.leads)), now.leads),
        Cell("customers", count(now.customers), change(relative(now.customers, before.customers)), now.customers),
        Cell("rate", percent(now.rate, "no leads"), change(points(difference(now.rate, before.rate))), now.rate),
        Cell("interval", f"{percent(now.interval[0])} – {percent(now.interval[1])}" if now.interval else "–"),
        Cell("leads_per_customer", ratio_text(now),
             change(f"was {ratio_text(before)}" if before.leads_per_customer is not None else ""), now.leads_per_customer),
        Cell("mql", percent(share(now, now.mql)),
             change(points(difference(share(now, now.mql), share(before, before.mql)))), now.mql),
        Cell("sql", percent(share(now, now.sql)),
             change(points(difference(share(now, now.sql), share(before, before.sql)))), now.sql),
        Cell("win_rate", percent(now.win_rate, "no closed deals"),
             change(points(difference(now.win_rate, before.win_rate))), now.win_rate),
        Cell("won_amount", count(now.won_amount), change(relative(now.won_amount, before.won_amount)), now.won_amount),
        Cell("median_days_to_convert", "no conversions" if median is None else f"{median:.0f} d",
             "" if median is None or median_before is None else change(f"{median - median_before:+.0f} d"), median),
    )
    return Row(segment, now.too_small, cells)


def follow_up_cells(now: SegmentFigures, before: SegmentFigures, quiet: bool) -> tuple[Cell, ...]:
    """The within-SLA share, the median speed to lead and the conversion of the leads that met
    and breached the SLA, against the period before (`quiet`: no changes)."""
    def change(text: str) -> str:
        return "" if quiet else text

    past, past_before = now.met + now.breached, before.met + before.breached
    speed, speed_before = now.median_seconds_to_touch, before.median_seconds_to_touch
    (met, late), (met_before, late_before) = now.conversion_by_outcome, before.conversion_by_outcome
    return (
        Cell("past_deadline", count(past), change(relative(past, past_before)), past),
        Cell("within_sla", percent(now.within_sla, "none past deadline"),
             change(points(difference(now.within_sla, before.within_sla))), now.within_sla),
        Cell("median_seconds_to_touch", speed_text(speed),
             change(f"was {speed_text(speed_before)}" if speed_before is not None else ""), speed),
        Cell("met_conversion", percent(met, "none met"), change(points(difference(met, met_before))), met),
        Cell("breached_conversion", percent(late, "none breached"), change(points(difference(late, late_before))), late),
    )


def follow_up_row(segment: str, now: SegmentFigures, before: SegmentFigures) -> Row:
    """A segment's follow-up row; a share too small to judge shows no changes to rank."""
    return Row(segment, now.sla_too_small, follow_up_cells(now, before, now.sla_too_small))


def ranked_rows(
    now: Mapping[str, SegmentFigures], before: Mapping[str, SegmentFigures],
    row: Callable[[str, SegmentFigures, SegmentFigures], Row], size: Callable[[SegmentFigures], int],
    shown: Callable[[SegmentFigures], bool],
) -> tuple[list[Row], int]:
    """The `shown` segments' rows, biggest first (too small to judge last), and how many did not fit."""
    rows = [row(s, f, before.get(s, SegmentFigures())) for s, f in now.items() if shown(f)]
    rows.sort(key=lambda r: (r.too_small, -size(now[r.segment]), r.segment))
    return rows[:MAX_TABLE_ROWS], max(0, len(rows) - MAX_TABLE_ROWS)


def segment_rows(current: PeriodView, previous: PeriodView, dimension: str) -> tuple[list[Row], int]:
    """Rows of the segments with leads or won deals, by leads."""
    return ranked_rows(current.segments(dimension), previous.segments(dimension), segment_row,
                       lambda f: f.leads, lambda f: bool(f.leads or f.won))


def follow_up_rows(current: PeriodView, previous: PeriodView, dimension: str) -> tuple[list[Row], int]:
    """Follow-up rows of the segments with a lead past its deadline or touched, by the leads past it."""
    return ranked_rows(current.segments(dimension), previous.segments(dimension), follow_up_row,
                       lambda f: f.met + f.breached, lambda f: bool(f.met + f.breached or f.median_seconds_to_touch is not None))


def comparison(current: SegmentFigures, base: PeriodView) -> str:
    """`against 5.1% in October 2026 (-0.5 pts)`, or that the period had no leads."""
    if not base.overall.leads:
        return f"no leads in {base.period.label} to compare with"
    return (f"{percent(base.overall.rate)} in {base.period.label} "
            f"({points(difference(current.rate, base.overall.rate))})")


def _rate_points(views: Sequence[PeriodView]) -> list[tuple[str, float, tuple[float, float]]]:
    return [(v.period.label, v.overall.rate, v.overall.interval)
            for v in views if v.overall.rate is not None and v.overall.interval is not None]


def _why(review: Review, base: PeriodView) -> tuple[str, Decomposition | None]:
    decomposition = review.why(base)
    return explain(decomposition, base.period.label), decomposition


def figure(chart: charts.Chart) -> Markup:
    """A chart as a `<figure>`: the SVG matplotlib drew (trusted), its title and axes as its
    accessible name, which is also what a reader without the picture gets."""
    name = f"{chart.title}. x: {chart.x_label}; y: {chart.y_label}"
    return Markup('<figure role="img" aria-label="{}">{}</figure>').format(name, Markup(chart.svg))


def render(review: Review) -> str:
    """The whole HTML document."""
    current, overall = review.current, review.current.overall
    whys = [(base, *_why(review, base)) for base in (review.previous, review.year_before)]
    why_charts = [charts.effects_chart(d, base.period.label) for base, _, d in whys[:1] if d]
    sources = [(s, f.rate, f.interval) for s, f in sorted(current.segments("source").items(), key=lambda i: -i[1].leads)
               if f.rate is not None and f.interval is not None and not f.too_small]
    triangle = review.triangle
    # Per-cohort columns after the ages: the rate to date, then the age-matched rates.
    columns = {"to date": {row.cohort: row.rate_to_date for row in triangle.rows}}
    for index, days in enumerate(triangle.matured_days):
        columns[f"≤{days} d"] = {row.cohort: row.matured[index] for row in triangle.rows}
    points_ = _rate_points([review.year_before, review.previous, current])
    tables = {dimension: segment_rows(current, review.previous, dimension) for dimension in ("source", "campaign")}
    follow_up = {dimension: follow_up_rows(current, review.previous, dimension)
                 for dimension in ("source", review.owner) if dimension}
    return _ENV.get_template("review.html.j2").render(
        figure=figure, percent=percent, count=count, ratio_text=ratio_text, points=points, speed_text=speed_text,
        review=review, overall=overall, follow_up=follow_up, follow_up_overall=follow_up_cells(overall, review.previous.overall, quiet=False),
        owner_key=CONFIG.owner_dimension,
        previous=comparison(overall, review.previous), year_before=comparison(overall, review.year_before),
        whys=whys, why_charts=why_charts, tables=tables,
        rate_chart=charts.rate_chart(points_) if points_ else None,
        sources_chart=charts.segment_rates_chart(sources, current.period.label) if sources else None,
        heatmap=charts.heatmap_chart(triangle, columns) if any(r.leads for r in triangle.rows) else None,
        maturing=[row.cohort for row in triangle.rows if row.maturing],
        young=(review.as_of - current.period.start).days + 1
        if any(row.maturing for row in triangle.rows if row.cohort in current.period.months) else None,
    )

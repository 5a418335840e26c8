"""The review's charts as inline SVG, drawn by matplotlib without a browser or a display.

matplotlib because it renders SVG in-process from a pip wheel (no browser, no Node, no
network), is the most widely kept plotting library in Python, and its SVG is
reproducible: a fixed `svg.hashsalt` and no date in the metadata make the same numbers
give the same bytes. The object API (`Figure`, no pyplot) keeps no global state.
Text is drawn as paths so the picture is the same in every browser and in print.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import matplotlib
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from aggregates.review.cohorts import CohortTriangle
from aggregates.review.shift_share import Decomposition

matplotlib.use("svg")  # no display and no GUI toolkit are ever needed

#: Typed Any: matplotlib's stubs want a dict of literal keys.
_RC: Final[Any] = {"svg.hashsalt": "leadpulse", "svg.fonttype": "path", "font.size": 9, "axes.titleweight": "bold"}
_WIDTH_IN: Final = 7.0  # fits A4 and Letter with margins
_MIX, _RATE, _CURRENT, _EARLIER = "#4c72b0", "#dd8452", "#1f4e79", "#a0a0a0"
_HEAT: Final = LinearSegmentedColormap.from_list("review", ["#f7fbff", "#6baed6", "#08306b"])


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart: what it is called, what its axes measure (units in brackets), its SVG."""

    title: str
    x_label: str
    y_label: str
    svg: str


def _render(figure: Figure, axes: Axes) -> Chart:
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # inline in HTML: no XML declaration or doctype
    return Chart(axes.get_title(), axes.get_xlabel(), axes.get_ylabel(), svg)


def _figure(height_in: float) -> tuple[Figure, Axes]:
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(_WIDTH_IN, height_in), layout="constrained")
        return figure, figure.add_subplot()


def rate_chart(points: Sequence[tuple[str, float, tuple[float, float]]]) -> Chart:
    """The rate of each period (label, rate, 95% interval), oldest first, with its interval."""
    with matplotlib.rc_context(_RC):
        figure, axes = _figure(2.6)
        for i, (label, rate, (lower, upper)) in enumerate(points):
            colour = _CURRENT if i == len(points) - 1 else _EARLIER
            axes.errorbar([i], [100 * rate], yerr=[[100 * (rate - lower)], [100 * (upper - rate)]],
                          fmt="o", color=colour, capsize=6, markersize=7)
            axes.annotate(f"{100 * rate:.1f}%", (i, 100 * rate), xytext=(10, 0), textcoords="offset points",
                          va="center")
        axes.set_xticks(range(len(points)), [p[0] for p in points])
        axes.set_xlim(-0.5, len(points) - 0.5)
        axes.set_ylim(bottom=0)
        axes.set_title("Lead-to-customer rate by period, with its 95% interval")
        axes.set_xlabel("review period (leads created in it)")
        axes.set_ylabel("lead-to-customer rate (%)")
        axes.grid(axis="y", alpha=0.3)
        return _render(figure, axes)


def effects_chart(decomposition: Decomposition, versus: str) -> Chart:
    """Each segment's mix and rate effect on the change of the overall rate, in points."""
    effects = sorted(decomposition.effects, key=lambda e: abs(e.mix + e.rate))
    with matplotlib.rc_context(_RC):
        figure, axes = _figure(1.2 + 0.32 * max(1, len(effects)))
        rows = range(len(effects))
        axes.barh([r + 0.2 for r in rows], [100 * float(e.mix) for e in effects], height=0.4, color=_MIX,
                  label="mix: share of leads moving")
        axes.barh([r - 0.2 for r in rows], [100 * float(e.rate) for e in effects], height=0.4, color=_RATE,
                  label="rate: converting better or worse")
        axes.set_yticks(list(rows), [e.segment for e in effects])
        axes.axvline(0, color="black", linewidth=0.8)
        axes.set_title(f"Why the rate moved against {versus}: mix and rate effects")
        axes.set_xlabel("effect on the overall rate (percentage points)")
        axes.set_ylabel("source")
        figure.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
        axes.grid(axis="x", alpha=0.3)
        return _render(figure, axes)


def segment_rates_chart(rates: Sequence[tuple[str, float, tuple[float, float]]], period: str) -> Chart:
    """Each segment's rate (label, rate, interval) with its interval, biggest segment on top."""
    with matplotlib.rc_context(_RC):
        figure, axes = _figure(1.2 + 0.3 * max(1, len(rates)))
        for row, (_, rate, (lower, upper)) in enumerate(reversed(rates)):
            axes.errorbar([100 * rate], [row], xerr=[[100 * (rate - lower)], [100 * (upper - rate)]],
                          fmt="o", color=_CURRENT, capsize=4)
        axes.set_yticks(range(len(rates)), [r[0] for r in reversed(rates)])
        axes.set_xlim(left=0)
        axes.set_title(f"Lead-to-customer rate by source, {period}, with 95% intervals")
        axes.set_xlabel("lead-to-customer rate (%)")
        axes.set_ylabel("source")
        axes.grid(axis="x", alpha=0.3)
        return _render(figure, axes)


def heatmap_chart(triangle: CohortTriangle, columns: Mapping[str, Mapping[str, float | None]]) -> Chart:
    """Cohorts by age in months, cumulative conversion in each cell; `columns` are further
    per-cohort rates shown after the ages: the rate to date and the age-matched rates."""
    rows = triangle.rows
    ages = max((sum(c is not None for c in row.cumulative) for row in rows), default=0) or 1
    names = [str(age) for age in range(ages)] + list(columns)
    cells = [list(row.cumulative[:ages]) + [columns[name].get(row.cohort) for name in columns] for row in rows]
    with matplotlib.rc_context(_RC):
        figure, axes = _figure(1.4 + 0.3 * len(rows))
        values = [[float("nan") if v is None else 100 * v for v in line] for line in cells]
        top = max((v for line in values for v in line if v == v), default=1.0) or 1.0
        image = axes.imshow(values, cmap=_HEAT, vmin=0, vmax=top, aspect="auto")
        for y, line in enumerate(cells):
            for x, value in enumerate(line):
                if value is None:
                    axes.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="///",
                                             edgecolor="#c8c8c8", linewidth=0))
                    continue
                dark = 100 * value > 0.6 * top
                axes.text(x, y, f"{100 * value:.1f}", ha="center", va="center", fontsize=7,
                          color="white" if dark else "black")
        if columns:
            axes.axvline(ages - 0.5, color="black", linewidth=1.5)
        axes.set_xticks(range(len(names)), names)
        for label in axes.get_xticklabels()[ages:]:  # the named columns are wider than a cell
            label.set_rotation(90)
        axes.set_yticks(range(len(rows)), [f"{r.cohort}{' (maturing)' if r.maturing else ''}" for r in rows])
        axes.set_title("Cumulative conversion of each month cohort by age (hatched: age not reached yet)")
        axes.set_xlabel("age (months after the creation month); after the line: rate to date, "
                        "matured rates (converted within N days)" if columns else "age (months after the creation month)")
        axes.set_ylabel("cohort (month the leads were created)")
        figure.colorbar(image, ax=axes, label="cumulative conversion (%)", shrink=0.8)
        return _render(figure, axes)

"""Every chart has a title, labelled axes with units, and the same numbers give the same SVG."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest

from aggregates.leads import LeadTimes
from aggregates.review import charts
from aggregates.review.cohorts import cohort_triangle
from aggregates.review.shift_share import decompose

DAY = 86_400_000
START = int(datetime(2026, 6, 1, tzinfo=timezone.utc).timestamp() * 1000)


def every_chart() -> list[charts.Chart]:
    decomposition = decompose({"a": (100, 10), "b": (100, 2)}, {"a": (50, 5), "b": (150, 3)})
    assert decomposition is not None
    triangle = cohort_triangle([LeadTimes(START + i * DAY, START + 3 * i * DAY if i % 3 else None) for i in range(90)],
                               last_month=date(2026, 8, 1), as_of=date(2026, 9, 1))
    return [
        charts.rate_chart([("May 2026", 0.06, (0.04, 0.09)), ("June 2026", 0.04, (0.03, 0.06))]),
        charts.effects_chart(decomposition, "May 2026"),
        charts.segment_rates_chart([("a", 0.1, (0.05, 0.18)), ("b", 0.02, (0.01, 0.05))], "June 2026"),
        charts.heatmap_chart(triangle, {"to date": {row.cohort: row.rate_to_date for row in triangle.rows}}),
    ]


@pytest.fixture(scope="module")
def drawn() -> list[charts.Chart]:
    return every_chart()


def test_every_chart_has_a_title_and_axis_labels_with_units_where_it_measures(drawn: list[charts.Chart]) -> None:
    unit = re.compile(r"\((%|percentage points|months after the creation month)\)")
    for chart in drawn:
        assert chart.title and chart.x_label and chart.y_label
        assert unit.search(chart.x_label) or unit.search(chart.y_label), chart.title


def test_charts_are_inline_svg_with_a_size(drawn: list[charts.Chart]) -> None:
    for chart in drawn:
        assert chart.svg.startswith("<svg") and chart.svg.rstrip().endswith("</svg>")
        assert re.search(r'width="[0-9.]+pt" height="[0-9.]+pt"', chart.svg)
        assert "<?xml" not in chart.svg and "<dc:date>" not in chart.svg


def test_the_same_numbers_draw_the_same_bytes(drawn: list[charts.Chart]) -> None:
    assert [c.svg for c in every_chart()] == [c.svg for c in drawn]

"""`leadpulse report`'s overview: the young 30-day rate with the matured rates beside it."""

from __future__ import annotations

import io
from datetime import date

from rich.console import Console

from aggregates.report import overview_table
from aggregates.series import Series

ALL = {"dimension": "all", "segment": "all", "window": "30d"}


def test_overview_shows_each_matured_rate_beside_the_young_cohort_rate() -> None:
    series = [
        Series("leadpulse_window_leads", ALL, 1000),
        Series("leadpulse_window_customers", {**ALL, "basis": "cohort"}, 10),
        Series("leadpulse_window_conversion_ratio", {**ALL, "basis": "cohort"}, 0.01),
        Series("leadpulse_window_matured_conversion_ratio", {**ALL, "within": "90d"}, 0.046),
        Series("leadpulse_window_matured_conversion_ratio", {**ALL, "within": "30d"}, 0.021),
        Series("leadpulse_window_matured_conversion_ratio", {**ALL, "window": "7d", "within": "7d"}, 0.5),
    ]
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(overview_table(series, date(2026, 6, 15)))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "segment" in line)
    assert header.index("rate") < header.index("matured 30d") < header.index("matured 90d")
    assert "matured 7d" not in header  # a 7-day window's cell is not the overview's
    row = next(line for line in text.splitlines() if "all sources" in line)
    assert [cell.strip() for cell in row.split("│")[4:7]] == ["1.0%", "2.1%", "4.6%"]

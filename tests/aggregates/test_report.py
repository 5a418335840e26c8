"""`leadpulse report`: the overview with matured rates beside the young one, and the line on why the rate moved."""

from __future__ import annotations

import io
from datetime import date

from rich.console import Console

from aggregates.report import overview_table, why_line
from aggregates.series import Series

ALL = {"dimension": "all", "segment": "all", "window": "30d"}


def window(segment: str, leads: int, customers: int) -> list[Series]:
    labels = {"dimension": "source", "segment": segment, "window": "30d"}
    return [Series("leadpulse_window_leads", labels, leads),
            Series("leadpulse_window_customers", {**labels, "basis": "cohort"}, customers),
            Series("leadpulse_window_customers", {**labels, "basis": "period"}, 99)]


def test_the_line_splits_the_change_into_mix_and_rate_by_source() -> None:
    before = window("referral", 100, 10) + window("paid_social", 100, 2)
    now = window("referral", 50, 5) + window("paid_social", 150, 3)
    assert why_line(now, before) == (
        "Conversion fell 2.0 points against the 30 days before: -2.0 from the mix of leads "
        "(mostly the shift away from referral, -1.2), 0.0 from unchanged rates within segments.")


def test_without_leads_before_the_line_says_there_is_nothing_to_compare() -> None:
    assert why_line(window("email", 10, 1), []) == (
        "No comparison with the 30 days before: one of the two periods has no leads.")


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

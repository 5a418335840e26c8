"""The terminal report's line on why the 30-day rate moved against the 30 days before."""

from __future__ import annotations

from aggregates.report import why_line
from aggregates.series import Series


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

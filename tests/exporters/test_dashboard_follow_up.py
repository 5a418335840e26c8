"""The dashboard's Follow-up row and the follow-up alerts on a real Prometheus, from synthetic samples.

The follow-up series (CONTRACT section 3, v1.2) are named and defined by the contract;
this test serves them from a fixed /metrics page, as an exporter publishing them would,
to a fresh Prometheus with the shipped rules (`for:` 2 s). Every query of the row must
answer with finite data, the quantiles must be the histogram's, the owners table must
list the owners, and LeadFollowUpSlow must fire for the segment whose leads stopped
being touched, with no history in Prometheus, while the steady segment stays quiet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporters.mixin import CONFIG
from tests.exporters.test_dashboard import exprs, in_row
from tests.exporters.test_dashboard_queries import finite, substituted
from tests.monitoring import Prometheus, prometheus, serving_metrics, wait_until

pytestmark = pytest.mark.integration

ROW = "Follow-up"
TIMEOUT = 60.0
#: (met, breached) of the 7-day and the 90-day window: one segment's leads stopped being
#: touched (63% in time against 85%), the other is as usual.
WINDOWS = {"broken": ((158, 92), (2963, 587)), "steady": ((210, 40), (3015, 535))}
#: Speed to lead of 100 touched leads, cumulative by bucket: median 500 s, 90th 3600 s.
BUCKETS = {"300": 40, "900": 70, "3600": 90, "14400": 95, "86400": 100, "259200": 100, "604800": 100, "+Inf": 100}


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def exposition() -> str:
    """The follow-up series of two sources and two owners, in the text format."""
    lines = []
    segments = [("source", "broken"), ("source", "steady"), (CONFIG.owner_dimension, "alice"), (CONFIG.owner_dimension, "bob")]
    for dimension, segment in segments:
        (met7, breached7), (met90, breached90) = WINDOWS.get(segment, WINDOWS["steady"])
        for window, met, breached in (("7d", met7, breached7), ("30d", met7 * 4, breached7 * 4), ("90d", met90, breached90)):
            at = {"dimension": dimension, "segment": segment, "window": window}
            lines += [
                f"leadpulse_window_follow_up_leads{{{_labels(**at, outcome='met')}}} {met}",
                f"leadpulse_window_follow_up_leads{{{_labels(**at, outcome='breached')}}} {breached}",
                f"leadpulse_window_follow_up_met_ratio{{{_labels(**at)}}} {met / (met + breached)}",
            ]
            lines += [f"leadpulse_window_first_touch_seconds_bucket{{{_labels(**at, le=le)}}} {n}" for le, n in BUCKETS.items()]
            lines += [f"leadpulse_window_first_touch_seconds_count{{{_labels(**at)}}} 100",
                      f"leadpulse_window_first_touch_seconds_sum{{{_labels(**at)}}} 250000"]  # fmt: skip
        at = {"dimension": dimension, "segment": segment}
        lines += [
            f"leadpulse_leads_awaiting_touch{{{_labels(**at)}}} 12",
            f"leadpulse_leads_overdue_touch{{{_labels(**at)}}} 5",
            f"leadpulse_oldest_awaiting_touch_age_seconds{{{_labels(**at)}}} 200000",
            f"leadpulse_leads_stalled{{{_labels(**at, stage='mql')}}} 40",
            f"leadpulse_leads_stalled{{{_labels(**at, stage='sql')}}} 25",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    workdir: Path = tmp_path_factory.mktemp("follow-up")
    with serving_metrics(exposition()) as url, prometheus(workdir, url) as prom:
        wait_until(lambda: prom.query("leadpulse:leads_stalled_usual") and prom.query("leadpulse:follow_up_usual_met_ratio"),
                   TIMEOUT, "the recording rules' first evaluation")  # fmt: skip
        yield prom


def row_queries() -> list[tuple[str, str]]:
    return [(p["title"], expr) for p in in_row(ROW) for expr in exprs(p)]


def test_the_row_charts_every_follow_up_series_of_the_contract_in_the_issues_order() -> None:
    charted = " ".join(expr for _, expr in row_queries())
    for metric in ("leadpulse_window_first_touch_seconds_bucket", "leadpulse_window_follow_up_met_ratio", "leadpulse_window_follow_up_leads",
                   "leadpulse_leads_awaiting_touch", "leadpulse_leads_overdue_touch", "leadpulse_oldest_awaiting_touch_age_seconds", "leadpulse_leads_stalled"):  # fmt: skip
        assert f"{metric}{{" in charted, metric
    titles = [p["title"].split(" ")[0] for p in in_row(ROW)]
    assert titles == ["Speed", "Touched", "Awaiting", "Oldest", "Stalled", "Owners"]


@pytest.mark.parametrize("title, expr", row_queries(), ids=[f"{i:02d}" for i in range(len(row_queries()))])
def test_every_query_of_the_row_answers_with_finite_data(fed: Prometheus, title: str, expr: str) -> None:
    samples = fed.query(substituted(expr))
    assert samples, f"{title}: no data for {expr}"
    assert finite(samples), f"{title}: {samples}"


def _by_segment(samples: list[dict[str, Any]]) -> dict[str, float]:
    return {s["metric"]["segment"]: round(float(s["value"][1]), 6) for s in samples}


def test_speed_to_lead_quantiles_are_the_histograms(fed: Prometheus) -> None:
    (speed,) = [p for p in in_row(ROW) if p["title"].startswith("Speed to lead")]
    median, ninetieth = (_by_segment(fed.query(substituted(e))) for e in exprs(speed))
    assert median == {"broken": 500.0, "steady": 500.0}  # 300 + (50 - 40) / (70 - 40) * 600
    assert ninetieth == {"broken": 3600.0, "steady": 3600.0}


def test_owners_table_lists_the_owner_dimension_only(fed: Prometheus) -> None:
    (owners,) = [p for p in in_row(ROW) if p["title"].startswith("Owners")]
    for expr in exprs(owners):
        assert set(_by_segment(fed.query(substituted(expr)))) == {"alice", "bob"}, expr


def test_follow_up_slow_fires_for_the_broken_segment_from_a_fresh_prometheus(fed: Prometheus) -> None:
    firing = wait_until(lambda: [a for a in fed.alerts() if a["labels"]["alertname"] == "LeadFollowUpSlow" and a["state"] == "firing"],
                        TIMEOUT, "LeadFollowUpSlow to fire")  # fmt: skip
    assert {(a["labels"]["dimension"], a["labels"]["segment"]) for a in firing} == {("source", "broken")}
    assert round(float(firing[0]["value"]), 3) == 0.218  # 85% usual - 63.2% in the last 7 days
    assert not [a for a in fed.alerts() if a["labels"]["alertname"] == "LeadStageStalled"]  # stalled as usual

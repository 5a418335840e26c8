"""The alerts that fired in a period, read from a real Prometheus's `ALERTS` series."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from aggregates.review.alerts import FiredAlert, parse_fired, read_fired_alerts, step_seconds
from tests.monitoring import prometheus, wait_until
from tests.services import free_port

UTC = timezone.utc


def test_a_month_is_read_in_steps_that_stay_under_prometheus_point_limit() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    assert step_seconds(start, start + timedelta(days=31)) == 268  # 2,678,400 s / 10,000 points
    assert step_seconds(start, start + timedelta(hours=1)) == 60


def test_the_matrix_becomes_alerts_earliest_first_each_from_the_step_before_its_first_sample() -> None:
    matrix = [
        {"metric": {"__name__": "ALERTS", "alertname": "LeadConversionDrop", "alertstate": "firing",
                    "dimension": "source", "segment": "paid_search", "severity": "critical"},
         "values": [[1796000060, "1"], [1796000120, "1"]]},
        {"metric": {"alertname": "LeadFeedStalled", "alertstate": "firing", "topic": "leadpulse.leads"},
         "values": [[1795990000, "1"]]},
    ]
    alerts = parse_fired(matrix, 60)
    assert [a.name for a in alerts] == ["LeadFeedStalled", "LeadConversionDrop"]
    drop = alerts[1]
    assert drop.labels == {"dimension": "source", "segment": "paid_search", "severity": "critical"}
    assert (drop.first_seen, drop.last_seen) == (datetime.fromtimestamp(1796000000, UTC),
                                                 datetime.fromtimestamp(1796000120, UTC))
    assert drop.where == "source=paid_search" and alerts[0].where == "topic=leadpulse.leads"


def test_no_answer_is_a_reason_not_an_error() -> None:
    now = datetime.now(UTC)
    history = read_fired_alerts(f"http://127.0.0.1:{free_port()}", now - timedelta(hours=1), now)
    assert history.alerts is None and history.problem.startswith("no answer from Prometheus at http://127.0.0.1:")


def test_an_alert_firing_in_prometheus_is_listed_with_its_labels(tmp_path: Path) -> None:
    # The exporter Prometheus scrapes is not there, so LeadpulseExporterDown fires (its `for:` made 2 s).
    with prometheus(tmp_path, f"http://127.0.0.1:{free_port()}/metrics") as server:
        wait_until(lambda: [a for a in server.alerts() if a["state"] == "firing"] or None, 90.0,
                   "LeadpulseExporterDown firing")
        now = datetime.now(UTC)

        def listed() -> tuple[FiredAlert, ...] | None:
            history = read_fired_alerts(server.url, now - timedelta(minutes=10), datetime.now(UTC))
            return history.alerts or None

        alerts = wait_until(listed, 30.0, "the firing alert in ALERTS")
    assert [a.name for a in alerts] == ["LeadpulseExporterDown"]
    assert alerts[0].labels["severity"] and alerts[0].where.startswith("instance=127.0.0.1:")
    assert now - timedelta(minutes=3) < alerts[0].first_seen <= alerts[0].last_seen

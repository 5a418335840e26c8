"""`leadpulse demo`: the view's numbers and its alerting overlay, then real unattended runs.

The runs use a stack of their own (fresh home, free ports), so they show what a first
`make demo` does on a new machine: the demo starts the stack, feeds it, reports, and
stops everything it started.
"""

from __future__ import annotations

import http.server
import io
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from aggregates.read import Health, Series
from streams.demo.alerts import FAST_FOR, FAST_INTERVAL, Alert, fast_alerts
from streams.demo.view import Context, Sample, Timeline, render, segment_stats, sparkline, summary
from streams.settings import Settings
from streams.demo.simulation import SOURCES
from tests import REPO
from tests.streams.demo.runs import DemoProcess

RULES = REPO / "deploy" / "prometheus" / "rules"
PAID = {"dimension": "source", "segment": "paid_search"}
CONTEXT = Context(
    "paid_search converts x0.5 from 110 s into the demo", 120.0, (("metrics", "http://x/metrics"),), "Ctrl-C"
)
DROP_ALERT = Alert(
    "LeadConversionDrop",
    {
        "alertname": "LeadConversionDrop",
        **PAID,
        "severity": "critical",
        "instance": "127.0.0.1:9816",
        "job": "leadpulse",
    },
    "active",
    "2026-11-22T17:13:54Z",
)


def window_series(
    dimension: str, segment: str, window: str, leads: float, cohort: float, period: float
) -> list[Series]:
    labels = {"dimension": dimension, "segment": segment, "window": window}
    return [
        Series("leadpulse_window_leads", labels, leads),
        Series("leadpulse_window_customers", {**labels, "basis": "cohort"}, cohort),
        Series("leadpulse_window_customers", {**labels, "basis": "period"}, period),
    ]


def cohort_series(segment: str, cohort: str, leads: float, mql: float, sql: float, customers: float) -> list[Series]:
    labels = {"dimension": "source", "segment": segment, "period": "month", "cohort": cohort}
    stages = {"mql": mql, "sql": sql, "customer": customers}
    return [
        Series("leadpulse_cohort_leads", labels, leads),
        *(Series("leadpulse_cohort_stage_leads", {**labels, "stage": s}, v) for s, v in stages.items()),
    ]


PAID_SEARCH = [
    *window_series("source", "paid_search", "7d", 3000, 10, 60),
    *window_series("source", "paid_search", "30d", 12000, 150, 420),
    *window_series("source", "paid_search", "90d", 36000, 1200, 1450),
    Series("leadpulse_window_conversion_ratio_lower", {**PAID, "window": "30d"}, 0.0107),
    Series("leadpulse_window_conversion_ratio_upper", {**PAID, "window": "30d"}, 0.0147),
    Series("leadpulse_window_matured_leads", {**PAID, "window": "30d", "within": "90d"}, 12500),
    Series("leadpulse_window_matured_customers", {**PAID, "window": "30d", "within": "90d"}, 500),
    Series("leadpulse_window_follow_up_leads", {**PAID, "window": "7d", "outcome": "met"}, 300),
    Series("leadpulse_window_follow_up_leads", {**PAID, "window": "7d", "outcome": "breached"}, 2100),
    Series("leadpulse_window_follow_up_leads", {**PAID, "window": "30d", "outcome": "met"}, 999),
    Series("leadpulse_leads_overdue_touch", PAID, 1400),
    Series("leadpulse_leads_awaiting_touch", PAID, 999),
    Series("leadpulse_check_observed_customers", {"check": "conversion", **PAID}, 60),
    Series("leadpulse_check_expected_customers", {"check": "conversion", **PAID}, 121.4),
    # The quality check and other matured cells are not the view's.
    Series("leadpulse_check_expected_customers", {"check": "quality", **PAID}, 999),
    Series("leadpulse_window_matured_leads", {**PAID, "window": "30d", "within": "30d"}, 999),
    *cohort_series("paid_search", "2026-10", 13000, 5000, 1800, 300),
    *cohort_series("paid_search", "2026-11", 7000, 2000, 500, 20),
    # Other periods, windows, dimensions and series are not the view's business.
    Series("leadpulse_cohort_leads", {**PAID, "period": "week", "cohort": "2026-W47"}, 999),
    Series("leadpulse_window_deals_won", {**PAID, "window": "30d"}, 999),
    *window_series("campaign", "brand-keywords", "30d", 999, 999, 999),
]
EVERYONE = window_series("all", "all", "30d", 40000, 900, 1800)


def sample(series: list[Series], alerts: list[Alert] | None, at_s: float = 200.0) -> Sample:
    health = Health(
        {("leadpulse.leads", "lead.created", "applied"): 1000, ("leadpulse.leads", "lead.created", "rejected"): 3}
    )
    return Sample(at_s, date(2026, 11, 22), segment_stats(series), health, 0, alerts, {"worker": "running"})


def test_segment_stats_take_windows_matured_check_and_funnel_from_the_published_series() -> None:
    everyone, paid = segment_stats(PAID_SEARCH + EVERYONE)
    assert (everyone.segment, paid.segment) == ("all", "paid_search")  # `all` first, campaigns left out
    assert (paid.leads, paid.customers) == (12000, 150)  # 30-day window, cohort basis
    assert paid.interval == (0.0107, 0.0147)
    assert paid.period("7d") == (60, 3000)
    assert paid.matured == (500, 12500)  # leads of T-120 .. T-91, converted within 90 days
    assert paid.check == (60, 121.4)  # won in the last 7 complete days, and expected
    assert everyone.check is None
    assert (paid.in_sla, paid.overdue) == (0.125, 1400)  # the 7-day window's met share, overdue now
    assert (everyone.in_sla, everyone.overdue) == (None, 0)
    assert paid.funnel == (20000, 7000, 2300, 320)  # monthly cohorts only, summed


def test_the_view_shows_firing_alerts_and_keeps_its_numbers_readable_on_100_columns() -> None:
    timeline = Timeline()
    timeline.add(sample(PAID_SEARCH + EVERYONE, []), "17:13:00 UTC")
    timeline.add(sample(PAID_SEARCH + EVERYONE, [DROP_ALERT], at_s=201.0), "17:13:54 UTC")
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(render(timeline, CONTEXT))
    text = console.export_text()
    assert "LeadConversionDrop source=paid_search (critical) · firing since 17:13:54 UTC" in text
    row = next(line for line in text.splitlines() if line.startswith(" paid_search"))
    assert row.split()[1:11] == ["12,000", "150", "1.2%", "4.0%", "1.1%–1.5%", "80:1", "60", "121", "12%", "1,400"]
    assert "live" in text and "windows as of 2026-11-22" in text


def test_the_summary_reports_rates_and_the_check_per_source_and_every_alert_seen() -> None:
    timeline = Timeline()
    timeline.add(sample(PAID_SEARCH + EVERYONE, [DROP_ALERT]), "17:13:54 UTC")
    timeline.add(sample(PAID_SEARCH + EVERYONE, [], at_s=260.0), "17:14:54 UTC")  # resolved since
    text = summary(timeline, CONTEXT)
    assert re.search(r"^paid_search\s+36,000\s+1,450\s+4\.0%\s+25:1\s+4\.0%\s+60\s+121\s+12%\s+1,400$", text, re.M)
    assert "  LeadConversionDrop source=paid_search (critical), first seen 17:13:54 UTC" in text
    assert "1,000 events applied, 0 duplicates, 3 rejected" in text


def test_sparkline_squeezes_the_run_into_its_width_and_scales_from_zero() -> None:
    assert sparkline([0.04, 0.04, 0.02, 0.02], width=4) == "██▄▄"
    assert sparkline([0.04] * 10 + [0.02] * 10, width=2) == "█▄"
    assert sparkline([0.0, 0.04]) == " █"
    assert sparkline([0.0, 0.0]) == "  "
    assert sparkline([]) == ""


class _Reloads(http.server.BaseHTTPRequestHandler):
    """A stand-in for Prometheus's /-/reload that remembers the config it would have loaded."""

    seen: list[str] = []
    config: Path

    def do_POST(self) -> None:
        assert self.path == "/-/reload"
        self.seen.append(self.config.read_text())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def prometheus_home(tmp_path: Path) -> Iterator[Settings]:
    """A home with a rendered prometheus.yml as `stack up` writes it, and a fake Prometheus on a free port."""
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES / "*.yml")]
    rendered = tmp_path / "prometheus" / "prometheus.yml"
    rendered.parent.mkdir()
    rendered.write_text(yaml.safe_dump(config))
    _Reloads.seen, _Reloads.config = [], rendered
    server = http.server.HTTPServer(("127.0.0.1", 0), _Reloads)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Settings(home=tmp_path, prometheus_port=server.server_port)
    server.shutdown()
    server.server_close()


def rules_in(directory: Path) -> list[dict[str, object]]:
    files = sorted(directory.glob("*.yml"))
    return [rule for f in files for group in yaml.safe_load(f.read_text())["groups"] for rule in group["rules"]]


def test_fast_alerts_shorten_only_the_scenario_s_alerts_follow_up_first_and_restore_the_stack_config(
    prometheus_home: Settings,
) -> None:
    rendered = prometheus_home.home / "prometheus" / "prometheus.yml"
    original = rendered.read_bytes()
    with fast_alerts(prometheus_home, ours=True) as fast:
        assert fast
        config = yaml.safe_load(rendered.read_text())
        assert config["global"] == {"scrape_interval": FAST_INTERVAL, "evaluation_interval": FAST_INTERVAL}
        rules, shipped = rules_in(Path(config["rule_files"][0]).parent), rules_in(RULES)
        assert [r.get("for") for r in rules if r.get("alert") == "LeadConversionDrop"] == ["30s", "30s"]
        assert [r.get("for") for r in rules if r.get("alert") == "LeadFollowUpSlow"] == ["10s"]
        assert [r for r in rules if r.get("alert") not in FAST_FOR] == [r for r in shipped if r.get("alert") not in FAST_FOR]
        checked = subprocess.run(["promtool", "check", "config", str(rendered)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert rendered.read_bytes() == original
    assert sorted(p.name for p in rendered.parent.iterdir()) == ["prometheus.yml"]
    assert len(_Reloads.seen) == 2 and "demo-rules" in _Reloads.seen[0] and "demo-rules" not in _Reloads.seen[1]


def test_fast_alerts_leave_a_prometheus_they_did_not_start_alone(prometheus_home: Settings) -> None:
    rendered = prometheus_home.home / "prometheus" / "prometheus.yml"
    before = rendered.read_bytes()
    with fast_alerts(prometheus_home, ours=False) as fast:
        assert not fast
    assert rendered.read_bytes() == before and _Reloads.seen == []


# --- real runs ------------------------------------------------------------------------


@pytest.mark.integration
def test_an_unattended_demo_feeds_the_pipeline_reports_every_source_and_stops_what_it_started(
    unattended_demo: DemoProcess,
) -> None:
    home, picture = unattended_demo.home, unattended_demo.home.parent / "view.svg"
    run = unattended_demo.finish(timeout=180)
    assert run.done.returncode == 0, run.done.stdout + run.done.stderr
    ran = re.search(r"^leadpulse demo summary: ran (\d+)m(\d+)s", run.done.stdout, re.M)
    assert ran, run.done.stdout
    assert 60 <= int(ran[1]) * 60 + int(ran[2]) < 180, "it runs for --duration (70 s), then stops by itself"
    rows = run.rows()
    assert set(rows) == {"all"} | {s.name for s in SOURCES}
    assert rows["all"][0] > 20_000 and 3 < rows["all"][1] < 7  # 90 days at 300 a day, about 4.8%
    for source in SOURCES:
        leads, rate, _, _, _ = rows[source.name]
        assert leads > 500 and rate == pytest.approx(source.conversion * 100, abs=max(1.5, source.conversion * 40))
    applied, duplicates, rejected = run.pipeline()
    assert applied > 40_000 and duplicates > 0 and rejected > 0
    assert "Alerts that fired:" in run.done.stdout
    # Everything it started is stopped; the logs and the picture of the view stay.
    assert run.still_answering() == []
    assert {"worker.log", "exporter.log", "generator.log", "demo.log"} <= {p.name for p in (home / "logs").iterdir()}
    assert not (home / "prometheus" / "demo-rules").exists()
    svg = picture.read_text()
    assert "Conversion&#160;by&#160;source" in svg and "paid_search" in svg


@pytest.mark.integration
@pytest.mark.timeout(480)
def test_the_five_minute_demo_fires_lead_follow_up_slow_for_paid_search_before_lead_conversion_drop(
    five_minute_demo: DemoProcess,
) -> None:
    run = five_minute_demo.finish(timeout=400)
    assert run.done.returncode == 0, run.done.stdout + run.done.stderr
    fired = run.done.stdout.split("Alerts that fired:")[1]
    seen = dict(re.findall(r"^  (\w+) source=paid_search .*first seen (\d\d:\d\d:\d\d) UTC$", fired, re.M))
    assert {"LeadFollowUpSlow", "LeadConversionDrop"} <= seen.keys(), fired
    assert seen["LeadFollowUpSlow"] < seen["LeadConversionDrop"], fired  # the leading sign first
    _, _, won, expected, in_sla = run.rows()["paid_search"]
    assert won < 0.7 * expected
    assert in_sla < 0.1  # nobody touched its leads of the last week in time
    assert run.still_answering() == []

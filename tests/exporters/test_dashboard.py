"""The Grafana dashboard: generated file up to date, wired to the provisioned datasource,
and every query of it answered with data by a real Prometheus scraping the real exporter.

Redis is filled through `AggregateStore` (what the worker calls) with a feed in which one
source drops, so the alert annotation query has a firing alert to show too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
import yaml

from aggregates.store import AggregateStore
from exporters import dashboard
from streams.events import Event, parse_record
from streams.settings import LEADS_TOPIC, Settings
from tests.monitoring import DEPLOY, REPO, Prometheus, conversion_feed, exporter, prometheus, wait_until

pytestmark = pytest.mark.integration

GRAFANA = DEPLOY / "grafana"
#: What Grafana would put in for the template variables and its own macros.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$dimension": "source", "$segment": ".*", "$window": "30d"}
SCRAPE_TIMEOUT = 60.0


def model() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "leadpulse.json").read_text())


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target and annotation."""
    found = [(panel["title"], t["expr"]) for panel in board["panels"] for t in panel.get("targets", [])]
    return found + [(a["name"], a["expr"]) for a in board["annotations"]["list"] if "expr" in a]


def substituted(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def test_committed_json_is_what_the_generator_writes() -> None:
    assert (GRAFANA / "dashboards" / "leadpulse.json").read_text() == dashboard.render(), "run `python -m exporters.dashboard`"


def test_every_panel_uses_the_provisioned_datasource() -> None:
    (provisioned,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    text = json.dumps(model())
    uids = set(re.findall(r'"uid": "([^"]+)"', text)) - {dashboard.UID}
    assert uids == {provisioned["uid"]}
    assert all(panel["datasource"]["uid"] == provisioned["uid"] for panel in model()["panels"] if panel["type"] != "row")


def test_compose_mounts_the_dashboards_where_the_provider_reads_them() -> None:
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "leadpulse.yml").read_text())["providers"]
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


def test_dashboard_covers_every_figure_the_issue_asks_for() -> None:
    board = model()
    assert [v["name"] for v in board["templating"]["list"]] == ["dimension", "segment", "window"]
    exprs = " ".join(expr for _, expr in queries(board))
    wanted = [
        "leadpulse_window_conversion_ratio_lower",  # Wilson band
        "/ ignoring (basis) leadpulse_window_customers",  # N:1
        "leadpulse_cohort_conversion_ratio",  # cohort x source
        'stage="customer"',  # funnel
        "leadpulse_window_win_ratio",
        "leadpulse_window_won_amount",
        "leadpulse_window_time_to_convert_seconds_bucket",
        'rate(leadpulse_events_total{outcome="rejected"}',
        "leadpulse_last_event_timestamp_seconds",
        "leadpulse_consumer_lag_messages",
        "ALERTS{",
    ]
    assert [w for w in wanted if w not in exprs] == []


@pytest.fixture(scope="module")
def tag() -> str:
    return f"dash{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def scraped(stack_settings: Settings, tag: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus that scraped the exporter over a pipeline with a dropping and a steady source."""
    settings = stack_settings.model_copy(update={"key_prefix": tag})
    now = datetime.now(timezone.utc)
    raw = conversion_feed(now, tag, f"{tag}_dropping", (400, 100), (100, 5)) + conversion_feed(now, tag, f"{tag}_steady", (400, 100), (100, 25))
    events = [parse_record(json.dumps(e), int(now.timestamp() * 1000)) for e in raw]
    workdir = tmp_path_factory.mktemp("dashboard")
    env = {"LEADPULSE_REDIS_URL": settings.redis_url, "LEADPULSE_KEY_PREFIX": tag, "LEADPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    with redis.Redis.from_url(settings.redis_url) as client:
        store = AggregateStore(client, settings)
        store.apply([e for e in events if isinstance(e, Event)], rejected={LEADS_TOPIC: 3})
        try:
            with exporter(env, workdir) as metrics, prometheus(workdir, metrics) as prom:
                wait_until(lambda: prom.query('ALERTS{alertname="LeadConversionDrop", alertstate="firing"}'), SCRAPE_TIMEOUT, "the drop to fire")
                wait_until(lambda: prom.query("rate(leadpulse_events_total[1m])"), SCRAPE_TIMEOUT, "two scrapes for rate()")
                yield prom
        finally:
            store.clear()


@pytest.mark.parametrize("title, expr", queries(model()), ids=[f"{i:02d}" for i in range(len(queries(model())))])
def test_every_query_parses_and_returns_data(scraped: Prometheus, title: str, expr: str) -> None:
    assert scraped.query(substituted(expr)), f"{title}: no data for {expr}"


def test_template_variables_list_the_exported_labels(scraped: Prometheus, tag: str) -> None:
    """Grafana's label_values(metric{...}, label), asked of Prometheus's series API."""
    values: dict[str, set[str]] = {}
    for variable in model()["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector, label = substituted(match.group(1)), match.group(2)
        series = scraped.api("series", **{"match[]": selector})
        values[variable["name"]] = {s[label] for s in series if label in s}
    assert {"all", "source", "campaign"} <= values["dimension"]
    assert {f"{tag}_dropping", f"{tag}_steady"} <= values["segment"]
    assert values["window"] == {"7d", "30d", "90d"}

"""Every query of the dashboard answered with data by a real Prometheus scraping the real
exporter, on a demo-like feed: one source whose conversion drops, big enough for
LeadConversionDrop's expectation of at least 10 customers (so the alert annotation has
a firing alert), a steady one, a young one with leads and no customer
yet (so N:1 and the quantiles meet a zero divisor), and one of older leads (for the
90-day matured series and the quality check). A second batch after the first
scrapes moves the counters, as a live feed does, so the 15-minute rejected share has a
value. No answer may be NaN or infinite. The Follow-up row reads the contract's v1.2
series, which test_dashboard_follow_up.py serves from synthetic samples.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from aggregates.store import AggregateStore
from exporters import queries
from streams.events import Event, parse_record
from streams.settings import LEADS_TOPIC, Settings
from tests.exporters.test_dashboard import BOARD, PANELS, in_row
from tests.monitoring import Prometheus, conversion_feed, exporter, prometheus, wait_until

pytestmark = pytest.mark.integration

#: What Grafana would put in for the template variables and its own macros.
SUBSTITUTIONS = {"$__rate_interval": "1m", "$job": "leadpulse", "$dimension": "source", "$segment": ".+", "$window": "30d", "$within": "30d"}
SCRAPE_TIMEOUT = 60.0


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target and annotation, but the Follow-up row's."""
    follow_up = {id(panel) for panel in in_row("Follow-up")}
    found = [(panel["title"], t["expr"]) for panel in PANELS if id(panel) not in follow_up for t in panel["targets"]]
    return found + [(a["name"], a["expr"]) for a in BOARD["annotations"]["list"]]


def substituted(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


@pytest.fixture(scope="module")
def tag() -> str:
    return f"dash{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def scraped(stack_settings: Settings, tag: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A Prometheus that scraped the exporter over a feed with a dropping, a steady, a young and an older source."""
    settings = stack_settings.model_copy(update={"key_prefix": tag})
    now = datetime.now(timezone.utc)
    raw = (conversion_feed(now, tag, f"{tag}_dropping", (2000, 500), (400, 10)) + conversion_feed(now, tag, f"{tag}_steady", (400, 100), (100, 25))
           + conversion_feed(now, tag, f"{tag}_young", (0, 0), (60, 0))
           # leads of 30 to 115 days ago: old enough for the 90-day matured series and LeadQualityDrop's check
           + conversion_feed(now - timedelta(days=30), tag, f"{tag}_veteran", (400, 100), (100, 25)))
    events = [e for e in (parse_record(json.dumps(r), int(now.timestamp() * 1000)) for r in raw) if isinstance(e, Event)]
    workdir = tmp_path_factory.mktemp("dashboard")
    env = {"LEADPULSE_REDIS_URL": settings.redis_url, "LEADPULSE_KEY_PREFIX": tag, "LEADPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    with redis.Redis.from_url(settings.redis_url) as client:
        store = AggregateStore(client, settings)
        store.apply(events, rejected={LEADS_TOPIC: 3})
        try:
            with exporter(env, workdir) as metrics, prometheus(workdir, metrics) as prom:
                wait_until(lambda: prom.query('ALERTS{alertname="LeadConversionDrop", alertstate="firing"}'), SCRAPE_TIMEOUT, "the drop to fire")
                store.apply(events[:50], rejected={LEADS_TOPIC: 3})  # re-sent events and new bad records
                wait_until(lambda: prom.query('increase(leadpulse_events_total{outcome="rejected"}[15m]) > 0'), SCRAPE_TIMEOUT, "the counters to move")
                wait_until(lambda: prom.query("rate(leadpulse_events_total[1m])"), SCRAPE_TIMEOUT, "two scrapes for rate()")
                yield prom
        finally:
            store.clear()


def finite(samples: list[dict[str, Any]]) -> bool:
    return all(s["value"][1] not in ("NaN", "+Inf", "-Inf") for s in samples)


@pytest.mark.parametrize("title, expr", dashboard_queries(), ids=[f"{i:02d}" for i in range(len(dashboard_queries()))])
def test_every_query_parses_and_returns_finite_data(scraped: Prometheus, title: str, expr: str) -> None:
    samples = scraped.query(substituted(expr))
    assert samples, f"{title}: no data for {expr}"
    assert finite(samples), f"{title}: {samples}"


def test_a_segment_without_customers_has_no_leads_per_customer_rather_than_infinity(scraped: Prometheus, tag: str) -> None:
    ratios = {s["metric"]["segment"]: s["value"][1] for s in scraped.query(substituted(queries.leads_per_customer(queries.PICKED)))}
    leads = {s["metric"]["segment"] for s in scraped.query(substituted(f"leadpulse_window_leads{{{queries.PICKED}, {queries.WINDOW}}}"))}
    assert f"{tag}_young" in leads and f"{tag}_young" not in ratios
    assert f"{tag}_steady" in ratios and finite([{"value": [0, v]} for v in ratios.values()])


def test_template_variables_list_the_exported_labels(scraped: Prometheus, tag: str) -> None:
    """Grafana's label_values(metric{...}, label), asked of Prometheus's series API."""
    values: dict[str, set[str]] = {}
    for variable in BOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert match, variable["query"]
        selector, label = substituted(match.group(1)), match.group(2)
        series = scraped.api("series", **{"match[]": selector})
        values[variable["name"]] = {s[label] for s in series if label in s}
    assert values["job"] == {"leadpulse"}
    assert {"all", "source", "campaign"} <= values["dimension"]
    assert {f"{tag}_dropping", f"{tag}_steady", f"{tag}_young"} <= values["segment"]
    assert values["window"] == {"7d", "30d", "90d"}
    assert values["within"] == {"7d", "30d", "90d"}

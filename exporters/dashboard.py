"""The Grafana dashboard, generated from plain Python: `python -m exporters.dashboard`.

Writes deploy/grafana/dashboards/leadpulse.json, which Grafana provisions (see
deploy/grafana/provisioning/dashboards/leadpulse.yml); tests/test_dashboard.py checks
the committed file equals this output and runs every query against a real Prometheus.
Code rather than hand-edited JSON so that the 20-odd panels share one shape, every
query lives in one readable place, and a review sees PromQL, not layout noise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

JSON = dict[str, Any]

OUTPUT: Final = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "leadpulse.json"
#: uid of the provisioned datasource (deploy/grafana/provisioning/datasources/prometheus.yml).
DATASOURCE: Final = {"type": "prometheus", "uid": "prometheus"}
UID: Final = "leadpulse-conversion"

ALL: Final = 'dimension="all", segment="all"'
PICKED: Final = 'dimension="$dimension", segment=~"$segment"'
WINDOW: Final = 'window="$window"'


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series") -> JSON:
    """One query; refIds are assigned by `panel` in order."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
    }


def panel(kind: str, title: str, targets: list[JSON], grid: tuple[int, int, int, int], *, unit: str = "short", description: str = "", **extra: Any) -> JSON:
    """A panel of any type; `grid` is (x, y, w, h) on Grafana's 24-column grid."""
    x, y, w, h = grid
    body: JSON = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    return merged(body, extra)


def merged(base: JSON, extra: JSON) -> JSON:
    """`base` updated with `extra`, nested objects merged rather than replaced."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def row(title: str, y: int) -> JSON:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def stat(title: str, expr: str, x: int, y: int, unit: str, description: str) -> JSON:
    return panel(
        "stat", title, [target(expr, instant=True)], (x, y, 4, 4), unit=unit, description=description,
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "none", "graphMode": "none"},
    )


def per_segment(expr: str, legend: str = "{{segment}}") -> JSON:
    return target(expr, legend)


def leads_per_customer(labels: str) -> str:
    """The N of N:1: leads / cohort-basis customers of the same window (sum numerators, then divide)."""
    return f"leadpulse_window_leads{{{labels}, {WINDOW}}} / ignoring (basis) leadpulse_window_customers{{{labels}, {WINDOW}, basis=\"cohort\"}}"


def ttc_quantile(q: float, by: str = "") -> str:
    grouping = f"{by}, le" if by else "le"
    labels = ALL if not by else PICKED
    return f"histogram_quantile({q}, sum by ({grouping}) (leadpulse_window_time_to_convert_seconds_bucket{{{labels}, {WINDOW}}}))"


def overview(y: int) -> Iterator[JSON]:
    yield row("Overall ($window)", y)
    y += 1
    figures = [
        ("Lead-to-customer", f'leadpulse_window_conversion_ratio{{{ALL}, {WINDOW}, basis="cohort"}}', "percentunit",
         "Customers / leads created in the window (cohort basis: those leads that converted by now)."),
        ("Leads per customer", leads_per_customer(ALL), "suffix::1", "The N:1 form of the same rate."),
        ("Same-period rate", f'leadpulse_window_conversion_ratio{{{ALL}, {WINDOW}, basis="period"}}', "percentunit",
         "Customers won in the window / leads created in it (period basis, what LeadConversionDrop watches)."),
        ("Win rate", f"leadpulse_window_win_ratio{{{ALL}, {WINDOW}}}", "percentunit", "Won / (won + lost) deals closed in the window."),
        ("Won amount", f"leadpulse_window_won_amount{{{ALL}, {WINDOW}}}", "short", "Sum of won deal amounts closed in the window."),
        ("Median days to convert", ttc_quantile(0.5), "d", "Median time to convert of the window's period-basis customers."),
    ]
    for i, (title, expr, unit, description) in enumerate(figures):
        yield stat(title, expr, 4 * i, y, unit, description)


def segments(y: int) -> Iterator[JSON]:
    yield row("By $dimension ($window)", y)
    y += 1
    ratio = f"leadpulse_window_conversion_ratio{{{PICKED}, {WINDOW}, basis=\"cohort\"}}"
    yield panel(
        "timeseries",
        "Lead-to-customer with 95% Wilson band",
        [
            per_segment(ratio),
            per_segment(f"leadpulse_window_conversion_ratio_lower{{{PICKED}, {WINDOW}}}", "{{segment}} lower"),
            per_segment(f"leadpulse_window_conversion_ratio_upper{{{PICKED}, {WINDOW}}}", "{{segment}} upper"),
        ],
        (0, y, 12, 9),
        unit="percentunit",
        description="Cohort-basis rate per segment; dashed lines bound its 95% Wilson interval (wide = few leads, do not read much into it).",
        fieldConfig={
            "overrides": [
                {
                    "matcher": {"id": "byRegexp", "options": ".* (lower|upper)$"},
                    "properties": [
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [4, 4]}},
                        {"id": "custom.lineWidth", "value": 1},
                    ],
                }
            ]
        },
    )
    columns = {
        "A": ("leads", f"leadpulse_window_leads{{{PICKED}, {WINDOW}}}"),
        "B": ("customers", f'leadpulse_window_customers{{{PICKED}, {WINDOW}, basis="cohort"}}'),
        "C": ("rate", ratio),
        "D": ("wilson low", f"leadpulse_window_conversion_ratio_lower{{{PICKED}, {WINDOW}}}"),
        "E": ("wilson high", f"leadpulse_window_conversion_ratio_upper{{{PICKED}, {WINDOW}}}"),
        "F": ("leads per customer", leads_per_customer(PICKED)),
        "G": ("same-period rate", f'leadpulse_window_conversion_ratio{{{PICKED}, {WINDOW}, basis="period"}}'),
    }
    yield panel(
        "table",
        "Per segment",
        # max by (segment): the one series of each segment, without the labels that
        # differ between the queries, so the merge lines the rows up by segment.
        [target(f"max by (segment) ({expr})", instant=True, fmt="table") for _, expr in columns.values()],
        (12, y, 12, 9),
        description="One row per segment: counts, rate with its Wilson interval, N:1 and the same-period rate.",
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {f"Value #{ref}": name for ref, (name, _) in columns.items()},
                },
            },
        ],
        fieldConfig={
            "overrides": [
                {"matcher": {"id": "byRegexp", "options": "rate|wilson.*|same-period rate"}, "properties": [{"id": "unit", "value": "percentunit"}]},
                {"matcher": {"id": "byName", "options": "leads per customer"}, "properties": [{"id": "decimals", "value": 1}]},
            ]
        },
    )


def cohort_table(period: str, x: int, y: int) -> JSON:
    """Cohort × segment heat table: rows are cohorts, columns segments, cells the rate."""
    return panel(
        "table",
        f"Cohort conversion by {period} × $dimension",
        [target(f'leadpulse_cohort_conversion_ratio{{{PICKED}, period="{period}"}}', instant=True, fmt="table")],
        (x, y, 12, 10),
        unit="percentunit",
        description=f"Customers / leads of each {period}'s cohort. Young cohorts are still converting: compare a column down, not across ages.",
        transformations=[{"id": "groupingToMatrix", "options": {"columnField": "segment", "rowField": "cohort", "valueField": "Value"}}],
        fieldConfig={
            "defaults": {
                "color": {"mode": "continuous-RdYlGr"},
                "custom": {"cellOptions": {"type": "color-background"}},
            }
        },
    )


def cohorts(y: int) -> Iterator[JSON]:
    yield row("Cohorts and funnel", y)
    y += 1
    yield cohort_table("month", 0, y)
    yield cohort_table("week", 12, y)
    y += 10
    stages = [("leads", f'sum(leadpulse_cohort_leads{{{PICKED}, period="month"}})')] + [
        (stage, f'sum(leadpulse_cohort_stage_leads{{{PICKED}, period="month", stage="{stage}"}})') for stage in ("mql", "sql", "customer")
    ]
    yield panel(
        "bargauge",
        "Funnel: leads of the last 12 monthly cohorts",
        [target(expr, stage, instant=True) for stage, expr in stages],
        (0, y, 12, 8),
        description="Leads that reached each stage (cumulative: a customer has reached sql and mql).",
        options={"orientation": "horizontal", "displayMode": "gradient", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    )
    yield panel(
        "timeseries",
        "Leads per customer (N:1) by $dimension",
        [per_segment(leads_per_customer(PICKED))],
        (12, y, 12, 8),
        unit="suffix::1",
        description="Window leads / cohort-basis customers per segment.",
    )


def deals(y: int) -> Iterator[JSON]:
    yield row("Deals and time to convert ($window)", y)
    y += 1
    yield panel("timeseries", "Win rate by $dimension", [per_segment(f"leadpulse_window_win_ratio{{{PICKED}, {WINDOW}}}")], (0, y, 8, 8), unit="percentunit",
                description="Won / (won + lost) deals closed in the window.")
    yield panel("timeseries", "Won amount by $dimension", [per_segment(f"leadpulse_window_won_amount{{{PICKED}, {WINDOW}}}")], (8, y, 8, 8),
                description="Sum of won amounts of deals closed in the window.")
    yield panel(
        "bargauge",
        "Time to convert (days)",
        [target(f"sum by (le) (leadpulse_window_time_to_convert_seconds_bucket{{{PICKED}, {WINDOW}}})", "{{le}}", instant=True, fmt="heatmap")],
        (16, y, 8, 8),
        description="Customers of the window (period basis) by whole days from lead creation to conversion, per bucket.",
        options={"orientation": "vertical", "displayMode": "basic", "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
    )
    y += 8
    yield panel(
        "timeseries",
        "Median and 90th percentile days to convert by $dimension",
        [target(ttc_quantile(0.5, "segment"), "{{segment}} p50"), target(ttc_quantile(0.9, "segment"), "{{segment}} p90")],
        (0, y, 24, 7),
        unit="d",
        description="Estimated from the histogram buckets (linear within a bucket).",
    )


def health(y: int) -> Iterator[JSON]:
    yield row("Pipeline health", y)
    y += 1
    yield panel("timeseries", "Events/s by topic and outcome",
                [target("sum by (topic, outcome) (rate(leadpulse_events_total[$__rate_interval]))", "{{topic}} {{outcome}}")],
                (0, y, 8, 8), unit="ops", description="What the workers applied, found duplicate or rejected.")
    yield panel("timeseries", "Rejected records/s",
                [target('sum by (topic) (rate(leadpulse_events_total{outcome="rejected"}[$__rate_interval]))', "{{topic}}")],
                (8, y, 8, 8), unit="ops", description="Records sent to leadpulse.rejected; LeadRejectedSurge fires above 5%.")
    yield panel("timeseries", "Age of the newest event",
                [target("time() - max by (topic) (leadpulse_last_event_timestamp_seconds)", "{{topic}}")],
                (16, y, 8, 8), unit="s", description="LeadFeedStalled fires past 6 h (leads) or 24 h (deals).")
    y += 8
    yield panel("timeseries", "Consumer lag (records)",
                [target("sum by (topic) (leadpulse_consumer_lag_messages)", "{{topic}}")],
                (0, y, 8, 7), description="Records in Kafka not yet in the aggregates.")
    yield panel(
        "stat",
        "Up",
        [target('min(up{job="leadpulse"})', "exporter", instant=True), target("min(leadpulse_redis_up)", "redis", instant=True),
         target("min(leadpulse_kafka_up)", "kafka", instant=True)],
        (8, y, 5, 7),
        description="Scraped by Prometheus; Redis and Kafka readable by the exporter on its last scrape.",
        fieldConfig={"defaults": {"mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]}},
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none"},
    )
    yield panel("stat", "Orphan deals", [target("leadpulse_orphan_deals", instant=True)], (13, y, 3, 7),
                description="Closed deals whose lead has no lead.created yet.",
                options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "graphMode": "none"})
    yield panel("timeseries", "Scrape duration", [target("leadpulse_scrape_duration_seconds", "{{instance}}")], (16, y, 8, 7), unit="s",
                description="Time the exporter spends per scrape (Redis reads and families).")


def variable(name: str, query: str, current: str, **extra: Any) -> JSON:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "StandardVariableQuery"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "current": {"text": "All" if current == "$__all" else current, "value": current},
        **extra,
    }


def dashboard() -> JSON:
    """The whole dashboard as Grafana's JSON model (schema 39, Grafana 11)."""
    sections = [overview, segments, cohorts, deals, health]
    panels: list[JSON] = []
    for section in sections:
        y = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=0)
        panels.extend(section(y))
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": UID,
        "title": "leadpulse: lead-to-customer conversion",
        "description": "Live conversion by cohort, window and segment, and the health of the pipeline behind it.",
        "tags": ["leadpulse"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {
            "list": [
                variable("dimension", "label_values(leadpulse_window_leads, dimension)", "source"),
                variable(
                    "segment", 'label_values(leadpulse_window_leads{dimension="$dimension"}, segment)', "$__all",
                    multi=True, includeAll=True, allValue=".*",
                ),
                variable("window", "label_values(leadpulse_window_leads, window)", "30d"),
            ]
        },
        "annotations": {
            "list": [
                {
                    "name": "leadpulse alerts",
                    "datasource": DATASOURCE,
                    "enable": True,
                    "iconColor": "red",
                    "expr": 'ALERTS{alertstate="firing", alertname=~"Lead.*"}',
                    "step": "1m",
                    "titleFormat": "{{alertname}} ({{severity}})",
                    "textFormat": "{{dimension}}={{segment}} {{topic}}",
                    "useValueForTime": False,
                }
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> None:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()

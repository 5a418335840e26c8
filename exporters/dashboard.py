"""The Grafana dashboard, generated from Python: `python -m exporters.dashboard`.

Writes deploy/grafana/dashboards/leadpulse.json, which Grafana provisions (see
deploy/grafana/provisioning/dashboards/leadpulse.yml); tests/exporters/test_dashboard.py
checks the committed file equals this output and runs every query against a real
Prometheus, tests/exporters/test_dashboard_schema.py validates it with Grafana's schema
and the foundation SDK. Code rather than hand-edited JSON so that the panels share one
shape (exporters/grafana.py), every query lives in one readable place, and the job
matcher, datasource, uid, tags and refresh come from the one configuration the alert
rules use too (exporters/mixin.py).

Reading order follows a marketing-ops review: the headline rate with its interval and
trend, the comparison by source (or any dimension), the follow-up of the leads (the
leading sign), the age-matched conversion, cohorts and funnel, deals, then the pipeline
behind the numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from exporters import queries as q
from exporters.grafana import (
    JSON,
    bargauge,
    datasource_variable,
    link,
    override,
    query_variable,
    row,
    stat,
    table,
    target,
    textbox_variable,
    thresholds,
    timeseries,
)
from exporters.mixin import CONFIG, MixinConfig
from exporters.rules import QUIET_SECONDS, RECENT_SHARE, STALLED_USUAL, USUAL_SHARE

OUTPUT: Final = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "leadpulse.json"
#: LeadRejectedSurge fires above this share of a topic's records over 15 minutes.
REJECTED_SHARE: Final = 0.05
NONE_YET: Final = "no customer yet"
#: A cell of a cohort matrix without leads: neither 0% nor painted in the colour of 0%.
NO_LEADS: Final = [{"type": "special", "options": {"match": "null+nan", "result": {"text": "no leads", "color": "transparent", "index": 0}}}]
DAYS: Final = "suffix:days"


def headline(y: int) -> Iterator[JSON]:
    yield row("Headline: all leads, last $window", y)
    y += 1
    rate = thresholds("blue")
    yield stat("Lead-to-customer", "Customers / leads created in the last $window (cohort basis: of those leads, the ones that converted by now). Young leads are still converting, so it climbs as they age; the sparkline is its trend over the time range.",
               [target(q.one("leadpulse_window_conversion_ratio", q.ALL, q.WINDOW, 'basis="cohort"'), "rate")], (0, y, 4, 5),
               unit="percentunit", steps=rate, graph_mode="area", decimals=1)
    yield stat("95% interval", "Wilson interval of the lead-to-customer rate: where the true rate lies given how few or many leads there are.",
               [target(q.one("leadpulse_window_conversion_ratio_lower", q.ALL, q.WINDOW), "low", instant=True),
                target(q.one("leadpulse_window_conversion_ratio_upper", q.ALL, q.WINDOW), "high", instant=True)], (4, y, 4, 5),
               unit="percentunit", steps=rate, text_mode="value_and_name", decimals=1)
    yield stat("Leads per customer", "The same rate read as \"N leads per customer\" (N:1): window leads / their customers. Without a customer yet there is no N.",
               [target(q.leads_per_customer(q.ALL), "N:1")], (8, y, 4, 5), unit="suffix::1", steps=rate, graph_mode="area", decimals=1, no_value=NONE_YET)
    yield stat("Same-period rate", "Customers won in the last $window / leads created in it (period basis: customers counted whenever their lead arrived, so it can exceed the cohort rate).",
               [target(q.one("leadpulse_window_conversion_ratio", q.ALL, q.WINDOW, 'basis="period"'), "rate")], (12, y, 4, 5),
               unit="percentunit", steps=rate, graph_mode="area", decimals=1)
    yield stat("Win rate", "Won / (won + lost) of the deals closed in the last $window.",
               [target(q.one("leadpulse_window_win_ratio", q.ALL, q.WINDOW), "win rate")], (16, y, 4, 5), unit="percentunit", steps=rate, graph_mode="area", decimals=1)
    yield stat("Median days to convert", "Median time from lead creation to conversion of the customers won in the last $window, in days, estimated from the histogram's buckets.",
               [target(q.ttc_quantile(0.5, "job"), "median")], (20, y, 4, 5), unit=DAYS, steps=rate, graph_mode="area", decimals=1, no_value=NONE_YET)
    y += 5
    counts = [
        ("Leads", "Leads created in the last $window, all sources together.", q.one("leadpulse_window_leads", q.ALL, q.WINDOW)),
        ("Customers", "Of the leads created in the last $window, those that are customers (cohort basis).", q.one("leadpulse_window_customers", q.ALL, q.WINDOW, 'basis="cohort"')),
        ("Customers won", "Leads that converted in the last $window, whenever they were created (period basis).", q.one("leadpulse_window_customers", q.ALL, q.WINDOW, 'basis="period"')),
        ("Deals won", "Deals whose close (latest outcome) fell in the last $window and is won.", q.one("leadpulse_window_deals_won", q.ALL, q.WINDOW)),
        ("Deals lost", "Deals whose close (latest outcome) fell in the last $window and is lost.", q.one("leadpulse_window_deals_lost", q.ALL, q.WINDOW)),
        ("Won amount", "Sum of the won amounts of the deals closed in the last $window, in the deals' own currency.", q.one("leadpulse_window_won_amount", q.ALL, q.WINDOW)),
    ]
    for i, (title, description, expr) in enumerate(counts):
        yield stat(title, description, [target(expr, title.lower())], (4 * i, y, 4, 4), unit="short", steps=thresholds("text"), graph_mode="area", decimals=0)


def by_segment(y: int) -> Iterator[JSON]:
    yield row("By $dimension, last $window", y)
    y += 1
    yield timeseries("Lead-to-customer by $dimension", "Cohort-basis rate of each segment over the time range; the legend lists the last values, best first. The 95% interval of each segment is in the row below.",
                     [target(q.one("leadpulse_window_conversion_ratio", q.PICKED, q.WINDOW, 'basis="cohort"'), "{{segment}}")], (0, y, 12, 9), unit="percentunit", from_zero=True)
    columns = {
        "A": ("leads", q.one("leadpulse_window_leads", q.PICKED, q.WINDOW)),
        "B": ("customers", q.one("leadpulse_window_customers", q.PICKED, q.WINDOW, 'basis="cohort"')),
        "C": ("rate", q.one("leadpulse_window_conversion_ratio", q.PICKED, q.WINDOW, 'basis="cohort"')),
        "D": ("95% low", q.one("leadpulse_window_conversion_ratio_lower", q.PICKED, q.WINDOW)),
        "E": ("95% high", q.one("leadpulse_window_conversion_ratio_upper", q.PICKED, q.WINDOW)),
        "F": ("N:1", q.leads_per_customer(q.PICKED)),
        "G": ("same-period rate", q.one("leadpulse_window_conversion_ratio", q.PICKED, q.WINDOW, 'basis="period"')),
        "H": ("won", q.one("leadpulse_window_deals_won", q.PICKED, q.WINDOW)),
        "I": ("lost", q.one("leadpulse_window_deals_lost", q.PICKED, q.WINDOW)),
        "J": ("win rate", q.one("leadpulse_window_win_ratio", q.PICKED, q.WINDOW)),
        "K": ("drop vs expected", q.one("leadpulse_check_drop_ratio", q.PICKED, 'check="conversion"')),
        "L": ("z", q.one("leadpulse_check_zscore", q.PICKED, 'check="conversion"')),
    }
    drill = {"title": "Open the dashboard on $dimension=${__value.raw}", "url": q.drill_down("${__value.raw}"), "targetBlank": False}
    yield table(
        "Per $dimension", "One row per segment, most leads first: counts, the rate with its 95% Wilson interval, N:1 (empty without a customer), the same-period rate, the deals closed, and LeadConversionDrop's drop against expected with its z score. Click a segment to open the dashboard on it.",
        # max by (job, segment): one series per segment without the labels that differ
        # between the queries, so the merge lines the rows up by segment.
        [target(f"max by (job, segment) ({expr})", instant=True, fmt="table") for _, expr in columns.values()],
        (12, y, 12, 9), unit="short", sort_by="leads",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, "job": True}, "renameByName": {f"Value #{ref}": name for ref, (name, _) in columns.items()}}},
        ],
        overrides=[
            override("byRegexp", "^(rate|95% low|95% high|same-period rate|win rate|drop vs expected)$", unit="percentunit", decimals=1),
            # LeadConversionDrop's severities: warning from a 20% drop, critical from 40%.
            override("byName", "drop vs expected", thresholds=thresholds("text", (0.2, "orange"), (0.4, "red")), custom_cellOptions={"type": "color-text"}),
            override("byName", "z", decimals=1),
            override("byName", "N:1", unit="suffix::1", decimals=1, noValue="–"),
            override("byName", "segment", links=[drill]),
        ],
    )
    y += 9
    yield check_panel("LeadConversionDrop: customers won in the last 7 days, against expected", "conversion",
                      "What LeadConversionDrop compares, per segment: customers won on the last 7 complete days (solid) against what the segment's own history predicts from the leads those customers come from (dashed). A lead surge raises the expectation only as its leads come to convert, so volume alone is no drop.",
                      (0, y, 12, 8))
    yield timeseries("Leads created in the last $window by $dimension", "Lead volume per segment: a surge of leads with flat customers points at low-quality or spam leads, fewer leads at a broken form or tracking.",
                     [target(q.one("leadpulse_window_leads", q.PICKED, q.WINDOW), "{{segment}}")], (12, y, 12, 8), unit="short", from_zero=True)
    y += 8
    yield row("95% interval per $dimension", y)
    y += 1
    band = "Cohort-basis rate of one segment (solid) inside its 95% Wilson interval (shaded): a wide band means few leads, do not read much into a move inside it."
    yield timeseries("$segment", band,
                     [target(q.one("leadpulse_window_conversion_ratio", q.PICKED, q.WINDOW, 'basis="cohort"'), "rate"),
                      target(q.one("leadpulse_window_conversion_ratio_lower", q.PICKED, q.WINDOW), "95% low"),
                      target(q.one("leadpulse_window_conversion_ratio_upper", q.PICKED, q.WINDOW), "95% high")],
                     (0, y, 6, 7), unit="percentunit", from_zero=True, repeat="segment", repeatDirection="h", maxPerRow=4,
                     overrides=[
                         override("byName", "rate", color={"mode": "fixed", "fixedColor": "blue"}),
                         override("byRegexp", "^95% (low|high)$", color={"mode": "fixed", "fixedColor": "light-blue"}, custom_lineWidth=0),
                         override("byName", "95% high", custom_fillBelowTo="95% low", custom_fillOpacity=25),
                     ])


def follow_up(y: int, config: MixinConfig = CONFIG) -> Iterator[JSON]:
    yield row("Follow-up: speed to lead, the SLA, stalled stages", y)
    y += 1
    yield timeseries("Speed to lead by $dimension: median and 90th percentile", "Time from a lead's creation to its first sales touch, for the leads created in the last $window that were touched, estimated from the histogram's buckets (linear within a bucket: 5 min, 15 min, 1 h, 4 h, 1, 3, 7 days). Segments without a touched lead are left out.",
                     [target(q.first_touch_quantile(0.5), "{{segment}} median"), target(q.first_touch_quantile(0.9), "{{segment}} 90th")], (0, y, 12, 8), unit="s", from_zero=True,
                     overrides=[override("byRegexp", " 90th$", custom_lineStyle={"fill": "dash", "dash": [6, 4]}, custom_lineWidth=1)])
    recorded = f"{q.PICKED}, check=\"follow_up\""
    yield timeseries("Touched within the SLA by $dimension", f"Of the leads created in the last $window whose touch deadline has passed, the share touched by it. Dotted: what LeadFollowUpSlow compares, the share of the last {config.follow_up_recent_window} against the segment's usual share (the rest of {config.follow_up_usual_window}); it fires when the first falls well below the second.",
                     [target(q.one("leadpulse_window_follow_up_met_ratio", q.PICKED, q.WINDOW), "{{segment}}"),
                      target(q.one(RECENT_SHARE, recorded), f"{{{{segment}}}} last {config.follow_up_recent_window}"),
                      target(q.one(USUAL_SHARE, recorded), "{{segment}} usual")], (12, y, 12, 8), unit="percentunit", from_zero=True,
                     overrides=[override("byRegexp", " (last \\d+d|usual)$", custom_lineStyle={"fill": "dot", "dash": [2, 4]}, custom_lineWidth=1)])
    y += 8
    now = [("awaiting", "leadpulse_leads_awaiting_touch"), ("overdue", "leadpulse_leads_overdue_touch")]
    yield bargauge("Awaiting a touch and overdue now by $dimension", "Leads created in the follow-up horizon with no touch yet (not disqualified, not customers), and those of them past their deadline: the queue sales has to work now.",
                   [target(f"max by (job, segment) ({q.one(metric, q.PICKED)})", f"{{{{segment}}}} {name}", instant=True) for name, metric in now], (0, y, 8, 8), unit="short", orientation="horizontal",
                   overrides=[override("byRegexp", " overdue$", color={"mode": "fixed", "fixedColor": "orange"})])
    yield stat("Oldest awaiting a touch", "Age of the oldest lead of the selected segments still waiting for a first touch.",
               [target(f"max({q.one('leadpulse_oldest_awaiting_touch_age_seconds', q.PICKED)})", "oldest", instant=True)], (8, y, 4, 8), unit="s",
               steps=thresholds("text"), no_value="none waiting")
    yield timeseries("Stalled leads by stage", "Leads of the selected segments sitting at mql (14 days by default) or sql (30 days, no deal) without moving on, and dotted the usual level LeadStageStalled learns: it fires when the count piles up a quarter and 3 standard deviations above it.",
                     [target(q.stalled("leadpulse_leads_stalled"), "{{stage}}"), target(q.stalled(STALLED_USUAL), "{{stage}} usual")], (12, y, 12, 8), unit="short", from_zero=True,
                     overrides=[override("byRegexp", " usual$", custom_lineStyle={"fill": "dot", "dash": [2, 4]}, custom_lineWidth=1)])
    y += 8
    owner = q.owners(config.owner_dimension)

    def per_owner(metric: str, *matchers: str) -> str:
        return f"max by (job, segment) ({q.one(metric, owner, *matchers)})"

    columns = {
        "A": ("within SLA", per_owner("leadpulse_window_follow_up_met_ratio", q.WINDOW)),
        "B": ("met", per_owner("leadpulse_window_follow_up_leads", q.WINDOW, 'outcome="met"')),
        "C": ("breached", per_owner("leadpulse_window_follow_up_leads", q.WINDOW, 'outcome="breached"')),
        "D": ("median speed to lead", q.first_touch_quantile(0.5, owner)),  # already one per (job, segment)
        "E": ("awaiting", per_owner("leadpulse_leads_awaiting_touch")),
        "F": ("overdue", per_owner("leadpulse_leads_overdue_touch")),
    }
    yield table(f"Owners ({config.owner_dimension}), last $window", f"One row per sales owner, when `{config.owner_dimension}` is a configured dimension (LEADPULSE_DIMENSIONS; empty otherwise): the share of their leads touched within the SLA, the counts behind it, their median speed to lead, and their queue now. Most breached first.",
                [target(expr, instant=True, fmt="table") for _, expr in columns.values()], (0, y, 24, 8), unit="short", sort_by="breached",
                transformations=[
                    {"id": "merge", "options": {}},
                    {"id": "organize", "options": {"excludeByName": {"Time": True, "job": True}, "renameByName": {"segment": "owner", **{f"Value #{ref}": name for ref, (name, _) in columns.items()}}}},
                ],
                overrides=[override("byName", "within SLA", unit="percentunit", decimals=1), override("byName", "median speed to lead", unit="s")])


def check_panel(title: str, check: str, description: str, grid: tuple[int, int, int, int]) -> JSON:
    """Observed (solid) against expected (dashed) customers of one of the exporter's alert checks."""
    labels = (q.PICKED, f'check="{check}"')
    return timeseries(title, description,
                      [target(q.one("leadpulse_check_observed_customers", *labels), "{{segment}} observed"),
                       target(q.one("leadpulse_check_expected_customers", *labels), "{{segment}} expected")], grid, unit="short", from_zero=True,
                      overrides=[override("byRegexp", " expected$", custom_lineStyle={"fill": "dash", "dash": [6, 4]}, custom_lineWidth=1)])


def matured(y: int) -> Iterator[JSON]:
    yield row("Matured (age-matched) conversion, converted within $within", y)
    y += 1
    yield timeseries("Matured conversion by $dimension", "Of the leads created in a $window-long stretch ending $within ago, the share that converted within $within of arriving. Every cohort compared has had the same time, so unlike the cohort rate it does not climb with age: a fall is worse leads, weeks before the period rate shows it (LeadQualityDrop).",
                     [target(q.one("leadpulse_window_matured_conversion_ratio", q.PICKED, q.WINDOW, q.WITHIN), "{{segment}}")], (0, y, 12, 8), unit="percentunit", from_zero=True)
    columns = {
        "A": ("matured leads", q.one("leadpulse_window_matured_leads", q.PICKED, q.WINDOW, q.WITHIN)),
        "B": ("converted within $within", q.one("leadpulse_window_matured_customers", q.PICKED, q.WINDOW, q.WITHIN)),
        "C": ("matured rate", q.one("leadpulse_window_matured_conversion_ratio", q.PICKED, q.WINDOW, q.WITHIN)),
    }
    yield table("Matured leads per $dimension", "The counts behind the matured rate, per segment: leads at least $within old and those of them that converted within $within.",
                [target(f"max by (job, segment) ({expr})", instant=True, fmt="table") for _, expr in columns.values()], (12, y, 12, 8), unit="short", sort_by="matured leads",
                transformations=[
                    {"id": "merge", "options": {}},
                    {"id": "organize", "options": {"excludeByName": {"Time": True, "job": True}, "renameByName": {f"Value #{ref}": name for ref, (name, _) in columns.items()}}},
                ],
                overrides=[override("byName", "matured rate", unit="percentunit", decimals=1)])
    y += 8
    yield check_panel("LeadQualityDrop: customers of recent leads at their age, against expected", "quality",
                      "What LeadQualityDrop compares, per segment: the customers that the leads created 1 to 44 days ago won within 30 days or their age so far (solid) against what the segment's 16 weeks of cohorts before them, at the same ages, predict (dashed). Below expectation means worse leads now.",
                      (0, y, 24, 8))


def cohort_matrix(title: str, description: str, expr: str, grid: tuple[int, int, int, int], *, drill: bool = False) -> JSON:
    """Cohort × segment heat table: rows are cohorts (newest first), columns segments, cells a 0..1 ratio.

    Only the value cells are coloured; the cohort column and cells without leads are not.
    """
    links = [{"title": "Open the dashboard on $dimension=${__field.name}", "url": q.drill_down("${__field.name}"), "targetBlank": False}] if drill else []
    return table(
        title, description, [target(expr, instant=True, fmt="table")], grid, unit="percentunit",
        cell={"type": "color-background", "mode": "gradient"}, color={"mode": "continuous-RdYlGr"}, mappings=NO_LEADS, links=links,
        transformations=[
            {"id": "groupingToMatrix", "options": {"columnField": "segment", "rowField": "cohort", "valueField": "Value", "emptyValue": "null"}},
            {"id": "sortBy", "options": {"sort": [{"field": "cohort\\segment", "desc": True}]}},
        ],
        overrides=[override("byName", "cohort\\segment", custom_cellOptions={"type": "auto"}, displayName="cohort", links=[], unit="string")],
    )


def cohorts(y: int) -> Iterator[JSON]:
    yield row("Cohorts and funnel", y)
    y += 1
    young = "Young cohorts are still converting: compare a column down against cohorts of the same age, not across ages."
    for i, period in enumerate(("month", "week")):
        yield cohort_matrix(f"Lead-to-customer by {period} × $dimension", f"Customers / leads of each {period}'s cohort (leads by the {period} they arrived). {young} Click a column's cell to open the dashboard on its segment.",
                            q.one("leadpulse_cohort_conversion_ratio", q.PICKED, f'period="{period}"'), (12 * i, y, 12, 10), drill=True)
    y += 10
    yield cohort_matrix("Qualified-to-customer by month × $dimension", f"Customers / qualified leads (reached MQL and not disqualified) of each month's cohort: conversion with junk and spam left out. {young}",
                        q.one("leadpulse_cohort_qualified_conversion_ratio", q.PICKED, 'period="month"'), (0, y, 12, 10))
    yield cohort_matrix("Disqualified share by month × $dimension", "Disqualified leads (and not customers) / leads of each month's cohort: a rising share is a campaign or form bringing junk.",
                        q.cohort_share("leadpulse_cohort_disqualified_leads", "leadpulse_cohort_leads"), (12, y, 12, 10))
    y += 10
    stages = [("leads", q.cohort_sum("leadpulse_cohort_leads"))] + [
        (name, q.cohort_sum("leadpulse_cohort_stage_leads", f'stage="{stage}"')) for name, stage in (("MQL", "mql"), ("SQL", "sql"), ("customers", "customer"))
    ]
    yield bargauge("Funnel: the last 12 monthly cohorts", "Leads of the selected segments created in the last 12 months, and how many reached each stage (cumulative: a customer has reached SQL and MQL).",
                   [target(expr, name, instant=True) for name, expr in stages], (0, y, 8, 8), unit="short", orientation="horizontal")
    steps = [("MQL of leads", "mql", None), ("SQL of MQL", "sql", "mql"), ("customers of SQL", "customer", "sql")]
    yield bargauge("Stage to stage", "Of the leads of the last 12 monthly cohorts that reached a stage, the share that reached the next one: where leads are lost.",
                   [target(q.stage_rate(stage, before), name, instant=True) for name, stage, before in steps], (8, y, 8, 8), unit="percentunit", orientation="horizontal")
    yield bargauge("Qualified-to-customer by $dimension", "Customers / qualified leads of the last 12 monthly cohorts together, per segment: the rate docs/alerts.md asks to compare when leads surge.",
                   [target(q.qualified_rate(), "{{segment}}", instant=True)], (16, y, 8, 8), unit="percentunit", orientation="horizontal")


def deals(y: int) -> Iterator[JSON]:
    yield row("Deals and time to convert, last $window", y)
    y += 1
    yield timeseries("Win rate by $dimension", "Won / (won + lost) of the deals closed in the last $window, per segment.",
                     [target(q.one("leadpulse_window_win_ratio", q.PICKED, q.WINDOW), "{{segment}}")], (0, y, 8, 8), unit="percentunit", from_zero=True)
    yield timeseries("Deals won and lost", "Deals of the selected segments closed in the last $window, by outcome.",
                     [target(q.total("leadpulse_window_deals_won"), "won"), target(q.total("leadpulse_window_deals_lost"), "lost")], (8, y, 8, 8), unit="short", from_zero=True,
                     overrides=[override("byName", "won", color={"mode": "fixed", "fixedColor": "green"}), override("byName", "lost", color={"mode": "fixed", "fixedColor": "orange"})])
    yield timeseries("Won amount by $dimension", "Sum of won amounts of the deals closed in the last $window, per segment, in the deals' own currency.",
                     [target(q.one("leadpulse_window_won_amount", q.PICKED, q.WINDOW), "{{segment}}")], (16, y, 8, 8), unit="short", from_zero=True)
    y += 8
    yield bargauge("Time to convert", "Customers won in the last $window (period basis) by how long they took from lead creation to conversion; each bar is one range of the histogram.",
                   [target(q.ttc_buckets(), "{{le}}", instant=True, fmt="heatmap")], (0, y, 12, 8), unit="short", orientation="vertical",
                   overrides=[override("byRegexp", pattern, displayName=name) for pattern, name in q.bucket_names()])
    yield timeseries("Median and 90th percentile days to convert by $dimension", "Days from lead creation to conversion of each segment's customers won in the last $window, estimated from the histogram's buckets (linear within a bucket). Segments without a customer are left out.",
                     [target(q.ttc_quantile(0.5, "job, segment"), "{{segment}} median"), target(q.ttc_quantile(0.9, "job, segment"), "{{segment}} 90th")], (12, y, 12, 8), unit=DAYS, from_zero=True,
                     overrides=[override("byRegexp", " 90th$", custom_lineStyle={"fill": "dash", "dash": [6, 4]}, custom_lineWidth=1)])


def health(y: int) -> Iterator[JSON]:
    yield row("Pipeline health", y)
    y += 1
    yield timeseries("Events/s by topic and outcome", "What the workers applied, recognised as duplicates (re-sent or superseded) or rejected, per second.",
                     [target(q.events_rate(), "{{topic}} {{outcome}}")], (0, y, 8, 8), unit="ops")
    yield timeseries("Rejected share (15 min)", f"Share of each topic's records rejected over the last 15 minutes, what LeadRejectedSurge watches: it fires above the dashed line ({REJECTED_SHARE:.0%}) with at least 10 rejected records. The reasons are on the leadpulse.rejected topic.",
                     [target(q.rejected_share(), "{{topic}}")], (8, y, 8, 8), unit="percentunit", from_zero=True,
                     steps=thresholds("transparent", (REJECTED_SHARE, "red")), threshold_line=True)
    # The quiet times are drawn as constant series: Grafana draws one threshold line per
    # axis, and the two topics share one.
    quiet = [target(f"vector({seconds})", f"{topic} quiet time") for topic, seconds in QUIET_SECONDS.items()]
    yield timeseries("Age of the newest event", "Time since the newest applied event of each topic happened. LeadFeedStalled fires when a topic's age stays above its dashed quiet time: 6 h for leads, 24 h for deals.",
                     [target(q.newest_event_age(), "{{topic}}"), *quiet], (16, y, 8, 8), unit="s",
                     overrides=[override("byRegexp", " quiet time$", color={"mode": "fixed", "fixedColor": "red"}, custom_lineStyle={"fill": "dash", "dash": [6, 4]}, custom_lineWidth=1)])
    y += 8
    yield timeseries("Consumer lag (records)", "Records in Kafka not yet applied to the aggregates, per topic.",
                     [target(q.consumer_lag(), "{{topic}}")], (0, y, 8, 7), unit="short")
    updown = [{"type": "value", "options": {"0": {"text": "down", "color": "red", "index": 0}, "1": {"text": "up", "color": "green", "index": 1}}}]
    yield stat("Up", "Prometheus scrapes every exporter instance; each could read Redis and Kafka on its last scrape. Down if any instance is.",
               # min over every instance: one replica down is "down", not hidden by the other.
               [target(f"min({metric}{{{q.JOB}}})", name, instant=True) for name, metric in (("exporter", "up"), ("redis", "leadpulse_redis_up"), ("kafka", "leadpulse_kafka_up"))],
               (8, y, 5, 7), unit="none", steps=thresholds("red", (1, "green")), color_mode="background", text_mode="value_and_name", mappings=updown)
    yield stat("Orphan deals", "Closed deals whose lead has no lead.created yet; they join their lead's segments when it arrives.",
               [target(q.one("leadpulse_orphan_deals", q.JOB), "orphans", instant=True)], (13, y, 3, 7), unit="short", steps=thresholds("text"), decimals=0)
    yield timeseries("Scrape duration", "Time the exporter spends per scrape reading Redis and Kafka, per exporter instance.",
                     [target(f"leadpulse_scrape_duration_seconds{{{q.JOB}}}", "{{instance}}")], (16, y, 8, 7), unit="s")


def variables(config: MixinConfig) -> list[JSON]:
    return [
        datasource_variable(config.datasource_uid),
        query_variable("job", "Job", "label_values(leadpulse_redis_up, job)", [config.job], multi=True, all_value=".+"),
        query_variable("dimension", "Dimension", f"label_values(leadpulse_window_leads{{{q.JOB}}}, dimension)", "source"),
        query_variable("segment", "Segment", f'label_values(leadpulse_window_leads{{{q.JOB}, dimension="$dimension"}}, segment)', "$__all", multi=True, all_value=".+"),
        # sort 3 (numerical): 7d, 30d, 90d, not the alphabetical 30d, 7d, 90d.
        query_variable("window", "Window", f"label_values(leadpulse_window_leads{{{q.JOB}}}, window)", "30d", sort=3),
        query_variable("within", "Matured within", f"label_values(leadpulse_window_matured_leads{{{q.JOB}}}, within)", "30d", sort=3),
        textbox_variable("alertmanager", "Alertmanager", "http://localhost:9093", "Base URL of the Alertmanager the dashboard links to."),
    ]


def dashboard(config: MixinConfig = CONFIG) -> JSON:
    """The whole dashboard as Grafana's JSON model (schema 39, Grafana 11.3)."""
    sections = [headline, by_segment, lambda y: follow_up(y, config), matured, cohorts, deals, health]
    panels: list[JSON] = []
    for section in sections:
        y = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=0)
        panels.extend(section(y))
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": config.dashboard_uid,
        "title": config.dashboard_title,
        "description": "Live lead-to-customer conversion by window, cohort and segment, the alerts on it, and the health of the pipeline behind the numbers.",
        "tags": list(config.tags),
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        # Provisioned with allowUiUpdates: false; changes go through exporters/dashboard.py.
        "editable": False,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "monday",
        "refresh": config.refresh,
        "time": {"from": "now-7d", "to": "now"},
        "timepicker": {},
        "templating": {"list": variables(config)},
        "annotations": {"list": [q.alerts_annotation()]},
        "links": [
            link("Alertmanager", "${alertmanager}/#/alerts", "Alerts as Alertmanager holds them"),
            link("Runbooks", f"{config.docs_url}/alerts.md", "docs/alerts.md: what each alert means and what to do"),
        ],
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

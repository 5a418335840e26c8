"""The Grafana dashboard as a Grafana user reads it: what each panel renders, asserted
from the generated JSON, with Grafana's own display code (`@grafana/data`, through
deploy/grafana/lint/schema/display.cjs) where the question is how a value looks; and the
rules a dashboard linter applies (templated datasource and job, job matchers,
$__rate_interval). The schema checks are in test_dashboard_schema.py, the queries
against a real Prometheus in test_dashboard_queries.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from exporters import dashboard
from exporters.mixin import CONFIG
from exporters.rules import QUIET_SECONDS
from tests.monitoring import DEPLOY, REPO

GRAFANA = DEPLOY / "grafana"
DISPLAY = GRAFANA / "lint" / "schema" / "display.cjs"
BOARD: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "leadpulse.json").read_text())
PANELS = [p for p in BOARD["panels"] if p["type"] != "row"]
#: Grafana units that rescale a duration (12.5 d shows as "1.79 weeks").
SCALED_TIME_UNITS = {"ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations", "dthms", "dtdhms", "clockms", "clocks"}
#: Series of docs/metrics.md the dashboard does not chart, and why.
NOT_CHARTED = {
    "leadpulse_cohort_leads_per_customer": "N:1 per cohort repeats the cohort rate matrix; N:1 is charted on the windows",
    "leadpulse_window_follow_up_customers": "the conversion of met against breached leads is a review figure (report --html, "
                                            "docs/review.md): over a rolling window most of its leads are too young to have converted",
    **dict.fromkeys(
        ("leadpulse_verify_mismatched_series", "leadpulse_verify_checked_events", "leadpulse_verify_last_success_timestamp_seconds"),
        "the last `leadpulse verify` run: LeadpulseVerifyMismatch and LeadpulseVerifyStale page on it, a chart adds nothing",
    ),
}


def in_row(prefix: str) -> list[dict[str, Any]]:
    """The panels under the row whose title starts with `prefix`, up to the next row."""
    found: list[dict[str, Any]] = []
    inside = False
    for item in BOARD["panels"]:
        if item["type"] == "row":
            inside = item["title"].startswith(prefix)
        elif inside:
            found.append(item)
    return found


def exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel["targets"]]


def all_exprs() -> Iterator[tuple[str, str]]:
    for panel in PANELS:
        for expr in exprs(panel):
            yield panel["title"], expr


def displayed_each(items: list[tuple[dict[str, Any], list[Any]]]) -> list[list[dict[str, str]]]:
    """How Grafana's display processor shows each (field config, values); one Node run for all."""
    batch = [{"config": config, "values": values} for config, values in items]
    done = subprocess.run(["node", str(DISPLAY)], input=json.dumps(batch), capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(done.stdout))


def displayed(config: dict[str, Any], *values: float | str | None) -> list[dict[str, str]]:
    """How Grafana's display processor shows `values` (None: no value) under a field `config`."""
    (shown,) = displayed_each([(config, list(values))])
    return shown


def panel(title: str) -> dict[str, Any]:
    (found,) = [p for p in PANELS if p["title"] == title]
    return found


def field_config(item: dict[str, Any], name: str) -> dict[str, Any]:
    """The defaults of a panel with the overrides that match field `name` applied."""
    config = {k: v for k, v in item["fieldConfig"]["defaults"].items() if k != "custom"}
    for rule in item["fieldConfig"]["overrides"]:
        kind, pattern = rule["matcher"]["id"], rule["matcher"]["options"]
        if (kind == "byName" and pattern == name) or (kind == "byRegexp" and re.search(pattern, name)):
            config.update({p["id"]: p["value"] for p in rule["properties"] if not p["id"].startswith("custom.")})
    return config


def test_committed_json_is_what_the_generator_writes() -> None:
    assert (GRAFANA / "dashboards" / "leadpulse.json").read_text() == dashboard.render(), "run `python -m exporters.dashboard`"


def test_uid_title_tags_refresh_and_datasource_default_come_from_the_mixin_config() -> None:
    (source,) = [v for v in BOARD["templating"]["list"] if v["name"] == "datasource"]
    assert (BOARD["uid"], BOARD["title"], BOARD["tags"], BOARD["refresh"]) == (CONFIG.dashboard_uid, CONFIG.dashboard_title, list(CONFIG.tags), CONFIG.refresh)
    assert source["current"]["value"] == CONFIG.datasource_uid
    (job,) = [v for v in BOARD["templating"]["list"] if v["name"] == "job"]
    assert job["current"]["value"] == [CONFIG.job]


def test_no_panel_target_or_variable_names_a_datasource_uid_only_the_variable() -> None:
    text = json.dumps(BOARD)
    assert set(re.findall(r'"uid": "([^"]+)"', text)) == {CONFIG.dashboard_uid, "${datasource}"}
    for item in PANELS:
        assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, item["title"]
        assert all(t["datasource"] == item["datasource"] for t in item["targets"]), item["title"]
    assert all(v["datasource"]["uid"] == "${datasource}" for v in BOARD["templating"]["list"] if v["type"] == "query")
    assert BOARD["annotations"]["list"][0]["datasource"]["uid"] == "${datasource}"


def test_provisioned_datasource_uid_is_the_variables_default() -> None:
    (provisioned,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert provisioned["uid"] == CONFIG.datasource_uid


def test_compose_mounts_the_dashboards_where_the_provider_reads_them() -> None:
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "leadpulse.yml").read_text())["providers"]
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


def test_dashboard_is_not_editable_as_provisioning_refuses_ui_updates() -> None:
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "leadpulse.yml").read_text())["providers"]
    assert provider["allowUiUpdates"] is False
    assert BOARD["editable"] is False


def test_every_panel_has_a_title_and_a_description() -> None:
    assert [p["title"] for p in PANELS if not p["title"] or len(p["description"]) < 40] == []


# -- the linter's rules: datasource, job, rate interval -----------------------------------


def test_datasource_and_job_variables_are_as_a_dashboard_linter_wants() -> None:
    variables = {v["name"]: v for v in BOARD["templating"]["list"]}
    source, job = variables["datasource"], variables["job"]
    assert (source["type"], source["query"], source["label"]) == ("datasource", "prometheus", "Data source")
    assert (job["type"], job["label"], job["multi"], job["allValue"]) == ("query", "Job", True, ".+")
    assert all(v["refresh"] == 2 for v in variables.values() if v["type"] == "query"), "query variables reload on time range change"


def test_every_selector_of_every_query_matches_the_job_variable() -> None:
    missing = []
    for title, expr in all_exprs():
        if re.search(r"\b(leadpulse_\w+|up)\b(?!\{)(?!_)", expr):
            missing.append((title, expr))
        missing += [(title, block) for block in re.findall(r"\{([^}]*)\}", expr) if 'job=~"$job"' not in block and not block.startswith("__")]
    assert missing == []


def test_every_rate_uses_rate_interval() -> None:
    ranges = [(title, r) for title, expr in all_exprs() for r in re.findall(r"\brate\([^\[]*\[([^\]]+)\]", expr)]
    assert ranges and all(r == "$__rate_interval" for _, r in ranges), ranges


# -- rendering facts ------------------------------------------------------------------------


def divisors(expr: str) -> Iterator[str]:
    """The right-hand operand of each `/` in `expr` (after any ignoring/on clause)."""
    for match in re.finditer(r"/\s*", expr):
        rest = expr[match.end():]
        rest = re.sub(r"^(ignoring|on)\s*\([^)]*\)\s*", "", rest)
        if rest[0] != "(":
            yield re.match(r"[\w.]+", rest).group(0)  # type: ignore[union-attr]
            continue
        depth = 0
        for i, char in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                yield rest[: i + 1]
                break


def test_no_division_can_yield_inf_or_nan() -> None:
    """Every divisor is a constant or filtered with `> 0`; quantiles only where there are customers."""
    unsafe = []
    for title, expr in all_exprs():
        for divisor in divisors(expr):
            if not (re.fullmatch(r"\d+", divisor) or divisor.endswith("> 0)")):
                unsafe.append((title, divisor))
        if "histogram_quantile" in expr and not re.search(r"and on \([^)]*\) \(.*_count\{.*> 0\)$", expr):
            unsafe.append((title, expr))
    assert unsafe == []


def test_the_division_check_sees_an_unguarded_divisor() -> None:
    assert list(divisors("a / ignoring (basis) b")) == ["b"]
    assert list(divisors("x / (y > 0) + a / (b)")) == ["(y > 0)", "(b)"]


def test_every_sum_takes_one_replica_first_so_a_second_exporter_does_not_double_the_funnel() -> None:
    """`sum(max without (instance) (...))`: replicas of one job publish the same series."""
    sums = [(expr, arg) for _, expr in all_exprs() for arg in re.findall(r"\bsum(?:\s*by\s*\([^)]*\))?\s*\((\w+)", expr)]
    assert len(sums) > 10
    for expr, argument in sums:
        assert argument == "max", expr


def test_ratio_panels_show_percent_and_draw_their_axis_from_zero() -> None:
    for item in PANELS:
        ratios = [e for e in exprs(item) if re.search(r"_ratio(_lower|_upper)?\{", e) or "rejected" in e or "stage_rate" in e]
        if ratios and len(ratios) == len(item["targets"]) and item["type"] != "table":
            assert item["fieldConfig"]["defaults"]["unit"] == "percentunit", item["title"]
            if item["type"] == "timeseries":
                assert item["fieldConfig"]["defaults"]["min"] == 0, item["title"]


def test_no_title_naming_a_time_unit_uses_a_unit_grafana_rescales() -> None:
    named = [p for p in PANELS if re.search(r"\b(days|hours|seconds|minutes)\b", p["title"])]
    assert named, "the days-to-convert panels"
    assert [p["title"] for p in named if p["fieldConfig"]["defaults"]["unit"] in SCALED_TIME_UNITS] == []


def test_median_days_to_convert_shows_days_as_grafana_formats_them() -> None:
    median = panel("Median days to convert")
    assert [s["text"] for s in displayed(median["fieldConfig"]["defaults"], 12.5, 100)] == ["12.5 days", "100.0 days"]


def test_every_stat_and_bar_gauge_sets_thresholds_and_counts_never_turn_red() -> None:
    gauges = [p for p in PANELS if p["type"] in ("stat", "gauge", "bargauge")]
    assert all(p["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] is None for p in gauges)
    counts = [p for p in gauges if p["title"] not in ("Up",)]
    red_config = {"thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None}]}, "color": {"mode": "thresholds"}}
    (red,), *shown = displayed_each([(red_config, [1])] + [(p["fieldConfig"]["defaults"], [0, 80, 1000, 1e6]) for p in counts])
    for item, values in zip(counts, shown, strict=True):
        colours = {v["color"] for v in values}
        assert red["color"] not in colours and len(colours) == 1, item["title"]


def test_up_panel_is_green_at_one_and_red_at_zero() -> None:
    shown = displayed(panel("Up")["fieldConfig"]["defaults"], 1, 0)
    assert [s["text"] for s in shown] == ["up", "down"]


def test_leads_per_customer_divides_only_where_there_is_a_customer() -> None:
    for item in (panel("Leads per customer"), panel("Per $dimension")):
        (expr,) = [e for e in exprs(item) if "ignoring (basis)" in e]
        assert re.search(r"/ ignoring \(basis\) \(.*basis=\"cohort\".*\) > 0\)", expr)
    assert panel("Leads per customer")["fieldConfig"]["defaults"]["noValue"] == dashboard.NONE_YET


def test_cohort_matrices_colour_only_value_cells_and_show_cells_without_leads_as_such() -> None:
    matrices = [p for p in PANELS if any(t["id"] == "groupingToMatrix" for t in p.get("transformations", []))]
    assert len(matrices) == 4
    shown = displayed_each([(p["fieldConfig"]["defaults"], [None, 0]) for p in matrices])
    for item, (empty, zero) in zip(matrices, shown, strict=True):
        (label,) = [o for o in item["fieldConfig"]["overrides"] if o["matcher"]["options"] == "cohort\\segment"]
        assert {"id": "custom.cellOptions", "value": {"type": "auto"}} in label["properties"]
        assert item["fieldConfig"]["defaults"]["custom"]["cellOptions"]["type"] == "color-background"
        assert (empty["text"], empty["color"]) == ("no leads", "rgba(0,0,0,0)"), item["title"]
        assert zero["text"] == "0%" and zero["color"] != "rgba(0,0,0,0)"


def test_funnel_and_time_to_convert_bars_are_one_colour_and_buckets_read_as_ranges() -> None:
    buckets = panel("Time to convert")
    names = [field_config(buckets, le).get("displayName") for le in ("86400.0", "259200", "604800.0", "15552000.0", "+Inf")]
    assert names == ["under 1 day", "1-3 days", "3-7 days", "90-180 days", "over 180 days"]
    assert buckets["targets"][0]["format"] == "heatmap", "per-bucket counts, not cumulative ones"


def test_wilson_band_repeats_per_segment_in_the_segments_own_colours() -> None:
    (band,) = [p for p in PANELS if p.get("repeat") == "segment"]
    assert [t["legendFormat"] for t in band["targets"]] == ["rate", "95% low", "95% high"]
    colours = {field_config(band, name)["color"]["fixedColor"] for name in ("rate", "95% low", "95% high")}
    assert colours == {"blue", "light-blue"}


def test_comparison_panels_have_a_sorted_table_legend_and_a_shared_tooltip() -> None:
    for item in (p for p in PANELS if p["type"] == "timeseries"):
        legend, tooltip = item["options"]["legend"], item["options"]["tooltip"]
        assert (legend["displayMode"], legend["calcs"], legend["sortDesc"], tooltip["mode"]) == ("table", ["lastNotNull"], True, "multi"), item["title"]


def test_window_variable_sorts_numerically_and_alerts_follow_dimension_and_segment() -> None:
    variables = {v["name"]: v for v in BOARD["templating"]["list"]}
    assert variables["window"]["sort"] == 3 and variables["within"]["sort"] == 3
    (alerts,) = BOARD["annotations"]["list"]
    assert 'dimension=~"$dimension|"' in alerts["expr"] and 'segment=~"$segment|"' in alerts["expr"]


def test_links_reach_alertmanager_runbooks_and_a_segment_from_its_row() -> None:
    assert {link["title"]: link["url"] for link in BOARD["links"]} == {"Alertmanager": "${alertmanager}/#/alerts", "Runbooks": f"{CONFIG.docs_url}/alerts.md"}
    (row_link,) = field_config(panel("Per $dimension"), "segment")["links"]
    assert row_link["url"].startswith(f"/d/{CONFIG.dashboard_uid}?") and "var-segment=${__value.raw}" in row_link["url"]


def test_pipeline_panels_draw_the_alert_thresholds() -> None:
    rejected, age = panel("Rejected share (15 min)"), panel("Age of the newest event")
    assert rejected["fieldConfig"]["defaults"]["thresholds"]["steps"][1] == {"color": "red", "value": dashboard.REJECTED_SHARE}
    assert rejected["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
    assert "increase(" in rejected["targets"][0]["expr"] and "[15m]" in rejected["targets"][0]["expr"]
    quiet = {t["legendFormat"].removesuffix(" quiet time"): int(t["expr"].removeprefix("vector(").removesuffix(")")) for t in age["targets"][1:]}
    assert quiet == QUIET_SECONDS
    assert all(field_config(age, f"{topic} quiet time")["color"]["fixedColor"] == "red" for topic in quiet)


def documented_metrics() -> set[str]:
    """The `leadpulse_*` series of docs/metrics.md's tables (`_upper` after `..._lower` expanded)."""
    names: set[str] = set()
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        tokens = re.findall(r"`([^`]+)`", line.split("|")[1])
        for token in tokens:
            name = tokens[0].rsplit("_", 1)[0] + token if token.startswith("_") else token
            if name.startswith("leadpulse_"):
                names.add(name)
    return names


def test_every_documented_metric_is_charted_or_listed_as_not_charted() -> None:
    charted = set(re.findall(r"\b(leadpulse_\w+?)(?:_bucket|_count|_sum)?\{", " ".join(e for _, e in all_exprs())))
    documented = documented_metrics()
    assert len(documented) > 20
    assert documented - charted - set(NOT_CHARTED) == set()
    assert set(NOT_CHARTED) <= documented - charted

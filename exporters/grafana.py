"""Grafana's JSON model, one function per panel kind, every option the schema requires set.

Grafana fills in what a dashboard leaves out with the defaults of whatever version
loads it, and those change between versions (a bar gauge turned red from 80 because
nobody set thresholds). So each builder here writes every field that Grafana's schema
(`@grafana/schema` of the version docker-compose.yml pins) and the foundation SDK's
strict decoder require, and a panel states its own thresholds, legend and tooltip.

Plain dicts rather than the `grafana-foundation-sdk` builders: those leave a required
option out unless it is called for (its output fails the SDK's own strict decode the
same way the old dashboard did), so they would not spare writing each field, and the
tests validate the JSON with both Grafana's schema and the SDK's strict decoder
anyway (tests/exporters/test_dashboard_schema.py). A dict reads like the JSON a
reviewer compares it with.
"""

from __future__ import annotations

from typing import Any, Final

JSON = dict[str, Any]

#: Every panel and target names the dashboard's `datasource` variable, never a uid.
DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series") -> JSON:
    """One Prometheus query; `panel` numbers the refIds A, B, ... in order."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
    }


def thresholds(base: str, *steps: tuple[float, str]) -> JSON:
    """Absolute thresholds: `base` below the first step (never Grafana's default red from 80)."""
    return {"mode": "absolute", "steps": [{"color": base, "value": None}] + [{"color": color, "value": value} for value, color in steps]}


def override(matcher: str, options: str, **properties: Any) -> JSON:
    """Field override: `custom_x` in `properties` stands for Grafana's `custom.x`."""
    return {
        "matcher": {"id": matcher, "options": options},
        "properties": [{"id": name.replace("custom_", "custom."), "value": value} for name, value in properties.items()],
    }


def panel(kind: str, title: str, description: str, targets: list[JSON], grid: tuple[int, int, int, int], *, options: JSON, defaults: JSON, overrides: list[JSON] | None = None, **extra: Any) -> JSON:
    """A panel of any kind; `grid` is (x, y, w, h) on Grafana's 24-column grid."""
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{**t, "refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
        **extra,
    }


def reduce_last() -> JSON:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(title: str, description: str, targets: list[JSON], grid: tuple[int, int, int, int], *, unit: str, steps: JSON, decimals: int | None = None,
         color_mode: str = "value", graph_mode: str = "none", text_mode: str = "value", no_value: str = "no data", mappings: list[JSON] | None = None) -> JSON:
    defaults: JSON = {"unit": unit, "thresholds": steps, "color": {"mode": "thresholds"}, "mappings": mappings or [], "noValue": no_value}
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "reduceOptions": reduce_last(),
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "colorMode": color_mode,
        "graphMode": graph_mode,
        "justifyMode": "auto",
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
    }
    return panel("stat", title, description, targets, grid, options=options, defaults=defaults)


def timeseries(title: str, description: str, targets: list[JSON], grid: tuple[int, int, int, int], *, unit: str, from_zero: bool = False,
               overrides: list[JSON] | None = None, steps: JSON | None = None, threshold_line: bool = False, **extra: Any) -> JSON:
    """A time series with a table legend (last value, sorted) and a shared tooltip, for comparing series.

    `from_zero` starts the axis at 0 (ratios and counts), so that a move from 3.1% to
    2.9% does not fill the panel.
    """
    custom: JSON = {
        "drawStyle": "line",
        "lineWidth": 2,
        "fillOpacity": 0,
        "showPoints": "never",
        "spanNulls": False,
        "axisPlacement": "auto",
        "thresholdsStyle": {"mode": "dashed" if threshold_line else "off"},
    }
    defaults: JSON = {
        "unit": unit,
        "custom": custom,
        "color": {"mode": "palette-classic"},
        "thresholds": steps or thresholds("green"),
        "mappings": [],
    }
    if from_zero:
        defaults["min"] = 0
    options = {
        "legend": {"showLegend": True, "displayMode": "table", "placement": "right", "calcs": ["lastNotNull"], "sortBy": "Last *", "sortDesc": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel("timeseries", title, description, targets, grid, options=options, defaults=defaults, overrides=overrides, **extra)


def table(title: str, description: str, targets: list[JSON], grid: tuple[int, int, int, int], *, unit: str, overrides: list[JSON],
          transformations: list[JSON], cell: JSON | None = None, color: JSON | None = None, mappings: list[JSON] | None = None,
          sort_by: str = "", links: list[JSON] | None = None) -> JSON:
    defaults: JSON = {
        "unit": unit,
        "custom": {"align": "auto", "inspect": False, "cellOptions": cell or {"type": "auto"}},
        "color": color or {"mode": "thresholds"},
        "thresholds": thresholds("text"),
        "mappings": mappings or [],
        "links": links or [],
    }
    options: JSON = {"frameIndex": 0, "showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": sort_by, "desc": True}] if sort_by else []}
    return panel("table", title, description, targets, grid, options=options, defaults=defaults, overrides=overrides, transformations=transformations)


def bargauge(title: str, description: str, targets: list[JSON], grid: tuple[int, int, int, int], *, unit: str, orientation: str,
             overrides: list[JSON] | None = None) -> JSON:
    """Bars of one colour: their length is the message, a red bar would say "bad"."""
    defaults: JSON = {"unit": unit, "min": 0, "thresholds": thresholds("blue"), "color": {"mode": "thresholds"}, "mappings": []}
    options = {
        "reduceOptions": reduce_last(),
        "orientation": orientation,
        "displayMode": "basic",
        "valueMode": "color",
        "namePlacement": "auto",
        "showUnfilled": True,
        "sizing": "auto",
        "minVizWidth": 8,
        "minVizHeight": 16,
        "maxVizHeight": 300,
        "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
    }
    return panel("bargauge", title, description, targets, grid, options=options, defaults=defaults, overrides=overrides)


def row(title: str, y: int) -> JSON:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def datasource_variable(default_uid: str) -> JSON:
    """The `datasource` variable every panel names: importing into another Grafana picks its own."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": default_uid, "value": default_uid},
        "hide": 0,
        "multi": False,
        "includeAll": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(name: str, label: str, query: str, current: str | list[str], *, sort: int = 1, multi: bool = False, all_value: str = "") -> JSON:
    """A variable from Prometheus's label values, refreshed when the time range changes."""
    text = "All" if current == "$__all" else current
    variable: JSON = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {"text": text, "value": current},
        "hide": 0,
        "multi": multi,
        "includeAll": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": sort,
        "skipUrlSync": False,
    }
    if all_value:
        variable["allValue"] = all_value
    return variable


def textbox_variable(name: str, label: str, default: str, description: str) -> JSON:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "textbox",
        "query": default,
        "current": {"text": default, "value": default},
        "hide": 0,
        "options": [],
        "skipUrlSync": False,
    }


def link(title: str, url: str, tooltip: str, *, include_vars: bool = False, keep_time: bool = False) -> JSON:
    return {
        "title": title,
        "type": "link",
        "url": url,
        "tooltip": tooltip,
        "icon": "external link",
        "tags": [],
        "asDropdown": False,
        "targetBlank": True,
        "includeVars": include_vars,
        "keepTime": keep_time,
    }

"""The mixin configuration: selector, runbook and dashboard links as the rules and dashboard use them."""

from __future__ import annotations

from exporters.mixin import CONFIG, MixinConfig


def test_selector_names_the_scrape_job_of_the_shipped_prometheus_config() -> None:
    assert CONFIG.selector == 'job="leadpulse"'
    assert MixinConfig(job="crm").selector == 'job="crm"'


def test_runbook_url_points_at_the_alerts_doc_section() -> None:
    assert CONFIG.runbook_url("leadconversiondrop").endswith("/docs/alerts.md#leadconversiondrop")


def test_dashboard_url_sets_template_variables_and_keeps_alert_templates_readable() -> None:
    url = MixinConfig(grafana_url="https://g.example").dashboard_url(dimension="{{$labels.dimension}}", segment="a b")
    assert url == "https://g.example/d/leadpulse-conversion?var-dimension={{$labels.dimension}}&var-segment=a+b"

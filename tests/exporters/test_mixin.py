"""The mixin configuration: selector, runbook and dashboard links as the rules and dashboard use them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from exporters.mixin import CONFIG, MixinConfig


def test_selector_names_the_scrape_job_of_the_shipped_prometheus_config() -> None:
    assert CONFIG.selector == 'job="leadpulse"'
    assert MixinConfig(job="crm").selector == 'job="crm"'


def test_runbook_url_points_at_the_alerts_doc_section() -> None:
    assert CONFIG.runbook_url("leadconversiondrop").endswith("/docs/alerts.md#leadconversiondrop")


def test_dashboard_url_sets_template_variables_and_keeps_alert_templates_readable() -> None:
    url = MixinConfig(grafana_url="https://g.example").dashboard_url(dimension="{{$labels.dimension}}", segment="a b")
    assert url == "https://g.example/d/leadpulse-conversion?var-dimension={{$labels.dimension}}&var-segment=a+b"


names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(st.dictionaries(names, values, min_size=1, max_size=4))
def test_dashboard_url_hands_grafana_back_exactly_the_variables_it_was_given(variables: dict[str, str]) -> None:
    parts = urlsplit(CONFIG.dashboard_url(**variables))
    assert parts.path == f"/d/{CONFIG.dashboard_uid}"
    assert parse_qs(parts.query, keep_blank_values=True) == {f"var-{name}": [value] for name, value in variables.items()}

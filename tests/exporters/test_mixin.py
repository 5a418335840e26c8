"""The one configuration of rules and dashboard: its selector and the links alerts carry."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from exporters.mixin import CONFIG, MixinConfig


def test_selector_names_the_job_prometheus_scrapes_the_exporter_as() -> None:
    assert CONFIG.selector == 'job="leadpulse"'
    assert MixinConfig(job="crm-pipeline").selector == 'job="crm-pipeline"'


def test_runbook_url_points_at_the_alerts_section_of_the_docs() -> None:
    assert CONFIG.runbook_url("leadconversiondrop") == "https://github.com/leadpulse/leadpulse/blob/main/docs/alerts.md#leadconversiondrop"


def test_dashboard_url_leaves_the_alert_templates_for_prometheus_to_render() -> None:
    url = CONFIG.dashboard_url(dimension="{{ $labels.dimension }}", segment="{{ $labels.segment }}")
    assert url == "http://localhost:3000/d/leadpulse-conversion?var-dimension={{ $labels.dimension }}&var-segment={{ $labels.segment }}"


names = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(st.dictionaries(names, values, min_size=1, max_size=4))
def test_dashboard_url_hands_grafana_back_exactly_the_variables_it_was_given(variables: dict[str, str]) -> None:
    parts = urlsplit(CONFIG.dashboard_url(**variables))
    assert parts.path == f"/d/{CONFIG.dashboard_uid}"
    assert parse_qs(parts.query, keep_blank_values=True) == {f"var-{name}": [value] for name, value in variables.items()}

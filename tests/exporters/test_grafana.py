"""The panel builders: every panel states what Grafana would otherwise default."""

from __future__ import annotations

from exporters import grafana


def test_thresholds_start_from_a_base_colour_never_the_default_red_from_80() -> None:
    assert grafana.thresholds("blue", (0.05, "red")) == {"mode": "absolute", "steps": [{"color": "blue", "value": None}, {"color": "red", "value": 0.05}]}


def test_targets_are_numbered_in_order_and_name_the_datasource_variable() -> None:
    item = grafana.stat("t", "d", [grafana.target("a"), grafana.target("b", instant=True)], (0, 0, 4, 4), unit="short", steps=grafana.thresholds("text"))
    assert [(t["refId"], t["range"], t["instant"]) for t in item["targets"]] == [("A", True, False), ("B", False, True)]
    assert {t["datasource"]["uid"] for t in item["targets"]} == {item["datasource"]["uid"]} == {"${datasource}"}


def test_override_spells_custom_properties_as_grafana_does() -> None:
    rule = grafana.override("byName", "x", custom_lineWidth=1, unit="s")
    assert rule["properties"] == [{"id": "custom.lineWidth", "value": 1}, {"id": "unit", "value": "s"}]


def test_multi_value_variables_offer_all_with_the_given_regex() -> None:
    variable = grafana.query_variable("job", "Job", "label_values(up, job)", ["leadpulse"], multi=True, all_value=".+")
    assert (variable["multi"], variable["includeAll"], variable["allValue"], variable["refresh"]) == (True, True, ".+", 2)

"""The generated alert rules: the committed file is the generator's output, and its Python
evaluation (what `make bench-alerts` runs) agrees with promtool's, sample by sample."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
import yaml

from exporters import rules
from exporters.mixin import CONFIG

pytestmark = pytest.mark.integration  # promtool


def test_committed_rule_file_is_what_the_generator_writes() -> None:
    assert rules.OUTPUT.read_text() == rules.render(), "run `python -m exporters.rules`"


def test_every_expression_selects_the_job_and_every_alert_links_its_runbook() -> None:
    for group in yaml.safe_load(rules.render())["groups"]:
        for rule in group["rules"]:
            for line in rule["expr"].splitlines():
                if "{" in line:
                    assert CONFIG.selector in line, line
            if "alert" in rule:
                assert rule["annotations"]["runbook_url"] == CONFIG.runbook_url(rule["alert"].lower())
    for alert in rules.BUSINESS_ALERTS:
        rendered = rules._annotations(alert, CONFIG)
        assert rendered["dashboard_url"].startswith(f"{CONFIG.grafana_url}/d/{CONFIG.dashboard_uid}?var-dimension=")


#: Values on and around every threshold, so ties are tested where floats are touchy.
DROPS = (-0.2, 0.0, 0.19999, 0.2, 0.3, 0.39999, 0.4, 0.40001, 1.0)
ZS = (-5.0, -3.1, -3.09, -3.0899, -2.76, -2.75, -2.0, 0.5)
EXPECTEDS = (0.5, 9.99, 10.0, 250.0)
#: The follow-up checks' series, on and around their thresholds.
AROUND: dict[str, tuple[float, ...]] = {
    rules.SHORTFALL: (-0.1, 0.0, 0.14999, 0.15, 0.5),
    rules.VOLUME: (0.2, 0.49999, 0.5, 0.9),
    rules.FOLLOW_UP_ZSCORE: (-5.0, -3.73, -3.72, -3.7199, -3.09, 0.5),
    rules.RECENT_LEADS: (0.0, 19.0, 20.0, 250.0),
    rules.USUAL_LEADS: (59.0, 60.0, 3300.0),
    rules.STALLED_RISE: (0.0, 0.49999, 0.5, 2.0),
    rules.STALLED_Z: (-1.0, 3.0899, 3.09, 8.0),
    rules.STALLED_NOW: (9.0, 10.0, 100.0),
}
CHECKS = ("conversion", "quality", rules.FOLLOW_UP, rules.STALLED)


def test_python_evaluation_of_the_rules_agrees_with_promtool(tmp_path: Path) -> None:
    """Random segments on the thresholds; promtool must fire exactly the alerts `Alert.holds` says."""
    rng = random.Random(7)
    series, expected = [], {alert.name: [] for alert in rules.BUSINESS_ALERTS}
    around = {**AROUND, rules.DROP: DROPS, rules.ZSCORE: ZS, rules.EXPECTED: EXPECTEDS}
    for i in range(240):
        check = CHECKS[i % len(CHECKS)]
        names = {c.series for a in rules.BUSINESS_ALERTS if a.check == check for c in a.conditions}
        samples = {name: rng.choice(around[name]) for name in sorted(names)}
        labels = {"job": "leadpulse", "check": check, "dimension": "source", "segment": f"s{i}"}
        if check == rules.STALLED:
            labels["stage"] = "mql"
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        series += [{"series": f"{name}{{{selector}}}", "values": f"{value}x400"} for name, value in samples.items()]
        for alert in rules.BUSINESS_ALERTS:
            if alert.check == check and alert.holds(samples):
                expected[alert.name].append({"exp_labels": {**labels, "severity": alert.severity}})
    assert all(expected.values()), "some segments must fire, or the test proves nothing"
    rules_file = tmp_path / "rules.yml"
    # Annotations are not under test here (they query series the segments share names with).
    data = yaml.safe_load(rules.render())
    # Nor are the recording rules: the check series are given, as the harness is given them.
    for group in data["groups"]:
        group["rules"] = [rule for rule in group["rules"] if "alert" in rule]
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_file.write_text(yaml.safe_dump(data))
    test = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "6h", "alertname": name, "exp_alerts": alerts} for name, alerts in expected.items()
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    done = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

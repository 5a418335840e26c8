"""The follow-up harness measures the shipped rules: its arithmetic is the recording rules', held to promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from exporters import rules
from tests.bench import followup

pytestmark = pytest.mark.integration  # promtool

SERIES = (rules.SHORTFALL, rules.FOLLOW_UP_ZSCORE, rules.RECENT_LEADS, rules.USUAL_LEADS, rules.VOLUME)


@pytest.mark.parametrize("setup", [followup.DEFAULTS, followup.CONFIGURED], ids=["24x7", "business-hours"])
def test_usual_within_sla_share_is_about_85_percent(setup: followup.Setup) -> None:
    leads, met, _ = followup.simulate_follow_up(setup, 200, 364, None, np.random.default_rng(1))
    assert 0.82 < met.sum() / leads.sum() < 0.88


def test_a_friday_evening_lead_breaches_a_24x7_sla_and_meets_a_business_hours_one() -> None:
    friday_evening = 4 * followup.DAY + 19
    leads, met, deadline = followup.simulate_follow_up(followup.DEFAULTS, 1e5, 14, None, np.random.default_rng(2))
    assert leads[friday_evening] > 1000
    assert (met[friday_evening], deadline[friday_evening]) == (0, friday_evening + 24)  # Saturday 19:00: nobody works before
    leads, met, deadline = followup.simulate_follow_up(followup.CONFIGURED, 1e5, 14, None, np.random.default_rng(2))
    assert deadline[friday_evening] == 7 * followup.DAY + 13  # Monday 13:00: four business hours after Monday 09:00
    assert met[friday_evening] / leads[friday_evening] == pytest.approx(0.85, abs=0.08)  # as any lead, with the week's wobble


def test_recording_rules_compute_the_harness_series_from_the_same_window_counts(tmp_path: Path) -> None:
    """Three hours of a simulated segment as `leadpulse_window_follow_up_leads`; promtool's recorded series must equal the harness's."""
    leads, met, deadline = followup.simulate_follow_up(followup.DEFAULTS, 50, 140, None, np.random.default_rng(3))
    hours = np.array([120 * followup.DAY + 1, 122 * followup.DAY + 11, 125 * followup.DAY + 16])
    expected = followup.follow_up_series(leads, met, deadline, hours)
    inputs, tests = [], []
    for i in range(len(hours)):
        labels = f'job="leadpulse",dimension="source",segment="h{i}"'
        for days in (7, 90):
            n, m = followup.window_counts(leads, met, deadline, hours[i : i + 1], days)
            for outcome, value in (("met", m[0]), ("breached", n[0] - m[0])):
                inputs.append({"series": f'leadpulse_window_follow_up_leads{{{labels},window="{days}d",outcome="{outcome}"}}', "values": f"{value:g}x5"})
        for name in SERIES:
            tests.append({"expr": f'round({name}{{segment="h{i}"}}, 0.000001)', "eval_time": "1m",
                          "exp_samples": [{"labels": f'{{{labels},check="follow_up"}}', "value": round(float(expected[name][i]), 6)}]})  # fmt: skip
    assert len({round(float(v), 6) for v in expected[rules.FOLLOW_UP_ZSCORE]}) == 3
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": [str(rules.OUTPUT)], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": tests}],
    }))  # fmt: skip
    done = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

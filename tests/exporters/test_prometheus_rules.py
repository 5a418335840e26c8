"""The shipped Prometheus and Alertmanager configuration, checked by the real promtool and amtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.monitoring import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"


def run(*command: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_rules_pass_promtool_check_rules_with_lint() -> None:
    assert "SUCCESS: 22 rules found" in run("promtool", "check", "rules", "--lint=all", "--lint-fatal", "rules/leadpulse.yml")


def test_prometheus_config_and_its_rule_files_are_valid() -> None:
    assert "is valid prometheus config file syntax" in run("promtool", "check", "config", "prometheus.yml")


def test_rule_unit_tests_pass() -> None:
    """Breaks and quality drops fire with their severity; volume stories, noise, small expectations do not (see the files)."""
    files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert files == ["tests/conversion_drop.yml", "tests/follow_up_slow.yml", "tests/pipeline.yml", "tests/quality_drop.yml", "tests/stage_stalled.yml"]
    assert run("promtool", "test", "rules", *files).count("SUCCESS") == len(files)


def test_alertmanager_config_passes_amtool() -> None:
    assert "SUCCESS" in run("amtool", "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))

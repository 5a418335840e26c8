"""`leadpulse stack`: the command line over the stack's control functions."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams import stack
from streams.settings import Settings
from streams.stack.cli import stack as stack_command

pytestmark = pytest.mark.integration


def test_status_command_prints_a_row_per_service(stack_settings: Settings) -> None:
    env = {
        "LEADPULSE_HOME": str(stack_settings.home),
        "LEADPULSE_KAFKA_BOOTSTRAP": stack_settings.kafka_bootstrap,
        "LEADPULSE_REDIS_URL": stack_settings.redis_url,
        "LEADPULSE_PROMETHEUS_PORT": str(stack_settings.prometheus_port),
        "LEADPULSE_ALERTMANAGER_PORT": str(stack_settings.alertmanager_port),
    }
    result = CliRunner().invoke(stack_command, ["status"], env=env, terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in stack.SERVICES:
        assert name in result.output
    assert "running/" in result.output

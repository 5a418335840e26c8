"""A short chaos soak (`make chaos` runs the long one): under random faults nothing acknowledged is lost or doubled.

Ninety seconds of traffic at 20 events/s through every way in, a fault every 8-15 s, on
a stack of the soak's own (never the shared test stack). Only exactness is asserted;
the timings it prints are figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams import stack
from tests.chaos.soak import Options, run

pytestmark = pytest.mark.integration


def test_a_short_soak_with_random_faults_loses_and_doubles_no_acknowledged_event_and_stops_its_stack(
    tmp_path: Path,
) -> None:
    result = run(Options(1.5, tmp_path / "home", rate=20, gap_s=(8.0, 15.0), seed=25))
    print(result.text)
    figures = result.figures
    assert sum(figures.faults.values()) >= 3, figures.faults
    assert figures.accepted == figures.offered > 1000  # every offer retried until acknowledged
    assert (figures.lost, figures.doubled) == (0, 0), result.text
    assert figures.series_differing == [], result.text
    assert figures.refusals == [] and figures.api_503_not_retryable == 0, result.text
    assert figures.verify.ok is not False, figures.verify.text
    assert {row.state for row in stack.status(result.stack)} <= {"stopped", "not installed"}

"""The alert harness computes exactly the exporter's checks, only over arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregates import checks as c
from tests.bench import alerts


@pytest.mark.parametrize("seed", range(5))
def test_array_checks_equal_the_exporters_checks_day_by_day(seed: int) -> None:
    rng = np.random.default_rng(seed)
    story = alerts.Story("mixed", leads=alerts._window(230, 9, 2.5), follow_up=alerts._from(250, 0.5), weekly=seed % 2 == 0)
    leads, customers = alerts.simulate(story, [3, 40, 400][seed % 3], 0.05, 300, rng)
    days = np.arange(alerts.WARMUP, 300, 7)
    conversion, quality = alerts.checks_over_days(leads, customers, days)
    history = c.History(
        {day: int(n) for day, n in enumerate(leads)}, {day: [int(x) for x in row] for day, row in enumerate(customers)}
    )
    for i, day in enumerate(days):
        for series, check in ((conversion, c.conversion_check(history, int(day))), (quality, c.quality_check(history, int(day)))):
            if check is None or check.drop is None:
                assert math.isnan(series.drop[i])
                continue
            assert (series.observed[i], series.drop[i]) == (check.observed, check.drop)
            assert series.expected[i] == pytest.approx(check.expected, rel=1e-12)
            assert series.zscore[i] == pytest.approx(check.zscore, rel=1e-12)


def test_lag_weights_are_a_realistic_b2b_sales_cycle() -> None:
    weights = alerts.LAG_WEIGHTS
    assert weights[:11].sum() == 0  # nothing within 10 days
    assert 0.45 < weights[:31].sum() < 0.55  # about half within 30 days
    assert weights.sum() > 0.99  # nearly all within 90

"""The five-minute demo starts as soon as the suite is collected, if its test is selected.

It is five minutes on the demo's own timeline, mostly waiting, so it runs beside the
other tests (on a stack of its own) and its test only collects the result.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.streams.demo.runs import DemoProcess

FIVE_MINUTE_TEST = "test_the_five_minute_demo_fires_lead_follow_up_slow_for_paid_search_before_lead_conversion_drop"
_started: list[DemoProcess] = []


def _start() -> DemoProcess:
    home = Path(tempfile.mkdtemp(prefix="leadpulse-five-minute-demo-")) / "home"
    _started.append(DemoProcess(home, "--duration", "300"))
    return _started[-1]


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.name == FIVE_MINUTE_TEST for item in session.items):
        _start()


def pytest_sessionfinish() -> None:
    for demo in _started:
        demo.stop()
        shutil.rmtree(demo.out.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def five_minute_demo() -> Iterator[DemoProcess]:
    """The default demo (`--duration 300`), started at collection (or now, if not yet)."""
    yield _started[0] if _started else _start()

"""The real demo runs start as soon as the suite is collected, each if its test is selected.

They run on the demo's own timeline (70 s and five minutes), mostly waiting, so they run
beside the other tests (each on a stack of its own) and their tests only collect the
results.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.streams.demo.runs import DemoProcess

UNATTENDED_TEST = "test_an_unattended_demo_feeds_the_pipeline_reports_every_source_and_stops_what_it_started"
FIVE_MINUTE_TEST = "test_the_five_minute_demo_fires_lead_follow_up_slow_for_paid_search_before_lead_conversion_drop"
#: Each background run's `leadpulse demo` arguments, given its home.
RUNS: dict[str, Callable[[Path], tuple[str, ...]]] = {
    UNATTENDED_TEST: lambda home: (
        "--duration", "70", "--replay", "25", "--leads-per-day", "300", "--snapshot", str(home.parent / "view.svg")
    ),  # fmt: skip
    FIVE_MINUTE_TEST: lambda home: ("--duration", "300"),
}
_started: dict[str, DemoProcess] = {}


def _start(test: str) -> DemoProcess:
    home = Path(tempfile.mkdtemp(prefix="leadpulse-demo-")) / "home"
    _started[test] = DemoProcess(home, *RUNS[test](home))
    return _started[test]


def pytest_collection_finish(session: pytest.Session) -> None:
    selected = {item.name for item in session.items}
    for test in RUNS.keys() & selected:
        _start(test)


def pytest_sessionfinish() -> None:
    for demo in _started.values():
        demo.stop()
        shutil.rmtree(demo.home.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def unattended_demo() -> DemoProcess:
    """`--duration 70 --replay 25 --leads-per-day 300` with a snapshot of the view, started at collection."""
    return _started.get(UNATTENDED_TEST) or _start(UNATTENDED_TEST)


@pytest.fixture(scope="session")
def five_minute_demo() -> DemoProcess:
    """The default demo (`--duration 300`), started at collection (or now, if not yet)."""
    return _started.get(FIVE_MINUTE_TEST) or _start(FIVE_MINUTE_TEST)

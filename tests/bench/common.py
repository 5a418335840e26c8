"""What the benchmarks share: the bench stack, a private Redis, and figures judged against targets.

Every figure is measured a few times and printed as a range with its median, because
the development machine has 2 cores shared with other work: one number would be luck.
A target is judged on the median and the verdict is printed beside the figure, missed
or not; the benchmark never fails, it reports.
"""

from __future__ import annotations

import math
import shutil
import statistics
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from aggregates.store import AggregateStore
from streams import stack
from streams.events import Event
from streams.settings import Settings
from tests import REPO

#: The bench stack's home and ports: apart from the demo (9092/6379) and test (19092/16379)
#: stacks, so a benchmark neither disturbs them nor is disturbed by their data.
BENCH_HOME = REPO / ".leadpulse-bench"
BENCH_KAFKA = "127.0.0.1:29092"
BENCH_CONTROLLER_PORT = 29095
BENCH_REDIS_URL = "redis://127.0.0.1:26380/0"
REDIS_START_TIMEOUT_S = 10.0


class BenchError(RuntimeError):
    """The benchmark could not set itself up; the message says what to stop or install."""


@dataclass(frozen=True)
class Target:
    """A bound a figure should meet: `figure >= bound` when `at_least`, else `figure <= bound`."""

    bound: float
    at_least: bool

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {number(self.bound)}"


@dataclass(frozen=True)
class Figure:
    """One measured quantity, one value per run."""

    name: str
    unit: str
    values: tuple[float, ...]
    target: Target | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> str:
        """The median, and the range over the runs when they differ."""
        text = " ".join(filter(None, (number(self.median), self.unit)))
        if number(min(self.values)) == number(max(self.values)):
            return text
        return f"{text} (range {span(self.values)}, {len(self.values)} runs)"

    @property
    def verdict(self) -> str:
        """Empty without a target; otherwise the median against it, and how many runs met it."""
        if self.target is None:
            return ""
        met = sum(self.target.met(v) for v in self.values)
        word = "met" if self.target.met(self.median) else "MISSED"
        runs = f", {met} of {len(self.values)} runs met it" if 0 < met < len(self.values) else ""
        bound = " ".join(filter(None, (str(self.target), self.unit)))
        return f"target {bound}: {word}{runs}"


@dataclass
class Section:
    """One benchmark's figures, with notes on what was measured and how."""

    name: str  # the benchmark's name, which labels its figures in the summary
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        width = max((len(f.name) for f in self.figures), default=0)
        lines = [f"== {self.name}: {self.title}"]
        for figure in self.figures:
            verdict = f"   [{figure.verdict}]" if figure.verdict else ""
            lines.append(f"  {figure.name:<{width}}  {figure.spread}{verdict}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def number(value: float) -> str:
    """Two or three significant digits, more for large numbers: 45,210 / 12.3 / 3.53 / 0.023."""
    if math.isinf(value):
        return "inf"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return f"{value:.2g}"


def span(values: Sequence[float]) -> str:
    """`low - high`, or one number when all values read the same."""
    low, high = number(min(values)), number(max(values))
    return low if low == high else f"{low} - {high}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The `q` quantile (0-1) of already sorted values, nearest rank: p99 of 100 values is the 99th."""
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def progress(message: str) -> None:
    """What the benchmark is doing: a run takes minutes, and silence looks like a hang."""
    print(f"  .. {message}", flush=True)


def apply_all(store: AggregateStore, events: Sequence[Event], size: int) -> dict[str, int]:
    """Apply `events` in worker-sized batches; the summed outcome counts."""
    counts = {"applied": 0, "duplicate": 0}
    for start in range(0, len(events), size):
        outcome = store.apply(events[start : start + size])
        for name in counts:
            counts[name] += outcome.counts[name]
    return counts


def bench_settings() -> Settings:
    return Settings(home=BENCH_HOME, kafka_bootstrap=BENCH_KAFKA, kafka_controller_port=BENCH_CONTROLLER_PORT,
                    redis_url=BENCH_REDIS_URL)  # fmt: skip


@contextmanager
def bench_stack() -> Iterator[Settings]:
    """Kafka and Redis of the bench home, started empty and stopped at the end.

    The home is wiped first so the topics hold only what this run publishes. Services
    must be this home's own: a foreign process on a bench port would mix its data in.
    """
    settings = bench_settings()
    stack.down(settings)  # leftovers of an interrupted run
    shutil.rmtree(settings.home, ignore_errors=True)
    progress(f"starting Kafka and Redis in {settings.home.name} (about 20 s)")
    try:
        foreign = [s for s in stack.up(settings, services=["kafka", "redis"]) if s.state != "running/ours"]
        if foreign:
            names = ", ".join(f"{s.name} on {s.address}" for s in foreign)
            raise BenchError(f"not started by the bench stack: {names}; stop it, the bench needs these ports")
        yield settings
    finally:
        stack.down(settings)


def targeted(sections: Iterable[Section]) -> Section:
    """Every figure that has a target, for the closing summary."""
    figures = [replace(f, name=f"{s.name}: {f.name}") for s in sections for f in s.figures if f.target]
    return Section("summary", "figures against targets", figures)

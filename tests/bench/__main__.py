"""`python -m tests.bench [NAME ...]`: run the benchmarks (all, or those named) and print their figures.

Figures, not a test: every run prints every figure with its range over a few runs and,
where the project set a target, whether the median meets it. The benchmarks that need
Kafka run on a bench stack (.leadpulse-bench, Kafka 29092, Redis 26380), started empty
and stopped at the end: `scaling` on one of its own, with a Redis Cluster beside it;
pipeline, api, publish and import share one, pipeline first so its topics hold only its feed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

from streams.settings import Settings
from tests.bench import alerts, api, followup, import_, memory, pipeline, publish, scaling, scrape
from tests.bench.common import BenchError, Section, bench_stack, targeted

#: Benchmarks on private Redis servers, then those on the bench stack, in running order.
STANDALONE: dict[str, Callable[[], Section]] = {
    "memory": memory.run, "scrape": scrape.run, "alerts": alerts.run, "followup": followup.run, "scaling": scaling.run,
}
ON_STACK: dict[str, Callable[[Settings], Section]] = {
    "pipeline": pipeline.run, "api": api.run, "publish": publish.run, "import": import_.run,
}
NAMES = (*STANDALONE, *ON_STACK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(NAMES)} (default: all)")
    chosen = parser.parse_args(argv).names or list(NAMES)
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    started = time.monotonic()
    print(f"leadpulse bench {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {_load()}: {', '.join(chosen)}", flush=True)  # fmt: skip
    sections: list[Section] = []
    try:
        for name in (n for n in STANDALONE if n in chosen):
            sections.append(_show(STANDALONE[name]()))
        if any(name in chosen for name in ON_STACK):
            with bench_stack() as settings:
                for name in (n for n in ON_STACK if n in chosen):
                    sections.append(_show(ON_STACK[name](settings)))
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    print(targeted(sections).render())
    print(f"({time.monotonic() - started:.0f} s, {_load()})")
    return 0


def _load() -> str:
    """The load average: on a shared machine it says how much the figures were disturbed."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def _show(section: Section) -> Section:
    print(section.render(), flush=True)
    return section


if __name__ == "__main__":
    sys.exit(main())

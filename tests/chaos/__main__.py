"""`python -m tests.chaos`: run the chaos soak on a stack of its own and print its figures.

Exits 1 when an acknowledged event was lost or counted twice, a series differs from the
reference, or the API refused or 503'd in a way a client cannot retry; never on timing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tests import REPO
from tests.chaos.faults import FAULTS
from tests.chaos.soak import Options, run

CHAOS_HOME = REPO / ".leadpulse-chaos"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("CHAOS_MINUTES", "20")),
                        help="how long traffic flows and faults are injected [CHAOS_MINUTES, default 20]")
    parser.add_argument("--rate", type=int, default=40, help="events offered per second (default 40)")
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster whose masters are killed, not one Redis")
    parser.add_argument("--home", default=str(CHAOS_HOME), help=f"the soak stack's home, wiped first (default {CHAOS_HOME.name})")
    parser.add_argument("--faults", default=",".join(FAULTS), metavar="KIND,...",
                        help=f"the faults to pick from (default all: {', '.join(FAULTS)})")
    parser.add_argument("--seed", type=int, help="seed of the fault schedule and the traffic")
    args = parser.parse_args(argv)
    if args.minutes <= 0:
        parser.error("--minutes (CHAOS_MINUTES) must be above 0")
    chosen = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    unknown = sorted(set(chosen) - set(FAULTS))
    if unknown or not chosen:
        parser.error(f"--faults: unknown {', '.join(unknown) or 'none given'}; choose from {', '.join(FAULTS)}")
    result = run(Options(args.minutes, Path(args.home), args.rate, cluster=args.cluster, seed=args.seed, faults=chosen))
    print(result.text)
    return 0 if result.figures.exact else 1


if __name__ == "__main__":
    sys.exit(main())

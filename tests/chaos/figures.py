"""What a soak run found, from its records alone: counts, losses, freshness, the API under faults.

Pure: `summarise` takes the ledger, the attempts, the faults and the final series and
returns `Figures`, which `render` prints. Exactness (nothing lost, nothing counted
twice, every series as the reference says) is a verdict; timings are figures only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from aggregates.series import Series
from tests.bench.common import number, percentile
from tests.chaos.clients import Attempt, Outcome
from tests.chaos.traffic import KINDS, kinds, tallies


@dataclass
class FaultRecord:
    """One injected fault: when it began and was repaired, and when the numbers were fresh again.

    Fresh again: the exporter counted at least `target` leads, the leads whose creation
    had been acknowledged when the repair was done.
    """

    kind: str
    injected: float
    repaired: float | None = None
    target: int = 0
    fresh: float | None = None


class Verify(NamedTuple):
    """What `leadpulse verify` said: `ok` None when it did not run, and its last line."""

    ok: bool | None
    text: str


@dataclass
class Figures:
    faults: Counter[str]
    offered: int
    accepted: int
    counted: Counter[str]
    expected: Counter[str]
    series_compared: int
    series_differing: list[str]
    freshness: dict[str, float | None]
    during_faults: Counter[str]
    api_503: int
    api_503_not_retryable: int
    refusals: list[str]
    p99_request_ms: float | None
    p99_acknowledged_s: float | None
    publish_runs: int
    publish_retried: int
    verify: Verify
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(max(0, self.expected[k] - self.counted[k]) for k in KINDS)

    @property
    def doubled(self) -> int:
        return sum(max(0, self.counted[k] - self.expected[k]) for k in KINDS)

    @property
    def exact(self) -> bool:
        """Every offer acknowledged in the end, nothing lost or counted twice, every series as the reference
        has it, no refusal, no bad 503. (An offer never acknowledged may or may not be counted, so it would
        blur the count.)"""
        bad = self.lost or self.doubled or self.series_differing or self.refusals or self.api_503_not_retryable
        return self.accepted == self.offered and not bad and self.verify.ok is not False


def differing(actual: Sequence[Series], expected: Sequence[Series]) -> list[str]:
    """The series whose value differs, or that only one side has: `name{labels}: got X, want Y`."""
    def keyed(series: Iterable[Series]) -> dict[str, float]:
        return {f"{s.name}{dict(sorted(s.labels.items()))}": s.value for s in series}

    got, want = keyed(actual), keyed(expected)
    return [
        f"{key}: got {got.get(key)}, want {want.get(key)}"
        for key in sorted(got.keys() | want.keys())
        if key not in got or key not in want or not math.isclose(got[key], want[key], rel_tol=1e-12, abs_tol=1e-12)
    ]


def during(attempts: Iterable[Attempt], faults: Sequence[FaultRecord], end: float) -> Counter[str]:
    """API attempts sent while a fault was on (from injection until fresh again), by 2xx / 503 / other / no answer."""
    spans = [(f.injected, f.fresh or end) for f in faults]
    out: Counter[str] = Counter()
    for attempt in attempts:
        if any(start <= attempt.sent <= stop for start, stop in spans):
            status = attempt.status
            out["2xx" if 200 <= status < 300 else "503" if status == 503 else "no answer" if status == 0 else "other"] += 1
    return out


def summarise(
    *,
    offered: int,
    acknowledged: Iterable[dict[str, object]],
    report: Sequence[Series],
    expected: Sequence[Series],
    faults: Sequence[FaultRecord],
    api: Sequence[Outcome],
    publish: Sequence[Outcome],
    refusals: Sequence[str],
    end: float,
    verify: Verify,
) -> Figures:
    acked = list(acknowledged)
    attempts = [a for o in api for a in o.attempts]
    ok_ms = sorted(a.seconds * 1000 for a in attempts if 200 <= a.status < 300)
    to_ack = sorted(o.acknowledged_at - o.first for o in [*api, *publish] if o.acknowledged_at is not None)
    freshness: dict[str, float | None] = {}
    for fault in faults:
        took = None if fault.fresh is None else fault.fresh - fault.injected
        previous = freshness.get(fault.kind, 0.0)
        freshness[fault.kind] = None if took is None or previous is None else max(previous, took)
    bad_503 = sum(1 for o in api for a in o.attempts if a.status == 503 and (not a.retry_after or o.acknowledged_at is None))
    return Figures(
        faults=Counter(f.kind for f in faults),
        offered=offered,
        accepted=len(acked),
        counted=tallies(report),
        expected=kinds(acked),
        series_compared=len(expected),
        series_differing=differing(report, expected),
        freshness=freshness,
        during_faults=during(attempts, faults, end),
        api_503=sum(1 for a in attempts if a.status == 503),
        api_503_not_retryable=bad_503,
        refusals=list(refusals),
        p99_request_ms=percentile(ok_ms, 0.99) if ok_ms else None,
        p99_acknowledged_s=percentile(to_ack, 0.99) if to_ack else None,
        publish_runs=len(publish),
        publish_retried=sum(1 for o in publish if len(o.attempts) > 1),
        verify=verify,
    )


def render(f: Figures, header: str) -> str:
    """The soak's printout (docs/reliability.md keeps one)."""
    lines = [header, "faults injected:"]
    lines += [f"  {kind:<30} {n}" for kind, n in sorted(f.faults.items())] or ["  none"]
    lines += [
        f"events offered {f.offered:,}, accepted {f.accepted:,}, counted {sum(f.counted.values()):,}",
        "  by kind (accepted / counted): " + ", ".join(f"{k} {f.expected[k]:,}/{f.counted[k]:,}" for k in KINDS),
        f"events lost {f.lost}, counted twice {f.doubled}",
        f"series of `report --json` against the reference over the acknowledged events: {f.series_compared:,} compared, "
        f"{len(f.series_differing)} differ",
        *(f"  differs: {line}" for line in f.series_differing[:20]),
        f"leadpulse verify: {f.verify.text}",
        "longest time from a fault until the numbers were fresh again:",
    ]
    lines += [f"  {kind:<30} {'not fresh by the end' if s is None else f'{number(s)} s'}" for kind, s in sorted(f.freshness.items())]
    answered = sum(f.during_faults.values())
    share = f"{100 * f.during_faults['2xx'] / answered:.1f}%" if answered else "n/a"
    lines += [
        f"API during faults: {share} of {answered:,} requests answered 2xx "
        f"({f.during_faults['503']} 503, {f.during_faults['no answer']} no answer, {f.during_faults['other']} other)",
        f"API 503s: {f.api_503} in all, {f.api_503_not_retryable} not retryable "
        "(retryable: Retry-After sent and the same request accepted on a retry)",
        f"API refusals other than 503: {len(f.refusals)}",
        *(f"  {line}" for line in f.refusals[:10]),
        f"p99 ingest latency: {_ms(f.p99_request_ms)} per 2xx request; "
        f"{_s(f.p99_acknowledged_s)} from first offer to acknowledgement, retries included",
        f"publish: {f.publish_runs} files, {f.publish_retried} needed more than one run",
        *f.notes,
        f"verdict: {'EXACT' if f.exact else 'NOT EXACT'}",
    ]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{number(value)} ms"


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{number(value)} s"

"""The alerts that fired in a review period, from Prometheus's `ALERTS` series, when one answers.

Prometheus keeps every alert's state as the series `ALERTS{alertname, alertstate, ...}`
for as long as its retention (15 days by default: a monthly review needs
`--storage.tsdb.retention.time` of a few months). One range query over the period asks
for `max_over_time(ALERTS{alertstate="firing"}[step])` at every step, so an alert that
fired for less than a step is still seen; a step of at least a minute keeps the answer
within Prometheus's 11,000 points per series.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

MAX_POINTS: Final = 10_000
MIN_STEP_S: Final = 60
HTTP_TIMEOUT_S: Final = 5.0
_NOT_LABELS: Final = frozenset({"__name__", "alertname", "alertstate"})


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """One alert (one label set) that was firing at some point of the period."""

    name: str
    labels: dict[str, str]
    first_seen: datetime  # UTC, to within one step
    last_seen: datetime

    @property
    def where(self) -> str:
        """`source=paid_search`, or the other labels that tell instances apart."""
        labels = dict(self.labels)
        if {"dimension", "segment"} <= labels.keys():
            return f"{labels['dimension']}={labels['segment']}"
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("severity", "job")) or "–"


@dataclass(frozen=True, slots=True)
class AlertHistory:
    """What Prometheus at `url` said: the fired alerts, or why there are none to show."""

    url: str
    alerts: tuple[FiredAlert, ...] | None  # None: no answer
    problem: str = ""
    step_s: int = MIN_STEP_S  # the times are to within this


def step_seconds(start: datetime, end: datetime) -> int:
    return max(MIN_STEP_S, math.ceil((end - start).total_seconds() / MAX_POINTS))


def parse_fired(matrix: list[Mapping[str, Any]], step: int) -> tuple[FiredAlert, ...]:
    """The range query's matrix as alerts, earliest first; a sample covers the step before it."""
    alerts = []
    for series in matrix:
        times = [float(t) for t, value in series["values"] if float(value) > 0]
        if not times:
            continue
        metric = series["metric"]
        alerts.append(FiredAlert(
            name=metric.get("alertname", "?"),
            labels={k: v for k, v in metric.items() if k not in _NOT_LABELS},
            first_seen=datetime.fromtimestamp(min(times) - step, tz=timezone.utc),
            last_seen=datetime.fromtimestamp(max(times), tz=timezone.utc),
        ))
    return tuple(sorted(alerts, key=lambda a: (a.first_seen, a.name, sorted(a.labels.items()))))


def read_fired_alerts(url: str, start: datetime, end: datetime) -> AlertHistory:
    """The alerts that fired between `start` and `end` (aware datetimes); an unreachable or
    failing Prometheus is said in `problem`, never raised: the review goes on without it."""
    step = step_seconds(start, end)
    params = urllib.parse.urlencode({
        "query": f'max_over_time(ALERTS{{alertstate="firing"}}[{step}s])',
        "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}", "step": str(step),
    })
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/query_range?{params}", timeout=HTTP_TIMEOUT_S) as reply:
            answer = json.loads(reply.read())
    except (OSError, ValueError) as exc:
        return AlertHistory(url, None, f"no answer from Prometheus at {url} ({getattr(exc, 'reason', exc)})")
    if answer.get("status") != "success":
        return AlertHistory(url, None, f"Prometheus at {url} refused the query: {answer.get('error', answer)}")
    return AlertHistory(url, parse_fired(answer["data"]["result"], step), step_s=step)

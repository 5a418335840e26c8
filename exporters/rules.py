"""The Prometheus alert rules of leadpulse, generated: `python -m exporters.rules` writes them.

One source for the rule file (`deploy/prometheus/rules/leadpulse.yml`, checked against
this output by a test, as the dashboard is) and for the alert harness (`make
bench-alerts`), which evaluates the same `Alert.conditions` in Python (`Alert.holds`,
held to promtool by tests/exporters/test_rules.py). Every expression selects the
mixin's job (`exporters.mixin.CONFIG`), every alert links its runbook and the dashboard.

The business alerts compare published numbers with thresholds and nothing else: the
exporter computes observed and expected customers, the drop and the z score from the
per-day counters in Redis (`aggregates.checks`), so no rule needs `offset` or a long
range, and a new or restarted Prometheus alerts within `for:`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from aggregates.checks import CONVERSION, QUALITY
from exporters.mixin import CONFIG, MixinConfig

OUTPUT: Final = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules" / "leadpulse.yml"

DROP: Final = "leadpulse_check_drop_ratio"
ZSCORE: Final = "leadpulse_check_zscore"
EXPECTED: Final = "leadpulse_check_expected_customers"
OBSERVED: Final = "leadpulse_check_observed_customers"

#: One-sided p <= 0.001: hundreds of segments are tested every day.
CONVERSION_Z: Final = -3.09
#: Quality, too: its allowance for week-to-week variation is the measured one, not a
#: margin, so it needs the same p <= 0.001 to stay under 0.1 false episodes per
#: segment-year, tested daily on six weeks of cohorts.
QUALITY_Z: Final = CONVERSION_Z
#: A drop worth acting on, and the line between warning and critical.
MIN_DROP: Final = 0.2
CRITICAL_DROP: Final = 0.4
#: Gate on what the baseline predicts, not on leads: below ten expected customers even
#: a total loss is hard to tell from a quiet week.
MIN_EXPECTED: Final = 10.0
#: The checks step once a day (at UTC midnight, and as late events arrive): hours, not
#: minutes, keep a late backfill of yesterday from paging before it settles.
CONVERSION_FOR: Final = "2h"
QUALITY_FOR: Final = "6h"

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Condition:
    """`series{check} op value`: one term of an alert's `and` chain."""

    series: str
    op: str
    value: float

    def promql(self, check: str, config: MixinConfig) -> str:
        return f'{self.series}{{{config.selector}, check="{check}"}} {self.op} {self.value:g}'

    def holds(self, sample: float) -> bool:
        return _OPS[self.op](sample, self.value)


@dataclass(frozen=True)
class Alert:
    """A business alert: the check it reads, its severity, and the conditions that must all hold.

    The first condition's series is the alert's value (the drop).
    """

    name: str
    check: str
    severity: str
    conditions: tuple[Condition, ...]
    wait: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    def expr(self, config: MixinConfig = CONFIG) -> str:
        return "\nand\n".join(c.promql(self.check, config) for c in self.conditions)

    def holds(self, samples: Mapping[str, float]) -> bool:
        """The rule's condition in Python, on one segment's samples by series name (missing: no alert)."""
        return all(c.series in samples and c.holds(samples[c.series]) for c in self.conditions)


def _gates(z: float) -> tuple[Condition, ...]:
    return Condition(ZSCORE, "<=", z), Condition(EXPECTED, ">=", MIN_EXPECTED)


CONVERSION_ALERTS: Final = (
    Alert("LeadConversionDrop", CONVERSION, "critical", (Condition(DROP, ">=", CRITICAL_DROP), *_gates(CONVERSION_Z)), CONVERSION_FOR),
    Alert(
        "LeadConversionDrop",
        CONVERSION,
        "warning",
        (Condition(DROP, ">=", MIN_DROP), Condition(DROP, "<", CRITICAL_DROP), *_gates(CONVERSION_Z)),
        CONVERSION_FOR,
    ),
)
QUALITY_ALERT: Final = Alert(
    "LeadQualityDrop", QUALITY, "warning", (Condition(DROP, ">=", MIN_DROP), *_gates(QUALITY_Z)), QUALITY_FOR
)
BUSINESS_ALERTS: Final = (*CONVERSION_ALERTS, QUALITY_ALERT)

_TEXT: Final = {
    CONVERSION: (
        "{{ $labels.dimension }}={{ $labels.segment }}: {{ $value | humanizePercentage }} fewer customers than its lead flow predicts",
        "{observed} customers won on the last 7 complete UTC days\n"
        "where the leads of the weeks they come from, at the segment's own conversion lags, predict\n"
        "{expected} (z = {z}).\n"
        "A change in lead volume alone does not move this: the prediction follows the lead flow.",
    ),
    QUALITY: (
        "{{ $labels.dimension }}={{ $labels.segment }}: leads convert {{ $value | humanizePercentage }} less than its earlier leads at the same age",
        "{observed} of the leads created 1-44 days ago converted within 30 days or their age so far\n"
        "where the 16 weeks of leads before them, at the same ages, predict\n"
        "{expected} (z = {z}).\n"
        "The leads arriving now are worse; the period rate will show it weeks later.",
    ),
}


def _value_of(series: str, check: str, config: MixinConfig, fmt: str) -> str:
    """A template that queries one of the segment's check series at the alert's time."""
    query = f"{series}{{{config.selector.replace(chr(34), chr(39))},check='{check}',dimension='%s',segment='%s'}}"
    return f'{{{{ with printf "{query}" $labels.dimension $labels.segment | query }}}}{{{{ . | first | value | printf "{fmt}" }}}}{{{{ end }}}}'


def _annotations(alert: Alert, config: MixinConfig) -> dict[str, str]:
    summary, description = _TEXT[alert.check]
    return {
        "summary": summary,
        "description": description.format(
            observed=_value_of(OBSERVED, alert.check, config, "%.0f"),
            expected=_value_of(EXPECTED, alert.check, config, "%.1f"),
            z=_value_of(ZSCORE, alert.check, config, "%.2f"),
        ),
        "runbook_url": config.runbook_url(alert.name.lower()),
        # No spaces inside the braces: the URL encoding would turn them into `+`.
        "dashboard_url": config.dashboard_url(dimension="{{$labels.dimension}}", segment="{{$labels.segment}}"),
    }


def _business_rule(alert: Alert, config: MixinConfig) -> dict[str, Any]:
    return {
        "alert": alert.name,
        "expr": alert.expr(config),
        "for": alert.wait,
        "labels": {"severity": alert.severity},
        "annotations": _annotations(alert, config),
    }


#: Quiet time per topic of LeadFeedStalled: leads arrive all day, deals close a few times a day.
QUIET_SECONDS: Final = {"leadpulse.leads": 6 * 3600, "leadpulse.deals": 24 * 3600}


def _pipeline_rules(config: MixinConfig) -> list[dict[str, Any]]:
    s = config.selector
    stalled = "\nor\n".join(
        f'time() - max by (topic) (leadpulse_last_event_timestamp_seconds{{{s}, topic="{topic}"}}) > {quiet}'
        for topic, quiet in QUIET_SECONDS.items()
    )
    rejected = f'sum by (topic) (increase(leadpulse_events_total{{{s}, outcome="rejected"}}[15m]))'
    return [
        {
            "alert": "LeadFeedStalled",
            "expr": stalled,
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "No new {{ $labels.topic }} event for {{ $value | humanizeDuration }}",
                "description": "The newest applied event on {{ $labels.topic }} happened {{ $value | humanizeDuration }} ago, "
                "longer than its quiet time. A form, webhook or CRM sync may be broken, or the workers stopped.",
                "runbook_url": config.runbook_url("leadfeedstalled"),
            },
        },
        {
            # More than 5% of a topic's records rejected over 15 minutes, and at least 10.
            "alert": "LeadRejectedSurge",
            "expr": f"{rejected}\n/ sum by (topic) (increase(leadpulse_events_total{{{s}}}[15m])) > 0.05\nand\n{rejected} >= 10",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.topic }}: {{ $value | humanizePercentage }} of records rejected in 15 minutes",
                "description": "Read the reasons on the leadpulse.rejected topic (header leadpulse-reason).",
                "runbook_url": config.runbook_url("leadrejectedsurge"),
            },
        },
        {
            "alert": "LeadpulseExporterDown",
            "expr": f"up{{{s}}} == 0",
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "Prometheus cannot scrape the leadpulse exporter {{ $labels.instance }}",
                "description": "No conversion numbers reach Prometheus.",
                "runbook_url": config.runbook_url("leadpulseexporterdown"),
            },
        },
        {
            "alert": "LeadpulseRedisDown",
            "expr": f"leadpulse_redis_up{{{s}}} == 0",
            "for": "2m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "The leadpulse exporter {{ $labels.instance }} cannot read Redis",
                "description": "Business series are not published while Redis is unreadable.",
                "runbook_url": config.runbook_url("leadpulseredisdown"),
            },
        },
    ]


#: `leadpulse verify --every 24h` succeeds about daily: stale once a day's run is missed.
VERIFY_STALE_SECONDS: Final = 36 * 3600


def _verify_rules(config: MixinConfig) -> list[dict[str, Any]]:
    """The reconciliation's alerts: damaged aggregates, and a reconciliation that stopped."""
    s = config.selector
    return [
        {
            "alert": "LeadpulseVerifyMismatch",
            "expr": f"leadpulse_verify_mismatched_series{{{s}}} > 0",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "leadpulse verify found {{ $value }} series or leads that differ from a recount of the topics",
                "description": "The live aggregates no longer equal what the Kafka topics say. The verify run's output "
                "names each differing series and lead; docs/operations.md says when `leadpulse rebuild` is needed.",
                "runbook_url": config.runbook_url("leadpulseverifymismatch"),
            },
        },
        {
            "alert": "LeadpulseVerifyStale",
            "expr": f"time() - leadpulse_verify_last_success_timestamp_seconds{{{s}}} > {VERIFY_STALE_SECONDS}",
            "for": "10m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "No leadpulse verify run reached a verdict for {{ $value | humanizeDuration }}",
                "description": "The aggregates are not being checked: `leadpulse verify --every` stopped, or its runs fail "
                "(their one-line reason is in its output).",
                "runbook_url": config.runbook_url("leadpulseverifystale"),
            },
        },
    ]


def rules(config: MixinConfig = CONFIG) -> dict[str, Any]:
    """The rule file as data: the business alerts, then the pipeline's, then the reconciliation's."""
    return {
        "groups": [
            {"name": "leadpulse-conversion", "rules": [_business_rule(a, config) for a in BUSINESS_ALERTS]},
            {"name": "leadpulse-pipeline", "rules": _pipeline_rules(config)},
            {"name": "leadpulse-verify", "rules": _verify_rules(config)},
        ]
    }


HEADER: Final = """\
# Alert rules of leadpulse (CONTRACT section 6), generated by `python -m exporters.rules`
# from exporters/rules.py: edit that, not this file (a test checks they agree).
# docs/alerts.md explains each alert; deploy/prometheus/tests/ holds its promtool cases.
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the expressions) as literal blocks, as a person would write them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def render(config: MixinConfig = CONFIG) -> str:
    return HEADER + yaml.dump(rules(config), Dumper=_Dumper, sort_keys=False, width=200, allow_unicode=True)


def main() -> None:
    """Write the rule file in place (deploy/prometheus/rules/ ships with the repository)."""
    print(f"wrote {OUTPUT.write_text(render())} characters to {OUTPUT}")


if __name__ == "__main__":
    main()

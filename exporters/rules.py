"""The Prometheus alert rules of leadpulse, generated: `python -m exporters.rules` writes them.

One source for the rule file (`deploy/prometheus/rules/leadpulse.yml`, checked against
this output by a test, as the dashboard is) and for the alert harness (`make
bench-alerts`), which evaluates the same `Alert.conditions` in Python (`Alert.holds`,
held to promtool by tests/exporters/test_rules.py). Every expression selects the
mixin's job (`exporters.mixin.CONFIG`), every alert links its runbook and the dashboard.

The conversion alerts compare published numbers with thresholds and nothing else: the
exporter computes observed and expected customers, the drop and the z score from the
per-day counters in Redis (`aggregates.checks`), so no rule needs `offset` or a long
range, and a new or restarted Prometheus alerts within `for:`. The follow-up alerts read
the contract's follow-up series through recording rules (`_follow_up_records`,
`_stalled_records`) that publish the same shape of check series (`check="follow_up"`,
`check="stalled"`), so one `Alert` type, one harness evaluation and one promtool
agreement test serve all of them.
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

FOLLOW_UP: Final = "follow_up"
STALLED: Final = "stalled"

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

# LeadFollowUpSlow: the recent window's within-SLA share against the segment's usual share
# (the rest of the long window), from the contract's `leadpulse_window_follow_up_leads`.
RECENT_LEADS: Final = "leadpulse:follow_up_recent_leads"
RECENT_MET: Final = "leadpulse:follow_up_recent_met"
USUAL_LEADS: Final = "leadpulse:follow_up_usual_leads"
USUAL_MET: Final = "leadpulse:follow_up_usual_met"
RECENT_SHARE: Final = "leadpulse:follow_up_recent_met_ratio"
USUAL_SHARE: Final = "leadpulse:follow_up_usual_met_ratio"
SHORTFALL: Final = "leadpulse:follow_up_shortfall_ratio"
VOLUME: Final = "leadpulse:follow_up_volume_ratio"
FOLLOW_UP_ZSCORE: Final = "leadpulse:follow_up_zscore"
#: What moves the recent share besides binomial noise, one sd: the team's week-to-week
#: wobble (a sick day, a trade show: 2 points) and, under a 24 x 7 SLA, which weekend
#: days the recent window holds as the days roll over (up to 8 points at Monday midnight,
#: measured by `make bench-alerts`).
FOLLOW_UP_VARIATION: Final = 0.05
#: Stricter than the conversion checks (p <= 0.0001): the share is tested every hour, not
#: once a day, and a small segment's binomial tail is longer than the normal one.
FOLLOW_UP_Z: Final = -3.72
#: A shortfall worth a look: 15 points of the within-SLA share (85% -> 70%).
MIN_SHORTFALL: Final = 0.15
#: Leads whose deadline passed: in the recent window, and in the usual one to learn the share from.
MIN_RECENT_LEADS: Final = 20.0
MIN_USUAL_LEADS: Final = 60.0
#: Leads a day in the recent window against the usual: a holiday week (few leads, and the
#: team away, so under a 24 x 7 SLA nearly all of them breach) is below half, a working
#: week at 0.7 to 0.9 (the recent window holds only the leads whose deadline passed).
MIN_VOLUME: Final = 0.5
#: The share moves as deadlines pass, hour by hour: an hour keeps a single late batch of
#: touches (a CRM sync) from alerting, and is short next to the SLA itself.
FOLLOW_UP_FOR: Final = "1h"

# LeadStageStalled: the stalled count against the segment's usual count, a level the
# recording rule `STALLED_USUAL` learns (an exponential average, STALL_MEMORY_DAYS of memory).
STALLED_NOW: Final = "leadpulse:leads_stalled_now"
STALLED_USUAL: Final = "leadpulse:leads_stalled_usual"
STALLED_RISE: Final = "leadpulse:leads_stalled_rise_ratio"
STALLED_Z: Final = "leadpulse:leads_stalled_zscore"
#: Stalled counts move by days, and they hold up to a year of leads nobody closed: a
#: memory of 90 days lets a pile-up growing by the stage's intake a day stand out within
#: weeks (a shorter one follows the pile-up up and never sees it; `make bench-alerts`).
STALL_MEMORY_DAYS: Final = 90
#: The usual level's evaluation interval, fixed so the average's weight does not depend
#: on the server's global evaluation_interval.
STALLED_INTERVAL_SECONDS: Final = 60
#: The stalled count wobbles with the flow into the stage: 10% of the level, one sd, beyond Poisson.
STALLED_VARIATION: Final = 0.1
#: A quarter above the usual level, and at least 10 stalled leads.
MIN_RISE: Final = 0.25
MIN_STALLED: Final = 10.0
STALLED_FOR: Final = "6h"

FOLLOW_UP_ALERT: Final = Alert(
    "LeadFollowUpSlow",
    FOLLOW_UP,
    "warning",
    (
        Condition(SHORTFALL, ">=", MIN_SHORTFALL),
        Condition(FOLLOW_UP_ZSCORE, "<=", FOLLOW_UP_Z),
        Condition(RECENT_LEADS, ">=", MIN_RECENT_LEADS),
        Condition(USUAL_LEADS, ">=", MIN_USUAL_LEADS),
        Condition(VOLUME, ">=", MIN_VOLUME),
    ),
    FOLLOW_UP_FOR,
)
STALLED_ALERT: Final = Alert(
    "LeadStageStalled",
    STALLED,
    "warning",
    (Condition(STALLED_RISE, ">=", MIN_RISE), Condition(STALLED_Z, ">=", -CONVERSION_Z), Condition(STALLED_NOW, ">=", MIN_STALLED)),
    STALLED_FOR,
)
FOLLOW_UP_ALERTS: Final = (FOLLOW_UP_ALERT, STALLED_ALERT)
BUSINESS_ALERTS: Final = (*CONVERSION_ALERTS, QUALITY_ALERT, *FOLLOW_UP_ALERTS)

_CUSTOMERS: Final = {"observed": (OBSERVED, "%.0f"), "expected": (EXPECTED, "%.1f"), "z": (ZSCORE, "%.2f")}
_TEXT: Final[dict[str, tuple[str, str, dict[str, tuple[str, str]]]]] = {
    CONVERSION: (
        "{{ $labels.dimension }}={{ $labels.segment }}: {{ $value | humanizePercentage }} fewer customers than its lead flow predicts",
        "{observed} customers won on the last 7 complete UTC days\n"
        "where the leads of the weeks they come from, at the segment's own conversion lags, predict\n"
        "{expected} (z = {z}).\n"
        "A change in lead volume alone does not move this: the prediction follows the lead flow.",
        _CUSTOMERS,
    ),
    QUALITY: (
        "{{ $labels.dimension }}={{ $labels.segment }}: leads convert {{ $value | humanizePercentage }} less than its earlier leads at the same age",
        "{observed} of the leads created 1-44 days ago converted within 30 days or their age so far\n"
        "where the 16 weeks of leads before them, at the same ages, predict\n"
        "{expected} (z = {z}).\n"
        "The leads arriving now are worse; the period rate will show it weeks later.",
        _CUSTOMERS,
    ),
    FOLLOW_UP: (
        "{{ $labels.dimension }}={{ $labels.segment }}: share of leads touched within the SLA {{ $value | humanizePercentage }} below its usual",
        "{recent} of the {leads} leads of the recent window whose deadline has passed were touched in time,\n"
        "against {usual} usually (z = {z}).\n"
        "Leads are waiting: the conversion alerts will see this weeks from now.",
        {"recent": (RECENT_SHARE, "%"), "leads": (RECENT_LEADS, "%.0f"), "usual": (USUAL_SHARE, "%"), "z": (FOLLOW_UP_ZSCORE, "%.2f")},
    ),
    STALLED: (
        "{{ $labels.dimension }}={{ $labels.segment }}: {{ $value | humanizePercentage }} more leads stalled at {{ $labels.stage }} than usual",
        "{now} leads sit at {{{{ $labels.stage }}}} past its stall time, where {usual} is usual (z = {z}).",
        {"now": (STALLED_NOW, "%.0f"), "usual": (STALLED_USUAL, "%.0f"), "z": (STALLED_Z, "%.2f")},
    ),
}


def _value_of(series: str, check: str, config: MixinConfig, fmt: str) -> str:
    """A template that queries one of the segment's check series at the alert's time.

    The format `%` shows a share as a percentage. The stalled series also
    match the alert's stage (the usual level has no `check` label).
    """
    matchers = [config.selector.replace(chr(34), chr(39)), "dimension='%s'", "segment='%s'"]
    labels = "$labels.dimension $labels.segment"
    if series != STALLED_USUAL:
        matchers.insert(1, f"check='{check}'")
    if check == STALLED:
        matchers.append("stage='%s'")
        labels += " $labels.stage"
    query = f"{series}{{{','.join(matchers)}}}"
    shown = "humanizePercentage" if fmt == "%" else f'printf "{fmt}"'
    return f'{{{{ with printf "{query}" {labels} | query }}}}{{{{ . | first | value | {shown} }}}}{{{{ end }}}}'


def _annotations(alert: Alert, config: MixinConfig) -> dict[str, str]:
    summary, description, values = _TEXT[alert.check]
    return {
        "summary": summary,
        "description": description.format(
            **{name: _value_of(series, alert.check, config, fmt) for name, (series, fmt) in values.items()}
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


def _record(name: str, expr: str, check: str) -> dict[str, Any]:
    return {"record": name, "expr": expr, "labels": {"check": check}}


def _follow_up_records(config: MixinConfig) -> list[dict[str, Any]]:
    """The check series of LeadFollowUpSlow, from the two windows' met and breached counts.

    The usual share is the long window minus the recent one (days 8-90 by default), so
    it needs no history in Prometheus: a new install alerts within `for:`. An outcome
    with no lead may be absent from /metrics, hence `or 0 * ...` (no met lead is the worst
    case, not a missing one).
    """
    s, w = config.selector, "leadpulse_window_follow_up_leads"

    def counted(window: str, outcome: str) -> str:
        matchers = f'{s}, window="{window}"'
        if outcome == "all":
            return f"sum without (window, outcome) ({w}{{{matchers}}})"
        return f'sum without (window, outcome) ({w}{{{matchers}, outcome="{outcome}"}})\nor\n0 * {counted(window, "all")}'

    def ours(name: str) -> str:
        return f'{name}{{{s}, check="{FOLLOW_UP}"}}'

    recent, usual = config.follow_up_recent_window, config.follow_up_usual_window
    recent_days, usual_days = int(recent.removesuffix("d")), int(usual.removesuffix("d"))
    n, met, p, n_b = ours(RECENT_LEADS), ours(RECENT_MET), ours(USUAL_SHARE), ours(USUAL_LEADS)
    # The binomial sd of the recent met count at the usual share, widened by the usual
    # share's own uncertainty (n / n_b) and by the week-to-week variation.
    sd = f"sqrt({n} * {p} * (1 - {p}) * (1 + {n} / {n_b}) + ({FOLLOW_UP_VARIATION:g} * {n}) ^ 2)"
    return [
        _record(RECENT_LEADS, counted(recent, "all"), FOLLOW_UP),
        _record(RECENT_MET, counted(recent, "met"), FOLLOW_UP),
        _record(USUAL_LEADS, f"{counted(usual, 'all')}\n- ignoring (check)\n{n}", FOLLOW_UP),
        _record(USUAL_MET, f"({counted(usual, 'met')})\n- ignoring (check)\n{met}", FOLLOW_UP),
        _record(RECENT_SHARE, f"{met} / ({n} > 0)", FOLLOW_UP),
        _record(USUAL_SHARE, f"{ours(USUAL_MET)} / ({n_b} > 0)", FOLLOW_UP),
        _record(SHORTFALL, f"{p} - {ours(RECENT_SHARE)}", FOLLOW_UP),
        _record(VOLUME, f"({n} / {recent_days})\n/\n({n_b} / {usual_days - recent_days})", FOLLOW_UP),
        _record(FOLLOW_UP_ZSCORE, f"({met} + 0.5 - {n} * {p})\n/\n{sd}", FOLLOW_UP),
    ]


def _stalled_records(config: MixinConfig) -> list[dict[str, Any]]:
    """The check series of LeadStageStalled: the stalled count against its learnt usual level.

    The usual level is an exponential average updated every STALLED_INTERVAL_SECONDS from
    its own last value (within `for:`, so no range is longer than the alert's wait); it
    starts at the first count seen, so a new install learns the level it finds and alerts
    on what piles up after.
    """
    s = config.selector
    stalled = f"leadpulse_leads_stalled{{{s}}}"
    weight = STALLED_INTERVAL_SECONDS / (STALL_MEMORY_DAYS * 86400)
    usual = f"{STALLED_USUAL}{{{s}}}"
    level = f"last_over_time({usual}[{STALLED_FOR}]) * {1 - weight:.9g} + {stalled} * {weight:.9g}\nor\n{stalled}"
    now, floor = f'{STALLED_NOW}{{{s}, check="{STALLED}"}}', f"clamp_min({usual}, 1)"
    return [
        {"record": STALLED_USUAL, "expr": level},
        _record(STALLED_NOW, stalled, STALLED),
        _record(STALLED_RISE, f"{now}\n/ ignoring (check)\n{floor} - 1", STALLED),
        # Poisson around the usual level (at least 1), widened by its usual wobble.
        _record(
            STALLED_Z,
            f"({now} - ignoring (check) {usual})\n/ ignoring (check)\nsqrt({floor} + ({STALLED_VARIATION:g} * {usual}) ^ 2)",
            STALLED,
        ),
    ]


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


def rules(config: MixinConfig = CONFIG) -> dict[str, Any]:
    """The rule file as data: the business alerts, then the pipeline's."""
    return {
        "groups": [
            {"name": "leadpulse-conversion", "rules": [_business_rule(a, config) for a in (*CONVERSION_ALERTS, QUALITY_ALERT)]},
            {"name": "leadpulse-follow-up", "rules": [*_follow_up_records(config), _business_rule(FOLLOW_UP_ALERT, config)]},
            {
                "name": "leadpulse-stalled",
                "interval": f"{STALLED_INTERVAL_SECONDS}s",
                "rules": [*_stalled_records(config), _business_rule(STALLED_ALERT, config)],
            },
            {"name": "leadpulse-pipeline", "rules": _pipeline_rules(config)},
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

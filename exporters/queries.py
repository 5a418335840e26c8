"""The dashboard's PromQL, in one place, each query safe to read on a wall screen.

Three habits run through every query:
- `job=~"$job"`: the dashboard's `job` variable (default `MixinConfig.job`) scopes every
  selector, so two pipelines on one Prometheus never add up.
- `max without (instance) (...)`: exporter replicas of one job read the same Redis and
  publish the same series; taking one of them before any `sum` keeps a funnel from
  doubling with a second replica.
- A divisor is filtered with `> 0`: a window with leads and no customer yet gives no
  N:1 (shown as "no customer yet"), never an infinite one, and no ratio is 0/0.
"""

from __future__ import annotations

from typing import Final

from exporters.grafana import JSON, DATASOURCE
from exporters.mixin import CONFIG

JOB: Final = 'job=~"$job"'
ALL: Final = f'{JOB}, dimension="all", segment="all"'
PICKED: Final = f'{JOB}, dimension="$dimension", segment=~"$segment"'
WINDOW: Final = 'window="$window"'
WITHIN: Final = 'within="$within"'
MONTHS: Final = 'period="month"'
#: Upper bounds of the time-to-convert histogram's buckets, in days (CONTRACT section 3).
BUCKET_DAYS: Final = (1, 3, 7, 14, 30, 60, 90, 180)
DAY: Final = 86400


def one(metric: str, *matchers: str) -> str:
    """The series of `metric`, one per replica set: `max without (instance)`."""
    return f"max without (instance) ({metric}{{{', '.join(matchers)}}})"


def leads_per_customer(labels: str) -> str:
    """The N of N:1: window leads / cohort-basis customers, only where there is a customer."""
    customers = one("leadpulse_window_customers", labels, WINDOW, 'basis="cohort"')
    return f"{one('leadpulse_window_leads', labels, WINDOW)} / ignoring (basis) ({customers} > 0)"


def total(metric: str) -> str:
    """A window count summed over the selected segments."""
    return f"sum by (job) ({one(metric, PICKED, WINDOW)})"


def cohort_sum(metric: str, *matchers: str) -> str:
    """A cohort count summed over the selected segments and the 12 monthly cohorts."""
    return f"sum({one(metric, PICKED, MONTHS, *matchers)})"


def cohort_share(part: str, whole: str) -> str:
    """part / whole per cohort and segment, where the cohort has leads."""
    return f"{one(part, PICKED)} / ({one(whole, PICKED)} > 0)"


def stage_rate(stage: str, before: str | None) -> str:
    """Leads that reached `stage` / leads that reached the stage before (all leads for mql)."""
    reached = cohort_sum("leadpulse_cohort_stage_leads", f'stage="{stage}"')
    base = cohort_sum("leadpulse_cohort_stage_leads", f'stage="{before}"') if before else cohort_sum("leadpulse_cohort_leads")
    return f"{reached} / ({base} > 0)"


def qualified_rate() -> str:
    """Customers / qualified leads per segment over the 12 monthly cohorts: sum the counts, then divide."""
    def per_segment(metric: str) -> str:
        return f"sum by (job, segment) ({one(metric, PICKED, MONTHS)})"
    return f"{per_segment('leadpulse_cohort_customers')} / ({per_segment('leadpulse_cohort_qualified_leads')} > 0)"


def ttc_buckets(labels: str = PICKED) -> str:
    return f"sum by (le) ({one('leadpulse_window_time_to_convert_seconds_bucket', labels, WINDOW)})"


def histogram_quantile(histogram: str, quantile: float, by: str, labels: str, unit: int = 1) -> str:
    """A quantile of a window histogram in `unit` seconds, only for groups with at least one
    observation (histogram_quantile of empty buckets is NaN)."""
    buckets = f"sum by ({by}, le) ({one(f'{histogram}_bucket', labels, WINDOW)})"
    count = f"sum by ({by}) ({one(f'{histogram}_count', labels, WINDOW)})"
    scaled = f" / {unit}" if unit != 1 else ""
    return f"histogram_quantile({quantile}, {buckets}){scaled} and on ({by}) ({count} > 0)"


def ttc_quantile(quantile: float, by: str) -> str:
    """A quantile of time to convert in days, only for groups with at least one customer."""
    return histogram_quantile("leadpulse_window_time_to_convert_seconds", quantile, by, ALL if by == "job" else PICKED, DAY)


def first_touch_quantile(quantile: float, labels: str = PICKED) -> str:
    """A quantile of speed to lead in seconds per segment, only for segments with a touched lead."""
    return histogram_quantile("leadpulse_window_first_touch_seconds", quantile, "job, segment", labels)


def owners(owner_dimension: str) -> str:
    """The segments of the owner dimension (no data, and an empty table, where it is not configured)."""
    return f'{JOB}, dimension="{owner_dimension}", segment=~".+"'


def stalled(metric: str) -> str:
    """Stalled leads of the selected segments per stage: the exported count, or the alert's learnt usual level."""
    return f"sum by (job, stage) ({one(metric, PICKED)})"


def bucket_names() -> list[tuple[str, str]]:
    """(field-name pattern, range name) per histogram bucket: the bar of `le="259200"` holds
    1 to 3 days, not "3". Matches `86400` and `86400.0` alike, whatever the client prints."""
    names = []
    lower = 0
    for days in BUCKET_DAYS:
        names.append((f"^{days * DAY}(\\.0)?$", f"under {days} day" if lower == 0 else f"{lower}-{days} days"))
        lower = days
    names.append(("^\\+Inf$", f"over {lower} days"))
    return names


def events_rate() -> str:
    return f"sum by (topic, outcome) (max without (instance) (rate(leadpulse_events_total{{{JOB}}}[$__rate_interval])))"


def rejected_share() -> str:
    """Rejected / all records per topic over 15 minutes, as LeadRejectedSurge computes it."""
    def over15m(matchers: str) -> str:
        return f"sum by (topic) (max without (instance) (increase(leadpulse_events_total{{{matchers}}}[15m])))"
    rejected = over15m(f'{JOB}, outcome="rejected"')
    return f"{rejected} / ({over15m(JOB)} > 0)"


def newest_event_age() -> str:
    return f"time() - max by (topic) (leadpulse_last_event_timestamp_seconds{{{JOB}}})"


def consumer_lag() -> str:
    return f"sum by (topic) ({one('leadpulse_consumer_lag_messages', JOB)})"


def drill_down(segment: str) -> str:
    """This dashboard on one segment, keeping the data source, job, dimension, window and time range."""
    keep = "&".join(f"${{{name}:queryparam}}" for name in ("datasource", "job", "dimension", "window"))
    return f"/d/{CONFIG.dashboard_uid}?{keep}&var-segment={segment}&${{__url_time_range}}"


def alerts_annotation() -> JSON:
    """Firing leadpulse alerts on the selected segments, plus those of the pipeline (no segment).

    No job matcher: an alert's labels are what its rule keeps (LeadFeedStalled keeps
    only `topic`), so `job` may be absent from ALERTS.
    """
    return {
        "name": "leadpulse alerts",
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "expr": 'ALERTS{alertstate="firing", alertname=~"Lead.*", dimension=~"$dimension|", segment=~"$segment|"}',
        "step": "1m",
        "titleFormat": "{{alertname}} ({{severity}})",
        "textFormat": "{{dimension}}={{segment}} {{topic}}",
        "useValueForTime": False,
    }

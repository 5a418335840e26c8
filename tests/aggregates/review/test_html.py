"""The HTML review shows `report --json`'s numbers, explains the change exactly, and never shows NaN.

The report is written by the real command (`leadpulse report --html`) and its figures
are read back from the `data-field`/`data-value` attributes of the cells, then held to
the series `leadpulse report --json` prints for the same days.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import defaultdict
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aggregates.review.periods import Period, PeriodKind, review_period
from streams.events import Event
from streams.settings import Settings
from tests.aggregates.review.conftest import AS_OF, LEADPULSE
from tests.contract_examples import AS_OF as EXAMPLES_AS_OF
from tests.services import free_port

#: {(section id, row segment or "", field): value}
Values = dict[tuple[str, str, str], float]


class CellValues(HTMLParser):
    """Collects every `data-value` with its section, its row's `data-segment` and its `data-field`."""

    def __init__(self) -> None:
        super().__init__()
        self.values: Values = {}
        self.figures: list[str] = []
        self.section = self.segment = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id") or ""
        elif tag == "tr":
            self.segment = a.get("data-segment") or ""
        elif tag == "figure":
            self.figures.append(a.get("aria-label") or "")
        if a.get("data-field") and a.get("data-value") is not None:
            self.values[(self.section, self.segment, a["data-field"] or "")] = float(a["data-value"] or "nan")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.segment = ""


def env(settings: Settings, windows: str = "7,30,90") -> dict[str, str]:
    return {**os.environ, "LEADPULSE_REDIS_URL": settings.redis_url, "LEADPULSE_KEY_PREFIX": settings.key_prefix,
            "LEADPULSE_WINDOWS": windows, "LEADPULSE_ATTRIBUTE_DIMENSIONS": settings.attribute_dimensions}


def html_report(
    settings: Settings, tmp_path: Path, kind: PeriodKind, as_of: date, prometheus: str | None = None
) -> tuple[str, CellValues]:
    """The report the command writes; its Prometheus is `prometheus`, else a port nothing answers on."""
    path = tmp_path / f"review-{kind}.html"
    prometheus = prometheus or f"http://127.0.0.1:{free_port()}"
    run = subprocess.run([str(LEADPULSE), "report", "--html", str(path), "--period", kind, "--as-of", str(as_of),
                          "--prometheus", prometheus], env=env(settings), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    text = path.read_text()
    parser = CellValues()
    parser.feed(text)
    return text, parser


def report_json(settings: Settings, period: Period) -> dict[tuple[str, str, str], float]:
    """`report --json` for the period's days: {(name[/basis or /stage], dimension, segment): value}, cohorts summed."""
    run = subprocess.run([str(LEADPULSE), "report", "--json", "--as-of", str(period.end)],
                         env=env(settings, str(period.days)), capture_output=True, text=True, timeout=120, check=True)
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for s in json.loads(run.stdout):
        labels = s["labels"]
        if labels.get("window") == f"{period.days}d" and "le" not in labels:
            name = s["name"] + (f"/{labels['basis']}" if "basis" in labels else "")
        elif labels.get("period") == "month" and labels.get("cohort") in period.months:
            name = s["name"] + (f"/{labels['stage']}" if "stage" in labels else "")
        else:
            continue
        out[(name, labels["dimension"], labels["segment"])] += s["value"]
    return out


def assert_table_matches(values: Values, series: dict[tuple[str, str, str], float], dimension: str) -> int:
    """Every row of the dimension's table against the series; returns how many rows were checked."""
    rows = {segment for (section, segment, _) in values if section == f"by-{dimension}" and segment}
    for segment in rows:
        def cell(field: str) -> float | None:
            return values.get((f"by-{dimension}", segment, field))

        def got(name: str) -> float:
            return series.get((name, dimension, segment), 0.0)

        assert cell("leads") == got("leadpulse_window_leads"), segment
        assert cell("customers") == got("leadpulse_window_customers/cohort"), segment
        assert cell("rate") == series.get(("leadpulse_window_conversion_ratio/cohort", dimension, segment)), segment
        assert cell("win_rate") == series.get(("leadpulse_window_win_ratio", dimension, segment)), segment
        assert cell("won_amount") == pytest.approx(got("leadpulse_window_won_amount"), abs=1e-6), segment
        assert cell("mql") == got("leadpulse_cohort_stage_leads/mql"), segment
        assert cell("sql") == got("leadpulse_cohort_stage_leads/sql"), segment
    return len(rows)


def assert_headline_matches(values: Values, series: dict[tuple[str, str, str], float]) -> None:
    leads = series[("leadpulse_window_leads", "all", "all")]
    customers = series[("leadpulse_window_customers/cohort", "all", "all")]
    assert values[("headline", "", "leads")] == leads == series[("leadpulse_cohort_leads", "all", "all")]
    assert values[("headline", "", "customers")] == customers == series[("leadpulse_cohort_customers", "all", "all")]
    assert values[("headline", "", "rate")] == series[("leadpulse_window_conversion_ratio/cohort", "all", "all")]
    assert values[("headline", "", "qualified_rate")] == pytest.approx(
        customers / series[("leadpulse_cohort_qualified_leads", "all", "all")], rel=1e-12)
    if customers:
        assert values[("headline", "", "leads_per_customer")] == pytest.approx(leads / customers, rel=1e-12)


def assert_no_nan_or_infinity(text: str) -> None:
    visible = re.sub(r"<svg.*?</svg>", "", text, flags=re.S)
    assert not re.search(r"\b(nan|NaN|inf|Infinity|None)\b", visible)


@pytest.mark.parametrize("kind", ["month", "quarter"])
def test_the_review_of_a_generated_feed_shows_report_json_numbers(
    generated: tuple[Settings, list[Event]], tmp_path: Path, kind: PeriodKind
) -> None:
    settings, _ = generated
    stack_prometheus = f"http://127.0.0.1:{settings.prometheus_port}"  # up since today: nothing in the period
    text, parsed = html_report(settings, tmp_path, kind, AS_OF, stack_prometheus)
    period = review_period(kind, AS_OF)
    now, before = report_json(settings, period), report_json(settings, period.previous())
    assert_headline_matches(parsed.values, now)
    assert assert_table_matches(parsed.values, now, "source") == 7
    assert assert_table_matches(parsed.values, now, "campaign") >= 7
    # Why it moved: the parts add up to the change of the overall rate between the two periods.
    rates = [s[("leadpulse_window_conversion_ratio/cohort", "all", "all")] for s in (before, now)]
    change = parsed.values[("why", "", "change")]
    assert change == pytest.approx(rates[1] - rates[0], rel=1e-9)
    mix, rate = parsed.values[("why", "", "mix_total")], parsed.values[("why", "", "rate_total")]
    assert mix + rate == pytest.approx(change, rel=1e-9)
    sources = {segment for (section, segment, field) in parsed.values if section == "why" and field == "mix"}
    assert sum(parsed.values[("why", s, "mix")] + parsed.values[("why", s, "rate")] for s in sources) == pytest.approx(change)
    assert f"Lead-to-customer review, {period.label}" in text
    assert f"No alert fired in {period.label} (Prometheus at {stack_prometheus})." in text
    assert len(parsed.figures) == 4 and all(re.search(r"\. x: .+\(.+\).*|y: .+\(.+\)", f) for f in parsed.figures)
    assert_no_nan_or_infinity(text)


def test_the_review_of_the_contract_examples_shows_their_numbers(examples: Settings, tmp_path: Path) -> None:
    as_of = date(2026, 6, 30)  # the examples' month (June 2026) has ended
    assert EXAMPLES_AS_OF.month == as_of.month
    text, parsed = html_report(examples, tmp_path, "month", as_of)
    now = report_json(examples, review_period("month", as_of))
    assert_headline_matches(parsed.values, now)
    assert assert_table_matches(parsed.values, now, "source") >= 3
    assert assert_table_matches(parsed.values, now, "campaign") >= 1
    # L5 (01:30 +03:00 on 1 June) is 31 May in UTC: May's only lead, not a customer.
    assert "Against the previous period: 0.0% in May 2026 (+66.7 pts)." in text
    assert "Against a year before: no leads in June 2025 to compare with." in text
    assert "No comparison with June 2025: one of the two periods has no leads." in text
    assert "too small to judge" in text  # a handful of leads ranks nothing
    assert "Not shown: no answer from Prometheus at http://127.0.0.1:" in text
    assert "Not shown: the owner is not a dimension. Add <code>owner</code> to" in text
    assert_no_nan_or_infinity(text)


def test_an_empty_pipeline_is_said_in_words(empty: Settings, tmp_path: Path) -> None:
    text, parsed = html_report(empty, tmp_path, "quarter", AS_OF)
    assert "No leads were created in 2026 Q3: there is no rate to report for it." in text
    assert "There is no earlier period with leads to compare with." in text
    assert "No leads in the last twelve month cohorts." in text
    assert "No source had leads or won deals in 2026 Q3." in text
    assert "No lead of 2026 Q3 was touched or reached its touch deadline by the period's end" in text
    assert parsed.figures == []
    assert_no_nan_or_infinity(text)


def test_the_follow_up_sections_show_the_sla_share_and_speed_against_the_month_before(
    follow_up: Settings, tmp_path: Path
) -> None:
    text, parsed = html_report(follow_up, tmp_path, "month", AS_OF)
    values = parsed.values
    # Hand-computed in tests/aggregates/review/test_build.py: November against October.
    assert (values[("follow-up", "", "past_deadline")], values[("follow-up", "", "within_sla")]) == (4, 0.5)
    assert values[("follow-up", "", "median_seconds_to_touch")] == 900
    assert (values[("follow-up", "", "met_conversion")], values[("follow-up", "", "breached_conversion")]) == (0.5, 0.5)
    assert ">15 min<" in text and "was 1.0 h against October 2026" in text and "0.0 pts against October 2026" in text
    assert "-50.0 pts against October 2026" in text and "+50.0 pts against October 2026" in text  # 100% and 0% then
    source = {field: values[("follow-up-by-source", s, field)] for s in ("paid_search",)
              for field in ("past_deadline", "within_sla", "median_seconds_to_touch")}
    assert source == {"past_deadline": 3, "within_sla": 2 / 3, "median_seconds_to_touch": 9000}
    assert values[("follow-up-by-source", "email", "within_sla")] == 0.0
    assert (values[("follow-up-by-source", "paid_search", "met_conversion")],
            values[("follow-up-by-source", "paid_search", "breached_conversion")]) == (0.5, 1.0)
    assert ("follow-up-by-source", "email", "met_conversion") not in values and ">none met<" in text
    assert (values[("follow-up-by-owner", "ana", "within_sla")], values[("follow-up-by-owner", "ben", "within_sla")]) == (1, 0)
    assert values[("follow-up-by-owner", "ben", "median_seconds_to_touch")] == 172_800
    assert ">2.0 d<" in text and "too small to judge" in text  # four leads past their deadline rank nothing
    assert "Not shown: the owner is not a dimension" not in text
    assert_no_nan_or_infinity(text)

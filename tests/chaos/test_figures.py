"""The soak's figures say what its records hold: losses, doubles, differing series, freshness and bad 503s."""

from __future__ import annotations

from aggregates.series import Series
from tests.chaos.clients import Attempt, Outcome
from tests.chaos.figures import FaultRecord, Verify, differing, during, render, summarise

LEADS = {"dimension": "all", "segment": "all", "period": "month", "cohort": "2026-12"}
WON = {"dimension": "all", "segment": "all", "window": "7d"}
NOT_RUN = Verify(None, "not run")


def created(n: int) -> dict[str, object]:
    return {"event_id": f"e{n}", "type": "lead.created"}


def test_a_missing_lead_is_lost_an_extra_deal_is_doubled_and_both_series_differ() -> None:
    report = [Series("leadpulse_cohort_leads", LEADS, 2.0), Series("leadpulse_window_deals_won", WON, 1.0)]
    expected = [Series("leadpulse_cohort_leads", LEADS, 3.0)]
    figures = summarise(
        offered=3, acknowledged=[created(1), created(2), created(3)], report=report, expected=expected,
        faults=[], api=[], publish=[], refusals=[], end=0.0, verify=NOT_RUN,
    )  # fmt: skip
    assert (figures.lost, figures.doubled) == (1, 1)
    assert len(figures.series_differing) == 2 and not figures.exact
    assert "events lost 1, counted twice 1" in render(figures, "header")


def test_series_equal_up_to_float_rounding_do_not_differ() -> None:
    ratio = {"dimension": "all", "segment": "all", "window": "7d", "basis": "cohort"}
    assert differing([Series("r", ratio, 0.1 + 0.2)], [Series("r", dict(reversed(ratio.items())), 0.3)]) == []


def test_freshness_is_the_longest_per_kind_and_none_when_one_never_got_fresh() -> None:
    faults = [FaultRecord("broker-kill", 10.0, 20.0, 5, 40.0), FaultRecord("broker-kill", 100.0, 110.0, 9, 112.0),
              FaultRecord("api-kill", 200.0, 201.0, 9, None)]  # fmt: skip
    figures = summarise(
        offered=0, acknowledged=[], report=[], expected=[], faults=faults, api=[], publish=[], refusals=[], end=300.0,
        verify=NOT_RUN,
    )  # fmt: skip
    assert figures.freshness == {"broker-kill": 30.0, "api-kill": None}


def test_only_attempts_sent_while_a_fault_is_on_count_toward_the_share_during_faults() -> None:
    attempts = [Attempt(5.0, 0.1, 202), Attempt(15.0, 0.1, 202), Attempt(16.0, 10.0, 503), Attempt(17.0, 1.0, 0),
                Attempt(50.0, 0.1, 202)]  # fmt: skip
    assert during(attempts, [FaultRecord("x", 10.0, 12.0, 0, 20.0)], end=60.0) == {"2xx": 1, "503": 1, "no answer": 1}


def test_a_503_is_retryable_only_with_retry_after_and_a_later_acceptance() -> None:
    retried = Outcome(0.0, [Attempt(0.0, 10.0, 503, retry_after=True), Attempt(15.0, 0.1, 202)], acknowledged_at=15.1)
    bare = Outcome(0.0, [Attempt(0.0, 10.0, 503, retry_after=False), Attempt(15.0, 0.1, 202)], acknowledged_at=15.1)
    abandoned = Outcome(0.0, [Attempt(0.0, 10.0, 503, retry_after=True)])
    figures = summarise(
        offered=0, acknowledged=[], report=[], expected=[], faults=[], api=[retried, bare, abandoned], publish=[],
        refusals=[], end=30.0, verify=NOT_RUN,
    )  # fmt: skip
    assert (figures.api_503, figures.api_503_not_retryable) == (3, 2)


def test_a_verify_that_finds_a_mismatch_makes_an_otherwise_exact_run_not_exact() -> None:
    def figures(verify: Verify) -> bool:
        series = [Series("leadpulse_cohort_leads", LEADS, 1.0)]
        return summarise(
            offered=1, acknowledged=[created(1)], report=series, expected=series,
            faults=[], api=[], publish=[], refusals=[], end=0.0, verify=verify,
        ).exact  # fmt: skip

    assert (figures(NOT_RUN), figures(Verify(True, "exit 0")), figures(Verify(False, "exit 1: 2 series differ"))) == (
        True, True, False,
    )  # fmt: skip

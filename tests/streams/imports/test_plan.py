"""Import equals publish: one CRM history as HubSpot exports, as Salesforce exports and as events, through the real stack.

One worker serves the whole module: it reads the shared topics from their beginning once
(everything every test wrote), then each example only adds its own records. The
aggregates are compared with the published events' and with the reference model's.
"""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from streams.imports.ids import salesforce_18
from aggregates.series import Series
from streams.settings import Settings
from tests.pipeline import LEADPULSE, Pipeline

FIXTURES = Path(__file__).with_name("fixtures")

DAY0 = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=60)
#: One lead: source, created (days, hours after DAY0), status (none/mql/sql/disqualified), deal outcome, close day, amount.
LEADS = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(0, 50), st.integers(0, 23), st.sampled_from(["", "mql", "sql", "dq"]),
              st.sampled_from(["", "open", "won", "lost"]), st.integers(-5, 20), st.integers(0, 5000)),
    min_size=1, max_size=12,
)  # fmt: skip


def _t(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parts(rows: list[list[str]], header: list[str], folder: Path, name: str, rng: random.Random) -> list[str]:
    """The rows shuffled into two overlapping files."""
    rng.shuffle(rows)
    cut = len(rows) // 2
    paths = []
    for i, part in enumerate((rows[: cut + 1], rows[max(cut - 1, 0) :])):
        path = folder / f"{name}-{i}.csv"
        with path.open("w", newline="", encoding="utf-8-sig") as stream:
            csv.writer(stream).writerows([header, *part])
        paths.append(str(path))
    return paths


def _render(history: list[tuple[str, int, int, str, str, int, int]], tag: str, folder: Path, rng: random.Random) -> list[list[str]]:
    """The commands that import `history` as HubSpot and Salesforce exports, after writing the events file."""
    contacts, deals, leads, opportunities, events = [], [], [], [], []
    base = int(tag, 16) * 1000  # HubSpot ids are numbers: unique to this run
    for i, (source, day, hour, status, outcome, close_after, amount) in enumerate(history):
        created = DAY0 + timedelta(days=day, hours=hour)
        closed = (created + timedelta(days=close_after)).replace(hour=0)
        lead = f"pub-{tag}-{i}"
        events.append({"event_id": f"{lead}:c", "type": "lead.created", "occurred_at": _t(created), "lead_id": lead,
                       "source": f"pub-{tag}-{source}"})  # fmt: skip
        if status in ("mql", "sql"):
            events.append({"event_id": f"{lead}:q", "type": "lead.qualified", "occurred_at": _t(created), "lead_id": lead, "stage": status})
        if status == "dq":
            events.append({"event_id": f"{lead}:d", "type": "lead.disqualified", "occurred_at": _t(created), "lead_id": lead})
        if outcome:  # each lead its own deal, as in the exports: a deal's outcome is its latest, whoever's lead it is
            events.append({"event_id": f"{lead}:dc", "type": "deal.created", "occurred_at": _t(created), "lead_id": lead, "deal_id": f"{lead}:d"})
        if outcome in ("won", "lost"):
            events.append({"event_id": f"{lead}:do", "type": f"deal.{outcome}", "occurred_at": _t(closed), "lead_id": lead,
                           "deal_id": f"{lead}:d", **({"amount": amount} if outcome == "won" else {})})  # fmt: skip
        stamp = _t(created)
        contacts.append([str(base + i), stamp, f"hs-{tag}-{source}", stamp if status == "mql" else "",
                         stamp if status == "sql" else "", "UNQUALIFIED" if status == "dq" else ""])  # fmt: skip
        sf_lead = salesforce_18(f"00Q{tag[:6]}{i:06d}")
        sf_status = {"mql": "MQL", "sql": "Qualified", "dq": "Unqualified"}.get(status, "Open - Not Contacted")
        leads.append([sf_lead, stamp, f"sf-{tag}-{source}", sf_status, "false"])
        if outcome:
            stage = {"won": ("closedwon", "Closed Won"), "lost": ("closedlost", "Closed Lost"), "open": ("contractsent", "Prospecting")}[outcome]
            deals.append([str(base + 500 + i), stamp, _t(closed) if outcome != "open" else "", stage[0], str(amount), str(base + i)])
            opportunities.append([f"006{tag[:6]}{i:06d}", stamp, closed.date().isoformat() if outcome != "open" else "", stage[1],
                                  str(amount), sf_lead[:15]])  # fmt: skip
    (folder / "events.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    hubspot = ["hubspot"]
    for path in _parts(contacts, ["Record ID", "Create Date", "Original Source", "Became a Marketing Qualified Lead Date",
                                  "Became a Sales Qualified Lead Date", "Lead Status"], folder, "contacts", rng):  # fmt: skip
        hubspot += ["--contacts", path]
    for path in _parts(deals, ["Record ID", "Create Date", "Close Date", "Deal Stage", "Amount", "Associated Contact IDs"],
                       folder, "deals", rng) if deals else []:  # fmt: skip
        hubspot += ["--deals", path]
    salesforce = ["salesforce"]
    for path in _parts(leads, ["Id", "CreatedDate", "LeadSource", "Status", "IsDeleted"], folder, "leads", rng):
        salesforce += ["--leads", path]
    for path in _parts(opportunities, ["Id", "CreatedDate", "CloseDate", "StageName", "Amount", "Lead_Id__c"],
                       folder, "opportunities", rng) if opportunities else []:  # fmt: skip
        salesforce += ["--opportunities", path]
    return [hubspot, salesforce]


def _by_source(report: list[Series], prefix: str) -> dict[tuple[str, str], float]:
    return {(s.name, orjson.dumps(s.labels, option=orjson.OPT_SORT_KEYS).decode().replace(prefix, "*")): s.value
            for s in report if s.labels.get("dimension") == "source" and s.labels.get("segment", "").startswith(prefix)}  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One key prefix and consumer group for the module, so the worker reads the shared topics' backlog once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEADPULSE_MAX_SEGMENTS", "1000000")  # every tagged source keeps its own series
        pipe = Pipeline(stack_settings, tmp_path_factory.mktemp("import-pipeline"))
        yield pipe
        pipe.stop_workers(signal.SIGTERM)


def _apply(pipe: Pipeline) -> None:
    """Until the worker has applied everything sent so far; then it stops, so the aggregates stand still."""
    pipe.start_worker()
    try:
        pipe.wait_caught_up(timeout=300)  # the first call reads the shared topics' whole backlog
    finally:
        pipe.stop_workers(signal.SIGTERM)


@pytest.mark.timeout(900)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=LEADS, seed=st.integers(0, 2**16))
def test_a_history_imported_from_hubspot_and_from_salesforce_gives_exactly_the_aggregates_of_its_events_published(
    pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory, history: list[tuple[str, int, int, str, str, int, int]], seed: int,
) -> None:  # fmt: skip
    folder = tmp_path_factory.mktemp("history")
    tag = uuid.uuid4().hex[:8]
    env = pipeline.env()
    for command in _render(history, tag, folder, random.Random(seed)):
        subprocess.run([LEADPULSE, "import", *command], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run([LEADPULSE, "publish", str(folder / "events.jsonl")], env=env, check=True, capture_output=True, timeout=120)
    _apply(pipeline)
    report, expected = pipeline.report(), pipeline.expected()
    published = _by_source(report, f"pub-{tag}-")
    assert published and any(name == "leadpulse_cohort_leads" for name, _ in published)
    assert _by_source(report, f"hs-{tag}-") == published
    assert _by_source(report, f"sf-{tag}-") == published
    assert _by_source(expected, f"pub-{tag}-") == pytest.approx(published, rel=1e-12)  # the model sums in another order


def test_the_salesforce_fixture_with_its_history_gives_its_hand_checked_cohort_through_the_real_stack(
    pipeline: Pipeline, tmp_path: Path
) -> None:  # fmt: skip
    """The fixture's ids and sources made this run's own (the shared topics keep every run's events)."""
    digits, tag = f"{random.randrange(10**9):09d}", uuid.uuid4().hex[:8]
    paths = []
    for name in ("leads", "opportunities", "lead-history", "opportunity-history"):
        text = (FIXTURES / f"salesforce-{name}.csv").read_text(encoding="utf-8").replace("000000000", digits)
        for source in ("Web", "Phone Inquiry", "Partner Referral"):
            text = text.replace(f'"{source}"', f'"fx-{tag}-{source}"')
        (tmp_path / f"{name}.csv").write_text(text, encoding="utf-8")
        paths.append(str(tmp_path / f"{name}.csv"))
    leads, opportunities, lead_history, opportunity_history = paths
    command = ["import", "salesforce", "--leads", leads, "--opportunities", opportunities, "--history", lead_history, "--history", opportunity_history]
    subprocess.run([LEADPULSE, *command], env=pipeline.env(), check=True, capture_output=True, timeout=120)
    _apply(pipeline)
    out = subprocess.run([LEADPULSE, "report", "--json", "--as-of", "2025-04-30"], env=pipeline.env(), check=True,
                         capture_output=True, timeout=60).stdout  # fmt: skip
    march = {(s["name"].removeprefix("leadpulse_cohort_"), s["labels"]["segment"].removeprefix(f"fx-{tag}-"), s["labels"].get("stage")): s["value"]
             for s in orjson.loads(out) if s["labels"].get("segment", "").startswith(f"fx-{tag}-")
             and s["labels"].get("period") == "month" and s["labels"].get("cohort") == "2025-03"}  # fmt: skip
    counts = {key: value for key, value in march.items() if key[0] in ("leads", "customers", "disqualified_leads", "stage_leads")}
    assert counts == {
        ("leads", "web", None): 1, ("customers", "web", None): 1, ("disqualified_leads", "web", None): 0,
        ("stage_leads", "web", "mql"): 1, ("stage_leads", "web", "sql"): 1, ("stage_leads", "web", "customer"): 1,
        ("leads", "phone_inquiry", None): 1, ("customers", "phone_inquiry", None): 0, ("disqualified_leads", "phone_inquiry", None): 1,
        ("stage_leads", "phone_inquiry", "mql"): 0, ("stage_leads", "phone_inquiry", "sql"): 0, ("stage_leads", "phone_inquiry", "customer"): 0,
        ("leads", "partner_referral", None): 1, ("customers", "partner_referral", None): 0,
        ("disqualified_leads", "partner_referral", None): 0, ("stage_leads", "partner_referral", "mql"): 1,
        ("stage_leads", "partner_referral", "sql"): 1, ("stage_leads", "partner_referral", "customer"): 0,
    }  # the deleted lead (Working - Contacted) is in no cohort

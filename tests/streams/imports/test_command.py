"""`leadpulse import` on fixtures with the vendors' quirks: hand-checked numbers, every refusal and warning."""

from __future__ import annotations

import subprocess
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import main
from tests.pipeline import LEADPULSE

FIXTURES = Path(__file__).with_name("fixtures")
CONTACTS, DEALS = str(FIXTURES / "hubspot-contacts.csv"), str(FIXTURES / "hubspot-deals.csv")
LEADS, OPPORTUNITIES = str(FIXTURES / "salesforce-leads.csv"), str(FIXTURES / "salesforce-opportunities.csv")
LEAD_HISTORY, OPPORTUNITY_HISTORY = str(FIXTURES / "salesforce-lead-history.csv"), str(FIXTURES / "salesforce-opportunity-history.csv")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["import", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def events_of(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    out = tmp_path / "events.jsonl"
    code, stdout, stderr = run(*args, "--output", str(out), env=env)
    assert code == 0, stdout + stderr
    return [orjson.loads(line) for line in out.read_bytes().splitlines()]


def count(events: list[dict[str, object]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for event in events:
        found[str(event["type"])] = found.get(str(event["type"]), 0) + 1
    return found


def test_hubspot_fixture_with_bom_crlf_quoted_newline_excel_dates_merges_duplicates_and_a_custom_stage(tmp_path: Path) -> None:
    env = {"LEADPULSE_HUBSPOT_WON_DEAL_STAGES": "closedwon,Signed"}
    events = events_of(tmp_path, "hubspot", "--contacts", CONTACTS, "--deals", DEALS, "--timezone", "UTC", env=env)
    assert count(events) == {"lead.created": 5, "lead.qualified": 3, "lead.disqualified": 1,
                             "deal.created": 5, "deal.won": 3, "deal.lost": 1}  # fmt: skip
    leads = {e["lead_id"] for e in events if e["type"] == "lead.created"}
    assert leads == {"1", "2", "5", "6", "7"}  # 3 and 4 were merged into 2
    won = sorted((e["deal_id"], e["lead_id"], e["occurred_at"], e.get("amount")) for e in events if e["type"] == "deal.won")
    assert won == [("900", "1", "2025-04-15T10:00:00.000Z", 1200.5), ("900", "5", "2025-04-15T10:00:00.000Z", 1200.5),
                   ("902", "2", "2025-04-26T10:00:00.000Z", 50.0)]  # fmt: skip
    di = next(e for e in events if e["lead_id"] == "5" and e["type"] == "lead.created")
    assert di["occurred_at"] == "2025-04-08T12:00:00.000Z"  # an Excel serial number
    assert len({e["event_id"] for e in events}) == len(events)


def test_hubspot_contacts_alone_make_customers_from_the_customer_stage(tmp_path: Path) -> None:
    events = events_of(tmp_path, "hubspot", "--contacts", CONTACTS, "--timezone", "UTC")
    won = sorted((e["lead_id"], e["deal_id"], e["occurred_at"]) for e in events if e["type"] == "deal.won")
    assert won == [("1", "hubspot-contact-1", "2025-05-01T09:00:00.000Z"), ("7", "hubspot-contact-7", "2025-04-11T10:00:00.000Z")]


def test_the_summary_counts_leads_customers_skips_and_unmapped_values_and_dry_run_sends_nothing() -> None:
    code, stdout, _ = run("hubspot", "--contacts", CONTACTS, "--deals", DEALS, "--timezone", "UTC", "--dry-run")
    assert code == 0
    assert "leads 5, customers 2, deals 5" in stdout  # 902's stage Signed is not won by default
    assert "not mapped by any setting: Deal Stage 'Signed' (1 rows)" in stdout
    assert "not mapped by any setting: Lifecycle Stage 'Signed Up' (2 rows)" in stdout
    assert f"skipped 1 rows: merged into another record (Merged Contact IDs) (first: {CONTACTS}:4)" in stdout
    assert f"skipped 1 rows: duplicate row (the same cells again) (first: {CONTACTS}:7)" in stdout
    assert "source paid_search: 2 leads, 0 customers" in stdout
    assert stdout.rstrip().endswith("dry run: nothing sent")


def test_salesforce_fixture_joins_converted_leads_skips_deleted_rows_and_counts_a_deal_closed_before_it_was_created(
    tmp_path: Path,
) -> None:
    events = events_of(tmp_path, "salesforce", "--leads", LEADS, "--opportunities", OPPORTUNITIES)
    assert count(events) == {"lead.created": 3, "lead.qualified": 1, "lead.disqualified": 1,
                             "deal.created": 4, "deal.won": 1, "deal.lost": 1}  # fmt: skip
    won = next(e for e in events if e["type"] == "deal.won")
    assert (won["lead_id"], won["occurred_at"], won["amount"]) == ("00Q000000000001EAA", "2025-03-05T00:00:00.000Z", 5000.0)
    lost = next(e for e in events if e["type"] == "deal.lost")
    assert lost["lead_id"] == "00Q000000000004EAA"  # joined through a 15-character ConvertedOpportunityId


def test_salesforce_history_files_give_the_exact_time_each_status_and_stage_was_entered(tmp_path: Path) -> None:
    events = events_of(tmp_path, "salesforce", "--leads", LEADS, "--opportunities", OPPORTUNITIES,
                       "--history", LEAD_HISTORY, "--history", OPPORTUNITY_HISTORY)  # fmt: skip
    times = {(e["lead_id"][-4:-3], e["type"], e.get("stage")): e["occurred_at"] for e in events}
    assert times == {
        ("1", "lead.created", None): "2025-03-01T10:00:00.000Z",
        ("1", "lead.qualified", "mql"): "2025-03-03T09:30:00.000Z",  # passed through MQL, now Closed - Converted
        ("1", "lead.qualified", "sql"): "2025-03-06T14:15:00.000Z",
        ("1", "deal.created", None): "2025-03-10T12:00:00.000Z",  # the opportunity's CreatedDate (the lead's: 03-10 00:00)
        ("1", "deal.won", None): "2025-03-18T15:45:00.000Z",  # entered Closed Won, not the CloseDate 2025-03-05
        ("2", "lead.created", None): "2025-03-02T10:00:00.000Z",
        ("2", "lead.disqualified", None): "2025-03-04T08:00:00.000Z",  # a Rating change to 'Qualified' is not a status
        ("4", "lead.created", None): "2025-03-04T10:00:00.000Z",
        ("4", "lead.qualified", "sql"): "2025-03-15T11:00:00.000Z",  # history names it by its 15-character id
        ("4", "deal.created", None): "2025-03-20T12:00:00.000Z",
        ("4", "deal.lost", None): "2025-04-02T17:20:00.000Z",  # the last entry into Closed Lost, after a reopening
    }  # a deleted history row (lead 4 to MQL) and a lead absent from the leads file (9) add nothing
    assert count(events) == {"lead.created": 3, "lead.qualified": 3, "lead.disqualified": 1,
                             "deal.created": 4, "deal.won": 1, "deal.lost": 1}  # fmt: skip


def test_salesforce_history_rows_are_counted_in_the_summary_and_a_history_alone_is_refused() -> None:
    code, stdout, _ = run("salesforce", "--leads", LEADS, "--history", LEAD_HISTORY, "--dry-run")
    assert code == 0 and "salesforce-lead-history.csv: 9 rows read" in stdout
    code, _, stderr = run("salesforce", "--history", LEAD_HISTORY)
    assert code == 2 and "give salesforce at least one export: --leads, --opportunities" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hubspot", "--contacts", CONTACTS], "row 2, column 'Create Date': '2025-04-08 17:19' has no UTC offset: pass --timezone"),
        (["hubspot", "--contacts", DEALS, "--timezone", "UTC"], "looks like a deals export (it has Deal Name, Deal Stage, Pipeline), not contacts"),
        (["salesforce", "--leads", OPPORTUNITIES], "looks like a opportunities export"),
        (["salesforce", "--leads", LEADS, "--history", OPPORTUNITIES], "not a history export: it needs the columns LeadId, Field, NewValue, CreatedDate; or OpportunityId"),
        (["salesforce", "--leads", LEAD_HISTORY], "looks like a lead_history export (it has LEADID, OLDVALUE), not leads"),
        (["salesforce", "--opportunities", OPPORTUNITIES], "the opportunities cannot reach their leads: export the column 'Lead_Id__c'"),
        (["hubspot", "--leads", LEADS], "--leads is not a hubspot flag"),
        (["hubspot", "--contacts", "missing.csv"], "missing.csv: cannot read"),
        (["hubspot", "--contacts", CONTACTS, "--timezone", "Mars/Base"], "--timezone 'Mars/Base' is not an IANA time zone"),
    ],
)
def test_each_refusal_is_one_line_exits_2_and_names_what_to_fix(args: list[str], message: str) -> None:
    code, stdout, stderr = run(*args)
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert "sent" not in stdout


def test_a_missing_required_column_is_named_with_how_to_add_it_in_the_export_dialog(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Record ID,Email,Lifecycle Stage\n1,a@example.com,lead\n")
    code, _, stderr = run("hubspot", "--contacts", str(contacts))
    assert code == 2
    assert "no column 'Create Date' (any of: Create Date, createdate)" in stderr
    assert 'choose Export, and pick "Include all properties"' in stderr


def test_an_unreadable_date_refuses_naming_its_row_and_column(tmp_path: Path) -> None:
    deals = tmp_path / "deals.csv"
    deals.write_text(Path(DEALS).read_text(encoding="utf-8-sig").replace("2025-04-25 10:00", "soon"))
    code, _, stderr = run("hubspot", "--deals", str(deals), "--timezone", "UTC")
    assert code == 2 and "row 3, column 'Close Date': 'soon' is not a time" in stderr


def test_missing_optional_columns_warn_naming_what_the_numbers_will_miss(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("Record ID,Create Date,Lifecycle Stage\n1,2025-04-08T10:00:00Z,lead\n")
    code, stdout, stderr = run("hubspot", "--contacts", str(contacts), "--dry-run")
    assert code == 0 and "leads 1, customers 0, deals 0" in stdout
    assert f"warning: {contacts}: no source column, so every lead's source will be \"unknown\"" in stderr
    assert "no customer column, so without a deals file, no lead will count as a customer" in stderr
    assert "no merged column, so merged contacts cannot be recognised" in stderr


def test_a_mapping_file_for_another_crm_uses_the_same_engine(tmp_path: Path) -> None:
    mapping = tmp_path / "pipedrive.yaml"
    mapping.write_text(
        "crm: pipedrive\nobjects:\n  persons:\n    kind: lead\n    singular: person\n"
        "    columns: {id: [Person - ID], created: [Person - Person created], source: [Person - Lead source]}\n"
        "  deals:\n    kind: deal\n    singular: deal\n"
        "    columns: {id: [Deal - ID], created: [Deal - Deal created], closed: [Deal - Won time], lead: [Deal - Contact person ID],"
        " stage: [Deal - Status]}\n    required: [id, created, lead]\n    values: {won: [Won], lost: [Lost], ignored: [Open]}\n"
    )
    persons, deals = tmp_path / "persons.csv", tmp_path / "deals.csv"
    persons.write_text("Person - ID,Person - Person created,Person - Lead source\n11,2025-01-02 10:00:00,Web\n")
    deals.write_text("Deal - ID,Deal - Deal created,Deal - Won time,Deal - Contact person ID,Deal - Status\n"
                     "77,2025-01-05 10:00:00,2025-01-09 10:00:00,11,Won\n")  # fmt: skip
    events = events_of(tmp_path, "--mapping", str(mapping), f"persons={persons}", f"deals={deals}", "--timezone", "UTC")
    assert [(e["event_id"], e["occurred_at"]) for e in events] == [
        ("pipedrive:person:11:lead.created", "2025-01-02T10:00:00.000Z"),
        ("pipedrive:deal:77:11:deal.created", "2025-01-05T10:00:00.000Z"),
        ("pipedrive:deal:77:11:deal.won", "2025-01-09T10:00:00.000Z"),
    ]


def test_a_wrong_mapping_file_is_refused_naming_its_key(tmp_path: Path) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text("crm: x\nobjects:\n  people:\n    kind: lead\n    singular: person\n    columns: {id: [ID], born: [B]}\n")
    code, _, stderr = run("--mapping", str(mapping), f"people={CONTACTS}")
    assert code == 2 and "objects.people" in stderr and "unknown lead column role 'born'" in stderr


def test_the_console_script_refuses_in_a_real_process_and_sends_nothing() -> None:
    done = subprocess.run([LEADPULSE, "import", "hubspot", "--contacts", CONTACTS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("Error: ") and "pass --timezone" in done.stderr


def test_xlsx_exports_as_excel_stores_them_real_datetimes_a_date_cell_serials_and_number_formatted_ids(tmp_path: Path) -> None:
    from openpyxl import Workbook

    contacts, deals = Workbook(), Workbook()
    sheet = contacts.active
    sheet.append(["Record ID", "Create Date", "Original Source", "Became a Marketing Qualified Lead Date",
                  "Became a Sales Qualified Lead Date", "Lead Status"])  # fmt: skip
    sheet.append([101, datetime(2025, 4, 8, 17, 19), "Paid Search", date(2025, 4, 9), 45757.25, None])
    sheet.append([102.0, datetime(2025, 1, 15, 9, 0), "Referrals", None, None, "UNQUALIFIED"])  # an id Excel made a float
    for cell in ("A2", "A3"):
        sheet[cell].number_format = "0"
    contacts.save(tmp_path / "contacts.xlsx")
    sheet = deals.active
    sheet.append(["Record ID", "Create Date", "Close Date", "Deal Stage", "Amount", "Associated Contact IDs"])
    sheet.append([5001, datetime(2025, 4, 11, 10, 0), date(2025, 4, 20), "closedwon", 1234.5, 101])
    sheet["E2"].number_format = "#,##0.00"
    deals.save(tmp_path / "deals.xlsx")
    events = events_of(tmp_path, "hubspot", "--contacts", str(tmp_path / "contacts.xlsx"), "--deals", str(tmp_path / "deals.xlsx"),
                       "--timezone", "Europe/Berlin")  # fmt: skip
    found = {(e["lead_id"], e["type"], e.get("stage")): (e["occurred_at"], e.get("amount")) for e in events}
    assert found == {  # Berlin is UTC+2 from 30 March 2025, UTC+1 before
        ("101", "lead.created", None): ("2025-04-08T15:19:00.000Z", None),
        ("101", "lead.qualified", "mql"): ("2025-04-08T22:00:00.000Z", None),  # the date cell: midnight in Berlin
        ("101", "lead.qualified", "sql"): ("2025-04-10T04:00:00.000Z", None),  # serial 45757.25: 10 April 06:00
        ("102", "lead.created", None): ("2025-01-15T08:00:00.000Z", None),
        ("102", "lead.disqualified", None): ("2025-01-15T08:00:00.000Z", None),
        ("101", "deal.created", None): ("2025-04-11T08:00:00.000Z", None),
        ("101", "deal.won", None): ("2025-04-19T22:00:00.000Z", 1234.5),
    }
    assert {e["deal_id"] for e in events if "deal_id" in e} == {"5001"}


def test_hubspot_newer_portal_export_every_field_quoted_date_entered_headers_ui_stage_labels_and_two_contacts_per_deal(
    tmp_path: Path,
) -> None:  # fmt: skip
    events = events_of(tmp_path, "hubspot", "--contacts", str(FIXTURES / "hubspot-contacts-date-entered.csv"),
                       "--deals", str(FIXTURES / "hubspot-deals-ui-labels.csv"), "--timezone", "America/New_York")  # fmt: skip
    found = {(e["lead_id"], e["type"], e.get("stage")): (e["occurred_at"], e.get("amount")) for e in events}
    assert found == {  # New York is UTC-4 in September
        ("201", "lead.created", None): ("2025-09-01T13:05:00.000Z", None),
        ("201", "lead.qualified", "mql"): ("2025-09-02T14:00:00.000Z", None),  # Date entered "Marketing Qualified Lead (...)"
        ("201", "lead.qualified", "sql"): ("2025-09-05T20:30:00.000Z", None),
        ("202", "lead.created", None): ("2025-09-03T18:00:00.000Z", None),
        ("202", "lead.qualified", "sql"): ("2025-09-04T12:00:00.000Z", None),
        ("203", "lead.created", None): ("2025-09-10T22:45:00.000Z", None),
        ("203", "lead.disqualified", None): ("2025-09-10T22:45:00.000Z", None),  # Lead Status label "Unqualified"
        # deal 301: Deal Stage label "Closed Won", Amount "12,500.00", Associated Contact IDs "201;202" read
        # before the Associated Contact names beside them; deal 302 names no contact and is skipped
        ("201", "deal.created", None): ("2025-09-06T14:00:00.000Z", None),
        ("201", "deal.won", None): ("2025-09-20T15:00:00.000Z", 12500.0),
        ("202", "deal.created", None): ("2025-09-06T14:00:00.000Z", None),
        ("202", "deal.won", None): ("2025-09-20T15:00:00.000Z", 12500.0),
    }


def test_salesforce_bulk_api_2_results_with_a_semicolon_delimiter_quoted_fields_and_rest_offsets(tmp_path: Path) -> None:
    events = events_of(tmp_path, "salesforce", "--leads", str(FIXTURES / "salesforce-leads-bulk2-semicolon.csv"),
                       "--opportunities", str(FIXTURES / "salesforce-opportunities-bulk2-semicolon.csv"))  # fmt: skip
    found = {(e["lead_id"][-4:], e["type"], e.get("stage"), e.get("source")): (e["occurred_at"], e.get("amount")) for e in events}
    assert found == {
        ("1EAB", "lead.created", None, "Web"): ("2025-06-02T08:15:00.000Z", None),
        ("1EAB", "deal.created", None, None): ("2025-06-20T09:00:00.000Z", None),  # the opportunity's (the lead's says 00:00)
        ("2EAB", "lead.created", None, "Trade Show; Booth 4"): ("2025-06-03T23:30:00.000Z", None),  # a quoted delimiter
        ("3EAB", "lead.created", None, "unknown"): ("2025-06-04T12:00:00.000Z", None),
        ("3EAB", "lead.qualified", "mql", None): ("2025-06-04T12:00:00.000Z", None),
        ("1EAB", "deal.won", None, None): ("2025-07-15T00:00:00.000Z", 48000.5),  # joined by ConvertedOpportunityId
    }
    assert count(events) == {"lead.created": 3, "lead.qualified": 1, "deal.created": 2, "deal.won": 1}


def test_first_touches_hubspot_first_engagement_date_and_salesforce_earliest_of_first_call_email_and_contacted_status(
    tmp_path: Path,
) -> None:
    hubspot = events_of(tmp_path, "hubspot", "--contacts", str(FIXTURES / "hubspot-contacts-first-touch.csv"), "--timezone", "UTC")
    touches = [(e["event_id"], e["occurred_at"]) for e in hubspot if e["type"] == "lead.contacted"]
    # Contact 102 has no engagement; 103's date is in epoch milliseconds, as the API writes it.
    assert touches == [("hubspot:contact:101:lead.contacted", "2025-04-02T10:30:00.000Z"),
                       ("hubspot:contact:103:lead.contacted", "2025-04-03T11:00:00.000Z")]  # fmt: skip
    salesforce = events_of(tmp_path, "salesforce", "--leads", str(FIXTURES / "salesforce-leads-first-touch.csv"),
                           "--history", str(FIXTURES / "salesforce-lead-history-first-touch.csv"))  # fmt: skip
    touches = [(e["lead_id"], e["occurred_at"]) for e in salesforce if e["type"] == "lead.contacted"]
    # 11: its first email before its first call; 12: its first entry into Working - Contacted, not the
    # second; 13: the status change an hour before its first call; 14: never contacted.
    assert touches == [("00Q000000000011EAA", "2025-03-02T15:00:00.000Z"), ("00Q000000000012EAA", "2025-03-05T08:00:00.000Z"),
                       ("00Q000000000013EAA", "2025-03-04T11:00:00.000Z")]  # fmt: skip
    assert count(salesforce) == {"lead.created": 4, "lead.contacted": 3}


def test_the_contacted_statuses_are_a_setting(tmp_path: Path) -> None:
    found = events_of(tmp_path, "salesforce", "--leads", str(FIXTURES / "salesforce-leads-first-touch.csv"),
                      "--history", str(FIXTURES / "salesforce-lead-history-first-touch.csv"),
                      env={"LEADPULSE_SALESFORCE_CONTACTED_STATUSES": "Called Back"})  # fmt: skip
    # Without the status, only the first call and email columns touch.
    assert [(e["lead_id"], e["occurred_at"]) for e in found if e["type"] == "lead.contacted"] == [
        ("00Q000000000011EAA", "2025-03-02T15:00:00.000Z"), ("00Q000000000013EAA", "2025-03-04T12:00:00.000Z")]  # fmt: skip

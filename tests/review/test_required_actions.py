"""The Required Action's request and answers, without Airflow (plain functions of the store).

- the request names the customer and week; its body gives the summary, the flags, the PDF's hash
  and the links, every value from a source escaped;
- an answer there records the same approval record as the review page and the Variable (only
  ``by`` and ``via`` differ), bound to the hashes that were shown;
- an answer about a version that changed since, or a rejection without a reason, records nothing,
  is kept for the review page, and leaves the customer awaiting review;
- a decision the review page (or the Variable watcher) recorded before answering is the record:
  no second one;
- who set a Variable is read from Airflow's audit-log entries as the REST routes and the CLI write them.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from msp_reports import approval, approval_request
from msp_reports.airflow_api import _names
from msp_reports.review.status import review_state
from msp_reports.store import ReportStore, sha256

WEEK = dt.date(2026, 11, 16)
UTC = dt.timezone.utc
ASKED = dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
LATER = ASKED + dt.timedelta(minutes=5)


def _render(store: ReportStore, pdf: bytes, flags: list[dict] | None = None) -> dict:
    data, commentary = b'{"week": 1}', b""
    store.write_bytes("ACME", WEEK, "snapshot.json", data)
    store.write_bytes("ACME", WEEK, "report.pdf", pdf)
    store.write_json("ACME", WEEK, "reconciled.json", {"flags": flags or []})
    render = {"snapshot_sha256": sha256(data), "commentary_sha256": sha256(commentary), "pdf_sha256": sha256(pdf),
              "subject_sha256": sha256(b"s"), "cover_note_sha256": sha256(b"c"), "teams_card_sha256": sha256(b"t"),
              "rendered_at": ASKED.isoformat()}
    store.write_json("ACME", WEEK, "render.json", render)
    return approval.reviewed_version(render)


@pytest.fixture
def store(tmp_path):
    return ReportStore(str(tmp_path / "store"))


def test_the_request_names_customer_and_week_and_gives_summary_flags_hash_and_links_escaped(store):
    shown = _render(store, b"%PDF one", [{"severity": "critical", "message": "Uptime fell to *90%* [see](x)"}])
    request = approval_request.brief(store, "ACME", "Acme <Ltd>", WEEK, ["Backups: **3** of 4 <b>ok</b>"],
                                     "https://airflow.example/")
    assert request.subject == "Weekly report ACME, week of 2026-11-16: approve or reject"
    assert request.shown == shown
    body = request.body
    assert "**Executive summary**" in body and shown["pdf_sha256"] in body
    assert "Backups: \\*\\*3\\*\\* of 4" in body and "**3**" not in body  # source text is literal, not Markdown
    assert "\\*90%\\*" in body and "[see](x)" not in body
    assert "[Open the review page](https://airflow.example/weekly-reports-review/?week=2026-11-16&customer=ACME)" in body
    assert "[Open the PDF](https://airflow.example/weekly-reports-review/pdf/ACME/2026-11-16/report.pdf)" in body


def test_an_answer_records_the_same_record_as_the_review_page_bound_to_what_was_shown(store):
    shown = _render(store, b"%PDF one")
    answer = approval_request.record_answer(store, "ACME", WEEK, "Approve", "", by="jane", shown=shown,
                                            asked_at=ASKED, now=LATER)
    assert answer.refused == "" and answer.record["by"] == "jane" and answer.record["via"] == "required-actions"
    page = approval.record_decision(store, "ACME", WEEK, "approve", by="jane", via="review-page", now=LATER,
                                    reviewed=shown)
    assert set(page) == set(answer.record)
    assert {k: v for k, v in page.items() if k != "via"} == {k: v for k, v in answer.record.items() if k != "via"}
    assert approval.in_force(store, "ACME", WEEK)["via"] == "review-page"


def test_a_reject_needs_its_reason_and_keeps_it(store):
    shown = _render(store, b"%PDF one")
    refused = approval_request.record_answer(store, "ACME", WEEK, "Reject", "  ", by="jane", shown=shown,
                                             asked_at=ASKED, now=LATER)
    assert refused.record is None and "needs a reason" in refused.refused
    assert store.week("ACME", WEEK).approval_records() == []
    answer = approval_request.record_answer(store, "ACME", WEEK, "Reject", "totals look wrong", by="jane",
                                            shown=shown, asked_at=ASKED, now=LATER)
    assert (answer.record["decision"], answer.record["reason"]) == ("reject", "totals look wrong")


def test_an_answer_about_a_version_that_changed_sends_nothing_and_says_why_on_the_review_page(store):
    shown = _render(store, b"%PDF one")
    _render(store, b"%PDF two")  # re-rendered (new commentary) while the request was waiting
    answer = approval_request.record_answer(store, "ACME", WEEK, "Approve", "", by="jane", shown=shown,
                                            asked_at=ASKED, now=LATER)
    assert answer.record is None and "report changed since it was shown (pdf)" in answer.refused
    assert approval.in_force(store, "ACME", WEEK) is None and store.week("ACME", WEEK).approval_records() == []
    page = review_state(store, "ACME", WEEK, now=LATER)
    assert page["state"] == "awaiting review"
    assert "report changed since it was shown" in page["variable_problem"]["error"]


def test_a_decision_recorded_by_the_page_before_it_answered_is_the_record_not_a_second_one(store):
    shown = _render(store, b"%PDF one")
    page = approval.record_decision(store, "ACME", WEEK, "approve", by="jane", via="review-page", now=LATER,
                                    reviewed=shown)
    answer = approval_request.record_answer(store, "ACME", WEEK, "Approve", "", by="jane", shown=shown,
                                            asked_at=ASKED, now=LATER + dt.timedelta(seconds=1))
    assert answer.record == page and len(store.week("ACME", WEEK).approval_records()) == 1


def test_an_approval_from_before_the_request_was_asked_is_not_taken_for_its_answer(store):
    """A decision standing before the request was asked would not have let the task park; one
    for another version is void anyway. An answer after it is a decision of its own."""
    shown = _render(store, b"%PDF one")
    approval.record_decision(store, "ACME", WEEK, "approve", by="bob", via="review-page",
                             now=ASKED - dt.timedelta(minutes=1), reviewed=shown)
    answer = approval_request.record_answer(store, "ACME", WEEK, "Reject", "no", by="jane", shown=shown,
                                            asked_at=ASKED, now=LATER)
    assert (answer.record["by"], answer.record["decision"]) == ("jane", "reject")


def test_a_qbr_pack_request_names_customer_and_quarter_and_an_answer_records_on_the_pack(tmp_path):
    """The QBR pack's kind: its own subject (never a weekly one's), its headlines, hash and links to
    the QBR view; an answer records the pack's approval, bound to what was shown, as the view would."""
    from msp_reports.qbr_store import PackStore, quarter_first_day

    packs = PackStore(str(tmp_path / "store"))
    key = quarter_first_day("2026-Q3")
    pdf, data = b"%PDF pack", b'{"snapshots": {}}'
    packs.write_bytes("ACME", key, "sources.json", data)
    packs.write_bytes("ACME", key, "report.pdf", pdf)
    render = {"snapshot_sha256": sha256(data), "commentary_sha256": sha256(b""), "pdf_sha256": sha256(pdf),
              "subject_sha256": sha256(b"s"), "cover_note_sha256": sha256(b"c"), "teams_card_sha256": sha256(b"t"),
              "rendered_at": ASKED.isoformat()}
    packs.write_json("ACME", key, "render.json", render)
    request = approval_request.qbr_brief(packs, "ACME", "Acme Ltd", "2026-Q3",
                                         ["Uptime across all services: *99.9%*"], "https://airflow.example/")
    assert request.subject == "QBR pack approval: ACME 2026-Q3" == approval_request.QBR.subject("ACME", "2026-Q3")
    assert request.subject != approval_request.WEEKLY.subject("ACME", "2026-07-01")
    assert request.body.startswith("**Acme Ltd** (ACME), quarterly business review, 2026-Q3")
    assert "**Headlines**" in request.body and "\\*99.9%\\*" in request.body and render["pdf_sha256"] in request.body
    assert "[Open the review page](https://airflow.example/weekly-reports-review/qbr/?quarter=2026-Q3&customer=ACME)" \
        in request.body
    assert "[Open the PDF](https://airflow.example/weekly-reports-review/qbr/pdf/ACME/2026-Q3/report.pdf)" in request.body
    assert "If the pack is re-rendered" in request.body
    refused = approval_request.record_answer(packs, "ACME", key, "Reject", "", by="jane", shown=request.shown,
                                             asked_at=ASKED, now=LATER)
    assert refused.record is None and "needs a reason" in refused.refused
    packs.write_json("ACME", key, "render.json", {**render, "pdf_sha256": sha256(b"%PDF re-rendered")})
    stale = approval_request.record_answer(packs, "ACME", key, "Approve", "", by="jane", shown=request.shown,
                                           asked_at=ASKED, now=LATER)
    assert stale.record is None and "changed since it was shown (pdf)" in stale.refused
    assert approval.in_force(packs, "ACME", key) is None  # nothing recorded: the request waits again
    packs.write_json("ACME", key, "render.json", render)
    answer = approval_request.record_answer(packs, "ACME", key, "Approve", "", by="jane", shown=request.shown,
                                            asked_at=ASKED, now=LATER)
    assert (answer.record["decision"], answer.record["by"], answer.record["via"]) == ("approve", "jane", "required-actions")
    assert approval.in_force(packs, "ACME", key) == answer.record
    assert approval.in_force(ReportStore(str(tmp_path / "store")), "ACME", key) is None  # no weekly record


KEY = "weekly_report_approval__ACME__2026-11-16"


@pytest.mark.parametrize("entry, names", [
    # the REST routes (the UI's Variables page): the body, the value masked
    ({"event": "post_variable", "extra": json.dumps({"key": KEY, "value": "***"})}, True),
    ({"event": "patch_variable", "extra": json.dumps({"key": KEY, "value": "***", "description": None})}, True),
    ({"event": "post_variable", "extra": json.dumps({"key": KEY + "x", "value": "***"})}, False),
    ({"event": "bulk_variables", "extra": json.dumps(
        {"actions": [{"action": "create", "entities": [{"key": KEY, "value": "***"}]}]})}, True),
    # the CLI: the command line as Airflow's action logger writes it
    ({"event": "cli_variables_set", "extra": json.dumps(
        {"host_name": "h", "full_command": str(["airflow", "variables", "set", KEY, "approve 3f2a9c1e"])})}, True),
    ({"event": "cli_variables_set", "extra": json.dumps(
        {"host_name": "h", "full_command": str(["airflow", "variables", "set", KEY + "_2", "approve"])})}, False),
    ({"event": "post_variable", "extra": "not json"}, False),
])
def test_the_audit_log_entry_that_names_the_variable(entry, names):
    assert _names(entry, KEY) is names


@pytest.mark.e2e
def test_what_the_airflow_cli_writes_to_the_audit_log_names_the_variable_and_the_os_user(tmp_path):
    """``airflow variables set`` as an engineer runs it: the audit-log row the watcher reads
    (event ``cli_variables_set``, owner the OS user, the command line in ``extra``)."""
    import getpass
    import os
    import sqlite3
    import subprocess
    import sys

    from msp_reports.airflow_api import CLI_EVENTS

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}"})
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "airflow", "variables", "set", KEY, "approve 3f2a9c1e"], check=True,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with sqlite3.connect(tmp_path / "airflow.db") as db:
        rows = db.execute("select event, owner, extra from log where event like 'cli_variables%'").fetchall()
    [(event, owner, extra)] = rows
    assert event in CLI_EVENTS and owner == getpass.getuser()
    assert _names({"event": event, "extra": extra}, KEY)
    assert not _names({"event": event, "extra": extra}, KEY.replace("ACME", "ECHO"))


def test_a_request_is_answered_only_once_its_task_has_been_parked_a_while():
    """Answered within moments of parking, Airflow can fail the resumed try (the executor's late
    report about the parking process); a task still writing its request is not answered at all."""
    from msp_reports.review.hitl import SETTLE, settle_left

    parked = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)
    assert settle_left("awaiting_input", parked, parked + dt.timedelta(seconds=5)) == SETTLE - dt.timedelta(seconds=5)
    assert settle_left("awaiting_input", parked, parked + SETTLE) == dt.timedelta(0)
    assert settle_left("awaiting_input", parked, parked + 10 * SETTLE) == dt.timedelta(0)
    assert settle_left("running", parked, parked + 10 * SETTLE) == SETTLE
    assert settle_left("awaiting_input", None, parked) == SETTLE
    assert settle_left("awaiting_input", parked, parked + dt.timedelta(seconds=1), dt.timedelta(0)) == dt.timedelta(0)

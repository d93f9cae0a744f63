"""Approval records are bound to what was reviewed: the snapshot, the commentary and the PDF."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from msp_reports import approval
from msp_reports.store import ReportStore, sha256

WEEK = dt.date(2026, 11, 16)
UTC = dt.timezone.utc
NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEADLINE = NINE + dt.timedelta(hours=48)


def _render(store: ReportStore, *, data: bytes = b'{"week": 1}', commentary: str = "", pdf: bytes = b"%PDF one"):
    store.write_bytes("ACME", WEEK, "snapshot.json", data)
    store.write_bytes("ACME", WEEK, "report.pdf", pdf)
    store.write_json("ACME", WEEK, "render.json", {
        "snapshot_sha256": sha256(data), "commentary_sha256": sha256(commentary.encode()), "pdf_sha256": sha256(pdf)})


@pytest.fixture
def store(tmp_path):
    s = ReportStore(str(tmp_path / "store"))
    _render(s)
    poll(s, now=NINE - dt.timedelta(hours=3))  # the sensor is waiting before anyone decides
    return s


def shown(store) -> dict:
    return approval.reviewed_version(approval.current_render(store, "ACME", WEEK))


def decide(store, decision="approve", *, reviewed=None, reason="", by="priya", now=NINE):
    return approval.record_decision(store, "ACME", WEEK, decision, by=by, via="review-page", now=now,
                                    reason=reason, reviewed=reviewed)


def poll(store, raw=None, now=NINE + dt.timedelta(minutes=5)):
    return approval.poll(store, "ACME", WEEK, raw, now=now, not_before=NINE, deadline=DEADLINE)


def test_a_page_approval_records_who_when_and_all_three_hashes(store):
    version = shown(store)
    record = decide(store, reviewed=version)
    assert {k: record[k] for k in approval.HASHES} == version
    assert record["by"] == "priya" and record["via"] == "review-page" and record["recorded_at"] == NINE.isoformat()
    stored = json.loads((store.folder("ACME", WEEK) / "approvals" / "0001.json").read_text())
    assert stored == record
    state, in_force, _ = poll(store)
    assert state == "approved" and in_force == record
    assert approval.approved_pdf(store, "ACME", WEEK)[0] == b"%PDF one"


@pytest.mark.parametrize("change", ["data", "commentary", "pdf"])
def test_any_change_after_approval_voids_it(store, change):
    decide(store, reviewed=shown(store))
    changed = {"data": {"data": b'{"week": 2}'}, "commentary": {"commentary": "new words"},
               "pdf": {"pdf": b"%PDF two"}}[change]
    _render(store, **changed)
    assert approval.in_force(store, "ACME", WEEK) is None
    assert approval.voided(store, "ACME", WEEK)["by"] == "priya"
    assert poll(store)[0] == "awaiting_review"
    with pytest.raises(approval.ApprovalError, match="changed after approval|not approved"):
        approval.approved_pdf(store, "ACME", WEEK)
    assert len(store.records("ACME", WEEK, "approvals")) == 1  # the old record is kept as history


@pytest.mark.parametrize("field", approval.HASHES)
def test_approving_a_version_that_is_no_longer_current_is_refused(store, field):
    version = shown(store)
    stale = {**version, field: "0" * 64}
    with pytest.raises(approval.StaleReview, match=field.removesuffix("_sha256")):
        decide(store, reviewed=stale)
    assert store.records("ACME", WEEK, "approvals") == []


def test_the_variable_path_writes_the_same_record(store):
    state, record, new_value = poll(store, '{"decision": "approve", "by": "jane"}')
    assert state == "approved" and record["via"] == "airflow-variable" and record["by"] == "unknown (Airflow Variable)"
    assert record["note"] == "named in the Variable, not verified: jane"
    assert set(record) == set(decide(store, reviewed=shown(store)))  # same fields as a page decision
    assert json.loads(new_value)["recorded_at"]
    # the Variable now holds a record: it is not recorded again
    poll(store, new_value)
    assert len(store.records("ACME", WEEK, "approvals")) == 2


def test_a_page_decision_stands_without_any_variable_and_a_later_one_wins(store):
    decide(store, reviewed=shown(store))
    decide(store, "reject", reviewed=shown(store), reason="backup figures need checking", by="marcus")
    state, record, _ = poll(store)
    assert state == "rejected" and record["by"] == "marcus" and record["reason"] == "backup figures need checking"


def test_a_rejection_needs_a_reason(store):
    with pytest.raises(approval.ApprovalError, match="reason"):
        decide(store, "reject", reviewed=shown(store))


def test_no_decision_by_the_cutoff_expires_once_and_for_good(store):
    assert poll(store, now=DEADLINE - dt.timedelta(seconds=1))[0] == "awaiting_review"
    state, record, new_value = poll(store, now=DEADLINE)
    assert state == "expired" and record["decision"] == "expired"
    assert "not approved by" in record["reason"] and "nothing sent" in record["reason"]
    assert json.loads(new_value)["decision"] == "expired"
    assert poll(store, now=DEADLINE + dt.timedelta(hours=1))[0] == "expired"
    assert len(store.records("ACME", WEEK, "approvals")) == 1
    with pytest.raises(approval.ApprovalClosed):
        decide(store, reviewed=shown(store))
    assert poll(store, "approve", now=DEADLINE + dt.timedelta(hours=2))[0] == "expired"  # a late Variable too
    with pytest.raises(approval.ApprovalError, match="not approved"):
        approval.approved_pdf(store, "ACME", WEEK)


def test_a_decision_before_the_cutoff_is_not_expired(store):
    decide(store, reviewed=shown(store))
    assert poll(store, now=DEADLINE + dt.timedelta(days=1))[0] == "approved"


def test_pending_variable_decisions_are_seen_without_being_recorded(store):
    assert approval.pending_decision(store, "ACME", WEEK, "approve") == "approve"
    assert approval.pending_decision(store, "ACME", WEEK, "reject not yet") == "reject"
    assert approval.pending_decision(store, "ACME", WEEK, None) is None
    assert approval.pending_decision(store, "ACME", WEEK, json.dumps({"decision": "approve", "recorded_at": "x"})) is None
    assert store.records("ACME", WEEK, "approvals") == []


def test_cutoff_is_configurable_and_bounded():
    from msp_reports.registry import Msp

    assert Msp(name="n", from_email="a@b.example").approval_cutoff == dt.timedelta(hours=48)
    assert Msp(name="n", from_email="a@b.example", approval_cutoff="6h").approval_cutoff == dt.timedelta(hours=6)
    assert Msp(name="n", from_email="a@b.example", approval_cutoff=12).approval_cutoff == dt.timedelta(hours=12)
    with pytest.raises(ValueError, match="6 days"):
        Msp(name="n", from_email="a@b.example", approval_cutoff="7d")


def test_deadline_counts_from_nine_or_from_a_later_start_of_the_wait():
    from msp_reports.pipeline import approval_deadline
    from msp_reports.registry import Msp

    msp = Msp(name="n", from_email="a@b.example", timezone="Europe/London", approval_cutoff="48h")
    assert approval_deadline(msp, WEEK) == NINE + dt.timedelta(hours=48)
    assert approval_deadline(msp, WEEK, NINE - dt.timedelta(hours=3)) == NINE + dt.timedelta(hours=48)
    late = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # a manual run for a past week
    assert approval_deadline(msp, WEEK, late) == late + dt.timedelta(hours=48)

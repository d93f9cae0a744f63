"""What the approval Variable may and may not do (issue 17, items 6, 7 and 12).

- a value that is not a decision on the current report (a typo, a wrong or too short pin) is
  recorded, shown and waited past: correcting the Variable or deciding on the page still works;
- a plain ``approve`` already there when a version is published does not approve it: a decision
  must postdate the version, or pin its hash;
- the name a Variable gives is not taken as who decided: it is kept only as a labelled note.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from msp_reports import approval
from msp_reports.review.status import review_state
from msp_reports.store import ReportStore, sha256

WEEK = dt.date(2026, 11, 16)
UTC = dt.timezone.utc
NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEADLINE = NINE + dt.timedelta(hours=48)
KEY = "weekly_report_approval__ACME__2026-11-16"


def _render(store: ReportStore, pdf: bytes, at: dt.datetime) -> str:
    data, commentary = b'{"week": 1}', b""
    store.write_bytes("ACME", WEEK, "snapshot.json", data)
    store.write_bytes("ACME", WEEK, "report.pdf", pdf)
    store.write_json("ACME", WEEK, "render.json", {
        "snapshot_sha256": sha256(data), "commentary_sha256": sha256(commentary), "pdf_sha256": sha256(pdf),
        "rendered_at": at.isoformat()})
    return sha256(pdf)


class Sensor:
    """The wait_for_approval sensor's pokes, with the Variable as the sensor sees and rewrites it."""

    def __init__(self, store: ReportStore) -> None:
        self.store = store
        self.variable: str | None = None
        self.now = NINE  # the run rendered; the sensor waits (after the send time, so an approval sends)

    def poke(self, minutes: int = 1) -> tuple[str, dict | None]:
        self.now += dt.timedelta(minutes=minutes)
        state, record, new_value = approval.poll(self.store, "ACME", WEEK, self.variable, now=self.now,
                                                 not_before=NINE, deadline=DEADLINE)
        if new_value is not None:
            self.variable = new_value
        return state, record


@pytest.fixture
def store(tmp_path):
    return ReportStore(str(tmp_path / "store"))


@pytest.fixture
def sensor(store):
    _render(store, b"%PDF version one", NINE)
    s = Sensor(store)
    assert s.poke()[0] == "awaiting_review"  # the sensor's first look: nobody has decided yet
    return s


# ---- item 6: a bad value is recorded, shown and waited past ----------------------------------
@pytest.mark.parametrize("typo", ["approve please", "approve 0", "yes", "reject", '{"decision": "approve"',
                                  '{"decision": "aprove"}'])
def test_a_bad_value_is_recorded_shown_and_waited_past_then_the_corrected_variable_approves(store, sensor, typo):
    sensor.variable = typo
    state, record = sensor.poke()  # today: ApprovalError, the sensor fails and the week is over
    assert state == "awaiting_review" and record is None
    problem = approval.variable_problem(store, "ACME", WEEK)
    assert problem["value"] == typo.strip() and KEY in problem["error"]
    assert review_state(store, "ACME", WEEK)["variable_problem"] == problem  # what the review page shows
    note = json.loads(sensor.variable)  # the Variables page shows what was refused and why
    assert note["refused"] == typo.strip() and note["error"] == problem["error"]
    assert sensor.poke()[0] == "awaiting_review"  # the note itself is not a decision; still waiting
    assert store.records("ACME", WEEK, "approvals") == []

    sensor.variable = "approve"  # corrected, after the report was published
    state, record = sensor.poke()
    assert state == "approved" and record["pdf_sha256"] == sha256(b"%PDF version one")
    assert approval.variable_problem(store, "ACME", WEEK) is None  # resolved by the decision
    assert review_state(store, "ACME", WEEK)["variable_problem"] is None


def test_after_a_bad_value_a_page_approval_is_what_the_sensor_delivers(store, sensor):
    sensor.variable = "approve 3"  # a 1-character pin names no report
    assert sensor.poke()[0] == "awaiting_review"
    assert "too short" in approval.variable_problem(store, "ACME", WEEK)["error"]
    shown = approval.reviewed_version(approval.current_render(store, "ACME", WEEK))
    page = approval.record_decision(store, "ACME", WEEK, "approve", by="priya", via="review-page",
                                    now=sensor.now + dt.timedelta(seconds=30), reviewed=shown)
    sensor.variable = approval.variable_value(page)  # the page mirrors its record into the Variable
    state, record = sensor.poke()
    assert state == "approved" and record == page
    assert approval.variable_problem(store, "ACME", WEEK) is None


def test_a_wrong_pin_is_refused_and_the_right_one_approves(store, sensor):
    sensor.variable = "approve 00000000"
    assert sensor.poke()[0] == "awaiting_review"
    assert "names PDF 00000000" in approval.variable_problem(store, "ACME", WEEK)["error"]
    sensor.variable = f"approve {sha256(b'%PDF version one')[:8]}"
    assert sensor.poke()[0] == "approved"


def test_a_bad_value_still_expires_at_the_cutoff(store, sensor):
    sensor.variable = "approve please"
    sensor.now = DEADLINE
    state, record = sensor.poke(0)
    assert state == "expired" and record["decision"] == "expired"


# ---- item 7: a decision must postdate the version it approves, or pin its hash ----------------
def test_an_approve_set_before_the_report_was_rendered_does_not_approve_it(store):
    sensor = Sensor(store)
    sensor.variable = "approve"  # Sunday evening, before anything was rendered
    pdf = _render(store, b"%PDF nobody has read this", NINE)
    state, record = sensor.poke()  # today: "approved"
    assert state == "awaiting_review" and record is None
    assert store.records("ACME", WEEK, "approvals") == []
    problem = approval.variable_problem(store, "ACME", WEEK)
    assert "already set when report" in problem["error"] and f"approve {pdf[:12]}" in problem["error"]
    assert json.loads(sensor.variable)["refused"] == "approve"
    # set again after the report was published (the Variable held the note meanwhile): it counts
    sensor.variable = "approve"
    state, record = sensor.poke()
    assert state == "approved" and record["pdf_sha256"] == pdf


def test_a_pinned_approval_binds_even_on_the_first_look(store):
    sensor = Sensor(store)
    pdf = _render(store, b"%PDF read and pinned", NINE)
    sensor.variable = f"approve {pdf[:8]}"
    assert sensor.poke()[0] == "approved"


def test_an_approve_meant_for_the_version_before_a_rerender_does_not_approve_the_new_one(store, sensor):
    sensor.variable = "approve"  # set while version one was on show...
    _render(store, b"%PDF version two, new commentary", NINE + dt.timedelta(minutes=1))  # ...re-rendered before the next poke
    state, record = sensor.poke()
    assert state == "awaiting_review" and record is None
    assert store.records("ACME", WEEK, "approvals") == []


def test_a_rejection_set_in_advance_still_stops_the_report(store):
    sensor = Sensor(store)
    sensor.variable = "reject hold this week's report"
    _render(store, b"%PDF unseen", NINE)
    state, record = sensor.poke()
    assert state == "rejected" and record["reason"] == "hold this week's report"


# ---- item 12: who decided is who Airflow authenticated ----------------------------------------
def test_the_name_in_a_variable_is_a_labelled_note_not_the_decider(store, sensor):
    from tests.factories import snapshot

    from msp_reports.pipeline import customer_status
    from msp_reports.reconcile import reconcile
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    customer = load_registry(Settings.load().registry_path).get("ACME")
    store.write_json("ACME", WEEK, "reconciled.json",
                     reconcile(snapshot(WEEK, customer="ACME"), None, customer.thresholds).model_dump(mode="json"))
    sensor.variable = json.dumps({"decision": "reject", "reason": "numbers look wrong", "by": "the.cto@acme.example"})
    state, record = sensor.poke()
    assert state == "rejected"
    assert record["by"] == "unknown (Airflow Variable)"  # today: "the.cto@acme.example"
    assert record["note"] == "named in the Variable, not verified: the.cto@acme.example"
    stored = store.records("ACME", WEEK, "approvals")[-1]
    assert stored["by"] == "unknown (Airflow Variable)"
    rollup_state = customer_status(store, customer, WEEK)["state"]
    assert rollup_state == "rejected by unknown (Airflow Variable): numbers look wrong"
    assert "the.cto" not in rollup_state

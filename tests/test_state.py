"""One customer-week state (:mod:`msp_reports.state`): every state, and the two readings that
used to disagree between the roll-up and the review page."""

from __future__ import annotations

import datetime as dt

import pytest

from msp_reports.state import (
    SEND_WINDOW, DecisionRecord, Outcome, Receipt, ReconciledRecord, RenderRecord, Run, WeekRecords, WeekState,
    derive,
)
from tests.factories import WEEK_OF

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)
RENDER = RenderRecord(pdf_sha256="p" * 64, snapshot_sha256="s" * 64, commentary_sha256="c" * 64)
APPROVE = DecisionRecord(decision="approve", by="priya", via="review-page", pdf_sha256="p" * 64)
REJECT = DecisionRecord(decision="reject", by="marcus", reason="backup figures need checking")
EXPIRE = DecisionRecord(decision="expired", by="wait_for_approval", reason="not approved by Mon 23 Nov 15:00")
RECONCILED = ReconciledRecord()


def _sent(channel: str) -> Receipt:
    return Receipt(channel=channel, state="sent", attempted_at=NOW)


def _approved(**receipts: Receipt) -> WeekRecords:
    return WeekRecords(extracts_stored=True, reconciled=RECONCILED, render=RENDER, decision=APPROVE,
                       delivery_started=bool(receipts), receipts=receipts)


ALL_SENT = {ch: _sent(ch) for ch in ("email", "teams", "archive")}
AMBIGUOUS = Receipt(channel="email", state="attempted", error="ReadTimeout: timed out", ambiguous=True,
                    attempted_at=NOW - dt.timedelta(minutes=1))
IN_FLIGHT = Receipt(channel="email", state="attempted", attempted_at=NOW - dt.timedelta(seconds=5))
STOPPED = Receipt(channel="email", state="attempted", attempted_at=NOW - SEND_WINDOW - dt.timedelta(seconds=1))
FAILED = Receipt(channel="teams", state="failed", error="HTTPError: 404")
PARTIAL = Receipt(channel="email", state="partial", delivered_to=("cto@acme.example",),
                  refused=(("sarah@acme.example", "550 5.1.1 no such user"),))

CASES = [  # (records, run, the state)
    (WeekRecords(), Run.MAY_BE_RUNNING, WeekState.NOT_RUN),
    (WeekRecords(extracts_stored=True), Run.MAY_BE_RUNNING, WeekState.EXTRACTING),
    (WeekRecords(extracts_stored=True), Run.OVER, WeekState.FAILED_BEFORE_RECONCILE),
    (WeekRecords(), Run.OVER, WeekState.FAILED_BEFORE_RECONCILE),
    (WeekRecords(extracts_stored=True, reconciled=RECONCILED), Run.MAY_BE_RUNNING, WeekState.RENDERING),
    (WeekRecords(extracts_stored=True, reconciled=RECONCILED), Run.OVER, WeekState.RENDER_FAILED),
    (WeekRecords(reconciled=RECONCILED, render=RENDER), Run.MAY_BE_RUNNING, WeekState.AWAITING_REVIEW),
    (WeekRecords(reconciled=RECONCILED, render=RENDER), Run.OVER, WeekState.AWAITING_REVIEW),
    (_approved(), Run.MAY_BE_RUNNING, WeekState.APPROVED),
    (_approved(email=_sent("email")), Run.MAY_BE_RUNNING, WeekState.DELIVERING),
    (_approved(email=IN_FLIGHT), Run.MAY_BE_RUNNING, WeekState.DELIVERING),
    (WeekRecords(reconciled=RECONCILED, render=RENDER, decision=APPROVE, delivery_started=True),
     Run.MAY_BE_RUNNING, WeekState.DELIVERING),
    (_approved(**ALL_SENT), Run.MAY_BE_RUNNING, WeekState.DELIVERED),
    (_approved(**ALL_SENT), Run.OVER, WeekState.DELIVERED),
    (_approved(**{**ALL_SENT, "email": AMBIGUOUS}), Run.MAY_BE_RUNNING, WeekState.DELIVERY_UNCONFIRMED),
    (_approved(**{**ALL_SENT, "email": AMBIGUOUS}), Run.OVER, WeekState.DELIVERY_UNCONFIRMED),
    (_approved(**{**ALL_SENT, "email": STOPPED}), Run.MAY_BE_RUNNING, WeekState.DELIVERY_UNCONFIRMED),
    (_approved(**{**ALL_SENT, "email": IN_FLIGHT}), Run.OVER, WeekState.DELIVERY_UNCONFIRMED),
    (_approved(**{**ALL_SENT, "teams": FAILED}), Run.MAY_BE_RUNNING, WeekState.DELIVERY_FAILED),
    (_approved(**{**ALL_SENT, "email": PARTIAL}), Run.MAY_BE_RUNNING, WeekState.DELIVERY_FAILED),
    (_approved(email=_sent("email")), Run.OVER, WeekState.DELIVERY_FAILED),  # the run ended, two never sent
    (_approved(), Run.OVER, WeekState.DELIVERY_FAILED),
    (_approved(email=AMBIGUOUS, teams=FAILED), Run.OVER, WeekState.DELIVERY_FAILED),  # a failure outranks
    (WeekRecords(reconciled=RECONCILED, render=RENDER, decision=REJECT), Run.MAY_BE_RUNNING, WeekState.REJECTED),
    (WeekRecords(reconciled=RECONCILED, render=RENDER, decision=EXPIRE), Run.OVER, WeekState.EXPIRED),
    # an expired week stays expired, even with its render withdrawn by a later (killed) publish
    (WeekRecords(reconciled=RECONCILED, decision=EXPIRE), Run.MAY_BE_RUNNING, WeekState.EXPIRED),
    # data, no report, no run recorded, and the week too old for one to be at work on it
    (WeekRecords(extracts_stored=True, reconciled=RECONCILED, week_of=WEEK_OF - dt.timedelta(days=28)),
     Run.MAY_BE_RUNNING, WeekState.NOT_RENDERED),
]


@pytest.mark.parametrize(("records", "run", "expected"), CASES)
def test_each_state(records, run, expected):
    assert derive(records, run=run, now=NOW).state is expected


def test_the_cases_cover_every_state():
    assert {expected for _, _, expected in CASES} == set(WeekState)


def test_details_say_who_decided_why_and_what_each_channel_did():
    rejected = derive(WeekRecords(reconciled=RECONCILED, render=RENDER, decision=REJECT))
    assert rejected.reason == "backup figures need checking" and rejected.decision.by == "marcus"
    voided = derive(WeekRecords(reconciled=RECONCILED, render=RENDER, voided=APPROVE))
    assert voided.state is WeekState.AWAITING_REVIEW
    assert voided.reason == "the approve by priya was voided: the report changed after it"
    failed = derive(_approved(email=PARTIAL, teams=FAILED, archive=_sent("archive")), run=Run.OVER)
    assert [(c.channel, c.outcome) for c in failed.channels] == [
        ("email", Outcome.PARTIAL), ("teams", Outcome.FAILED), ("archive", Outcome.SENT)]
    assert [c.channel for c in failed.channels_not_sent()] == ["email", "teams"]
    assert PARTIAL.describe() == "partial: 1 of 2 recipients refused (sarah@acme.example: 550 5.1.1 no such user)"
    assert failed.reason == "email: partial; teams: failed"


def test_an_attempt_is_in_flight_only_without_an_error_within_the_send_window_while_the_run_may_go_on():
    def outcome(receipt, run=Run.MAY_BE_RUNNING, now=NOW):
        return derive(_approved(email=receipt), run=run, now=now).channels[0].outcome

    assert outcome(IN_FLIGHT) is Outcome.SENDING
    assert outcome(IN_FLIGHT, now=None) is Outcome.SENDING  # no clock: cannot tell, taken as in flight
    assert outcome(STOPPED) is Outcome.UNCONFIRMED
    assert outcome(AMBIGUOUS) is Outcome.UNCONFIRMED
    assert outcome(IN_FLIGHT, run=Run.OVER) is Outcome.UNCONFIRMED


def test_undecided_is_what_the_missed_approvals_list_names():
    assert {s for s in WeekState if s.undecided} == {
        WeekState.NOT_RUN, WeekState.EXTRACTING, WeekState.FAILED_BEFORE_RECONCILE, WeekState.RENDERING,
        WeekState.RENDER_FAILED, WeekState.NOT_RENDERED, WeekState.AWAITING_REVIEW}


# ---- the two presenters over one store ---------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    from msp_reports import run_record
    from msp_reports.reconcile import reconcile
    from msp_reports.store import ReportStore
    from tests.factories import snapshot
    from tests.factories import make_customer

    store = ReportStore(str(tmp_path / "store"))
    customer = make_customer()
    doc = reconcile(snapshot(WEEK_OF, customer="ACME"), None, customer.thresholds).model_dump(mode="json")
    store.write_json("ACME", WEEK_OF, "sections/uptime.zabbix.json", {"status": {"ok": True}})
    store.week("ACME", WEEK_OF).write_reconciled(doc)
    # as a run's extract records it (run.json): a run is at work on the week
    run_record.note_running(store, "ACME", WEEK_OF, "scheduled__2026-11-23", dt.datetime.now(dt.timezone.utc))
    return store, customer


def _publish(store) -> None:
    from msp_reports.store import sha256

    pdf = b"%PDF approved"
    snapshot = store.week("ACME", WEEK_OF).snapshot_bytes() or b""
    store.publish("ACME", WEEK_OF, {"report.pdf": pdf}, "render.json",
                  {"pdf_sha256": sha256(pdf), "snapshot_sha256": sha256(snapshot), "commentary_sha256": sha256(b"")})


def _publish_and_approve(store) -> dict:
    from msp_reports import approval

    _publish(store)
    return approval.record_decision(store, "ACME", WEEK_OF, "approve", by="priya", via="review-page",
                                    now=dt.datetime.now(dt.timezone.utc))


def _both(store, customer) -> tuple[dict, dict]:
    from msp_reports.pipeline import customer_status
    from msp_reports.review.status import review_state

    return customer_status(store, customer, WEEK_OF), review_state(store, "ACME", WEEK_OF)


def test_no_render_json_is_render_failed_after_the_run_and_rendering_while_it_may_go_on(store):
    """Former disagreement 1: nothing marks a failed render, so what the caller knows of the run
    decides: the roll-up (after every task) says "render failed", the page "rendering"."""
    store, customer = store
    rollup, page = _both(store, customer)
    assert rollup["week_state"] is WeekState.RENDER_FAILED and rollup["state"] == "render failed"
    assert page["week_state"] is WeekState.RENDERING and page["state"] == "rendering"
    # the moment a version is published both agree
    _publish(store)
    rollup, page = _both(store, customer)
    assert rollup["week_state"] is page["week_state"] is WeekState.AWAITING_REVIEW
    assert rollup["state"] == page["state"] == "awaiting review"


def test_an_attempted_receipt_is_delivery_unconfirmed_in_both_neither_failed_nor_not_delivered(store):
    """Former disagreement 2: the page said "failed", the roll-up "approved; not delivered"."""
    from msp_reports.delivery.ledger import Ledger

    store, customer = store
    record = _publish_and_approve(store)
    ledger = Ledger(store, "ACME", WEEK_OF)
    for ch in ("email", "archive"):
        ledger._write(ch, {"channel": ch, "state": "sent", "pdf_sha256": record["pdf_sha256"]})
    ledger._write("teams", {"channel": "teams", "state": "attempted", "pdf_sha256": record["pdf_sha256"],
                            "attempted_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                            "error": "ReadTimeout: read timed out",
                            "ambiguous_at": dt.datetime.now(dt.timezone.utc).isoformat()})
    rollup, page = _both(store, customer)
    assert rollup["week_state"] is page["week_state"] is WeekState.DELIVERY_UNCONFIRMED
    assert page["state"] == "delivery unconfirmed"
    assert rollup["state"].startswith("approved; delivery unconfirmed on teams (outcome unknown")
    for words in (rollup["state"], page["state"]):
        assert "failed" not in words and "not delivered" not in words
    # a failure that is known is still called one
    ledger._write("teams", {"channel": "teams", "state": "failed", "pdf_sha256": record["pdf_sha256"],
                            "error": "HTTPError: 404"})
    rollup, page = _both(store, customer)
    assert rollup["week_state"] is page["week_state"] is WeekState.DELIVERY_FAILED
    assert rollup["state"] == "approved; not delivered on teams (failed)" and page["state"] == "failed"


def test_both_presenters_read_flags_and_unavailable_domains_alike(store):
    store, customer = store
    rollup, page = _both(store, customer)
    assert rollup["flags"] == page["flags"] and rollup["unavailable"] == page["unavailable"]


# ---- what the run recorded (run.json): the page and the run never disagree ----------------------
def test_a_run_that_ended_makes_the_week_over_and_not_actionable():
    """Deliveries skipped after a rejection: the run is over, whatever the caller assumed."""
    from msp_reports.state import RunRecord

    ended = RunRecord(run="manual__1", phase="ended", outcome="rejected", reason="check backups")
    status = derive(WeekRecords(reconciled=RECONCILED, render=RENDER, decision=REJECT, run=ended),
                    run=Run.MAY_BE_RUNNING, now=NOW)
    assert status.state is WeekState.REJECTED and not status.actionable and status.run_ended == ended
    assert "deliveries skipped in run manual__1" in ended.way_forward() and "re-run" in ended.way_forward()
    # the same records while a run waits: a decision can still be acted on
    waiting = RunRecord(run="manual__2", phase="waiting", since=NOW.isoformat())
    assert derive(WeekRecords(reconciled=RECONCILED, render=RENDER, decision=REJECT, run=waiting),
                  now=NOW).actionable


def test_an_earlier_week_without_a_render_is_not_rendering():
    """Sections and a reconciled week but no render.json, in a week no run can still be at work on."""
    from msp_reports.state import NO_RUN_AFTER, RunRecord

    long_after = dt.datetime.combine(WEEK_OF + dt.timedelta(days=7), dt.time(), tzinfo=dt.timezone.utc) + NO_RUN_AFTER
    later = long_after + dt.timedelta(hours=1)
    reconciled = WeekRecords(extracts_stored=True, reconciled=RECONCILED, week_of=WEEK_OF)
    # no run recorded (seeded history, or stored before run.json was kept): nothing is at work on it
    assert derive(reconciled, now=later).state is WeekState.NOT_RENDERED
    assert derive(WeekRecords(extracts_stored=True, week_of=WEEK_OF), now=later).state is WeekState.NOT_RENDERED
    assert derive(WeekRecords(week_of=WEEK_OF), now=later).state is WeekState.NOT_RUN  # nothing stored at all
    assert derive(reconciled, run=Run.OVER, now=later).state is WeekState.RENDER_FAILED  # the roll-up's own run
    # this week, or a run recorded as still going on an old week: it may still be rendering
    assert derive(reconciled, now=long_after - dt.timedelta(days=3)).state is WeekState.RENDERING
    running = WeekRecords(extracts_stored=True, reconciled=RECONCILED, week_of=WEEK_OF,
                          run=RunRecord(run="manual__3", phase="running"))
    assert derive(running, now=later).state is WeekState.RENDERING
    ended = WeekRecords(extracts_stored=True, reconciled=RECONCILED, week_of=WEEK_OF,
                        run=RunRecord(run="manual__3", phase="ended", outcome="ended", reason="render failed"))
    assert derive(ended, now=NOW).state is WeekState.RENDER_FAILED

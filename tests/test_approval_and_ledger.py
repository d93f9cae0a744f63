import datetime as dt
import json

import pytest

from msp_reports import approval
from msp_reports.delivery.ledger import Ledger
from msp_reports.exceptions import ApprovalError, DeliveryError
from msp_reports.store import ReportStore, sha256

WEEK = dt.date(2026, 11, 16)
UTC = dt.timezone.utc
AFTER_NINE = dt.datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
NINE = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = ReportStore(str(tmp_path / "store"))
    _render(s, b"%PDF-1 version one")
    poll(s, None, now=NINE - dt.timedelta(hours=3))  # the sensor is waiting before anyone decides
    return s


def _render(store, pdf: bytes):
    store.write_bytes("ACME", WEEK, "report.pdf", pdf)
    store.write_json("ACME", WEEK, "render.json", {"pdf_sha256": sha256(pdf)})


def poll(store, raw, now=AFTER_NINE):
    return approval.poll(store, "ACME", WEEK, raw, now=now, not_before=NINE)


def test_no_decision_waits(store):
    assert poll(store, None)[0] == "awaiting_review"


def test_approve_records_who_and_which_pdf_and_binds_delivery(store):
    state, record, new_value = poll(store, '{"decision": "approve", "by": "priya"}')
    assert state == "approved" and record["by"] == "unknown (Airflow Variable)"
    assert record["note"] == "named in the Variable, not verified: priya"
    assert record["pdf_sha256"] == sha256(b"%PDF-1 version one")
    # the Variable now holds the record; polling it again adds no second record
    assert poll(store, new_value)[0] == "approved"
    assert len(store.records("ACME", WEEK, "approvals")) == 1
    pdf, rec = approval.approved_pdf(store, "ACME", WEEK)
    assert pdf == b"%PDF-1 version one"


def test_before_nine_an_approval_waits_for_send_time(store):
    assert poll(store, "approve", now=NINE - dt.timedelta(minutes=1))[0] == "approved_waiting_for_send_time"


def test_rerender_after_approval_voids_it(store):
    _, _, recorded = poll(store, "approve")
    _render(store, b"%PDF-1 version two, new commentary")
    assert poll(store, recorded)[0] == "awaiting_review"
    with pytest.raises(ApprovalError, match="changed after approval"):
        approval.approved_pdf(store, "ACME", WEEK)


def test_approval_pinned_to_another_pdf_is_refused(store):
    state, _, note = poll(store, "approve 00000000")
    assert state == "awaiting_review" and "names PDF 00000000" in json.loads(note)["error"]
    assert store.records("ACME", WEEK, "approvals") == []
    assert poll(store, f"approve {sha256(b'%PDF-1 version one')[:10]}")[0] == "approved"


def test_reject_needs_reason_and_is_recorded(store):
    state, _, note = poll(store, "reject")
    assert state == "awaiting_review" and "say why" in json.loads(note)["error"]
    state, record, _ = poll(store, "reject backup numbers need checking")
    assert state == "rejected" and record["reason"] == "backup numbers need checking"
    with pytest.raises(ApprovalError, match="not approved"):
        approval.approved_pdf(store, "ACME", WEEK)


def test_garbage_variable_names_the_key(store):
    state, _, note = poll(store, "yes please")
    assert state == "awaiting_review"
    assert "weekly_report_approval__ACME__2026-11-16" in approval.variable_problem(store, "ACME", WEEK)["error"]
    assert json.loads(note)["refused"] == "yes please"


class FakeChannel:
    """A channel that counts sends; ``fail`` makes the next send raise before acceptance."""

    name = "email"

    def __init__(self, can_lookup=False):
        self.sent: list[str] = []
        self.fail = False
        self.can_lookup = can_lookup

    def send(self, key):
        if self.fail:
            raise ConnectionRefusedError("smtp down")
        self.sent.append(key)
        return {"remote_id": f"<{key}>"}

    def lookup(self, key):
        return {"remote_id": f"<{key}>"} if self.can_lookup and key in self.sent else None


def test_ledger_sends_once_and_skips_on_retry(store):
    ch, ledger = FakeChannel(), Ledger(store, "ACME", WEEK)
    first = ledger.send_once(ch, "a" * 64)
    again = ledger.send_once(ch, "a" * 64)
    assert len(ch.sent) == 1 and again["remote_id"] == first["remote_id"]


def test_ledger_failed_send_is_retried(store):
    ch, ledger = FakeChannel(), Ledger(store, "ACME", WEEK)
    ch.fail = True
    with pytest.raises(ConnectionRefusedError):
        ledger.send_once(ch, "a" * 64)
    assert ledger.receipt("email")["state"] == "failed"
    ch.fail = False
    assert ledger.send_once(ch, "a" * 64)["state"] == "sent" and len(ch.sent) == 1


def test_ledger_interrupted_send_is_not_guessed(store):
    ch, ledger = FakeChannel(), Ledger(store, "ACME", WEEK)
    # simulate a crash after 'attempted' was written and the channel accepted the message
    ledger.send_once(ch, "a" * 64)
    rec = ledger.receipt("email")
    rec["state"] = "attempted"
    store.write_json("ACME", WEEK, "ledger/email.json", rec)
    with pytest.raises(DeliveryError, match="resend command"):
        ledger.send_once(ch, "a" * 64)
    assert len(ch.sent) == 1
    ch.can_lookup = True  # a channel that can look the message up settles it without sending
    assert ledger.send_once(ch, "a" * 64)["state"] == "sent" and len(ch.sent) == 1


def test_ledger_refuses_other_pdf_unless_resend(store):
    ch, ledger = FakeChannel(), Ledger(store, "ACME", WEEK)
    ledger.send_once(ch, "a" * 64)
    with pytest.raises(DeliveryError, match="different PDF"):
        ledger.send_once(ch, "b" * 64)
    rec = ledger.send_once(ch, "b" * 64, resend=True)
    assert rec["resends"] == 1 and len(ch.sent) == 2 and ch.sent[0] != ch.sent[1]
    assert [h["state"] for h in rec["history"]] == ["sent", "sent"]


def test_store_writes_are_atomic_and_records_append(store, tmp_path):
    store.append_record("ACME", WEEK, "approvals", {"n": 1})
    store.append_record("ACME", WEEK, "approvals", {"n": 2})
    assert [r["n"] for r in store.records("ACME", WEEK, "approvals")] == [1, 2]
    leftovers = [p for p in (tmp_path / "store").rglob("*.tmp")]
    assert leftovers == []
    assert json.loads((tmp_path / "store/ACME/2026-11-16/approvals/0002.json").read_text()) == {"n": 2}

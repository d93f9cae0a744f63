"""A recipient the SMTP server refuses (``550`` to the CTO, ``250`` to the account owner) is not a
delivery: the receipt says ``partial``, names who was refused and why, the task fails and the
roll-up says so. The retry sends to the refused recipients only: whoever already has the report
never gets it twice, whatever the retry, the resend command or an interrupted retry does.

Against a real SMTP server (aiosmtpd) that answers ``RCPT TO`` per address."""

from __future__ import annotations

import socket

import pytest

from tests.factories import WEEK_OF
from tests.delivery.conftest import MSP_SENDER

CTO = "sarah.whitfield@acme.example"
OWNER = "marcus.bell@northwind-msp.example"
BOUNCE = "550 5.1.1 <sarah.whitfield@acme.example>: mailbox unavailable | quota"  # server text: untrusted
LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}


@pytest.fixture
def mailbox(tmp_path, use_connection):
    """A real SMTP server that refuses the addresses in ``mailbox.refuse`` at ``RCPT TO``."""
    from devtools.simulators.mailsink import MailSink

    with MailSink(tmp_path / "outbox") as sink:
        sink.refuse = {}  # address -> the SMTP reply; change it to "fix" a mailbox
        sink.rcpt_log = []  # every RCPT TO the server was asked, in order

        async def handle_rcpt(server, session, envelope, address, rcpt_options):
            sink.rcpt_log.append(address)
            if address in sink.refuse:
                return sink.refuse[address]
            envelope.rcpt_tos.append(address)
            return "250 OK"

        sink.handler.handle_RCPT = handle_rcpt
        use_connection("smtp_refusing", sink.connection(MSP_SENDER))
        yield sink


def _received(sink) -> dict[str, list[str]]:
    """Envelope recipient -> the Message-IDs it received."""
    got: dict[str, list[str]] = {}
    for m in sink.messages():
        for rcpt in m["X-Envelope-To"].split(", "):
            got.setdefault(rcpt, []).append(m["Message-ID"])
    return got


def _case(make_case):
    return make_case({"email": {"via": "smtp", "conn_id": "smtp_refusing"}, "teams": WEBHOOK, "archive": LOCAL})


def test_a_refused_cto_is_a_partial_delivery_shown_in_the_rollup_and_the_retry_sends_only_to_the_cto(
        make_case, mailbox):
    from msp_reports import pipeline
    from msp_reports.exceptions import RecipientsRefused
    from msp_reports.registry import load_registry
    from msp_reports.rollup import rollup_markdown
    from msp_reports.store import ReportStore

    case = _case(make_case)
    mailbox.refuse[CTO] = BOUNCE
    with pytest.raises(RecipientsRefused, match=r"ACME .*email: .*sarah\.whitfield@acme\.example.*550"):
        case.deliver("email")
    receipt = case.receipt("email")
    assert receipt["state"] == "partial"
    assert receipt["delivered_to"] == [OWNER]
    assert receipt["refused"] == {CTO: BOUNCE}
    assert _received(mailbox) == {OWNER: [f"<{receipt['idempotency_key']}@northwind-msp.example>"]}

    # the roll-up: not delivered, and it says who was refused
    status = pipeline.customer_status(ReportStore(case.settings.store_root), case.customer, WEEK_OF)
    assert status["state"] != "delivered"
    assert "email (partial: 1 of 2 recipients refused (sarah.whitfield@acme.example: 550" in status["state"]
    assert status["deliveries"]["email"].startswith("partial: 1 of 2 recipients refused")
    msp = load_registry(case.settings.registry_path).msp
    table = rollup_markdown(msp, WEEK_OF, [status])
    assert "0 of 1 customer reports delivered" in table
    [row] = [line for line in table.splitlines() if line.startswith("| ACME |")]
    assert "❌" in row and len(row.split(" | ")) == 7  # the server's "|" is escaped, not a column
    assert row.split(" | ")[3].startswith("partial: 1 of 2 recipients refused (sarah.whitfield@acme.example: 550")
    actions = table.split("## Actions this week")[1]
    assert "ACME: report approved; not delivered on email (partial: 1 of 2 recipients refused" in actions

    # the task's retry while the mailbox still bounces: one RCPT, for the CTO; the owner gets nothing
    mailbox.rcpt_log.clear()
    with pytest.raises(RecipientsRefused):
        case.deliver("email")
    assert mailbox.rcpt_log == [CTO]
    assert case.receipt("email")["state"] == "partial"
    assert case.receipt("email")["delivered_to"] == [OWNER]

    # the mailbox is fixed: the next retry delivers to the CTO alone, with the same Message-ID
    mailbox.refuse.clear()
    mailbox.rcpt_log.clear()
    done = case.deliver("email")
    assert done["state"] == "sent"
    assert mailbox.rcpt_log == [CTO]
    received = _received(mailbox)
    assert {k: len(v) for k, v in received.items()} == {OWNER: 1, CTO: 1}
    assert received[OWNER] == received[CTO]
    final = case.receipt("email")
    assert final["delivered_to"] == sorted([CTO, OWNER]) and "refused" not in final
    assert [h["state"] for h in final["history"]] == ["partial", "partial", "sent"]

    mailbox.rcpt_log.clear()
    case.deliver("email")  # and once more: nothing
    assert mailbox.rcpt_log == []


def test_every_recipient_refused_is_a_failure_and_the_retry_sends_to_both_once(make_case, mailbox):
    from msp_reports.exceptions import RecipientsRefused

    case = _case(make_case)
    mailbox.refuse.update({CTO: BOUNCE, OWNER: "550 5.1.1 no such user"})
    with pytest.raises(RecipientsRefused, match="2 of 2 recipients refused"):
        case.deliver("email")
    receipt = case.receipt("email")
    assert receipt["state"] == "failed" and receipt["delivered_to"] == []
    assert set(receipt["refused"]) == {CTO, OWNER}
    assert mailbox.messages() == []
    mailbox.refuse.clear()
    assert case.deliver("email")["state"] == "sent"
    assert {k: len(v) for k, v in _received(mailbox).items()} == {OWNER: 1, CTO: 1}


def test_an_interrupted_retry_after_a_partial_stops_and_the_resend_goes_to_the_cto_only(
        make_case, mailbox, use_connection):
    """The retry to the CTO dies mid-send: SMTP cannot say whether it went, so the next retry stops
    for a person; the resend command then still leaves out the owner, who has the report."""
    from msp_reports.exceptions import DeliveryStateUnknown, RecipientsRefused
    from msp_reports.resend import resend

    case = _case(make_case)
    mailbox.refuse[CTO] = BOUNCE
    with pytest.raises(RecipientsRefused):
        case.deliver("email")
    with socket.socket() as tarpit:  # accepts the connection, never greets: the retry times out
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(8)
        use_connection("smtp_refusing", {"conn_type": "smtp", "host": "127.0.0.1", "port": tarpit.getsockname()[1],
                                         "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0,
                                                   "timeout": 1, "from_email": MSP_SENDER}})
        with pytest.raises(Exception) as interrupted:
            case.deliver("email")
        assert not isinstance(interrupted.value, RecipientsRefused)
    receipt = case.receipt("email")
    assert receipt["state"] == "attempted" and receipt["delivered_to"] == [OWNER]
    use_connection("smtp_refusing", mailbox.connection(MSP_SENDER))
    mailbox.refuse.clear()
    with pytest.raises(DeliveryStateUnknown):
        case.deliver("email")
    out = resend("ACME", WEEK_OF, "email", reason="CTO mailbox fixed", by="priya", settings=case.settings)
    assert out["state"] == "sent"
    received = _received(mailbox)
    assert {k: len(v) for k, v in received.items()} == {OWNER: 1, CTO: 1}
    assert received[CTO][0].endswith(".resend1@northwind-msp.example>")


def test_a_resend_of_a_complete_delivery_still_goes_to_everyone(make_case, mailbox):
    from msp_reports.resend import resend

    case = _case(make_case)
    assert case.deliver("email")["state"] == "sent"
    resend("ACME", WEEK_OF, "email", reason="the CTO lost it", by="priya", settings=case.settings)
    assert {k: len(v) for k, v in _received(mailbox).items()} == {OWNER: 2, CTO: 2}

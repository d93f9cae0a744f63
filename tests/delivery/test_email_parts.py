"""The customer email on every path: the cover note as text/plain and text/html, the PDF as
application/pdf; the demo's SMTP sink names each message by customer and week."""

from __future__ import annotations

import email
import email.policy

from tests.delivery.conftest import MSP_SENDER
from tests.factories import WEEK_OF

LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}


def _parts(msg: email.message.EmailMessage) -> tuple[str, str, email.message.EmailMessage]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    [pdf] = list(msg.iter_attachments())
    return text.get_content(), html.get_content(), pdf


def test_smtp_sends_plain_text_and_html_and_the_pdf_as_application_pdf(tmp_path, make_case, use_connection):
    from devtools.simulators.mailsink import MailSink

    with MailSink(tmp_path / "outbox") as sink:
        use_connection("smtp_parts", sink.connection(MSP_SENDER))
        case = make_case({"email": {"via": "smtp", "conn_id": "smtp_parts"}, "teams": WEBHOOK, "archive": LOCAL})
        case.deliver("email")
        [path] = sorted(sink.folder.glob("*.eml"))
        assert path.name == f"ACME-{WEEK_OF}-0001.eml"  # by customer and week, not by a counter alone
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    text, html, pdf = _parts(msg)
    assert case.customer.cto.name in text and "<p>" not in text and "<p>" in html
    assert pdf.get_content_type() == "application/pdf" and pdf.get_content() == case.pdf
    key = case.receipt("email")["idempotency_key"]
    assert msg["Message-ID"] == f"<{key}@northwind-msp.example>"


def test_plain_text_says_the_cover_notes_words():
    from msp_reports.delivery.email import cover_note, plain_text

    html = cover_note("Acme <Ltd>", "Sarah", "16 Nov 2026 – 22 Nov 2026", ["Uptime fell.", "A & B."], "Priya",
                      "Northwind", "Line one\nline two\n\nSecond paragraph.")
    text = plain_text(html)
    assert "Dear Sarah," in text and "Acme <Ltd>'s executive IT report" in text
    assert "- Uptime fell.\n- A & B." in text
    assert "Line one\nline two\n\nSecond paragraph." in text
    assert "<" not in text.replace("<Ltd>", "")


def test_mailsink_never_overwrites_and_numbers_per_customer(tmp_path):
    import smtplib

    from devtools.simulators.mailsink import MailSink

    def message(code: str) -> bytes:
        return (f"From: a@x.example\r\nTo: b@x.example\r\nSubject: s\r\n"
                f"X-Idempotency-Key: weekly-report.{code}.{WEEK_OF}.email.abcdef\r\n\r\nbody\r\n").encode()

    with MailSink(tmp_path) as first:
        with smtplib.SMTP("127.0.0.1", first.port) as client:
            for code in ("ACME", "BRVO", "ACME"):
                client.sendmail("a@x.example", ["b@x.example"], message(code))
            client.sendmail("a@x.example", ["b@x.example"], b"Subject: other\r\n\r\nhi\r\n")
    with MailSink(tmp_path) as second:  # a second sink on the same folder moves the number on
        with smtplib.SMTP("127.0.0.1", second.port) as client:
            client.sendmail("a@x.example", ["b@x.example"], message("ACME"))
    assert sorted(p.name for p in tmp_path.glob("*.eml")) == [
        f"ACME-{WEEK_OF}-0001.eml", f"ACME-{WEEK_OF}-0002.eml", f"ACME-{WEEK_OF}-0003.eml",
        f"BRVO-{WEEK_OF}-0001.eml", "message-0001.eml"]

"""The customer email: the approved PDF attached, a short cover note, to the CTO and account owner.

Sent through Airflow's SMTP provider (``SmtpHook`` on an Airflow connection). The message
carries a deterministic ``Message-ID`` built from the idempotency key, so mail systems (and
people) can recognise a resend of the same report.

``SmtpHook`` repeats ``sendmail`` up to the connection's ``retry_limit`` (default 5) after any
error, including one raised after the server accepted the message, which would send it twice.
So the channel sends through :class:`SendOnceSmtpHook`, which ignores ``retry_limit``: one
``sendmail`` per attempt, whatever the connection says. Retries belong to the ledger and the
task's retries, which know what was sent.

Gmail (or Google Workspace) over SMTP is this same channel with the documented submission
settings: host ``smtp.gmail.com``, port 587, STARTTLS (extras ``"disable_tls": false,
"disable_ssl": true``: SSL-on-connect is port 465), login = the mailbox, password = an app
password (or the Workspace SMTP relay), ``"retry_limit": 0``. SMTP cannot be asked afterwards
whether a message went, so an interrupted send stops with ``DeliveryStateUnknown``; the Gmail
API channel (:mod:`.google`) can look it up instead.
"""

from __future__ import annotations

import email.utils
import functools
import html
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

SMTP_SUBMISSION_EXTRAS = {"disable_ssl": True, "disable_tls": False, "retry_limit": 0, "timeout": 30}


@dataclass
class ReportEmail:
    """The customer email, whatever carries it (SMTP, the Gmail API, Microsoft Graph).

    :param conn_id: the Airflow connection of the carrier.
    :param sender: the mailbox the reports come from.
    :param domain: the right-hand side of the deterministic ``Message-ID``.
    """

    conn_id: str
    sender: str
    to: list[str]
    subject: str
    cover_html: str
    pdf: bytes
    filename: str
    domain: str = "weekly-report.invalid"
    name: str = "email"

    def message_id(self, idempotency_key: str) -> str:
        return f"<{idempotency_key}@{self.domain}>"


@functools.cache
def _send_once_hook_class() -> type:
    """``SmtpHook`` with ``retry_limit`` 0: a refused or dropped ``sendmail`` is not repeated.
    Built on first use, so importing this module does not import the SMTP provider."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    class SendOnceSmtpHook(SmtpHook):
        @property
        def smtp_retry_limit(self) -> int:
            return 0

    return SendOnceSmtpHook


@dataclass
class EmailChannel(ReportEmail):
    """Over SMTP: ``conn_id`` is the Airflow SMTP connection."""

    def send(self, idempotency_key: str) -> dict:
        message_id = self.message_id(idempotency_key)
        with tempfile.TemporaryDirectory() as tmp:
            attachment = Path(tmp) / self.filename
            attachment.write_bytes(self.pdf)
            with _send_once_hook_class()(smtp_conn_id=self.conn_id) as hook:
                hook.send_email_smtp(
                    to=self.to, subject=self.subject, html_content=self.cover_html,
                    from_email=self.sender, files=[str(attachment)],
                    custom_headers={"Message-ID": message_id, "X-Idempotency-Key": idempotency_key},
                )
        return {"remote_id": message_id, "to": self.to, "attachment": self.filename, "via": "smtp"}

    def lookup(self, idempotency_key: str) -> dict | None:
        return None  # SMTP cannot tell us what a server already accepted


def report_message(sender: str, to: list[str], subject: str, cover_html: str, pdf: bytes, filename: str,
                   message_id: str, idempotency_key: str) -> EmailMessage:
    """The RFC 822 message for APIs that take one whole (Gmail ``raw``): HTML cover, PDF attached."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    msg["X-Idempotency-Key"] = idempotency_key
    msg.set_content(cover_html, subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    return msg


def cover_note(customer_name: str, contact_name: str, week_label: str, summary: list[str],
               engineer: str, msp_name: str) -> str:
    """A short HTML cover note; every value is escaped."""
    e = html.escape
    first = summary[:3]
    items = "".join(f"<li>{e(s)}</li>" for s in first)
    return (
        f"<p>Dear {e(contact_name)},</p>"
        f"<p>Please find attached {e(customer_name)}'s executive IT report for the week {e(week_label)}.</p>"
        + (f"<p>The headlines:</p><ul>{items}</ul>" if items else "")
        + f"<p>{e(engineer)}, your account engineer, is happy to walk you through it.</p>"
        f"<p>Kind regards,<br>{e(msp_name)}</p>"
    )

"""The customer email: the approved PDF attached, a short cover note, to the CTO and account owner.

Sent through Airflow's SMTP provider (``SmtpHook`` on an Airflow connection). The message
carries a deterministic ``Message-ID`` built from the idempotency key, so mail systems (and
people) can recognise a resend of the same report.

``SmtpHook`` repeats ``sendmail`` up to the connection's ``retry_limit`` (default 5) after any
error, including one raised after the server accepted the message, which would send it twice.
So the channel sends through :class:`SendOnceSmtpHook`, which ignores ``retry_limit``: one
``sendmail`` per attempt, whatever the connection says. Retries belong to the ledger and the
task's retries, which know what was sent.

``sendmail`` accepts a message when the server takes at least one recipient and returns the
ones it refused (a ``550`` for the CTO, a ``250`` for the owner); ``SmtpHook`` drops that
answer. :class:`SendOnceSmtpHook` returns it and the channel raises :class:`RecipientsRefused`
naming who got the report and who did not: the ledger records a ``partial`` delivery, and its
retry goes to the refused recipients alone (:meth:`ReportEmail.excluding`).

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
import smtplib
import tempfile
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

from msp_reports.exceptions import RecipientsRefused

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

    def excluding(self, delivered: list[str]) -> ReportEmail:
        """The same email for the recipients who do not have it yet (the ledger's retry after a
        partial delivery: whoever already got the report never gets it twice)."""
        have = {a.casefold() for a in delivered}
        return replace(self, to=[a for a in self.to if a.casefold() not in have])


@functools.cache
def _send_once_hook_class() -> type:
    """``SmtpHook`` with ``retry_limit`` 0: a refused or dropped ``sendmail`` is not repeated.
    Built on first use, so importing this module does not import the SMTP provider."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    class SendOnceSmtpHook(SmtpHook):
        @property
        def smtp_retry_limit(self) -> int:
            return 0

        def send_email_smtp(self, *, to: list[str], subject: str, html_content: str, from_email: str,
                            files: list[str], custom_headers: dict[str, str]) -> dict[str, tuple[int, bytes]]:
            """One ``sendmail``; returns the recipients the server refused (all refused raises
            ``SMTPRecipientsRefused``), which ``SmtpHook.send_email_smtp`` discards."""
            msg = self._build_message(to=to, subject=subject, html_content=html_content, from_email=from_email,
                                      files=files, custom_headers=custom_headers)
            return self._smtp_client.sendmail(from_addr=msg["from_email"], to_addrs=msg["recipients"],
                                              msg=msg["mime_msg"].as_string())

    return SendOnceSmtpHook


def _replies(refused: dict[str, tuple[int, bytes]]) -> dict[str, str]:
    """``{address: "550 5.1.1 ..."}`` from ``sendmail``'s ``{address: (550, b"5.1.1 ...")}``."""
    return {a: f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}".strip()
            for a, (code, text) in refused.items()}


@dataclass
class EmailChannel(ReportEmail):
    """Over SMTP: ``conn_id`` is the Airflow SMTP connection."""

    def send(self, idempotency_key: str) -> dict:
        message_id = self.message_id(idempotency_key)
        with tempfile.TemporaryDirectory() as tmp:
            attachment = Path(tmp) / self.filename
            attachment.write_bytes(self.pdf)
            try:
                with _send_once_hook_class()(smtp_conn_id=self.conn_id) as hook:
                    refused = _replies(hook.send_email_smtp(
                        to=self.to, subject=self.subject, html_content=self.cover_html,
                        from_email=self.sender, files=[str(attachment)],
                        custom_headers={"Message-ID": message_id, "X-Idempotency-Key": idempotency_key},
                    ))
            except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused: nothing was sent
                refused = _replies(exc.recipients)
        delivered = [a for a in self.to if a not in refused]
        receipt = {"remote_id": message_id if delivered else None, "to": self.to, "delivered_to": delivered,
                   "attachment": self.filename, "via": "smtp"}
        if refused:
            raise RecipientsRefused(
                f"{len(refused)} of {len(self.to)} recipients refused by the mail server ("
                + "; ".join(f"{a}: {r}" for a, r in sorted(refused.items())) + ")",
                delivered=delivered, refused=refused, receipt=receipt)
        return receipt

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

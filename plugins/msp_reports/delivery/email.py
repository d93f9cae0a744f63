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

Every path that carries a whole message (SMTP, the Gmail API) sends the one built by
:func:`report_message`: the cover note as ``text/plain`` and ``text/html`` alternatives, the PDF
as ``application/pdf``. The plain text is derived from the approved HTML cover note
(:func:`plain_text`), so it says exactly the approved words.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import html
import smtplib
from dataclasses import dataclass, replace
from email.message import EmailMessage
from html.parser import HTMLParser

from msp_reports.exceptions import RecipientsRefused

#: how a message goes on the wire: CRLF line ends (smtplib adds them only to a str), and headers
#: folded only past RFC 5322's 998 characters, so a long Message-ID stays on its header's line
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)

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

        def send_message(self, message: EmailMessage, to: list[str]) -> dict[str, tuple[int, bytes]]:
            """One ``sendmail`` of a whole message (:func:`report_message`); returns the recipients the
            server refused (all refused raises ``SMTPRecipientsRefused``), which ``SmtpHook`` discards."""
            if not self._smtp_client:
                raise RuntimeError("SendOnceSmtpHook.send_message: use the hook as a context manager")
            return self._smtp_client.sendmail(from_addr=str(message["From"]), to_addrs=to,
                                              msg=message.as_bytes(policy=WIRE_POLICY))

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
        message = report_message(self.sender, self.to, self.subject, self.cover_html, self.pdf, self.filename,
                                 message_id, idempotency_key)
        try:
            with _send_once_hook_class()(smtp_conn_id=self.conn_id) as hook:
                refused = _replies(hook.send_message(message, self.to))
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
    """The RFC 822 message for SMTP and for APIs that take one whole (Gmail ``raw``).

    ``multipart/mixed``: the cover note as ``multipart/alternative`` (``text/plain`` first, then
    ``text/html``, as RFC 2046 orders them), then the PDF as ``application/pdf``.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    msg["X-Idempotency-Key"] = idempotency_key
    msg.set_content(plain_text(cover_html))
    msg.add_alternative(cover_html, subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    return msg


class _TextOfHtml(HTMLParser):
    """The words of a cover note: a paragraph per ``<p>``, a line per ``<br>``, ``- `` per list item."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("p", "ul", "ol"):
            self.out.append("\n\n")
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def plain_text(cover_html: str) -> str:
    """The ``text/plain`` alternative of an HTML cover note: the same words, no markup."""
    parser = _TextOfHtml()
    parser.feed(cover_html)
    parser.close()
    lines = [line.rstrip() for line in "".join(parser.out).strip().splitlines()]
    text, blank = [], False
    for line in lines:  # at most one blank line between paragraphs
        if line or not blank:
            text.append(line)
        blank = not line
    return "\n".join(text) + "\n"


def _commentary_html(commentary: str, engineer: str) -> str:
    """The engineer's commentary as escaped paragraphs (blank lines split them, line breaks kept)."""
    paragraphs = [p.strip() for p in commentary.replace("\r\n", "\n").split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    body = "".join(f"<p>{'<br>'.join(html.escape(line) for line in p.splitlines())}</p>" for p in paragraphs)
    return f"<p>A note from {html.escape(engineer)}, your account engineer:</p><blockquote>{body}</blockquote>"


def cover_note(customer_name: str, contact_name: str, week_label: str, summary: list[str],
               engineer: str, msp_name: str, commentary: str = "") -> str:
    """A short HTML cover note: the headlines, then the engineer's commentary if any; every value is escaped."""
    e = html.escape
    first = summary[:3]
    items = "".join(f"<li>{e(s)}</li>" for s in first)
    return (
        f"<p>Dear {e(contact_name)},</p>"
        f"<p>Please find attached {e(customer_name)}'s executive IT report for the week {e(week_label)}.</p>"
        + (f"<p>The headlines:</p><ul>{items}</ul>" if items else "")
        + _commentary_html(commentary, engineer)
        + f"<p>{e(engineer)}, your account engineer, is happy to walk you through it.</p>"
        f"<p>Kind regards,<br>{e(msp_name)}</p>"
    )

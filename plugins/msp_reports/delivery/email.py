"""The customer email: the approved PDF attached, a short cover note, to the CTO and account owner.

Sent through Airflow's SMTP provider (``SmtpHook`` on an Airflow connection). The message
carries a deterministic ``Message-ID`` built from the idempotency key, so mail systems (and
people) can recognise a resend of the same report.

Set ``retry_limit`` to 0 in the SMTP connection's extras: the hook otherwise repeats
``sendmail`` after any error, including one raised after the server accepted the message,
which would send it twice. Retries belong to the ledger, which knows what was sent.
"""

from __future__ import annotations

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class EmailChannel:
    """:param conn_id: the Airflow SMTP connection."""

    conn_id: str
    from_email: str
    to: list[str]
    subject: str
    cover_html: str
    pdf: bytes
    filename: str
    domain: str = "weekly-report.invalid"
    name: str = "email"

    def send(self, idempotency_key: str) -> dict:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        message_id = f"<{idempotency_key}@{self.domain}>"
        with tempfile.TemporaryDirectory() as tmp:
            attachment = Path(tmp) / self.filename
            attachment.write_bytes(self.pdf)
            with SmtpHook(smtp_conn_id=self.conn_id) as hook:
                hook.send_email_smtp(
                    to=self.to, subject=self.subject, html_content=self.cover_html,
                    from_email=self.from_email, files=[str(attachment)],
                    custom_headers={"Message-ID": message_id, "X-Idempotency-Key": idempotency_key},
                )
        return {"remote_id": message_id, "to": self.to, "attachment": self.filename}

    def lookup(self, idempotency_key: str) -> dict | None:
        return None  # SMTP cannot tell us what a server already accepted


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

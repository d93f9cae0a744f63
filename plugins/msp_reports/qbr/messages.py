"""What is sent with the QBR pack: the subject line, the email's cover note and the Teams card.

Built with the PDF, from the same figures, and returned by :func:`~msp_reports.qbr.pack.build_pack`
under the store's names (``subject.txt``, ``cover_note.html``, ``teams_card.json``), so an approval
can bind their hashes as it binds the weekly report's. Every value is escaped: HTML in the cover
note, Markdown in the card.
"""

from __future__ import annotations

import html
from typing import Any

from msp_reports.delivery.email import _commentary_html
from msp_reports.escaping import clean_text, escape_markdown
from msp_reports.qbr.figures import QuarterFigures
from msp_reports.qbr.markdown import NARRATIVE_LIMIT, glance_rows, headlines
from msp_reports.qbr.quarter import Quarter
from msp_reports.registry import Customer, Msp


def subject_line(customer: Customer, quarter: Quarter) -> str:
    return f"{clean_text(customer.name)}: quarterly business review, {quarter.label()}"


def pack_title(customer: Customer, quarter: Quarter) -> str:
    return f"{clean_text(customer.name)} — quarterly business review, {quarter.label()}"


def cover_note(customer: Customer, msp: Msp, fig: QuarterFigures, narrative: str) -> str:
    e = html.escape
    items = "".join(f"<li>{e(s)}</li>" for s in headlines(fig))
    return (f"<p>Dear {e(customer.cto.name)},</p>"
            f"<p>Please find attached {e(customer.name)}'s quarterly business review for {e(fig.quarter.label())}, "
            "built from the weekly reports you received.</p>"
            f"<p>The headlines:</p><ul>{items}</ul>"
            + _commentary_html(narrative[:NARRATIVE_LIMIT], customer.account_engineer.name)
            + f"<p>{e(customer.account_engineer.name)}, your account engineer, will walk you through it at the "
              "review meeting.</p>"
            f"<p>Kind regards,<br>{e(msp.name)}</p>")


def teams_card(customer: Customer, msp: Msp, fig: QuarterFigures) -> dict[str, Any]:
    def text(value: object, **extra: Any) -> dict[str, Any]:
        return {"type": "TextBlock", "text": escape_markdown(value), "wrap": True, **extra}

    facts = [{"title": row["label"], "value": str(row["value"])} for row in glance_rows(fig, None)]
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4",
            "body": [text(pack_title(customer, fig.quarter), size="Large", weight="Bolder"),
                     text(f"Prepared by {msp.name}", isSubtle=True, spacing="None"),
                     *(text(line) for line in headlines(fig)),
                     {"type": "FactSet", "facts": facts}]}

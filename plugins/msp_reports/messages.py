"""What the channels send besides the PDF: the email's subject line and cover note, the Teams card.

Built once, by the render task, from the same reconciled week as the PDF, and published beside
it in the same version (:func:`msp_reports.pipeline.render`); ``render.json`` holds their hashes
and an approval binds them (:data:`msp_reports.approval.ARTEFACTS`). Delivery reads these bytes
back, checks each against the approved hash and sends them (:func:`msp_reports.approval.approved_version`):
it never builds a message, so the words a customer gets are the words that were approved.

The subject line is one file for two channels: the email's ``Subject`` and the Teams post's
summary (a Graph channel message's subject, the notification preview) are the same words.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from msp_reports.reconcile import Reconciled
    from msp_reports.registry import Customer, Msp
    from msp_reports.week import ReportWeek

from msp_reports.store import COVER_NOTE, SUBJECT, TEAMS_CARD  # noqa: E402,F401 - the files, named by the store


def subject_line(customer: Customer, week: ReportWeek) -> str:
    return f"{customer.name}: weekly IT report, {week.label()}"


def card_bytes(card: dict[str, Any]) -> bytes:
    """The card's stored form: the same card always gives the same bytes (so the same hash)."""
    return json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")


def build(rec: Reconciled, customer: Customer, msp: Msp, week: ReportWeek, commentary: str = "") -> dict[str, bytes]:
    """The three message files of one render, by store name (render time only: this runs the renderer).

    ``commentary`` is the engineer's commentary the PDF carries (its hash is in ``render.json``):
    the cover note quotes it, so approving the report approves the note's words too.
    """
    from msp_reports.delivery.email import cover_note
    from msp_reports.render import executive_summary, teams_summary

    cover = cover_note(customer.name, customer.cto.name, week.label(), executive_summary(rec),
                       customer.account_engineer.name, msp.name, commentary)
    return {SUBJECT: subject_line(customer, week).encode("utf-8"), COVER_NOTE: cover.encode("utf-8"),
            TEAMS_CARD: card_bytes(teams_summary(rec, customer, msp))}


def subject_of(files: dict[str, bytes]) -> str:
    return files[SUBJECT].decode("utf-8")


def cover_of(files: dict[str, bytes]) -> str:
    return files[COVER_NOTE].decode("utf-8")


def card_of(files: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(files[TEAMS_CARD])

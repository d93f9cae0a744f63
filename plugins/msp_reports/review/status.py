"""Where each customer's report stands for the review page and the 09:00 missed-approvals list.

Read from the store alone: ``render.json`` (what is there to review), the approval records
(:mod:`msp_reports.approval`; a decision voided by a later change no longer counts) and the
delivery ledger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal
from zoneinfo import ZoneInfo

from msp_reports import approval
from msp_reports.delivery.ledger import Ledger
from msp_reports.registry import Customer, Msp
from msp_reports.store import ReportStore

ReviewState = Literal["not run", "rendering", "awaiting review", "approved", "rejected", "delivered", "failed",
                      "expired"]
CHANNELS = ("email", "teams", "archive")


def review_state(store: ReportStore, code: str, week_of: dt.date) -> dict:
    """One customer's week: state, the version on show, the decision in force, flags, receipts."""
    render = store.read_json(code, week_of, "render.json")
    reconciled = store.read_json(code, week_of, "reconciled.json")
    decision = approval.in_force(store, code, week_of)
    receipts = Ledger(store, code, week_of).receipts()
    state: ReviewState
    if render is None:  # in progress once the run has written anything for this customer and week
        state = "rendering" if store.list(code, week_of, "sections") or reconciled else "not run"
    elif decision is None:
        state = "awaiting review"
    elif decision["decision"] == "expired":
        state = "expired"
    elif decision["decision"] == "reject":
        state = "rejected"
    elif any(receipts.get(ch, {}).get("state") in ("failed", "attempted") for ch in CHANNELS):
        state = "failed"
    elif all(receipts.get(ch, {}).get("state") == "sent" for ch in CHANNELS):
        state = "delivered"
    else:
        state = "approved"
    flags = reconciled["flags"] if reconciled else []
    unavailable = [d for d, part in (reconciled or {}).get("snapshot", {}).items()
                   if isinstance(part, dict) and "status" in part and not part["status"]["ok"]]
    return {
        "customer": code, "week_of": week_of.isoformat(), "state": state, "render": render,
        "version": approval.reviewed_version(render) if render else None,
        "decision": decision, "voided": approval.voided(store, code, week_of),
        "history": store.records(code, week_of, "approvals"),
        "flags": flags, "unavailable": unavailable,
        "deliveries": {ch: receipts.get(ch, {}).get("state", "-") for ch in CHANNELS},
        # once any channel has been tried, what the customer gets is fixed: no edit, no new decision
        # (else one channel would carry one version and the next another)
        "delivery_started": approval.delivery_started(store, code, week_of),
        # a value in the approval Variable that the sensor refused (and is waiting past)
        "variable_problem": approval.variable_problem(store, code, week_of),
        "variable": approval.variable_key(code, week_of),
    }


def unapproved(store: ReportStore, customers: list[Customer], week_of: dt.date,
               variable: Callable[[str], str | None]) -> list[dict]:
    """Customers nobody has decided on yet at the send time (still rendering or awaiting review).

    A decision already in the Variable but not yet recorded by the sensor counts as decided;
    a rejection is a decision too (the roll-up names it).
    """
    rows = []
    for c in customers:
        st = review_state(store, c.code, week_of)
        if st["state"] not in ("not run", "rendering", "awaiting review"):
            continue
        if approval.pending_decision(store, c.code, week_of, variable(c.code)) is not None:
            continue
        rows.append({"customer": c.code, "name": c.name, "engineer": c.account_engineer.name,
                     "state": "awaiting review" if st["state"] == "awaiting review" else "rendering"})
    return rows


def missed_approvals_card(msp: Msp, week_of: dt.date, rows: list[dict], deadline: dt.datetime) -> dict:
    """The Adaptive Card for ``#weekly-reports`` naming who has not been approved at the send time."""
    from msp_reports.escaping import escape_markdown

    local = deadline.astimezone(ZoneInfo(msp.timezone))
    facts = [{"title": escape_markdown(r["customer"]),
              "value": escape_markdown(f"{r['state']} ({r['name']}; engineer {r['engineer']})")}
             for r in rows]
    return {
        "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "weight": "Bolder", "size": "Large",
             "text": f"Not approved at {msp.deliver_not_before}: week of {week_of}"},
            {"type": "TextBlock", "wrap": True,
             "text": f"{len(rows)} customer report(s) are not approved, so nothing has been sent to them. "
                     f"The wait ends at {local:%a %d %b %H:%M} ({msp.timezone}); after that the week "
                     "is marked expired and nothing is sent."},
            {"type": "FactSet", "facts": facts},
        ],
    }

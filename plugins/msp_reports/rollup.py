"""The internal roll-up for ``#weekly-reports``: one line per customer, key risks, actions.

Built from each customer's stored status (see :func:`msp_reports.pipeline.customer_status`),
so it reports what actually happened: rejected, failed, undelivered customers are named.
"""

from __future__ import annotations

import datetime as dt

from msp_reports.registry import Msp
from msp_reports.render import escape_markdown



def _state_icon(state: str) -> str:
    if state == "delivered":
        return "✅"
    if state.startswith("rejected"):
        return "⛔"
    if state.startswith("expired"):
        return "⌛"
    if state.startswith(("failed", "render failed")) or "not delivered" in state:
        return "❌"
    return "⏳"


def _decision(record: dict | None) -> str:
    """Who decided, when, how, on which PDF (the approval record in force), for the table."""
    if not record:
        return "-"
    when = str(record.get("recorded_at", ""))[:16].replace("T", " ")
    return escape_markdown(f"{record['decision']} by {record['by']} ({record.get('via', '?')}) {when} UTC, "
                           f"PDF {str(record.get('pdf_sha256') or '')[:12]}")


def _risks(statuses: list[dict]) -> list[str]:
    risks = []
    for s in statuses:
        for f in s["flags"]:
            if f["severity"] == "critical":
                risks.append(f"{s['customer']}: {f['message']}")
        for d in s["unavailable"]:
            risks.append(f"{s['customer']}: {d} data unavailable this week ({s['errors'].get(d) or 'no error recorded'})")
    return risks


def _actions(statuses: list[dict]) -> list[str]:
    actions = []
    for s in statuses:
        seen = set()
        for f in s["flags"]:
            if f["severity"] in ("critical", "warning") and f["recommendation"] not in seen:
                seen.add(f["recommendation"])
                actions.append(f"{s['customer']}: {f['recommendation']}")
        if s["state"] != "delivered":
            actions.append(f"{s['customer']}: report {s['state']}")
    return actions


def rollup_markdown(msp: Msp, week_of: dt.date | None, statuses: list[dict]) -> str:
    lines = [f"# Weekly reports: week of {week_of}", "",
             f"{sum(s['state'] == 'delivered' for s in statuses)} of {len(statuses)} customer reports delivered.", "",
             "| Customer | State | Flags | Email | Teams | Archive | Decision |", "|---|---|---|---|---|---|---|"]
    for s in statuses:
        d = s["deliveries"]
        flags = ", ".join(sorted({f["kind"] for f in s["flags"]})) or "none"
        lines.append(f"| {s['customer']} | {_state_icon(s['state'])} {escape_markdown(s['state'])} | {flags} | "
                     f"{d['email']} | {d['teams']} | {d['archive']} | {_decision(s.get('decision'))} |")
    lines += ["", "## Key risks", ""] + [f"- {escape_markdown(r, 600)}" for r in _risks(statuses) or ["None this week."]]
    lines += ["", "## Actions this week", ""] + [f"- {escape_markdown(a, 600)}" for a in _actions(statuses) or ["None."]]
    return "\n".join(lines) + "\n"


def rollup_card(msp: Msp, week_of: dt.date | None, statuses: list[dict]) -> dict:
    """The same facts as an Adaptive Card for the internal Teams channel."""
    facts = [{"title": s["customer"], "value": f"{_state_icon(s['state'])} {escape_markdown(s['state'])}"}
             for s in statuses]
    body = [
        {"type": "TextBlock", "text": f"Weekly reports: week of {week_of}", "weight": "Bolder", "size": "Large"},
        {"type": "TextBlock", "wrap": True,
         "text": f"{sum(s['state'] == 'delivered' for s in statuses)} of {len(statuses)} delivered."},
        {"type": "FactSet", "facts": facts},
        {"type": "TextBlock", "text": "Key risks", "weight": "Bolder"},
    ]
    # risks and actions quote source text (incident titles): escaped like every other rendering
    body += [{"type": "TextBlock", "text": escape_markdown(r, 600), "wrap": True}
             for r in _risks(statuses) or ["None this week."]]
    body += [{"type": "TextBlock", "text": "Actions this week", "weight": "Bolder"}]
    body += [{"type": "TextBlock", "text": escape_markdown(a, 600), "wrap": True}
             for a in _actions(statuses) or ["None."]]
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4", "body": body}

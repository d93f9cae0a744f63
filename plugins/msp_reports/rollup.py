"""The internal posts for ``#weekly-reports``: the roll-up (one line per customer, key risks,
actions) and, at the send time, the list of customers nobody has approved yet.

Built from each customer's stored state (:mod:`msp_reports.state`, worded for the roll-up by
:func:`msp_reports.pipeline.customer_status`), so it reports what actually happened: rejected,
failed, undelivered customers are named. The roll-up is the week's, not a run's: it covers
every customer of the week (:func:`msp_reports.pipeline.week_statuses`), and a changed one is
posted as an update of the week's (:func:`msp_reports.pipeline.rollup`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from zoneinfo import ZoneInfo

from msp_reports import approval
from msp_reports.delivery.ledger import CHANNELS
from msp_reports.escaping import escape_markdown
from msp_reports.registry import Customer, Msp
from msp_reports.state import Run, WeekState, derive
from msp_reports.store import ReportStore
from msp_reports.week_records import read_week

_ICONS = {WeekState.DELIVERED: "✅", WeekState.REJECTED: "⛔", WeekState.EXPIRED: "⌛",
          WeekState.FAILED_BEFORE_RECONCILE: "❌", WeekState.RENDER_FAILED: "❌", WeekState.DELIVERY_FAILED: "❌",
          WeekState.DELIVERY_UNCONFIRMED: "❓"}


def _state_icon(state: WeekState) -> str:
    return _ICONS.get(state, "⏳")


def _delivered(statuses: list[dict]) -> int:
    return sum(s["week_state"] is WeekState.DELIVERED for s in statuses)


def _decision(record: dict | None) -> str:
    """Who decided, when, how, on which PDF (the approval record in force), for the table."""
    if not record:
        return "-"
    when = str(record.get("recorded_at", ""))[:16].replace("T", " ")
    done = {"approve": "approved", "reject": "rejected"}.get(record["decision"], record["decision"])
    # "approved by demo (account engineer) via airflow-variable": the name may carry brackets itself
    return escape_markdown(f"{done} by {record['by']} via {record.get('via', '?')}, {when} UTC, "
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
        if s["week_state"] is not WeekState.DELIVERED:
            actions.append(f"{s['customer']}: report {s['state']}")
    return actions


def rollup_markdown(msp: Msp, week_of: dt.date | None, statuses: list[dict]) -> str:
    lines = [f"# Weekly reports: week of {week_of}", "",
             f"{_delivered(statuses)} of {len(statuses)} customer reports delivered.", "",
             "| Customer | State | Flags | Email | Teams | Archive | Decision |", "|---|---|---|---|---|---|---|"]
    for s in statuses:
        d = s["deliveries"]
        flags = ", ".join(sorted({f["kind"] for f in s["flags"]})) or "none"
        channels = " | ".join(escape_markdown(d[ch]) for ch in CHANNELS)  # carry server replies
        lines.append(f"| {s['customer']} | {_state_icon(s['week_state'])} {escape_markdown(s['state'])} | {flags} | "
                     f"{channels} | {_decision(s.get('decision'))} |")
    lines += ["", "## Key risks", ""] + [f"- {escape_markdown(r, 600)}" for r in _risks(statuses) or ["None this week."]]
    lines += ["", "## Actions this week", ""] + [f"- {escape_markdown(a, 600)}" for a in _actions(statuses) or ["None."]]
    return "\n".join(lines) + "\n"


# Teams refuses a message over about 28 KB. A card is kept to CARD_BYTES of JSON (non-ASCII
# escaped, as the webhook client sends it), which leaves room for the message envelope and for
# Graph, which carries the card as a JSON string inside the message (every quote escaped again).
CARD_BYTES = 20_000
CODES_PER_BLOCK = 80  # customer codes on one line of a state group or a count of the rest
QUOTED_LINES = 20  # risks (and actions) quoted in full; the rest are counted per customer


def card_bytes(card: dict) -> int:
    return len(json.dumps(card).encode())


def _bytes(block: dict) -> int:
    """What one more body element adds to :func:`card_bytes` (the element and its separator)."""
    return len(json.dumps(block).encode()) + 2


def _block(text: str, **style: object) -> dict:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _state_groups(statuses: list[dict]) -> list[dict]:
    """Every customer once, grouped by state: "⏳ awaiting review (37): ACME, BETA, …"; those that
    need attention first, delivered last. A long group takes several lines, never a cut list."""
    groups: dict[tuple[WeekState, str], list[str]] = {}
    for s in statuses:
        groups.setdefault((s["week_state"], s["state"]), []).append(s["customer"])
    order = sorted(groups, key=lambda key: (key[0] is WeekState.DELIVERED, key[1]))
    blocks = []
    for week_state, state in order:
        codes = groups[(week_state, state)]
        label = f"{_state_icon(week_state)} {escape_markdown(state, 600)} ({len(codes)})"
        blocks += _code_lines(label, [escape_markdown(c) for c in codes])
    return blocks


def _code_lines(lead: str, entries: list[str]) -> list[dict]:
    """``lead: A, B, C`` over as many lines as it takes (never a cut list)."""
    return [_block(f"{lead}{' continued' if start else ''}: {', '.join(entries[start:start + CODES_PER_BLOCK])}",
                   spacing="Small")
            for start in range(0, len(entries), CODES_PER_BLOCK)]


def _quoted_then_counted(lines: list[tuple[str, str]], noun: str, none: str) -> list[dict]:
    """The first :data:`QUOTED_LINES` of ``(customer, line)`` in full, then how many more each
    customer has: every customer with one is named, and rollup.md has every line."""
    if not lines:
        return [_block(none)]
    blocks = [_block(escape_markdown(line, 600)) for _, line in lines[:QUOTED_LINES]]
    rest = Counter(code for code, _ in lines[QUOTED_LINES:])
    if rest:
        lead = (f"… and {sum(rest.values()):,} more {noun} for {len(rest):,} "
                f"customer{'' if len(rest) == 1 else 's'}, all in the roll-up file (rollup.md)")
        blocks += _code_lines(escape_markdown(lead, 600), [f"{escape_markdown(c)} ({n})" for c, n in rest.items()])
    return blocks


def _card(title: str, subtitle: str, body: list[dict]) -> dict:
    return {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4", "body": [_block(title, weight="Bolder", size="Large"), _block(subtitle), *body]}


def rollup_cards(msp: Msp, week_of: dt.date | None, statuses: list[dict], *,
                 limit: int = CARD_BYTES, update: bool = False) -> list[dict]:
    """The roll-up as Adaptive Cards for the internal Teams channel, each at most ``limit`` bytes
    of JSON (Teams refuses bigger messages): every customer by state, the first risks and actions
    quoted and the others counted per customer, over as many posts as it takes ("part 2 of 3").
    ``update``: the week's roll-up was posted before with other content; the cards say this one
    replaces it (a webhook cannot edit the earlier message)."""
    delivered = _delivered(statuses)
    title = f"Weekly reports: week of {week_of}" + (" (updated)" if update else "")
    subtitle = f"{delivered} of {len(statuses)} delivered." + (
        " This replaces the earlier roll-up for the week." if update else "")
    # risks and actions quote source text (incident titles): escaped like every other rendering
    sections = [
        ("Customers", _state_groups(statuses)),
        ("Key risks", _quoted_then_counted([(s["customer"], r) for s in statuses for r in _risks([s])],
                                           "risks", "None this week.")),
        ("Actions this week", _quoted_then_counted([(s["customer"], a) for s in statuses for a in _actions([s])],
                                                   "actions", "None.")),
    ]
    # sized with the longest title a part can have, so numbering the parts cannot push one over
    room = limit - card_bytes(_card(f"{title} (part 9999 of 9999)", subtitle, []))
    parts: list[list[dict]] = [[]]
    used = 0
    for heading, blocks in sections:
        for n, block in enumerate(blocks):
            head = _block(heading + (" (continued)" if n else ""), weight="Bolder", separator=True)
            if parts[-1] and used + _bytes(block) + (_bytes(head) if n == 0 else 0) > room:
                parts.append([])
                used = 0
            if n == 0 or not parts[-1]:
                parts[-1].append(head)
                used += _bytes(head)
            parts[-1].append(block)
            used += _bytes(block)
    total = len(parts)
    return [_card(title if total == 1 else f"{title} (part {i} of {total})", subtitle, body)
            for i, body in enumerate(parts, 1)]


# ---- the 09:00 list of who has not been approved ------------------------------------------------
def _undecided_wording(state: WeekState) -> str:
    """The list's words: "awaiting review", or "rendering" for a week with no report yet (the run
    may still be at work on it), or the failure the state names."""
    if state is WeekState.AWAITING_REVIEW:
        return "awaiting review"
    if state in (WeekState.RENDER_FAILED, WeekState.FAILED_BEFORE_RECONCILE, WeekState.NOT_RENDERED):
        return state.value
    return {WeekState.NOT_RUN: "rendering (nothing stored yet)",
            WeekState.EXTRACTING: "rendering (extracting)"}.get(state, "rendering")


def unapproved(store: ReportStore, customers: list[Customer], week_of: dt.date,
               variable: Callable[[str], str | None]) -> list[dict]:
    """Customers nobody has decided on yet at the send time (:attr:`WeekState.undecided`).

    A decision already in the Variable but not yet recorded by the sensor counts as decided;
    a rejection is a decision too (the roll-up names it).
    """
    rows = []
    for c in customers:
        state = derive(read_week(store, c.code, week_of).records, run=Run.MAY_BE_RUNNING).state
        if not state.undecided:
            continue
        if approval.pending_decision(store, c.code, week_of, variable(c.code)) is not None:
            continue
        rows.append({"customer": c.code, "name": c.name, "engineer": c.account_engineer.name,
                     "state": _undecided_wording(state)})
    return rows


def missed_approvals_card(msp: Msp, week_of: dt.date, rows: list[dict], deadline: dt.datetime) -> dict:
    """The Adaptive Card for ``#weekly-reports`` naming who has not been approved at the send time."""
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

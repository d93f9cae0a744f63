"""The review page's wording of where each customer's week stands.

The state is derived once (:func:`msp_reports.state.derive`, from the records
:func:`msp_reports.week_records.read_week` reads); this module only words it for the page and
adds what the page shows beside it: the version on show, the decision history, the receipts,
the approval Variable. Whether the run is still going is what the run recorded (``run.json``,
:mod:`msp_reports.run_record`): a week whose run ended, or too old for any run to be at work on
it, reads "render failed" (or "not rendered": data and no run) rather than "rendering", and a
decision the run can no longer act on is shown as such (``closed``: what the run did and the way forward),
with nothing to decide or edit until the week is run again.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from msp_reports import approval
from msp_reports.delivery.ledger import CHANNELS
from msp_reports.state import Run, WeekState, derive
from msp_reports.store import ReportStore
from msp_reports.week_records import read_week

ReviewState = Literal["not run", "extracting", "rendering", "failed before reconcile", "render failed", "not rendered",
                      "awaiting review", "approved",
                      "delivering", "delivered", "delivery unconfirmed", "failed", "rejected", "expired"]
WORDS: dict[WeekState, ReviewState] = {
    WeekState.NOT_RUN: "not run",
    WeekState.EXTRACTING: "extracting",
    WeekState.FAILED_BEFORE_RECONCILE: "failed before reconcile",
    WeekState.RENDERING: "rendering",
    WeekState.RENDER_FAILED: "render failed",
    WeekState.NOT_RENDERED: "not rendered",
    WeekState.AWAITING_REVIEW: "awaiting review",
    WeekState.APPROVED: "approved",
    WeekState.DELIVERING: "delivering",
    WeekState.DELIVERED: "delivered",
    WeekState.DELIVERY_UNCONFIRMED: "delivery unconfirmed",
    WeekState.DELIVERY_FAILED: "failed",
    WeekState.REJECTED: "rejected",
    WeekState.EXPIRED: "expired",
}


def flag_chips(flags: list[dict]) -> list[dict]:
    """One chip per kind of flag (a kind may be raised several times, e.g. one ticket trend per
    priority): the worst severity, every message in the title, and how many."""
    order = {"critical": 0, "warning": 1}
    chips: dict[str, dict] = {}
    for f in flags:
        chip = chips.setdefault(f["kind"], {"kind": f["kind"], "severity": f["severity"], "messages": [], "count": 0})
        if order.get(f["severity"], 2) < order.get(chip["severity"], 2):
            chip["severity"] = f["severity"]
        chip["messages"].append(str(f.get("message") or ""))
        chip["count"] += 1
    return [{**c, "message": "; ".join(m for m in c["messages"] if m)} for c in chips.values()]


def human_duration(span: dt.timedelta) -> str:
    """``2 days``, ``1 day 6 hours``, ``90 minutes`` -> ``1 hour 30 minutes``; never ``2 days, 0:00:00``."""
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return " ".join(parts) or "0 minutes"


def review_state(store: ReportStore, code: str, week_of: dt.date, *, now: dt.datetime | None = None) -> dict:
    """One customer's week for the page: state (:data:`WORDS`; ``week_state`` is the
    :class:`WeekState` the page's rules go by), the version on show, the decision in force,
    flags, receipts."""
    records, docs = read_week(store, code, week_of)
    status = derive(records, run=Run.MAY_BE_RUNNING, now=now or dt.datetime.now(dt.timezone.utc))
    render = docs["render"]
    reconciled = docs["reconciled"]
    return {
        "customer": code, "week_of": week_of.isoformat(), "state": WORDS[status.state], "week_state": status.state,
        "render": render, "version": approval.reviewed_version(render) if render else None,
        "decision": docs["decision"], "voided": docs["voided"],
        "history": store.week(code, week_of).approval_records(),
        "flags": reconciled["flags"] if reconciled else [],
        "flag_chips": flag_chips(reconciled["flags"] if reconciled else []),  # one per kind: a kind may repeat
        "unavailable": [u.domain for u in status.unavailable],
        "deliveries": {ch: docs["receipts"].get(ch, {}).get("state", "-") for ch in CHANNELS},
        # once any channel has been tried, what the customer gets is fixed: no edit, no new decision
        # (else one channel would carry one version and the next another)
        "delivery_started": records.delivery_started,
        # a value in the approval Variable that the sensor refused (and is waiting past)
        "variable_problem": approval.variable_problem(store, code, week_of),
        "variable": approval.variable_key(code, week_of),
        # the run can no longer act on a decision: what it did and the way forward (None: it still can)
        "closed": _closed(status),
    }


def _closed(status) -> str | None:
    """The way forward when no run can act on a decision now; None while one can (or it no longer
    matters: a delivered week, an expired one, which the state already says)."""
    if status.actionable or status.state in (WeekState.DELIVERED, WeekState.EXPIRED):
        return None
    way = status.run_ended.way_forward()
    return way[0].upper() + way[1:] + "."

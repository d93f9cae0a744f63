"""The review page's wording of where each customer's week stands.

The state is derived once (:func:`msp_reports.state.derive`, from the records
:func:`msp_reports.week_records.read_week` reads); this module only words it for the page and
adds what the page shows beside it: the version on show, the decision history, the receipts,
the approval Variable. The page cannot know whether the run is still going, so a week without a
published report reads "rendering" here (the roll-up, after the run, says "render failed").
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from msp_reports import approval
from msp_reports.delivery.ledger import CHANNELS
from msp_reports.state import Run, WeekState, derive
from msp_reports.store import ReportStore
from msp_reports.week_records import read_week

ReviewState = Literal["not run", "extracting", "rendering", "failed before reconcile", "render failed", "awaiting review", "approved",
                      "delivering", "delivered", "delivery unconfirmed", "failed", "rejected", "expired"]
WORDS: dict[WeekState, ReviewState] = {
    WeekState.NOT_RUN: "not run",
    WeekState.EXTRACTING: "extracting",
    WeekState.FAILED_BEFORE_RECONCILE: "failed before reconcile",
    WeekState.RENDERING: "rendering",
    WeekState.RENDER_FAILED: "render failed",
    WeekState.AWAITING_REVIEW: "awaiting review",
    WeekState.APPROVED: "approved",
    WeekState.DELIVERING: "delivering",
    WeekState.DELIVERED: "delivered",
    WeekState.DELIVERY_UNCONFIRMED: "delivery unconfirmed",
    WeekState.DELIVERY_FAILED: "failed",
    WeekState.REJECTED: "rejected",
    WeekState.EXPIRED: "expired",
}


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
        "flags": reconciled["flags"] if reconciled else [], "unavailable": [u.domain for u in status.unavailable],
        "deliveries": {ch: docs["receipts"].get(ch, {}).get("state", "-") for ch in CHANNELS},
        # once any channel has been tried, what the customer gets is fixed: no edit, no new decision
        # (else one channel would carry one version and the next another)
        "delivery_started": records.delivery_started,
        # a value in the approval Variable that the sensor refused (and is waiting past)
        "variable_problem": approval.variable_problem(store, code, week_of),
        "variable": approval.variable_key(code, week_of),
    }

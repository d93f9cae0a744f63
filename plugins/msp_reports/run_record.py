"""What the run did with one customer-week, recorded in the store (``run.json``).

The review page cannot ask Airflow whether a run is still going, nor whether the run has
already acted on a decision, so the run's tasks say so here, and the page reads it
(:class:`msp_reports.state.RunRecord`, through :func:`msp_reports.state.derive`):

- ``running``: the customer's first extract of run X began (:func:`note_running`);
- ``waiting``: run X's ``wait_for_approval`` is waiting for a decision, since when
  (:func:`note_waiting`; the missed-approvals post reads ``since`` to give reviewers their window);
- ``ended``: run X can no longer act on a decision (:func:`note_ended`): the sensor skipped the
  deliveries because the report was rejected, or the wait expired, or the run ended (the roll-up,
  after every task of the customer's group) without the sensor releasing the deliveries (a
  sensor that failed or timed out, a render that failed).

One file per customer-week, last writer wins: a new run for the same week writes ``running``
again, so a decision becomes actionable again exactly when a run is there to act on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from msp_reports.store import ReportStore

RUN_RECORD = "run.json"
Outcome = Literal["rejected", "expired", "ended"]


def read(store: ReportStore, code: str, week_of: dt.date) -> dict | None:
    return store.read_json(code, week_of, RUN_RECORD)


def note_running(store: ReportStore, code: str, week_of: dt.date, run: str | None, now: dt.datetime) -> None:
    """Run ``run`` has started on the week (written once per run: later calls of the run are no-ops)."""
    current = read(store, code, week_of)
    if run and (current is None or current.get("run") != run):
        store.write_json(code, week_of, RUN_RECORD, {"run": run, "phase": "running", "since": now.isoformat()})


def note_waiting(store: ReportStore, code: str, week_of: dt.date, run: str | None, now: dt.datetime) -> None:
    """Run ``run``'s sensor is waiting for a decision (``since`` kept from its first poke)."""
    current = read(store, code, week_of)
    if not run or (current is not None and current.get("run") == run and current.get("phase") in ("waiting", "ended")):
        return
    store.write_json(code, week_of, RUN_RECORD, {"run": run, "phase": "waiting", "since": now.isoformat()})


def note_ended(store: ReportStore, code: str, week_of: dt.date, run: str | None, outcome: Outcome,
               reason: str, now: dt.datetime) -> None:
    """Run ``run`` can no longer act on a decision for the week; the first reason given stays."""
    current = read(store, code, week_of) or {}
    if not run or (current.get("run") == run and current.get("phase") == "ended"):
        return
    store.write_json(code, week_of, RUN_RECORD, {
        "run": run, "phase": "ended", "since": current.get("since") if current.get("run") == run else None,
        "outcome": outcome, "reason": reason, "at": now.isoformat()})

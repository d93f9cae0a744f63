"""One customer-week's typed records (:class:`msp_reports.state.WeekRecords`), read from the store.

The only reader of the files the week's state depends on: the reconciled week, ``render.json``,
the decision in force and the voided one (as :mod:`msp_reports.approval` decides them, so the
binding of a decision to the hashes lives in one place), the delivery start and the receipts.
:func:`msp_reports.state.derive` turns them into the state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

from msp_reports import approval, run_record
from msp_reports.snapshot import DOMAINS
from msp_reports.state import (DecisionRecord, Flag, Receipt, ReconciledRecord, RenderRecord, RunRecord, Unavailable,
                               WeekRecords)
from msp_reports.store import ReportStore


def reconciled_record(doc: Mapping[str, Any]) -> ReconciledRecord:
    """The flags and the unavailable domains of a stored ``reconciled.json``."""
    flags = tuple(Flag(kind=str(f["kind"]), severity=str(f["severity"]), message=str(f.get("message") or ""),
                       recommendation=str(f.get("recommendation") or "")) for f in doc.get("flags") or ())
    snapshot = doc.get("snapshot") or {}
    unavailable = []
    for domain in DOMAINS:
        status = (snapshot.get(domain) or {}).get("status") or {}
        if status and not status.get("ok"):
            unavailable.append(Unavailable(domain, str(status.get("error") or "")))
    return ReconciledRecord(flags=flags, unavailable=tuple(unavailable))


class StoredWeek(NamedTuple):
    """The week's typed records, and the documents as stored, for presenters that show them
    (``reconciled``, ``render``, ``decision``, ``voided``, ``receipts``: channel to receipt)."""

    records: WeekRecords
    docs: dict[str, Any]


def read_week(store: ReportStore, code: str, week_of: dt.date) -> StoredWeek:
    """Read one customer-week's records (see :class:`StoredWeek`)."""
    week = store.week(code, week_of)
    reconciled = week.reconciled()
    render = week.render_record()
    decision = approval.in_force(store, code, week_of)
    voided = approval.voided(store, code, week_of)
    run = run_record.read(store, code, week_of)
    receipts = {ch: doc for ch in week.receipt_channels() if (doc := week.receipt(ch)) is not None}
    records = WeekRecords(
        extracts_stored=bool(week.section_names()),
        reconciled=reconciled_record(reconciled) if reconciled is not None else None,
        render=RenderRecord.from_doc(render) if render is not None else None,
        decision=DecisionRecord.from_doc(decision) if decision is not None else None,
        voided=DecisionRecord.from_doc(voided) if voided is not None else None,
        delivery_started=approval.delivery_started(store, code, week_of),
        receipts={ch: Receipt.from_doc(ch, doc) for ch, doc in receipts.items()},
        run=RunRecord.from_doc(run) if run is not None else None,
        week_of=week_of,
    )
    docs = {"reconciled": reconciled, "render": render, "decision": decision, "voided": voided, "receipts": receipts,
            "run": run}
    return StoredWeek(records, docs)

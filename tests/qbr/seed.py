"""Weekly snapshots seeded straight into a report store, as the weekly pipeline leaves them:
``snapshot.json`` and ``reconciled.json`` (flags against the week before), and a commentary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from msp_reports import store as layout
from msp_reports.reconcile import reconcile
from msp_reports.registry import Customer, Thresholds
from msp_reports.snapshot import WeeklySnapshot
from msp_reports.store import ReportStore
from msp_reports.week import ReportWeek
from tests.factories import make_customer, make_snapshot

CODE = "ACME"


def store_week(store: ReportStore, snap: WeeklySnapshot, previous: WeeklySnapshot | None = None, *,
               commentary: str | None = None, code: str = CODE) -> bytes:
    """Write the week as the pipeline does; returns the snapshot.json bytes."""
    store.write_json(code, snap.week_of, layout.SNAPSHOT, snap.model_dump(mode="json"))
    rec = reconcile(snap, previous, Thresholds())
    store.write_json(code, snap.week_of, layout.RECONCILED, rec.model_dump(mode="json"))
    if commentary is not None:
        store.write_text(code, snap.week_of, layout.COMMENTARY, commentary)
    return store.read_bytes(code, snap.week_of, layout.SNAPSHOT)


def in_timezone(snap: WeeklySnapshot, tz: str) -> WeeklySnapshot:
    """``snap`` as a week of a customer in ``tz``: the instants (and length) of that customer's week."""
    week = ReportWeek.starting(snap.week_of, tz)
    return snap.model_copy(update={"timezone": tz, "week_start": week.start, "week_end": week.end})


def vary(snap: WeeklySnapshot, n: int) -> WeeklySnapshot:
    """Distinct figures per week: week ``n`` has n+1 extra minutes of server downtime, 10+n tickets opened."""
    rows = [r.model_copy(update={"downtime_minutes": round(r.downtime_minutes + n + 1, 2)})
            if r.device_class == "Servers" else r for r in snap.uptime.data.rows]
    uptime = snap.uptime.model_copy(update={"data": snap.uptime.data.model_copy(update={"rows": rows})})
    t = snap.tickets.data
    tickets = snap.tickets.model_copy(update={"data": t.model_copy(update={
        "opened": 10 + n, "closed": 9 + n, "sla_breaches": n % 3, "backlog_end": 5 + n})}) if t else snap.tickets
    return snap.model_copy(update={"uptime": uptime, "tickets": tickets})


def seed(store: ReportStore, weeks: Iterable[dt.date], *, skip: Iterable[dt.date] = (),
         failed: dict[dt.date, dict[str, str]] | None = None, tz: str | None = None,
         commentary: dict[dt.date, str] | None = None, text: dict[str, str] | None = None,
         code: str = CODE) -> dict[dt.date, bytes]:
    """One realistic week per Monday (alternately clean and eventful, figures varied per week) of ``code``."""
    failed, commentary, skip = failed or {}, commentary or {}, set(skip)
    stored: dict[dt.date, bytes] = {}
    previous = None
    for n, week_of in enumerate(weeks):
        if week_of in skip:
            previous = None
            continue
        snap = vary(make_snapshot(week_of, healthy=n % 3 != 1, failed=failed.get(week_of), text=text), n)
        if tz is not None:
            snap = in_timezone(snap, tz)
        if code != CODE:
            snap = snap.model_copy(update={"customer": code, "customer_name": f"{code} Ltd"})
        stored[week_of] = store_week(store, snap, previous, commentary=commentary.get(week_of), code=code)
        previous = snap
    return stored


def customer(tz: str | None = None) -> Customer:
    c = make_customer()
    return c if tz is None else c.model_copy(update={"timezone": tz})

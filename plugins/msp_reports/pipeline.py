"""The task bodies, as plain functions of (settings, item): what each DAG task does.

The DAG file only wires these together; everything here can run and be tested without a
scheduler. ``item`` is one customer's unit of work: ``{"customer": "ACME", "week_of": "2026-11-16"}``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from msp_reports import approval
from msp_reports.delivery.archive import LocalArchiveChannel, archive_name
from msp_reports.delivery.email import EmailChannel, cover_note
from msp_reports.delivery.ledger import Ledger
from msp_reports.delivery.teams import TeamsChannel
from msp_reports.exceptions import ReportError, SourceError
from msp_reports.reconcile import Reconciled, reconcile
from msp_reports.registry import Customer, Registry, load_registry
from msp_reports.settings import Settings
from msp_reports.snapshot import DOMAINS, SECTION_DATA, Section, SourceStatus, WeeklySnapshot, merge_sections
from msp_reports.sources import module_for
from msp_reports.store import ReportStore, sha256
from msp_reports.week import ReportWeek, not_before, report_monday

log = logging.getLogger(__name__)
CHANNELS = ("email", "teams", "archive")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Context:
    """What every task needs: settings, the registry, the store, this customer and week."""

    def __init__(self, settings: Settings, item: dict[str, str]) -> None:
        self.settings = settings
        self.registry: Registry = load_registry(settings.registry_path)
        self.customer: Customer = self.registry.get(item["customer"])
        self.week = ReportWeek.starting(dt.date.fromisoformat(item["week_of"]), self.customer.timezone)
        self.store = ReportStore(settings.store_root)

    @property
    def code(self) -> str:
        return self.customer.code


# ---- plan -----------------------------------------------------------------------------------
def plan(settings: Settings, run_after: dt.datetime, conf: dict[str, Any] | None) -> list[dict[str, str]]:
    """The customers of this run and the week they report on (the 7 days before the run's Monday)."""
    registry = load_registry(settings.registry_path)
    conf = conf or {}
    week_of = conf.get("week_of")
    if week_of:
        monday = dt.date.fromisoformat(week_of) + dt.timedelta(days=7)
    else:
        monday = report_monday(run_after, registry.msp.timezone)
    week = (monday - dt.timedelta(days=7)).isoformat()
    return [{"customer": c.code, "week_of": week} for c in registry.select(conf.get("customers"))]


# ---- extract --------------------------------------------------------------------------------
def extract(settings: Settings, item: dict[str, str], domain: str) -> dict:
    """Pull one domain from each system that serves it; store each system's part, success or failure.

    A failure is stored as ``ok: false`` with the error, the other systems of the domain still
    run, and then the failure is raised, so the task shows red in the grid and Airflow retries
    it; the report renders what is missing as unavailable.
    """
    ctx = Context(settings, item)
    failures: list[Exception] = []
    for src in ctx.customer.sources[domain]:
        try:
            _extract_one(ctx, domain, src)
        except Exception as exc:  # noqa: BLE001 - recorded in the store, raised below
            failures.append(exc)
    if failures:
        raise failures[0]
    return {"domain": domain, "systems": [s.system for s in ctx.customer.sources[domain]], "ok": True}


def _part_name(domain: str, system: str) -> str:
    return f"sections/{domain}.{system}.json"


def _extract_one(ctx: Context, domain: str, src) -> None:
    module = module_for(src.system)
    started = _now()
    try:
        hook = module.HOOK(src.conn_id)
        result = module.extract(hook, dict(src.ref), ctx.week)
    except Exception as exc:  # any failure means "unavailable", never a number
        error = str(exc) if isinstance(exc, SourceError) else f"{src.system}: {type(exc).__name__}: {exc}"
        status = SourceStatus(domain=domain, system=src.system, ok=False, error=error[:500], fetched_at=started)
        ctx.store.write_json(ctx.code, ctx.week.week_of, _part_name(domain, src.system),
                             Section(status=status).model_dump(mode="json"))
        raise
    status = SourceStatus(domain=domain, system=src.system, ok=True, fetched_at=started, as_of=result.as_of)
    section = Section(status=status, data=result.data)
    ctx.store.write_json(ctx.code, ctx.week.week_of, _part_name(domain, src.system), section.model_dump(mode="json"))


# ---- reconcile ------------------------------------------------------------------------------
def _section(ctx: Context, domain: str) -> Section:
    parts = []
    for src in ctx.customer.sources[domain]:
        raw = ctx.store.read_json(ctx.code, ctx.week.week_of, _part_name(domain, src.system))
        if raw is None:
            status = SourceStatus(domain=domain, system=src.system, ok=False, fetched_at=_now(),
                                  error="the extract task did not run")
            parts.append(Section(status=status))
        else:
            parts.append(Section[SECTION_DATA[domain]].model_validate(raw))  # type: ignore[index]
    return merge_sections(domain, parts)


def load_snapshot(store: ReportStore, customer: str, week_of: dt.date) -> WeeklySnapshot | None:
    raw = store.read_json(customer, week_of, "snapshot.json")
    return None if raw is None else WeeklySnapshot.model_validate(raw)


def build_snapshot(settings: Settings, item: dict[str, str]) -> dict:
    """Assemble the week from the stored sections, compare with last week, store both."""
    ctx = Context(settings, item)
    sections = {d: _section(ctx, d) for d in DOMAINS}
    snap = WeeklySnapshot(
        customer=ctx.code, customer_name=ctx.customer.name, week_of=ctx.week.week_of,
        timezone=ctx.customer.timezone, week_start=ctx.week.start, week_end=ctx.week.end, **sections,
    )
    previous = load_snapshot(ctx.store, ctx.code, ctx.week.previous().week_of)
    rec = reconcile(snap, previous, ctx.customer.thresholds)
    ctx.store.write_json(ctx.code, ctx.week.week_of, "snapshot.json", snap.model_dump(mode="json"))
    ctx.store.write_json(ctx.code, ctx.week.week_of, "reconciled.json", rec.model_dump(mode="json"))
    return {"flags": [f.kind for f in rec.flags], "unavailable": snap.failed_domains,
            "baseline": rec.previous_week_of.isoformat() if rec.previous_week_of else None}


def load_reconciled(store: ReportStore, customer: str, week_of: dt.date) -> Reconciled:
    raw = store.read_json(customer, week_of, "reconciled.json")
    if raw is None:
        raise ReportError(f"{customer} {week_of}: no reconciled snapshot in the store")
    return Reconciled.model_validate(raw)


# ---- render ---------------------------------------------------------------------------------
def render(settings: Settings, item: dict[str, str]) -> dict:
    """Render the report with the engineer's current commentary; store Markdown and PDF."""
    from msp_reports.render import TREND_WEEKS, render_report

    ctx = Context(settings, item)
    rec = load_reconciled(ctx.store, ctx.code, ctx.week.week_of)
    commentary = ctx.store.read_text(ctx.code, ctx.week.week_of, "commentary.md") or ""
    earlier = (ctx.week.week_of - dt.timedelta(weeks=back) for back in range(TREND_WEEKS - 1, 0, -1))
    history = [s for s in (load_snapshot(ctx.store, ctx.code, w) for w in earlier) if s is not None]
    out = render_report(rec, ctx.customer, ctx.registry.msp, commentary, history=history)
    ctx.store.write_text(ctx.code, ctx.week.week_of, "report.md", out.markdown)
    ctx.store.write_bytes(ctx.code, ctx.week.week_of, "report.pdf", out.pdf)
    snapshot_bytes = ctx.store.read_bytes(ctx.code, ctx.week.week_of, "snapshot.json") or b""
    meta = {"pdf_sha256": out.sha256, "rendered_at": _now().isoformat(), "bytes": len(out.pdf),
            "snapshot_sha256": sha256(snapshot_bytes), "commentary_sha256": sha256(commentary.encode())}
    ctx.store.write_json(ctx.code, ctx.week.week_of, "render.json", meta)
    key = approval.variable_key(ctx.code, ctx.week.week_of)
    log.info("%s: report %s rendered. Approve: airflow variables set %s approve  |  reject: "
             "airflow variables set %s 'reject <reason>'", ctx.code, out.sha256[:12], key, key)
    return {"pdf_sha256": out.sha256, "approval_variable": key}


# ---- approval -------------------------------------------------------------------------------
def check_approval(settings: Settings, item: dict[str, str], raw: str | None,
                   now: dt.datetime | None = None) -> tuple[str, dict | None, str | None]:
    ctx = Context(settings, item)
    msp = ctx.registry.msp
    hh, mm = (int(x) for x in msp.deliver_not_before.split(":"))
    earliest = not_before(ctx.week.week_of + dt.timedelta(days=7), msp.timezone, dt.time(hh, mm))
    return approval.poll(ctx.store, ctx.code, ctx.week.week_of, raw, now=now or _now(), not_before=earliest)


# ---- delivery -------------------------------------------------------------------------------
def _channel(ctx: Context, name: str, pdf: bytes):
    from msp_reports.render import executive_summary, teams_summary

    c, msp = ctx.customer, ctx.registry.msp
    filename = archive_name(c.code, ctx.week.week_of)
    rec = load_reconciled(ctx.store, c.code, ctx.week.week_of)
    if name == "email":
        return EmailChannel(
            conn_id=c.delivery.email.conn_id, from_email=str(msp.from_email), to=c.recipients,
            subject=f"{c.name}: weekly IT report, {ctx.week.label()}",
            cover_html=cover_note(c.name, c.cto.name, ctx.week.label(), executive_summary(rec),
                                  c.account_engineer.name, msp.name),
            pdf=pdf, filename=filename, domain=str(msp.from_email).split("@")[-1],
        )
    if name == "teams":
        return TeamsChannel(conn_id=c.delivery.teams.conn_id, card=teams_summary(rec, c, msp))
    if name == "archive":
        from pathlib import Path

        return LocalArchiveChannel(Path(ctx.settings.archive_root), c.delivery.archive.folder, filename, pdf)
    raise ValueError(f"unknown channel {name!r}")


def deliver(settings: Settings, item: dict[str, str], channel: str, *, resend: bool = False) -> dict:
    """Send the approved PDF on one channel, exactly once (see :mod:`msp_reports.delivery.ledger`)."""
    ctx = Context(settings, item)
    pdf, record = approval.approved_pdf(ctx.store, ctx.code, ctx.week.week_of)
    ledger = Ledger(ctx.store, ctx.code, ctx.week.week_of)
    receipt = ledger.send_once(_channel(ctx, channel, pdf), record["pdf_sha256"], resend=resend)
    return {k: receipt[k] for k in ("channel", "state", "remote_id", "pdf_sha256")}


# ---- roll-up --------------------------------------------------------------------------------
def customer_status(store: ReportStore, customer: Customer, week_of: dt.date) -> dict:
    """Where one customer's report stands, from the store alone."""
    rec_raw = store.read_json(customer.code, week_of, "reconciled.json")
    last = approval.latest_record(store, customer.code, week_of)
    receipts = Ledger(store, customer.code, week_of).receipts()
    flags = rec_raw["flags"] if rec_raw else []
    unavailable = [d for d in DOMAINS if rec_raw and not rec_raw["snapshot"][d]["status"]["ok"]]
    errors = {d: rec_raw["snapshot"][d]["status"]["error"] for d in unavailable}
    if rec_raw is None:
        state = "failed before reconcile"
    elif store.read_json(customer.code, week_of, "render.json") is None:
        state = "render failed"
    elif last is None:
        state = "awaiting review"
    elif last["decision"] == "reject":
        state = f"rejected by {last['by']}: {last['reason']}"
    elif all(receipts.get(ch, {}).get("state") == "sent" for ch in CHANNELS):
        state = "delivered"
    else:
        failed = [ch for ch in CHANNELS if receipts.get(ch, {}).get("state") != "sent"]
        state = "approved; not delivered on " + ", ".join(failed)
    return {"customer": customer.code, "name": customer.name, "state": state, "flags": flags,
            "unavailable": unavailable, "errors": errors, "deliveries": {ch: receipts.get(ch, {}).get("state", "-") for ch in CHANNELS}}


def rollup(settings: Settings, items: list[dict[str, str]]) -> dict:
    """The internal roll-up for ``#weekly-reports``: every customer, key risks, actions this week."""
    from msp_reports.rollup import rollup_card, rollup_markdown

    registry = load_registry(settings.registry_path)
    store = ReportStore(settings.store_root)
    week_of = dt.date.fromisoformat(items[0]["week_of"]) if items else None
    statuses = [customer_status(store, registry.get(i["customer"]), week_of) for i in items]
    text = rollup_markdown(registry.msp, week_of, statuses)
    store.write_rollup(week_of, "rollup.md", text)
    digest = sha256(text.encode())
    ledger = Ledger(store, "_rollup", week_of)
    previous = ledger.receipt("teams")
    # internal channel: a changed roll-up (a late approval, a fixed source) is posted as an update
    update = previous is not None and previous["state"] == "sent" and previous["pdf_sha256"] != digest
    channel = TeamsChannel(registry.msp.internal_teams_conn_id, rollup_card(registry.msp, week_of, statuses))
    receipt = ledger.send_once(channel, digest, resend=update)
    attention = [f"{s['customer']} {s['state']}" for s in statuses
                 if s["state"] != "delivered" and not s["state"].startswith("rejected")]
    attention += [f"{s['customer']} {d} unavailable" for s in statuses for d in s["unavailable"]]
    return {"customers": len(statuses), "posted": receipt["state"], "updates": receipt.get("resends", 0),
            "delivered": sum(s["state"] == "delivered" for s in statuses), "needs_attention": attention}

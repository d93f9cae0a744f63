"""The QBR pack's task bodies: the weekly machinery, keyed by a quarter instead of a week.

The content (figures, charts, the PDF and the messages) is :func:`msp_reports.qbr.build_pack`'s;
this module stores, approves and delivers it exactly as the weekly report is (same functions,
same records, same rules), with these differences, each a parameter of the shared code:

- **where** (:mod:`msp_reports.qbr_store`): one folder per customer and quarter, ``<store>/<CUSTOMER>/qbr/<2026-Q3>/``, laid out
  like a week's (``render.json``, ``commentary.md``, ``approvals/``, ``ledger/``, ...).
  :class:`PackStore` is a :class:`~msp_reports.store.ReportStore` whose folder for a day is that
  of the quarter holding it, so every record the weekly code reads and writes (the lock, the
  publish, approvals, the ledger) works unchanged; the pack is keyed by the quarter's first day.
  The weekly folders beside it are untouched (the review page lists only Monday-named folders).
- **the data hash**: a pack's "snapshot" is its ``sources.json`` (the weekly snapshots it was
  built from, by hash): :data:`ARTEFACTS` is the weekly map with that one file swapped.
- **the Variable**: ``qbr_approval__<CUSTOMER>__<2026-Q3>`` (:func:`variable_key`).
- **the ledger's idempotency keys** start ``qbr.`` (never a weekly report's, even for a quarter
  starting on a Monday), and the archive name says QBR and is date-stamped with the day the pack
  is due: ``ACME QBR 2026-Q3 (2026-10-05).pdf`` (:func:`archive_name`).
- **when**: the pack is due the first Monday after the quarter; delivery waits for
  ``msp.deliver_not_before`` (09:00) that day, and the wait for a decision ends like the weekly
  one, ``msp.approval_cutoff`` after that (or after the wait began, if later).
- **the wait**: the weekly Required Action and Variable watcher (:mod:`msp_reports.airflow_approval`)
  given the QBR kind (:data:`msp_reports.approval_request.QBR`), which calls this module's
  ``check_approval``, ``approval_brief`` (the pack's headlines), ``wait_deadline`` and ``send_time``.

``item`` is ``{"customer": "ACME", "quarter": "2026-Q3", ...}`` (:func:`plan`). This module does
not import the pack's renderer until a pack is built, so the DAG file can use it when parsed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any
from zoneinfo import ZoneInfo

from msp_reports import approval, pipeline
from msp_reports import store as layout
from msp_reports.delivery.ledger import Ledger
from msp_reports.exceptions import RegistryError, ReportError
from msp_reports.registry import Msp, load_registry
from msp_reports.settings import Settings
from msp_reports.qbr_store import (ARTEFACTS, KIND, SOURCES, PackStore, archive_name, due_monday,
                                   last_complete_quarter, quarter_first_day, variable_key)
from msp_reports.store import ReportStore, sha256
from msp_reports.week import not_before

log = logging.getLogger(__name__)
QUARTER = re.compile(r"[0-9]{4}-Q[1-4]")

class PackContext:
    """One customer's pack for one quarter: the registry entry, the MSP, both stores."""

    def __init__(self, settings: Settings, item: dict[str, Any]) -> None:
        self.settings = settings
        self.customer, self.msp = pipeline.customer_entry(settings, item)
        self.quarter: str = item["quarter"]
        self.key = quarter_first_day(self.quarter)  # the pack's "week_of" in the shared records
        self.store = PackStore(settings.store_root)
        self.weekly = ReportStore(settings.store_root)
        self.run_scope: str | None = item.get("run")

    @property
    def code(self) -> str:
        return self.customer.code

    def ledger(self) -> Ledger:
        return Ledger(self.store, self.code, self.key, kind=KIND)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---- plan -----------------------------------------------------------------------------------
def parse_quarter(value: object, *, today: dt.date) -> str:
    """A quarter as given (``2026-Q3``), refused unless it is one and it is over by ``today``: the
    calendar quarter, and its last week (:attr:`msp_reports.qbr.Quarter.ends`)."""
    from msp_reports.qbr import Quarter

    text = str(value).strip()
    if not QUARTER.fullmatch(text):
        raise RegistryError(f"quarter {value!r} is not a quarter: write it as 2026-Q3")
    quarter = Quarter.parse(text)
    over = max(quarter.ends, quarter.next().first_day)
    if over > today:
        raise RegistryError(f"quarter {text} is not over yet (its last week ends {quarter.ends}): a QBR pack is "
                            "built from a whole quarter of weekly reports")
    return str(quarter)


def plan(settings: Settings, run_after: dt.datetime, conf: dict[str, Any] | None, run_id: str | None = None, *,
         schedule_timezone: str | None = None) -> list[dict[str, Any]]:
    """The run's customers (``customers``, every registry customer by default; an unknown code is
    refused, named) and the quarter: ``quarter`` when given, else the last complete quarter at the
    run's date (a scheduled run on the first Monday after a quarter reports on that quarter)."""
    registry = load_registry(settings.registry_path)
    from msp_reports.settings import schedule_timezone as configured

    pipeline._check_schedule_timezone(settings, registry.msp, schedule_timezone or configured())
    conf = conf or {}
    today = run_after.astimezone(ZoneInfo(registry.msp.timezone)).date()
    given = conf.get("quarter")
    quarter = parse_quarter(given, today=today) if given else last_complete_quarter(run_after, registry.msp.timezone)
    customers = registry.select(conf.get("customers") or None)
    scope = run_id or f"adhoc-{_now():%Y%m%dT%H%M%S%f}"
    msp = registry.msp.model_dump(mode="json")
    env = {"registry_path": settings.registry_path, "store_root": settings.store_root,
           "archive_root": settings.archive_root}
    return [{"customer": c.code, "quarter": quarter, "run": scope, "settings": env,
             "entry": c.model_dump(mode="json"), "msp": msp} for c in customers]


def already_delivered(ctx: PackContext) -> dict[str, dict] | None:
    return pipeline.already_delivered(ctx.store, ctx.code, ctx.key)


def _delivered_result(ctx: PackContext, step: str) -> dict | None:
    receipts = already_delivered(ctx)
    if receipts is None:
        return None
    log.info("%s %s: QBR pack already delivered; %s skipped", ctx.code, ctx.quarter, step)
    return {"already_delivered": True, "customer": ctx.code, "quarter": ctx.quarter,
            "pdf_sha256": receipts["email"].get("pdf_sha256")}


# ---- wait for the quarter's last week ----------------------------------------------------------
def weeks_ready(settings: Settings, item: dict[str, Any], now: dt.datetime | None = None) -> bool:
    """Whether the pack may be built: the quarter's last weekly snapshot is stored (the weekly run
    of the same Monday has reconciled it), or the send time has come (then a week still missing
    is shown as missing), or the pack was delivered already."""
    from msp_reports.qbr import Quarter

    ctx = PackContext(settings, item)
    if already_delivered(ctx) is not None:
        return True
    last_week = Quarter.parse(ctx.quarter).week_ofs()[-1]
    if ctx.weekly.read_bytes(ctx.code, last_week, layout.SNAPSHOT) is not None:
        return True
    return (now or _now()) >= _send_time(ctx.msp, ctx.quarter)


# ---- render ---------------------------------------------------------------------------------
def render(settings: Settings, item: dict[str, Any], *, commentary: str | None = None, guard=None) -> dict:
    """Build the pack from the stored weekly snapshots and publish it as one version.

    The files (the PDF, its Markdown, the subject, cover note and Teams card, ``sources.json``)
    and then ``render.json`` with the hash of each (:data:`ARTEFACTS`; ``snapshot_sha256`` is
    that of ``sources.json``) and of the narrative, under the pack's lock: an approval binds them
    all, and delivery sends these bytes. ``commentary``: a new "quarter in review" narrative to
    store and render (the review page's "Save and re-render"); by default the stored one.
    """
    from msp_reports.qbr import Quarter, build_pack

    ctx = PackContext(settings, item)
    if commentary is None and (done := _delivered_result(ctx, "render")) is not None:
        return done
    stored = ctx.store.read_text(ctx.code, ctx.key, layout.COMMENTARY) or ""
    text = stored if commentary is None else commentary
    files = dict(build_pack(ctx.weekly, ctx.customer, ctx.msp, Quarter.parse(ctx.quarter), narrative=text))
    missing = [name for name in ARTEFACTS.values() if name not in files]
    if missing:
        raise ReportError(f"{ctx.code} {ctx.quarter}: the QBR pack lacks {', '.join(missing)}")
    hashes = {key: sha256(files[name]) for key, name in ARTEFACTS.items()}
    meta = {**hashes, "rendered_at": _now().isoformat(), "bytes": len(files[layout.REPORT_PDF]),
            "commentary_sha256": sha256(text.encode()), "quarter": ctx.quarter}
    if commentary is not None:
        files[layout.COMMENTARY] = commentary.encode("utf-8")
    ctx.store.publish(ctx.code, ctx.key, files, layout.RENDER, meta, guard=guard)
    key, pin = variable_key(ctx.code, ctx.quarter), hashes["pdf_sha256"][:12]
    log.info("%s: QBR pack %s for %s rendered. Approve: airflow variables set %s 'approve %s'  |  reject: "
             "airflow variables set %s 'reject <reason>'", ctx.code, pin, ctx.quarter, key, pin, key)
    return {"pdf_sha256": hashes["pdf_sha256"], "approval_variable": key}


# ---- approval -------------------------------------------------------------------------------
def _send_time(msp: Msp, quarter: str) -> dt.datetime:
    """``msp.deliver_not_before`` (09:00, MSP time) on the first Monday after the quarter, as UTC."""
    hh, mm = (int(x) for x in msp.deliver_not_before.split(":"))
    return not_before(due_monday(quarter), msp.timezone, dt.time(hh, mm))


def send_time(settings: Settings, item: dict[str, Any]) -> dt.datetime:
    """When the pack may go out (:func:`_send_time` of its quarter)."""
    return _send_time(PackContext(settings, item).msp, item["quarter"])


def approval_deadline(msp: Msp, quarter: str, waiting_since: dt.datetime | None = None) -> dt.datetime:
    start = _send_time(msp, quarter)
    return max(start, waiting_since or start) + msp.approval_cutoff


def wait_deadline(settings: Settings, item: dict[str, Any], waiting_since: dt.datetime) -> dt.datetime:
    """When the pack's Required Action stops waiting (:func:`approval_deadline`)."""
    return approval_deadline(PackContext(settings, item).msp, item["quarter"], waiting_since)


def check_approval(settings: Settings, item: dict[str, Any], raw: str | None, now: dt.datetime | None = None,
                   waiting_since: dt.datetime | None = None, *, expire: bool = True,
                   set_by=None) -> tuple[str, dict | None, str | None]:
    """One look at the pack's approval (:func:`msp_reports.pipeline.check_approval`, on the pack's
    records and Variable): by ``wait_for_approval`` and by the run's Variable watcher (``expire=False``)."""
    ctx = PackContext(settings, item)
    deadline = approval_deadline(ctx.msp, ctx.quarter, waiting_since).astimezone(ZoneInfo(ctx.msp.timezone))
    return pipeline.look_at_approval(ctx.store, ctx.code, ctx.key, ctx.run_scope, raw, now=now or _now(),
                                     not_before=_send_time(ctx.msp, ctx.quarter),
                                     deadline=deadline if expire else None, waiting_since=waiting_since,
                                     set_by=set_by, variable=variable_key(ctx.code, ctx.quarter))


def approval_brief(settings: Settings, item: dict[str, Any], base_url: str):
    """The pack's Required Actions request for the current render
    (:func:`msp_reports.approval_request.qbr_brief`): its headlines, from the stored weeks."""
    from msp_reports import approval_request
    from msp_reports.qbr import Quarter
    from msp_reports.qbr.figures import quarter_figures
    from msp_reports.qbr.markdown import headlines

    ctx = PackContext(settings, item)
    with ctx.store.week_lock(ctx.code, ctx.key, shared=True):
        lines = headlines(quarter_figures(ctx.weekly, ctx.code, Quarter.parse(ctx.quarter)))
        return approval_request.qbr_brief(ctx.store, ctx.code, ctx.customer.name, ctx.quarter, lines, base_url)


# ---- delivery -------------------------------------------------------------------------------
def deliver(settings: Settings, item: dict[str, Any], channel: str) -> dict:
    """Send the approved pack on one channel, exactly once: the stored bytes, each checked against
    its approved hash (:func:`msp_reports.approval.start_delivery`), through the pack's ledger."""
    ctx = PackContext(settings, item)
    files, record = approval.start_delivery(ctx.store, ctx.code, ctx.key, now=_now(), artefacts=ARTEFACTS)
    out = pipeline._channel(ctx, channel, files, filename=archive_name(ctx.code, ctx.quarter), beside=SOURCES)
    receipt = ctx.ledger().send_once(out, record["pdf_sha256"])
    return {k: receipt[k] for k in ("channel", "state", "remote_id", "pdf_sha256")}

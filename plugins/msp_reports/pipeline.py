"""The task bodies, as plain functions of (settings, item): what each DAG task does.

The DAG file only wires these together; everything here can run and be tested without a
scheduler. ``item`` is one customer's unit of work: ``{"customer": "ACME", "week_of": "2026-11-16"}``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from msp_reports import approval, messages, run_record
from msp_reports import store as layout
from msp_reports.delivery.archive import archive_name
from msp_reports.delivery.channels import internal_teams_channel
from msp_reports.delivery.ledger import CHANNELS, Ledger, describe
from msp_reports.exceptions import RegistryError, ReportError, SourceError
from msp_reports.reconcile import Reconciled, reconcile
from msp_reports.registry import Customer, Msp, load_registry
from msp_reports.settings import DEFAULT_SCHEDULE_TIMEZONE, SCHEDULE_TIMEZONE_ENV, Settings
from msp_reports.settings import schedule_timezone as _schedule_timezone
from msp_reports.shared import SharedListings
from msp_reports.snapshot import DOMAINS, SECTION_DATA, Section, SourceStatus, WeeklySnapshot, merge_sections
from msp_reports.sources import module_for
from msp_reports.state import ChannelStatus, Outcome, Run, WeekRecords, WeekState, WeekStatus, derive
from msp_reports.store import ReportStore, sha256
from msp_reports.week import ReportWeek, not_before, report_monday, requested_week
from msp_reports.week_records import read_week

log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def customer_entry(settings: Settings, item: dict[str, Any]) -> tuple[Customer, Msp]:
    """The customer's validated registry entry and the MSP's, as ``plan`` put them in the item;
    an item without them (the review page, a resend, a test) reads the registry instead."""
    if "entry" in item and "msp" in item:
        return Customer.model_validate(item["entry"]), Msp.model_validate(item["msp"])
    registry = load_registry(settings.registry_path)
    return registry.get(item["customer"]), registry.msp


class Context:
    """What every task needs: settings, this customer's registry entry, the MSP, the store, the week.

    :func:`plan` validates the whole registry once per run and puts each customer's entry (and
    the MSP block) in its item, so a task validates one customer, not all of them: a task's cost
    does not grow with the number of customers. An item without them (the review page, a
    resend, a test) reads the registry instead.
    """

    def __init__(self, settings: Settings, item: dict[str, Any]) -> None:
        self.settings = settings
        self.customer, self.msp = customer_entry(settings, item)
        self.week = ReportWeek.starting(dt.date.fromisoformat(item["week_of"]), self.customer.timezone)
        self.store = ReportStore(settings.store_root)
        self.run_scope: str | None = item.get("run")

    @property
    def code(self) -> str:
        return self.customer.code

    def shared_listings(self) -> SharedListings | None:
        """Listings fetched once per run and shared by its customers (see :mod:`msp_reports.shared`)."""
        if not self.run_scope:
            return None
        return SharedListings(self.store, self.week.week_of, self.run_scope)


# ---- plan -----------------------------------------------------------------------------------
def plan(settings: Settings, run_after: dt.datetime, conf: dict[str, Any] | None,
         run_id: str | None = None, *, schedule_timezone: str | None = None) -> list[dict[str, Any]]:
    """The customers of this run and the week they report on (the 7 days before the run's Monday).

    Each item carries what the customer's tasks need, validated once here: the settings, the
    customer's registry entry, the MSP block, and the run's scope for shared listings.

    :param schedule_timezone: the zone the DAG's schedule was built with (the DAG passes it); by
        default :func:`msp_reports.settings.schedule_timezone`. The registry must agree with it.
    """
    registry = load_registry(settings.registry_path)
    _check_schedule_timezone(settings, registry.msp, schedule_timezone or _schedule_timezone())
    conf = conf or {}
    today = run_after.astimezone(ZoneInfo(registry.msp.timezone)).date()
    try:
        week_of = requested_week(conf.get("week_of"), today)
    except ValueError as exc:
        raise ReportError(f"this run's week_of: {exc}") from None
    if week_of:
        monday = week_of + dt.timedelta(days=7)
    else:
        monday = report_monday(run_after, registry.msp.timezone)
    week = (monday - dt.timedelta(days=7)).isoformat()
    customers = conf.get("customers")
    if isinstance(customers, str):  # "ACME, BRVO" typed where a list was meant
        customers = customers.replace(",", " ").split()
    selected = registry.select(customers, source=str(settings.registry_path))
    scope = run_id or f"adhoc-{_now():%Y%m%dT%H%M%S%f}"
    msp = registry.msp.model_dump(mode="json")
    env = {"registry_path": settings.registry_path, "store_root": settings.store_root,
           "archive_root": settings.archive_root}
    return [{"customer": c.code, "week_of": week, "run": scope, "settings": env,
             "entry": c.model_dump(mode="json"), "msp": msp}
            for c in selected]


def _check_schedule_timezone(settings: Settings, msp: Msp, scheduled_in: str) -> None:
    """The run starts at 06:00 in the schedule's zone, but the week, the 09:00 send time and the
    approval deadline are reckoned in ``msp.timezone``: two zones would report the wrong week or
    send at the wrong hour, so a run refuses to start until they are the same."""
    if msp.timezone == scheduled_in:
        return
    raise RegistryError(
        f"{settings.registry_path}: msp.timezone is {msp.timezone!r}, but the DAG is scheduled in "
        f"{scheduled_in!r} (environment variable {SCHEDULE_TIMEZONE_ENV} of the Airflow processes, "
        f"default {DEFAULT_SCHEDULE_TIMEZONE}). Make them the same: either set 'msp.timezone: {scheduled_in}' "
        f"in the registry, or set {SCHEDULE_TIMEZONE_ENV}={msp.timezone} for the dag-processor, scheduler "
        "and workers and let the DAG file be parsed again.")


def already_delivered(store: ReportStore, customer: str, week_of: dt.date) -> dict[str, dict] | None:
    """The week's receipts when the ledger has every channel ``sent``, else None.

    A re-run of a delivered week (the demo's week triggered again, a second manual run) then does
    nothing: no extract, no reconcile or render (which would void the approval of the version that
    went out), no wait for a decision nobody can give. The ledger decides, as it does for every
    send: a week with any channel attempted, failed, partial or not yet tried runs as usual.
    """
    receipts = {ch: store.week(customer, week_of).receipt(ch) for ch in CHANNELS}
    if all((r or {}).get("state") == "sent" for r in receipts.values()):
        return receipts  # type: ignore[return-value]
    return None


def _delivered_result(ctx: Context, step: str) -> dict | None:
    """What a task of a delivered week returns instead of working (see :func:`already_delivered`)."""
    receipts = already_delivered(ctx.store, ctx.code, ctx.week.week_of)
    if receipts is None:
        return None
    log.info("%s %s: already delivered (%s); %s skipped", ctx.code, ctx.week.week_of,
             ", ".join(f"{ch} {r.get('remote_id')}" for ch, r in receipts.items()), step)
    return {"already_delivered": True, "customer": ctx.code, "week_of": ctx.week.week_of.isoformat(),
            "pdf_sha256": receipts["email"].get("pdf_sha256")}


def item_key(code: str) -> str:
    """The XCom key plan_customers keeps one customer's item under (the groups map over codes)."""
    return f"customer:{code}"


# ---- extract --------------------------------------------------------------------------------
def extract(settings: Settings, item: dict[str, str], domain: str) -> dict:
    """Pull one domain from each system that serves it; store each system's part, success or failure.

    A failure is stored as ``ok: false`` with the error, the other systems of the domain still
    run, and then the failure is raised, so the task shows red in the grid and Airflow retries
    it; the report renders what is missing as unavailable.
    """
    ctx = Context(settings, item)
    if (done := _delivered_result(ctx, f"extract {domain}")) is not None:
        return {**done, "domain": domain}
    run_record.note_running(ctx.store, ctx.code, ctx.week.week_of, ctx.run_scope, _now())
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
        hook.shared = ctx.shared_listings()
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
    """A stored week, or None. A week stored before today's figure checks that no longer passes
    them (say an uptime above 100 %) is no baseline and no trend point: a gap, logged, never a figure."""
    from pydantic import ValidationError

    raw = store.read_json(customer, week_of, layout.SNAPSHOT)
    if raw is None:
        return None
    try:
        return WeeklySnapshot.model_validate(raw)
    except ValidationError as exc:
        log.warning("%s %s: the stored snapshot.json fails the figure checks and is left out of the baseline "
                    "and the trends: %s", customer, week_of, str(exc).splitlines()[0])
        return None


def build_snapshot(settings: Settings, item: dict[str, str]) -> dict:
    """Assemble the week from the stored sections, compare with last week, store both (not for a
    week already delivered: its snapshot is the one that went out)."""
    ctx = Context(settings, item)
    if (done := _delivered_result(ctx, "reconcile")) is not None:
        return done
    sections = {d: _section(ctx, d) for d in DOMAINS}
    snap = WeeklySnapshot(
        customer=ctx.code, customer_name=ctx.customer.name, week_of=ctx.week.week_of,
        timezone=ctx.customer.timezone, week_start=ctx.week.start, week_end=ctx.week.end, **sections,
    )
    previous = load_snapshot(ctx.store, ctx.code, ctx.week.previous().week_of)
    rec = reconcile(snap, previous, ctx.customer.thresholds)
    ctx.store.write_json(ctx.code, ctx.week.week_of, layout.SNAPSHOT, snap.model_dump(mode="json"))
    ctx.store.write_json(ctx.code, ctx.week.week_of, layout.RECONCILED, rec.model_dump(mode="json"))
    return {"flags": [f.kind for f in rec.flags], "unavailable": snap.failed_domains,
            "baseline": rec.previous_week_of.isoformat() if rec.previous_week_of else None}


def load_reconciled(store: ReportStore, customer: str, week_of: dt.date) -> Reconciled:
    raw = store.read_json(customer, week_of, layout.RECONCILED)
    if raw is None:
        raise ReportError(f"{customer} {week_of}: no reconciled snapshot in the store")
    return Reconciled.model_validate(raw)


# ---- render ---------------------------------------------------------------------------------
def _bound_reconciled(ctx: Context) -> tuple[Reconciled, bytes]:
    """The reconciled week and the ``snapshot.json`` bytes, refused unless they hold the same data.

    The approval binds the hash of ``snapshot.json``, so the report must be rendered from those
    bytes: the snapshot is parsed from them, and ``reconciled.json`` (whose flags and baseline
    were computed from its own copy of the snapshot) must carry the same one; if either file was
    changed after reconcile, nothing is rendered until reconcile runs again.
    """
    where = f"{ctx.code} {ctx.week.week_of}"
    rec = load_reconciled(ctx.store, ctx.code, ctx.week.week_of)
    raw = ctx.store.read_bytes(ctx.code, ctx.week.week_of, layout.SNAPSHOT)
    if raw is None:
        raise ReportError(f"{where}: no snapshot.json in the store; run reconcile again")
    try:
        snap = WeeklySnapshot.model_validate_json(raw)
    except ValueError as exc:
        raise ReportError(f"{where}: snapshot.json is not a valid snapshot ({str(exc).splitlines()[0]}); "
                          "run reconcile again") from None
    if snap.model_dump(mode="json") != rec.snapshot.model_dump(mode="json"):
        raise ReportError(f"{where}: snapshot.json and the snapshot in reconciled.json differ (one was changed "
                          "after reconcile); nothing rendered: run reconcile again")
    return rec.model_copy(update={"snapshot": snap}), raw


def render(settings: Settings, item: dict[str, str], *, commentary: str | None = None,
           guard: Callable[[], None] | None = None) -> dict:
    """Render the report and everything sent with it once; publish them as one version.

    The PDF (with the engineer's commentary), its Markdown, and the channels' messages (the
    subject line, the email's cover note, the Teams card: :mod:`msp_reports.messages`) are
    written by one :meth:`ReportStore.publish`, with ``render.json`` holding the hash of each
    and of the snapshot they were rendered from (:data:`msp_reports.approval.ARTEFACTS`). An
    approval binds all of them, and delivery sends these bytes, never rendering again.

    :param commentary: new commentary to render and store with the report (the review page's
        "Save and re-render"); by default the stored commentary.
    :param guard: runs under the week's lock just before publishing and may refuse by raising
        (the review page checks there that no delivery has started).
    """
    from msp_reports.render import TREND_WEEKS, render_report

    ctx = Context(settings, item)
    if commentary is None and (done := _delivered_result(ctx, "render")) is not None:
        return done  # the version that went out stays the one in force
    rec, snapshot_bytes = _bound_reconciled(ctx)
    stored = ctx.store.read_text(ctx.code, ctx.week.week_of, layout.COMMENTARY) or ""
    text = stored if commentary is None else commentary
    earlier = (ctx.week.week_of - dt.timedelta(weeks=back) for back in range(TREND_WEEKS - 1, 0, -1))
    history = [s for s in (load_snapshot(ctx.store, ctx.code, w) for w in earlier) if s is not None]
    out = render_report(rec, ctx.customer, ctx.msp, text, history=history)
    files = {layout.REPORT_PDF: out.pdf, layout.REPORT_MD: out.markdown.encode("utf-8"),
             **messages.build(rec, ctx.customer, ctx.msp, ctx.week, text)}
    hashes = {key: sha256(files[name]) for key, name in approval.ARTEFACTS.items() if name in files}
    meta = {**hashes, "rendered_at": _now().isoformat(), "bytes": len(out.pdf),
            "snapshot_sha256": sha256(snapshot_bytes), "commentary_sha256": sha256(text.encode())}
    if commentary is not None:
        files[layout.COMMENTARY] = commentary.encode("utf-8")
    ctx.store.publish(ctx.code, ctx.week.week_of, files, layout.RENDER, meta, guard=guard)
    key = approval.variable_key(ctx.code, ctx.week.week_of)
    week_of, pin = ctx.week.week_of, out.sha256[:12]
    log.info("%s: report %s rendered. Approve: airflow variables set %s 'approve %s'  |  reject: airflow "
             "variables set %s 'reject <reason>'  |  with scripts/airflow.sh: bash scripts/approve.sh %s %s "
             "approve %s", ctx.code, pin, key, pin, key, ctx.code, week_of, pin)
    return {"pdf_sha256": out.sha256, "approval_variable": key}


# ---- approval -------------------------------------------------------------------------------
def _send_time(msp: Msp, week_of: dt.date) -> dt.datetime:
    hh, mm = (int(x) for x in msp.deliver_not_before.split(":"))
    return not_before(week_of + dt.timedelta(days=7), msp.timezone, dt.time(hh, mm))


def send_time(settings: Settings, item: dict[str, str]) -> dt.datetime:
    """When the week's reports may go out (09:00 MSP time on the report's Monday), as UTC."""
    return _send_time(Context(settings, item).msp, dt.date.fromisoformat(item["week_of"]))


def approval_deadline(msp: Msp, week_of: dt.date, waiting_since: dt.datetime | None = None) -> dt.datetime:
    """The cut-off: ``msp.approval_cutoff`` after the send time, or after the wait began if that was
    later (a manual run for a past week gets the whole cut-off too)."""
    start = _send_time(msp, week_of)
    return max(start, waiting_since or start) + msp.approval_cutoff


def check_approval(settings: Settings, item: dict[str, str], raw: str | None,
                   now: dt.datetime | None = None,
                   waiting_since: dt.datetime | None = None, *, expire: bool = True,
                   set_by: Callable[[], str | None] | None = None) -> tuple[str, dict | None, str | None]:
    """One look at the customer's approval (see :func:`msp_reports.approval.poll`): by
    ``wait_for_approval`` before it parks and when it is answered, and by the run's Variable
    watcher (``expire=False``: only the wait itself ends at the cut-off). ``delivered`` at once,
    with the decision that was in force, for a week the ledger has as sent on every channel.

    :param set_by: who set the Variable, as Airflow's audit log says (see
        :mod:`msp_reports.airflow_api`); asked only when the Variable holds a new decision.
    """
    ctx = Context(settings, item)
    week_of = ctx.week.week_of
    now = now or _now()
    deadline = approval_deadline(ctx.msp, week_of, waiting_since).astimezone(ZoneInfo(ctx.msp.timezone))
    return look_at_approval(ctx.store, ctx.code, week_of, ctx.run_scope, raw, now=now,
                            not_before=_send_time(ctx.msp, week_of), deadline=deadline if expire else None,
                            waiting_since=waiting_since, set_by=set_by)


def look_at_approval(store: ReportStore, code: str, week_of: dt.date, run: str | None, raw: str | None, *,
                     now: dt.datetime, not_before: dt.datetime, deadline: dt.datetime | None,
                     waiting_since: dt.datetime | None, set_by: Callable[[], str | None] | None = None,
                     variable: str | None = None) -> tuple[str, dict | None, str | None]:
    """:func:`check_approval` on any store's records (the QBR pack's too: ``variable`` names its
    Variable): ``delivered`` with the decision that was in force once the ledger has every channel
    sent, else :func:`msp_reports.approval.poll`, and what that means for the run noted."""
    if already_delivered(store, code, week_of) is not None:
        return "delivered", approval.in_force(store, code, week_of), None
    result = approval.poll(store, code, week_of, raw, now=now, not_before=not_before, deadline=deadline,
                           key=variable, set_by=set_by)
    _note_wait(store, code, week_of, run, result[0], result[1], now, waiting_since)
    return result


def wait_deadline(settings: Settings, item: dict[str, str], waiting_since: dt.datetime) -> dt.datetime:
    """When the customer's Required Action stops waiting (:func:`approval_deadline`)."""
    return approval_deadline(Context(settings, item).msp, dt.date.fromisoformat(item["week_of"]), waiting_since)


def approval_brief(settings: Settings, item: dict[str, str], base_url: str):
    """The Required Actions request for the current render (:func:`msp_reports.approval_request.brief`)."""
    from msp_reports import approval_request
    from msp_reports.render import executive_summary

    ctx = Context(settings, item)
    with ctx.store.week_lock(ctx.code, ctx.week.week_of, shared=True):
        summary = executive_summary(load_reconciled(ctx.store, ctx.code, ctx.week.week_of))
        return approval_request.brief(ctx.store, ctx.code, ctx.customer.name, ctx.week.week_of, summary, base_url)


def answer_approval(settings: Settings, item: dict[str, str], option: str, reason: str, *, by: str,
                    shown: dict, asked_at: dt.datetime, waiting_since: dt.datetime | None,
                    now: dt.datetime | None = None, kind=None) -> tuple[str, dict | None, str]:
    """The answer to the Required Actions request, recorded (:func:`msp_reports.approval_request.record_answer`);
    then the state as the kind's ``check_approval`` sees it, and why the answer was not taken ("" if it
    was). ``kind``: :data:`msp_reports.approval_request.WEEKLY` by default, or the QBR pack's."""
    import importlib

    from msp_reports import approval_request

    kind = kind or approval_request.WEEKLY
    period = kind.period(item)
    now = now or _now()
    answer = approval_request.record_answer(kind.store(settings.store_root), item["customer"],
                                            kind.records_key(period), option, reason, by=by, shown=shown,
                                            asked_at=asked_at, now=now)
    check = importlib.import_module(kind.pipeline).check_approval
    state, record, _ = check(settings, item, None, now=now, waiting_since=waiting_since, expire=False)
    return state, record, answer.refused


def _note_wait(store: ReportStore, code: str, week_of: dt.date, run: str | None, state: str, record: dict | None,
               now: dt.datetime, waiting_since: dt.datetime | None) -> None:
    """Record what this poke means for the run (:mod:`msp_reports.run_record`): still waiting, or
    the deliveries are skipped (rejected) or the wait is over (expired), so the review page stops
    offering a decision this run can no longer act on."""
    if state == "rejected":
        run_record.note_ended(store, code, week_of, run, "rejected", (record or {}).get("reason", ""), now)
    elif state == "expired":
        run_record.note_ended(store, code, week_of, run, "expired", (record or {}).get("reason", ""), now)
    else:
        run_record.note_waiting(store, code, week_of, run, waiting_since or now)


# how long reviewers get before the missed-approvals post names them, at least: the scheduled
# run's own window (its reports render from about 06:10; the post goes at 09:00)
REVIEW_WINDOW = dt.timedelta(hours=2)


def missed_approvals_due(settings: Settings, items: list[dict[str, str]], run_start: dt.datetime) -> dt.datetime:
    """When the missed-approvals post may name the run's undecided customers.

    The send time, but never before reviewers have had :data:`REVIEW_WINDOW` (or the whole
    ``msp.approval_cutoff`` when that is shorter) since the run began and since the last of the
    run's sensors began waiting (``run.json``): a manual run for a past week starts after its
    send time, and naming its customers then would name reports nobody has seen yet (none has
    even rendered).
    """
    registry = load_registry(settings.registry_path)
    store = ReportStore(settings.store_root)
    week_of = dt.date.fromisoformat(items[0]["week_of"])
    window = min(REVIEW_WINDOW, registry.msp.approval_cutoff)
    starts = [run_start]
    for item in items:
        record = run_record.read(store, item["customer"], week_of) or {}
        if record.get("run") == item.get("run") and record.get("phase") == "waiting" and record.get("since"):
            starts.append(dt.datetime.fromisoformat(record["since"]))
    return max(_send_time(registry.msp, week_of), max(starts) + window)


def missed_approvals_ready(settings: Settings, items: list[dict[str, str]],
                           variable: Callable[[str], str | None], run_start: dt.datetime,
                           now: dt.datetime | None = None) -> bool:
    """Whether ``post_missed_approvals`` may run now (its sensor, ``wait_for_send_time``): never
    before the send time; then once every customer of the run is decided (there is nobody to name:
    nothing is posted) or at :func:`missed_approvals_due`, whichever comes first."""
    from msp_reports.rollup import unapproved

    now = now or _now()
    if not items:
        return True
    week_of = dt.date.fromisoformat(items[0]["week_of"])
    if now < send_time(settings, items[0]):
        return False
    if now >= missed_approvals_due(settings, items, run_start):
        return True
    registry = load_registry(settings.registry_path)
    return not unapproved(ReportStore(settings.store_root), [registry.get(i["customer"]) for i in items], week_of,
                          lambda code: variable(approval.variable_key(code, week_of)))


def post_missed_approvals(settings: Settings, items: list[dict[str, str]],
                          variable: Callable[[str], str | None], *,
                          waiting_since: dt.datetime | None = None) -> dict:
    """At the send time: list the customers whose report is not approved in ``#weekly-reports``, once.

    :param waiting_since: when the run began (the DAG passes its start: no sensor of the run began
        waiting earlier), so the deadline stated is the one the sensors hold to, also on a late run;
        by default now.
    """
    from msp_reports.rollup import missed_approvals_card, unapproved

    registry = load_registry(settings.registry_path)
    store = ReportStore(settings.store_root)
    if not items:
        return {"unapproved": [], "posted": "nothing to post"}
    week_of = dt.date.fromisoformat(items[0]["week_of"])
    rows = unapproved(store, [registry.get(i["customer"]) for i in items], week_of,
                      lambda code: variable(approval.variable_key(code, week_of)))
    if not rows:
        return {"unapproved": [], "posted": "nothing to post"}
    card = missed_approvals_card(registry.msp, week_of, rows,
                                 approval_deadline(registry.msp, week_of, waiting_since or _now()))
    # its own receipt: a retry never posts the list twice, and it is not taken for a roll-up part
    channel = internal_teams_channel(registry.msp, card, f"Not approved at {registry.msp.deliver_not_before}: "
                                     f"week of {week_of}", name="teams-missed-approvals")
    receipt = Ledger(store, "_rollup", week_of).send_once(channel, sha256(b"missed-approvals"))
    return {"unapproved": [r["customer"] for r in rows], "posted": receipt["state"]}


# ---- delivery -------------------------------------------------------------------------------
def _channel(ctx: Context, name: str, files: dict[str, bytes], *, filename: str | None = None,
             beside: str = layout.SNAPSHOT):
    """One channel carrying the approved bytes as stored (``files``, from
    :func:`msp_reports.approval.approved_version`); nothing is rendered here. Only the addressing
    (recipients, sender, the attachment's name, where to post) comes from the registry.
    ``filename`` and ``beside`` (the file archived next to the PDF): the QBR pack's differ."""
    from msp_reports.delivery import channels

    c, msp = ctx.customer, ctx.msp
    filename = filename or archive_name(c.code, ctx.week.week_of)
    if name == "email":
        return channels.email_channel(
            c.delivery.email, default_sender=str(msp.from_email), to=c.recipients,
            subject=messages.subject_of(files), cover_html=messages.cover_of(files),
            pdf=files[layout.REPORT_PDF], filename=filename,
        )
    if name == "teams":
        return channels.teams_channel(c.delivery.teams, messages.card_of(files), messages.subject_of(files))
    if name == "archive":
        return channels.archive_channel(c.delivery.archive, archive_root=ctx.settings.archive_root,
                                        filename=filename, pdf=files[layout.REPORT_PDF], snapshot=files[beside])
    raise ValueError(f"unknown channel {name!r}")


def deliver(settings: Settings, item: dict[str, str], channel: str, *, resend: bool = False,
            note: dict | None = None) -> dict:
    """Send the approved version on one channel, exactly once (see :mod:`msp_reports.delivery.ledger`);
    ``resend`` (the resend command) sends it again on purpose, ``note`` says who and why.

    What goes out is the stored bytes, each checked against its approved hash
    (:func:`msp_reports.approval.start_delivery`): a changed or missing artefact is refused,
    naming the customer, the week and the file. A week rendered before the messages were stored
    and hashed is refused with "re-render to deliver" (building its cover note and card now would
    send words nobody approved). The ledger's content hash stays the approved PDF's: every other
    artefact is bound to it by the same approval, and the version cannot change once delivery
    started. The "Weekly report" tab is not touched here: :func:`pin_tab` runs after the channels.
    """
    ctx = Context(settings, item)
    files, record = approval.start_delivery(ctx.store, ctx.code, ctx.week.week_of, now=_now())
    ledger = Ledger(ctx.store, ctx.code, ctx.week.week_of)
    receipt = ledger.send_once(_channel(ctx, channel, files), record["pdf_sha256"], resend=resend, note=note)
    return {k: receipt[k] for k in ("channel", "state", "remote_id", "pdf_sha256")}


TAB_NEEDS = ("teams", "archive")  # the tab lives in the Teams channel and opens the archived PDF


def pin_tab(settings: Settings, item: dict[str, str]) -> dict:
    """The step after the channels: point the "Weekly report" tab at this week's archived PDF.

    Runs once, after the delivery tasks, so it no longer races between the teams and archive
    tasks. Only when both ``teams`` and ``archive`` are sent (by the ledger, so a re-run whose
    channels skipped as already delivered pins too); else ``{"pinned": False, ...}`` saying which
    is not, and the task skips. A customer without a Graph tab gets ``pinned: False`` with no
    ``waiting_for``. A failing Graph call is logged and recorded, never raised: the tab is a
    convenience, the post and the file went.
    """
    ctx = Context(settings, item)
    ledger = Ledger(ctx.store, ctx.code, ctx.week.week_of)
    waiting = [ch for ch in TAB_NEEDS if (ledger.receipt(ch) or {}).get("state") != "sent"]
    if waiting:
        return {"customer": ctx.code, "pinned": False, "waiting_for": waiting}
    done = _pin_weekly_tab(ctx, ledger)
    return {"customer": ctx.code, "pinned": done is not None and "error" not in done, "tab": done}


def _pin_weekly_tab(ctx: Context, ledger: Ledger) -> dict | None:
    """Graph channels: the "Weekly report" tab follows this week's archived PDF (idempotent), recorded
    in ``teams_tab.json``; None when the customer has no such tab (a webhook or a local archive)."""
    from msp_reports.delivery.channels import pin_weekly_tab

    try:
        done = pin_weekly_tab(ctx.customer.delivery.teams, ledger.receipt("archive"),
                              f"weekly-report-{ctx.code}")
    except Exception as exc:  # noqa: BLE001 - the tab is a convenience: the post and the file went
        log.warning("%s: could not update the Weekly report tab: %s", ctx.code, exc)
        done = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    if done is not None:
        ctx.store.write_json(ctx.code, ctx.week.week_of, layout.TEAMS_TAB, {**done, "at": _now().isoformat()})
    return done


# ---- roll-up --------------------------------------------------------------------------------
def customer_status(store: ReportStore, customer: Customer, week_of: dt.date, *, run: Run = Run.OVER) -> dict:
    """Where one customer's report stands, worded for the roll-up.

    The state is :func:`msp_reports.state.derive`'s, as the review page's is. For the run's own
    customers ``run`` is :attr:`Run.OVER`: the roll-up runs after every task of the customer's
    group has ended, so a week without a published report is "render failed" here. The week's
    other customers (another run's) are read as the page reads them (:attr:`Run.MAY_BE_RUNNING`,
    with what their own run recorded). ``week_state`` is the :class:`WeekState`; ``state`` its
    wording (:func:`rollup_wording`); ``stored``: whether a run has worked on the week (:func:`_stored`).
    """
    records, docs = read_week(store, customer.code, week_of)
    status = derive(records, run=run, now=_now())
    vias = {ch: getattr(customer.delivery, ch).via for ch in CHANNELS}
    deliveries = {c.channel: f"{c.receipt.describe() if c.receipt else '-'} ({vias[c.channel]})"
                  for c in status.channels}
    reconciled = docs["reconciled"]
    return {"customer": customer.code, "name": customer.name, "state": rollup_wording(status),
            "week_state": status.state, "flags": reconciled["flags"] if reconciled else [],
            "decision": docs["decision"], "unavailable": [u.domain for u in status.unavailable],
            "errors": {u.domain: u.error or None for u in status.unavailable}, "deliveries": deliveries,
            "stored": _stored(records)}


def _stored(records: WeekRecords) -> bool:
    """Whether a run has worked on the customer's week: it recorded itself (``run.json``), or
    left a report, a decision or a receipt (a run from before that record was kept). Extracts
    alone are not one (the demo seeds earlier weeks' data with no run)."""
    return bool(records.run or records.render or records.decision or records.voided or records.receipts)


def _channel_wording(c: ChannelStatus) -> str:
    if c.outcome is Outcome.NOT_TRIED:
        return f"{c.channel} (not sent)"
    if c.outcome is Outcome.UNCONFIRMED:  # not "failed": sending again could duplicate
        return f"{c.channel} (outcome unknown: check it, then resend if it did not arrive)"
    if c.outcome is Outcome.SENDING:
        return f"{c.channel} (sending)"
    return f"{c.channel} ({c.receipt.describe() if c.receipt else c.outcome.value})"


def rollup_wording(status: WeekStatus) -> str:
    """The roll-up's words for a state: who decided and why, which channels did not deliver and why."""
    state, decision = status.state, status.decision
    channels = ", ".join(_channel_wording(c) for c in status.channels_not_sent())
    if state is WeekState.AWAITING_REVIEW and status.reason:
        return f"awaiting review ({status.reason})"
    if state is WeekState.EXPIRED:
        return f"expired: {status.reason}"
    if state is WeekState.REJECTED and decision is not None:
        return f"rejected by {decision.by}: {status.reason}"
    if state is WeekState.DELIVERY_FAILED:
        return f"approved; not delivered on {channels}"
    if state is WeekState.DELIVERY_UNCONFIRMED:
        return f"approved; delivery unconfirmed on {channels}"
    if state is WeekState.DELIVERING:
        return f"approved; delivering: {channels}"
    if state is WeekState.APPROVED:
        return "approved; waiting for the send time"
    return state.value


def week_statuses(store: ReportStore, registry, week_of: dt.date, run_codes: list[str]) -> list[dict]:
    """Every customer of the week, in registry order: the run's own (:attr:`Run.OVER`) and every
    other registry customer an earlier run worked on that week (:func:`_stored`), so a
    second run for the same week never drops the first run's customers from the roll-up."""
    statuses = []
    for customer in registry.customers:
        if customer.code in run_codes:
            statuses.append(customer_status(store, customer, week_of))
        elif (status := customer_status(store, customer, week_of, run=Run.MAY_BE_RUNNING))["stored"]:
            statuses.append(status)
    return statuses


def _end_run(store: ReportStore, items: list[dict[str, str]], statuses: list[dict], week_of: dt.date) -> None:
    """The run is over for its customers: record it for those whose week it leaves undelivered and
    whose sensor did not already say why (``run.json``), so the review page stops offering a
    decision no run will act on and says what to do instead."""
    by_code = {s["customer"]: s for s in statuses}
    for item in items:
        status = by_code.get(item["customer"])
        if status is None or status["week_state"] is WeekState.DELIVERED:
            continue
        record = run_record.read(store, item["customer"], week_of) or {}
        if record.get("run") == item.get("run"):
            run_record.note_ended(store, item["customer"], week_of, item.get("run"), "ended", status["state"], _now())


def rollup(settings: Settings, items: list[dict[str, str]]) -> dict:
    """The internal roll-up for ``#weekly-reports``: one per week, not per run.

    It covers every customer of the week (:func:`week_statuses`: this run's and any earlier
    run's for the same week), so ``rollup.md`` is rewritten whole by each run, never with only
    the later run's customers. The Teams post is sent once per content change at most: each part
    has its own receipt in the week's ``_rollup`` ledger keyed by the digest of the whole roll-up
    (:func:`msp_reports.delivery.teams.post_parts`), so a run (or a retry) whose roll-up reads the
    same as the one posted posts nothing, and one that changed (a late approval, a second run)
    posts each part once more, titled as an update replacing the earlier roll-up of the week.
    ``needs_attention`` (what fails the task) names only this run's customers.
    """
    from msp_reports.delivery.teams import post_parts
    from msp_reports.rollup import rollup_cards, rollup_markdown

    registry = load_registry(settings.registry_path)
    store = ReportStore(settings.store_root)
    week_of = dt.date.fromisoformat(items[0]["week_of"]) if items else None
    run_codes = [i["customer"] for i in items]
    statuses = week_statuses(store, registry, week_of, run_codes) if week_of else []
    if week_of:
        _end_run(store, items, statuses, week_of)
    text = rollup_markdown(registry.msp, week_of, statuses)
    store.write_rollup(week_of, layout.ROLLUP_MD, text)
    digest = sha256(text.encode())
    ledger = Ledger(store, layout.ROLLUP_OWNER, week_of)
    first = ledger.receipt("teams")
    update = first is not None and first.get("state") == "sent" and first.get("pdf_sha256") != digest
    cards = rollup_cards(registry.msp, week_of, statuses, update=update)  # one post each: Teams caps a message at ~28 KB
    receipts = post_parts(ledger, [internal_teams_channel(registry.msp, card, f"Weekly reports: week of {week_of}")
                                   for card in cards], digest)
    receipt = receipts[0]
    ours = [s for s in statuses if s["customer"] in run_codes]
    attention = [f"{s['customer']} {s['state']}" for s in ours
                 if s["week_state"] not in (WeekState.DELIVERED, WeekState.REJECTED)]
    attention += [f"{s['customer']} {d} unavailable" for s in ours for d in s["unavailable"]]
    return {"customers": len(statuses), "posted": receipt["state"], "updates": receipt.get("resends", 0),
            "posts": len(receipts),
            "delivered": sum(s["week_state"] is WeekState.DELIVERED for s in statuses), "needs_attention": attention}

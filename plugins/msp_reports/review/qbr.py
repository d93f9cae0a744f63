"""The review page's QBR view (``/qbr/``): read a customer's pack, edit its "quarter in review"
narrative (saving re-renders it), approve or reject it, bound to the hashes shown.

The same rules as the weekly page, on the pack's records (:mod:`msp_reports.qbr_store`): a
decision names the version shown (else 409, :class:`msp_reports.approval.StaleReview`), nothing
changes once delivery started, the decision is mirrored into the Variable
``qbr_approval__<CUSTOMER>__<2026-Q3>`` and answers the run's Required Action for the pack
(:mod:`.hitl`, as the weekly page does), so its wait ends. Who may: Airflow's login and its permissions on the
``quarterly_business_review`` DAG (read to see, edit to decide), with the weekly page's CSRF
checks. The re-render is the pipeline's, handed in by the plugin (``app.state.qbr_rerender``):
this package never imports the pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
from msp_reports import approval, approval_request, qbr_store
from msp_reports import store as layout
from msp_reports.review import auth, hitl
from msp_reports.store import sha256

DAG_ID = "quarterly_business_review"
QUARTER = re.compile(r"[0-9]{4}-Q[1-4]")
QUARTERS_SHOWN = 4
NARRATIVE_LIMIT = 8000
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
MESSAGES = {"saved": "Narrative saved; pack re-rendered ({pdf}).", "unchanged": "Narrative unchanged.",
            "approved": "Approved by {by} (PDF {pdf}).", "rejected": "Rejected by {by} (PDF {pdf})."}
router = APIRouter(prefix="/qbr")


def reader(request: Request, user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    requires_access_dag("GET", param_dag_id=DAG_ID)(request, user)
    return user


def editor(request: Request, user: Annotated[BaseUser, Depends(get_user)],
           csrf_token_field: Annotated[str, Form(alias=auth.CSRF_FIELD)] = "") -> BaseUser:
    requires_access_dag("PUT", param_dag_id=DAG_ID)(request, user)
    return auth.checked_editor(request, user, csrf_token_field)


def _settings():
    from airflow.models import Variable
    from msp_reports.settings import Settings

    return Settings.load(lambda key, default: Variable.get(key, default_var=default))


def _quarter(value: str | None, timezone: str) -> str:
    if not value:
        return qbr_store.last_complete_quarter(dt.datetime.now(dt.timezone.utc), timezone)
    if not QUARTER.fullmatch(value):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"quarter {value!r} is not a quarter such as 2026-Q3")
    return value


def _customer(registry, code: str):
    try:
        return registry.get(code)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer {code!r} in the registry") from None


def _state(store, code: str, quarter: str) -> dict:
    """The pack's version (hashes), the decision in force or voided, the channels, whether it may change."""
    key = qbr_store.quarter_first_day(quarter)
    render = store.week(code, key).render_record()
    receipts = {ch: (store.week(code, key).receipt(ch) or {}).get("state", "-") for ch in ("email", "teams", "archive")}
    decision = approval.in_force(store, code, key)
    started = approval.delivery_started(store, code, key)
    if render is None:
        state = "not built"
    elif all(s == "sent" for s in receipts.values()):
        state = "delivered"
    elif started:
        state = "delivering"
    elif decision is not None:
        state = {"approve": "approved", "reject": "rejected", "expired": "expired"}[decision["decision"]]
    else:
        state = "awaiting review"
    return {"state": state, "version": approval.reviewed_version(render) if render else None,
            "decision": decision, "voided": approval.voided(store, code, key), "deliveries": receipts,
            "delivery_started": started, "history": store.week(code, key).approval_records(),
            "open": render is not None and not started and state != "expired"}


def _back(request: Request, quarter: str, code: str, message: str) -> RedirectResponse:
    query = urlencode({"quarter": quarter, "customer": code, "msg": message})
    return RedirectResponse(f"{request.url_for('qbr_page')}?{query}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/", response_class=HTMLResponse, name="qbr_page")
def page(request: Request, user: Annotated[BaseUser, Depends(reader)],
         quarter: str | None = None, customer: str | None = None, msg: str | None = None):
    from msp_reports.registry import load_registry

    settings = _settings()
    registry = load_registry(settings.registry_path)
    label = _quarter(quarter, registry.msp.timezone)
    store = qbr_store.PackStore(settings.store_root)
    key = qbr_store.quarter_first_day(label)
    latest = qbr_store.quarter_first_day(qbr_store.last_complete_quarter(dt.datetime.now(dt.timezone.utc),
                                                                         registry.msp.timezone))
    quarters, day = [], latest
    for _ in range(QUARTERS_SHOWN):
        quarters.append(qbr_store.quarter_label(day))
        day = qbr_store.quarter_first_day(qbr_store.quarter_label(day - dt.timedelta(days=1)))
    quarters = sorted(set(quarters) | {label}, reverse=True)
    rows = [{"code": c.code, "name": c.name, **_state(store, c.code, label)} for c in registry.customers]
    detail = None
    if customer:
        c = _customer(registry, customer)
        with store.week_lock(c.code, key, shared=True):
            current = _state(store, c.code, label)
            files = store.week(c.code, key)
            pdf = files.report_pdf() if current["version"] else None
            narrative = files.commentary() or ""
            subject = store.read_text(c.code, key, layout.SUBJECT)
        from msp_reports.review.app import _page_count

        detail = {"code": c.code, "name": c.name, "engineer": c.account_engineer.name, **current,
                  "narrative": narrative, "narrative_sha256": sha256(narrative.encode()),
                  "pages": _page_count(pdf) if pdf else 0, "subject": subject,
                  "variable": qbr_store.variable_key(c.code, label)}
    message = None
    if msg in MESSAGES and detail and detail["version"]:
        message = MESSAGES[msg].format(by=(detail["decision"] or {}).get("by", ""),
                                       pdf=detail["version"]["pdf_sha256"][:12])
    session, new = auth.session_value(request)
    response = templates.TemplateResponse(request, "qbr.html", {
        "user": user.get_name(), "quarter": label, "quarters": quarters, "rows": rows, "detail": detail,
        "message": message, "csrf_field": auth.CSRF_FIELD, "csrf_token": auth.csrf_token(session, user)})
    if new:
        response.set_cookie(auth.CSRF_COOKIE, session, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=request.url_for("page").path)
    return response


@router.get("/pdf/{code}/{quarter}/report.pdf", name="qbr_pdf")
def pdf(code: str, quarter: str, user: Annotated[BaseUser, Depends(reader)]):
    from msp_reports.registry import load_registry

    settings = _settings()
    c = _customer(load_registry(settings.registry_path), code)
    label = _quarter(quarter, "UTC")
    from msp_reports.review.app import pdf_response

    data = qbr_store.PackStore(settings.store_root).week(c.code, qbr_store.quarter_first_day(label)).report_pdf()
    return pdf_response(data, qbr_store.archive_name(c.code, label), f"{code} {label}: no QBR pack built yet")


@router.get("/pdf/{code}/{quarter}/page-{number}.png", name="qbr_page_png")
def page_png(request: Request, code: str, quarter: str, number: int, user: Annotated[BaseUser, Depends(reader)]):
    from msp_reports.registry import load_registry
    from msp_reports.review.app import _page_count

    settings = _settings()
    c = _customer(load_registry(settings.registry_path), code)
    label = _quarter(quarter, "UTC")
    data = qbr_store.PackStore(settings.store_root).week(c.code, qbr_store.quarter_first_day(label)).report_pdf()
    if data is None or not 1 <= number <= _page_count(data):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{code} {label}: no page {number}")
    return Response(request.app.state.previews.page(data, number), media_type="image/png")


def _refuse_unless_open(store, code: str, quarter: str, shown_narrative_sha256: str | None = None) -> dict:
    current = _state(store, code, quarter)
    if not current["open"]:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{code} {quarter} is {current['state']}: the pack can no "
                            "longer change or be decided here")
    if shown_narrative_sha256 is not None:
        stored = store.read_text(code, qbr_store.quarter_first_day(quarter), layout.COMMENTARY) or ""
        if sha256(stored.encode()) != shown_narrative_sha256:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{code} {quarter}: someone else changed the narrative "
                                "since you opened it; reload")
    return current


@router.post("/narrative/{code}/{quarter}", name="qbr_save_narrative")
def save_narrative(request: Request, code: str, quarter: str, user: Annotated[BaseUser, Depends(editor)],
                   narrative: Annotated[str, Form()] = "", shown_narrative_sha256: Annotated[str, Form()] = ""):
    from msp_reports.registry import load_registry

    rerender = getattr(request.app.state, "qbr_rerender", None)
    if rerender is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "started without the QBR renderer: serve the page "
                            "through the Airflow plugin (plugins/review_plugin.py)")
    settings = _settings()
    c = _customer(load_registry(settings.registry_path), code)
    label = _quarter(quarter, "UTC")
    store = qbr_store.PackStore(settings.store_root)
    _refuse_unless_open(store, c.code, label, shown_narrative_sha256)
    text = narrative.replace("\r\n", "\n").strip()
    if len(text) > NARRATIVE_LIMIT:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"the narrative is longer than {NARRATIVE_LIMIT} characters")
    stored = store.read_text(c.code, qbr_store.quarter_first_day(label), layout.COMMENTARY) or ""
    if text == stored.strip():
        return _back(request, label, c.code, "unchanged")
    try:
        rerender(settings, {"customer": c.code, "quarter": label}, commentary=text + "\n" if text else "",
                 guard=lambda: _refuse_unless_open(store, c.code, label, shown_narrative_sha256))
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, f"{code} {label}: the pack could not be "
                            f"re-rendered ({type(exc).__name__}: {str(exc)[:300]}); the narrative was not changed") from None
    return _back(request, label, c.code, "saved")


@router.post("/decision/{code}/{quarter}", name="qbr_decide")
def decide(request: Request, code: str, quarter: str, user: Annotated[BaseUser, Depends(editor)],
           decision: Annotated[str, Form()], snapshot_sha256: Annotated[str, Form()] = "",
           commentary_sha256: Annotated[str, Form()] = "", pdf_sha256: Annotated[str, Form()] = "",
           subject_sha256: Annotated[str, Form()] = "", cover_note_sha256: Annotated[str, Form()] = "",
           teams_card_sha256: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = ""):
    from airflow.models import Variable
    from msp_reports.registry import load_registry

    settings = _settings()
    c = _customer(load_registry(settings.registry_path), code)
    label = _quarter(quarter, "UTC")
    from msp_reports.review.app import decision_form

    shown = decision_form(decision, reason, snapshot_sha256=snapshot_sha256, commentary_sha256=commentary_sha256,
                          pdf_sha256=pdf_sha256, subject_sha256=subject_sha256,
                          cover_note_sha256=cover_note_sha256, teams_card_sha256=teams_card_sha256)
    store = qbr_store.PackStore(settings.store_root)
    _refuse_unless_open(store, c.code, label)
    try:
        record = qbr_store.record_decision(settings.store_root, c.code, label, decision, by=user.get_name(),
                                           via="review-page", reason=reason[:1000], reviewed=shown)
    except approval.ApprovalError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    Variable.set(qbr_store.variable_key(c.code, label), json.dumps(record, sort_keys=True),
                 description="Recorded by the review page")
    hitl.end_the_wait(user, c.code, label, record, store, approval_request.QBR)
    return _back(request, label, c.code, "approved" if decision == "approve" else "rejected")

"""The review page: a FastAPI app mounted by Airflow's API server (see ``plugins/review_plugin.py``).

Monday morning the account engineer opens "Weekly report review" in the Airflow UI: the week's
customers with their state (the one :class:`msp_reports.state.WeekState`, worded by
:mod:`.status`: rendering, awaiting review, approved, delivering, delivered, failed, delivery
unconfirmed, rejected, expired...) and flags; for one customer the PDF (served from the report
store, previewed page by page), the commentary editor — saving re-renders the report with the
renderer the app was given (:data:`Rerender`: ``plugins/review_plugin.py`` hands it
:func:`msp_reports.pipeline.render`; this package never imports the pipeline) and shows the new
PDF — and approve, or reject with a reason. Beside the PDF the page shows what is sent with it
(the subject line, the email's cover note, the Teams card: :mod:`msp_reports.messages`). A
decision is bound to the hashes of the version the page showed (:data:`approval.HASHES`); if the
report changed meanwhile it is refused with 409 (:mod:`msp_reports.approval`). A decision taken
here also answers the run's Required Action for the customer-week (:mod:`.hitl`), so the wait
ends at once. Every route needs an Airflow user (:mod:`.auth`).

Everything on the page is served from here (CSS included; no script, no remote asset), and
everything shown is escaped by Jinja's autoescaping. The status banner after a save or a decision
is one of :data:`MESSAGES`, chosen by key (``?msg=saved``): a link cannot put its own words on
the page. Saving re-renders outside the week's lock and publishes under it only if no delivery
has started meanwhile (:meth:`ReportStore.publish`), so a week is never split across two versions.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from msp_reports import approval
from msp_reports.exceptions import RegistryError, ReportError
from msp_reports.review import auth, hitl
from msp_reports.state import WeekState
from msp_reports.store import sha256

HERE = Path(__file__).parent
WEEKS_SHOWN = 8
PREVIEW_DPI = 60
SECURITY_HEADERS = {
    # the page's own files only; framed only by the Airflow UI (same origin)
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'none'; "
                               "object-src 'none'; frame-src 'self'; frame-ancestors 'self'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescapes .html
# the only status banners the page shows, by the key in ?msg=; filled from the store, not the link
MESSAGES = {
    "saved": "Commentary saved; report re-rendered ({pdf}).",
    "saved-voided": "Commentary saved; report re-rendered ({pdf}). The earlier decision no longer applies: "
                    "review and decide again.",
    "unchanged": "Commentary unchanged.",
    "approved": "Approved by {by} (PDF {pdf}).",
    "rejected": "Rejected by {by} (PDF {pdf}).",
}
_DECIDED = {"approved": "approve", "rejected": "reject"}
# a report is there and nothing has been sent: the commentary may change (a re-render) and a
# decision may be made (besides: no delivery has started, ``delivery_started``)
EDITABLE = frozenset({WeekState.AWAITING_REVIEW, WeekState.APPROVED, WeekState.REJECTED})
DECIDABLE = EDITABLE

Rerender = Callable[..., dict]
"""Re-render a week with new commentary and publish it: ``rerender(settings, item, *, commentary,
guard)`` with ``item = {"customer": ..., "week_of": ...}``; ``guard`` runs under the week's lock
just before publishing and may refuse by raising (:func:`msp_reports.pipeline.render`)."""


def _banner(key: str | None, detail: dict | None) -> str | None:
    """The status line for ``?msg=<key>``: one of :data:`MESSAGES`, and a decision's only while it
    is the one in force (a link cannot say "approved" of a report that is not)."""
    if key not in MESSAGES or detail is None or detail["version"] is None:
        return None
    decision = detail["decision"] or {}
    if key in _DECIDED and decision.get("decision") != _DECIDED[key]:
        return None
    return MESSAGES[key].format(by=decision.get("by", ""), pdf=(detail["version"]["pdf_sha256"] or "")[:12])


def _settings():
    from airflow.models import Variable
    from msp_reports.settings import Settings

    return Settings.load(lambda key, default: Variable.get(key, default_var=default))


def _registry(settings):
    from msp_reports.registry import load_registry

    return load_registry(settings.registry_path)


def _store(settings):
    from msp_reports.store import ReportStore

    return ReportStore(settings.store_root)


def _latest_week(timezone: str) -> dt.date:
    from msp_reports.week import report_monday

    return report_monday(dt.datetime.now(dt.timezone.utc), timezone) - dt.timedelta(days=7)


def _week(value: str | None, timezone: str) -> dt.date:
    if not value:
        return _latest_week(timezone)
    try:
        week_of = dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"week {value!r} is not a date (YYYY-MM-DD)") from None
    if week_of.weekday() != 0:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"week {value!r} is not a Monday")
    return week_of


def _stored_weeks(store, codes: list[str]) -> set[dt.date]:
    """Every report week found in the store for these customers (a Monday-named folder)."""
    weeks = set()
    for code in codes:
        try:
            names = [p.name for p in (store.root / code).iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            try:
                day = dt.date.fromisoformat(name)
            except ValueError:
                continue
            if day.weekday() == 0:
                weeks.add(day)
    return weeks


def review_state(store, code: str, week_of: dt.date) -> dict:
    from msp_reports.review.status import review_state as state  # the registry models load on first use

    return state(store, code, week_of)


def _duration(span: dt.timedelta) -> str:
    from msp_reports.review.status import human_duration

    return human_duration(span)


def _customer(registry, code: str):
    try:
        return registry.get(code)
    except KeyError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer {code!r} in the registry") from None


def _back(request: Request, week_of: dt.date, code: str, message: str) -> RedirectResponse:
    if message not in MESSAGES:
        raise ValueError(f"unknown page message {message!r}")
    query = urlencode({"week": week_of.isoformat(), "customer": code, "msg": message})
    return RedirectResponse(f"{request.url_for('page')}?{query}", status_code=status.HTTP_303_SEE_OTHER)


def _record_in_variable(record: dict) -> None:
    """Mirror the decision into the Variable, as the sensor does, so both paths show the same."""
    from airflow.models import Variable

    key = approval.variable_key(record["customer"], dt.date.fromisoformat(record["week_of"]))
    Variable.set(key, approval.variable_value(record), description="Recorded by the review page")


class _PagePreviews:
    """PNG previews of PDF pages (poppler's ``pdftoppm``), cached by PDF hash and page."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self.lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        return shutil.which("pdftoppm") is not None

    def page(self, pdf: bytes, number: int) -> bytes:
        key = (sha256(pdf), number)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "report.pdf"
            source.write_bytes(pdf)
            subprocess.run(["pdftoppm", "-r", str(PREVIEW_DPI), "-png", "-singlefile", "-f", str(number),
                            "-l", str(number), str(source), f"{tmp}/page"], check=True, timeout=60)
            png = (Path(tmp) / "page.png").read_bytes()
        with self.lock:
            self.cache[key] = png
            while len(self.cache) > self.size:
                self.cache.popitem(last=False)
        return png


def _page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)


def _messages(store, code: str, week_of: dt.date) -> dict | None:
    """The subject line and the Teams card's words as stored (None for a week rendered before they
    were); the cover note is served as it will be sent, in a sandboxed frame (:func:`create_app`)."""
    import json

    from msp_reports import messages

    subject = store.read_bytes(code, week_of, messages.SUBJECT)
    card = store.read_bytes(code, week_of, messages.TEAMS_CARD)
    if subject is None or card is None:
        return None
    body = json.loads(card).get("body", [])
    lines = [b["text"] for b in body if b.get("type") == "TextBlock" and b.get("text")]
    facts = [(f.get("title", ""), f.get("value", "")) for b in body if b.get("type") == "FactSet"
             for f in b.get("facts", [])]
    return {"subject": subject.decode("utf-8"), "card_lines": lines, "card_facts": facts}


def use_renderer(app: FastAPI, rerender: Rerender) -> None:
    """Give the app what "Save and re-render" calls (whoever mounts the app: see :data:`Rerender`)."""
    app.state.rerender = rerender


router = APIRouter()  # the page's routes; create_app mounts them with its state (renderer, previews)


async def _headers(request: Request, call_next):
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _errors(request: Request, exc: HTTPException):
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status_code == status.HTTP_401_UNAUTHORIZED and wants_html and request.method == "GET":
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)),
                                status_code=status.HTTP_303_SEE_OTHER)
    if wants_html:
        return templates.TemplateResponse(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                                          status_code=exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _report_errors(request: Request, exc: ReportError):
    """A broken registry or an unreadable store: say what is wrong and what to fix, not a bare 500."""
    if isinstance(exc, RegistryError):
        detail = (f"The customer registry cannot be used: {exc}. Fix the file (or the Airflow Variable "
                  "msp_reports_registry that names it) and reload this page.")
    else:
        detail = f"The review page cannot show this week: {exc}"
    return await _errors(request, HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, detail))


@router.get("/", response_class=HTMLResponse, name="page")
def page(request: Request, user: Annotated[BaseUser, Depends(auth.reader)],
         week: str | None = None, customer: str | None = None, msg: str | None = None):
    settings = _settings()
    registry = _registry(settings)
    store = _store(settings)
    week_of = _week(week, registry.msp.timezone)
    latest = _latest_week(registry.msp.timezone)
    recent = {latest - dt.timedelta(days=7 * n) for n in range(WEEKS_SHOWN)}
    weeks = sorted(recent | {week_of} | _stored_weeks(store, [c.code for c in registry.customers]), reverse=True)
    rows = [{"code": c.code, "name": c.name, "engineer": c.account_engineer.name,
             **review_state(store, c.code, week_of)} for c in registry.customers]
    selected = next((r for r in rows if r["code"] == customer), None)
    if customer and selected is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer {customer!r} in the registry")
    detail = None
    if selected is not None:
        with store.week_lock(selected["code"], week_of, shared=True):  # render.json and its PDF, together
            selected = {**selected, **review_state(store, selected["code"], week_of)}
            # a PDF without its render.json (a render killed mid-publish) is no version to show
            files = store.week(selected["code"], week_of)
            pdf = files.report_pdf() if selected["render"] else None
            commentary = files.commentary() or ""
            sent_with = _messages(store, selected["code"], week_of) if selected["render"] else None
        detail = {
            **selected,
            "commentary": commentary,
            "commentary_sha256": sha256(commentary.encode()),
            "pages": _page_count(pdf) if pdf else 0,
            "messages": sent_with,
            "previews": _PagePreviews.available(),
            "can_edit": selected["week_state"] in EDITABLE and not selected["delivery_started"]
                        and not selected["closed"],
            "can_decide": selected["week_state"] in DECIDABLE and not selected["delivery_started"]
                          and not selected["closed"],
        }
    session, new = auth.session_value(request)
    response = templates.TemplateResponse(request, "review.html", {
        "user": user.get_name(), "week_of": week_of, "weeks": weeks, "rows": rows, "detail": detail,
        "message": _banner(msg, detail), "csrf_field": auth.CSRF_FIELD, "csrf_token": auth.csrf_token(session, user),
        "dag_id": auth.DAG_ID, "approval_cutoff": _duration(registry.msp.approval_cutoff),
    })
    if new:
        response.set_cookie(auth.CSRF_COOKIE, session, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=request.url_for("page").path)
    return response


@router.get("/pdf/{code}/{week_of}/report.pdf", name="pdf")
def pdf(code: str, week_of: str, user: Annotated[BaseUser, Depends(auth.reader)]):
    settings = _settings()
    customer = _customer(_registry(settings), code)
    week = _week(week_of, "UTC")
    return pdf_response(_store(settings).week(customer.code, week).report_pdf(),
                        f"{customer.code}_weekly-report_{week}.pdf", f"{code} {week}: no report rendered yet")


def decision_form(decision: str, reason: str, **shown: str) -> dict[str, str]:
    """A posted decision checked (400 otherwise); returns the hashes of the version it was shown."""
    if decision not in ("approve", "reject"):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "decision must be 'approve' or 'reject'")
    if decision == "reject" and not reason.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "a rejection needs a reason")
    return shown


def pdf_response(data: bytes | None, filename: str, missing: str) -> Response:
    """A stored PDF, shown inline with its hash; 404 saying ``missing`` when there is none."""
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}"', "X-Report-SHA256": sha256(data)})


@router.get("/pdf/{code}/{week_of}/cover_note.html", name="cover_note")
def cover_note(code: str, week_of: str, user: Annotated[BaseUser, Depends(auth.reader)]):
    """The email's cover note, byte for byte as it will be sent; sandboxed (no script, no form)."""
    from msp_reports import messages

    settings = _settings()
    customer = _customer(_registry(settings), code)
    week = _week(week_of, "UTC")
    data = _store(settings).read_bytes(customer.code, week, messages.COVER_NOTE)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{code} {week}: no cover note rendered")
    return Response(data, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
        "X-Report-SHA256": sha256(data)})


@router.get("/pdf/{code}/{week_of}/page-{number}.png", name="page_png")
def page_png(request: Request, code: str, week_of: str, number: int, user: Annotated[BaseUser, Depends(auth.reader)]):
    settings = _settings()
    customer = _customer(_registry(settings), code)
    week = _week(week_of, "UTC")
    data = _store(settings).week(customer.code, week).report_pdf()
    if data is None or not 1 <= number <= _page_count(data):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{code} {week}: no page {number}")
    return Response(request.app.state.previews.page(data, number), media_type="image/png")


def _refuse_once_delivery_started(current: dict, code: str, week: dt.date) -> None:
    if current["delivery_started"]:
        sent = ", ".join(f"{ch} {st}" for ch, st in current["deliveries"].items() if st != "-")
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{code} {week}: delivery has started{f' ({sent})' if sent else ''}; the approved "
                            "version can no longer change (use the resend command for a corrected report)")


def _refuse_once_run_ended(current: dict, code: str, week: dt.date) -> None:
    """A decision (or a new version) the run can no longer act on is refused, saying what to do."""
    if current["closed"]:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{code} {week}: {current['closed']}")


def _editable(store, code: str, week: dt.date, shown_commentary_sha256: str) -> tuple[WeekState, str]:
    """The state and the stored commentary, if the commentary may change now (else 409)."""
    current_state = review_state(store, code, week)
    state = current_state["week_state"]
    _refuse_once_delivery_started(current_state, code, week)  # the reason that says what to do instead
    _refuse_once_run_ended(current_state, code, week)
    if state not in EDITABLE:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{code} {week} is {current_state['state']}; the commentary cannot change now")
    current = store.week(code, week).commentary() or ""
    if shown_commentary_sha256 != sha256(current.encode()):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"{code} {week}: someone else changed the commentary since you opened it; reload")
    return state, current


@router.post("/commentary/{code}/{week_of}", name="save_commentary")
def save_commentary(request: Request, code: str, week_of: str,
                    user: Annotated[BaseUser, Depends(auth.checked_editor)],
                    commentary: Annotated[str, Form()] = "",
                    shown_commentary_sha256: Annotated[str, Form()] = ""):
    from msp_reports.escaping import COMMENTARY_LIMIT

    rerender: Rerender | None = request.app.state.rerender
    if rerender is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "this review page was started without the report renderer, so it cannot re-render; "
                            "serve it through the Airflow plugin (plugins/review_plugin.py)")
    settings = _settings()
    customer = _customer(_registry(settings), code)
    week = _week(week_of, "UTC")
    store = _store(settings)
    state, current = _editable(store, customer.code, week, shown_commentary_sha256)
    text = commentary.replace("\r\n", "\n").strip()
    if len(text) > COMMENTARY_LIMIT:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"commentary is longer than {COMMENTARY_LIMIT} characters")
    if text == current.strip():
        return _back(request, week, customer.code, "unchanged")
    try:  # rendered outside the lock; published under it only if nothing started meanwhile
        rerender(settings, {"customer": customer.code, "week_of": week.isoformat()},
                 commentary=text + "\n" if text else "",
                 guard=lambda: _editable(store, customer.code, week, shown_commentary_sha256))
    except HTTPException:
        raise
    except Exception as exc:  # nothing was published: the stored commentary is still the one the PDF holds
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                            f"{code} {week}: the report could not be re-rendered ({type(exc).__name__}: "
                            f"{str(exc)[:300]}); the commentary was not changed") from None
    voided = state in (WeekState.APPROVED, WeekState.REJECTED)
    return _back(request, week, customer.code, "saved-voided" if voided else "saved")


@router.post("/decision/{code}/{week_of}", name="decide")
def decide(request: Request, code: str, week_of: str,
           user: Annotated[BaseUser, Depends(auth.checked_editor)],
           decision: Annotated[str, Form()],
           snapshot_sha256: Annotated[str, Form()] = "",
           commentary_sha256: Annotated[str, Form()] = "",
           pdf_sha256: Annotated[str, Form()] = "",
           subject_sha256: Annotated[str, Form()] = "",
           cover_note_sha256: Annotated[str, Form()] = "",
           teams_card_sha256: Annotated[str, Form()] = "",
           reason: Annotated[str, Form()] = ""):
    settings = _settings()
    customer = _customer(_registry(settings), code)
    week = _week(week_of, "UTC")
    shown = decision_form(decision, reason, snapshot_sha256=snapshot_sha256, commentary_sha256=commentary_sha256,
                          pdf_sha256=pdf_sha256, subject_sha256=subject_sha256,
                          cover_note_sha256=cover_note_sha256, teams_card_sha256=teams_card_sha256)
    store = _store(settings)
    with store.week_lock(customer.code, week):  # no delivery can start between the check and the record
        current = review_state(store, customer.code, week)
        _refuse_once_delivery_started(current, code, week)
        _refuse_once_run_ended(current, code, week)
        try:
            record = approval.record_decision(
                store, customer.code, week, decision, by=user.get_name(), via="review-page",
                reason=reason[:1000], reviewed=shown, now=dt.datetime.now(dt.timezone.utc))
        except approval.ApprovalError as exc:  # stale version, expired week, nothing rendered
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    _record_in_variable(record)
    hitl.end_the_wait(user, customer.code, record["week_of"], record, store)
    return _back(request, week, customer.code, "approved" if decision == "approve" else "rejected")


def create_app(rerender: Rerender | None = None) -> FastAPI:
    """The review app; without ``rerender`` (:func:`use_renderer` gives it later) saving answers 503."""
    app = FastAPI(title="Weekly report review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.rerender = rerender
    app.state.previews = _PagePreviews()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.middleware("http")(_headers)
    app.add_exception_handler(HTTPException, _errors)
    app.add_exception_handler(ReportError, _report_errors)
    app.include_router(router)
    from msp_reports.review.qbr import router as qbr_router  # the QBR packs' view, /qbr/

    app.include_router(qbr_router)
    return app


app = create_app()

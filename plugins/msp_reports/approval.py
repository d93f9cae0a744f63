"""Approval per customer per week, bound to exactly what was reviewed.

A decision is an append-only record in the store (``approvals/NNNN.json``): the decision
(``approve``, ``reject`` or ``expired``), who, when, why, how it arrived (``review-page``,
``airflow-variable``, ``wait_for_approval``) and the hashes of what was reviewed, copied from
``render.json`` (:data:`HASHES`): the snapshot (the data), the commentary, the PDF, and the
words the channels send with it (the subject line, the email's cover note, the Teams card; see
:mod:`msp_reports.messages`). A decision stands only while every one still matches the current
render; re-extracted data, new commentary, a new PDF or a changed message void it and the
customer is back to *awaiting review*, with the old record kept as history.

Three ways to decide, one record:

- Airflow's Required Actions page (:mod:`msp_reports.airflow_approval`, :mod:`msp_reports.approval_request`):
  the answer is recorded against the hashes the request showed (``via: required-actions``);
- the review page in the Airflow UI (:mod:`msp_reports.review`) submits the hashes it showed;
  if the report changed since, :func:`record_decision` refuses with :class:`StaleReview`;
- an Airflow Variable, read by ``wait_for_approval`` before it parks and then by the run's one
  Variable watcher (CLI, REST API, Variables page)::

      airflow variables set weekly_report_approval__ACME__2026-11-16 approve
      airflow variables set weekly_report_approval__ACME__2026-11-16 "approve 3f2a9c1e"   # pin the PDF
      airflow variables set weekly_report_approval__ACME__2026-11-16 "reject totals look wrong"

  or a JSON object ``{"decision": "approve", "pdf_sha256": "3f2a9c1e...", "by": "jane@msp.example"}``.
  The sensor records it against the current render and rewrites the Variable to the record, so
  the Variables page shows what was recorded (the review page writes the Variable the same way).

Who decided is who Airflow authenticated: the review page records the signed-in user,
Required Actions the user who answered. A Variable decision is recorded as by the user Airflow's
audit log names for the Variable's latest change (:mod:`msp_reports.airflow_api`; ``poll``'s
``set_by``), or as by ``unknown (Airflow Variable)`` when it names nobody; a name the Variable
gives (``by``) is kept only as a labelled ``note``.

An approval must postdate the report it approves, or pin its hash: a plain ``approve`` that is
already in the Variable when the sensor first looks at a newly published version may have been
set for an earlier one (or before anything was rendered), so it is refused. Pins need at least
:data:`PIN_MIN` hex characters. A value that is not a decision on the current report (a typo, a
wrong pin, an approval set in advance) does not end the week: it is recorded in the store
(``variable_problem.json``, shown on the review page), logged, and the Variable is rewritten to
a note saying why; the sensor keeps waiting, so a corrected Variable or a page decision works.

Nobody deciding is not a decision: when the cut-off passes (``msp.approval_cutoff`` after the
send time) the sensor records ``expired`` and fails with "not approved by ...; nothing sent".
An expired week stays expired. Delivery sends only stored bytes whose hashes are the ones
approved (:func:`approved_version`: the PDF, the snapshot, the subject, the cover note, the
card), and starting it is recorded (``delivery_started.json``) under the week's lock, so the
version cannot change once any channel has been tried.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from collections.abc import Callable
from typing import Literal

from msp_reports.exceptions import ApprovalError
from msp_reports import store as layout
from msp_reports.store import ReportStore, sha256

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "weekly_report_approval"
HASHES = ("snapshot_sha256", "commentary_sha256", "pdf_sha256", "subject_sha256", "cover_note_sha256",
          "teams_card_sha256")
#: the stored files delivery sends, by the hash (in render.json and the approval) that names them;
#: the commentary is not sent by itself: it is bound as the words the PDF was rendered with
ARTEFACTS = {"pdf_sha256": layout.REPORT_PDF, "snapshot_sha256": layout.SNAPSHOT, "subject_sha256": layout.SUBJECT,
             "cover_note_sha256": layout.COVER_NOTE, "teams_card_sha256": layout.TEAMS_CARD}
PIN_MIN = 8  # hex characters of the PDF hash that name one report
VARIABLE_BY = "unknown (Airflow Variable)"
DELIVERY_STARTED = layout.DELIVERY_STARTED
VARIABLE_PROBLEM = layout.VARIABLE_PROBLEM
VARIABLE_SEEN = layout.VARIABLE_SEEN
State = Literal["awaiting_review", "approved_waiting_for_send_time", "approved", "rejected", "expired"]


class StaleReview(ApprovalError):
    """The decision names a version of the report that is no longer the current one."""


class ApprovalClosed(ApprovalError):
    """The week's wait for approval has expired; nothing more can be decided for it."""


class VariableRefused(ApprovalError):
    """The Variable holds something that is not a decision on the current report."""


class RenderedBeforeMessages(ApprovalError):
    """A week rendered before the subject, cover note and Teams card were stored and hashed."""


def variable_key(customer: str, week_of: dt.date) -> str:
    return f"{VARIABLE_PREFIX}__{customer}__{week_of.isoformat()}"


@dataclass(frozen=True)
class Decision:
    decision: Literal["approve", "reject"]
    reason: str = ""
    pdf_sha256: str = ""  # a prefix pinning the PDF that was reviewed
    named: str = ""  # the name the Variable gives as the decider: unverified, kept as a note


def _pin(value: object, key: str) -> str:
    pin = str(value or "").strip().lower()
    if pin and not all(c in "0123456789abcdef" for c in pin):
        raise VariableRefused(f"Variable {key}: after 'approve' give nothing or the PDF hash "
                              f"(e.g. 'approve 3f2a9c1e'), not {pin[:40]!r}")
    if pin and len(pin) < PIN_MIN:
        raise VariableRefused(f"Variable {key}: the PDF hash {pin!r} is too short to name one report; "
                              f"give at least {PIN_MIN} characters of it")
    return pin


def parse_decision(raw: str, key: str) -> Decision | None:
    """The decision in a Variable's value; None when it holds what the sensor or the page wrote
    there (a record, or a note on a refused value). :class:`VariableRefused` says what is wrong."""
    text = raw.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise VariableRefused(f"Variable {key}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise VariableRefused(f"Variable {key}: expected a JSON object with 'decision'")
        decision = str(doc.get("decision", "")).lower()
        if doc.get("refused_at") or (doc.get("recorded_at") and decision in ("approve", "reject", "expired")):
            return None
        if decision not in ("approve", "reject"):
            raise VariableRefused(f"Variable {key}: 'decision' must be 'approve' or 'reject'")
        if decision == "reject" and not str(doc.get("reason") or "").strip():
            raise VariableRefused(f"Variable {key}: a rejection needs a 'reason'")
        return Decision(decision, str(doc.get("reason") or "").strip(), _pin(doc.get("pdf_sha256"), key),
                        str(doc.get("by") or "")[:100])
    word, _, rest = text.partition(" ")
    word = word.lower().rstrip(":")
    rest = rest.strip()
    if word in ("approve", "approved"):
        return Decision("approve", pdf_sha256=_pin(rest, key))
    if word in ("reject", "rejected"):
        if not rest:
            raise VariableRefused(f"Variable {key}: say why, e.g. 'reject backup numbers need checking'")
        return Decision("reject", reason=rest)
    raise VariableRefused(f"Variable {key}: expected 'approve', 'approve <PDF hash>' or 'reject <reason>', "
                          f"got {text[:40]!r}")


def current_render(store: ReportStore, customer: str, week_of: dt.date) -> dict:
    meta = store.week(customer, week_of).render_record()
    if meta is None:
        raise ApprovalError(f"{customer} {week_of}: no rendered report in the store")
    return meta


def reviewed_version(render: dict) -> dict[str, str | None]:
    """The hashes a decision is bound to (:data:`HASHES`; None where an older render has none)."""
    return {h: render.get(h) for h in HASHES}


def latest_record(store: ReportStore, customer: str, week_of: dt.date) -> dict | None:
    records = store.week(customer, week_of).approval_records()
    return records[-1] if records else None


def in_force(store: ReportStore, customer: str, week_of: dt.date) -> dict | None:
    """The decision that stands for the current render, or None (none yet, or voided by a change).

    ``expired`` always stands: once the wait is over, a late re-render does not reopen it.
    """
    record = latest_record(store, customer, week_of)
    if record is None:
        return None
    if record["decision"] == "expired":
        return record
    render = store.week(customer, week_of).render_record()
    if render is None or reviewed_version(record) != reviewed_version(render):
        return None
    return record


def voided(store: ReportStore, customer: str, week_of: dt.date) -> dict | None:
    """The latest decision if a later change to the report voided it (for "approval voided" notes)."""
    record = latest_record(store, customer, week_of)
    if record is None or record["decision"] == "expired" or in_force(store, customer, week_of):
        return None
    return record


def record_decision(store: ReportStore, customer: str, week_of: dt.date, decision: str, *,
                    by: str, via: str, now: dt.datetime, reason: str = "",
                    reviewed: dict[str, str] | None = None, note: str = "") -> dict:
    """Append a decision bound to the current render.

    :param by: who decided, as authenticated (the signed-in user), or a fixed label saying it is not known.
    :param reviewed: the hashes the decider was shown (the review page always sends them);
        if any differs from the current render the decision is refused with :class:`StaleReview`.
    :param note: unverified words kept with the record, labelled as such (e.g. a name a Variable gives).
    """
    if decision not in ("approve", "reject", "expired"):
        raise ApprovalError(f"unknown decision {decision!r}")
    if decision == "reject" and not reason.strip():
        raise ApprovalError(f"{customer} {week_of}: a rejection needs a reason")
    render = current_render(store, customer, week_of)
    current = reviewed_version(render)
    if reviewed is not None:
        # a hash an older render does not have is shown (and posted back) as empty
        changed = [h.removesuffix("_sha256") for h in HASHES if (reviewed.get(h) or None) != current[h]]
        if changed:
            raise StaleReview(
                f"{customer} {week_of}: the report changed since it was shown ({', '.join(changed)}); "
                "review the current version and decide again"
            )
    last = latest_record(store, customer, week_of)
    if last is not None and last["decision"] == "expired":
        raise ApprovalClosed(f"{customer} {week_of}: {last['reason']}")
    record = {
        "customer": customer, "week_of": week_of.isoformat(), "decision": decision,
        "by": by, "reason": reason.strip(), "via": via, "recorded_at": now.isoformat(), "note": note, **current,
    }
    store.week(customer, week_of).append_approval(record)
    return record


def variable_value(record: dict) -> str:
    """What the Variable holds once a decision is recorded: the record itself."""
    return json.dumps(record, sort_keys=True)


def _first_look(store: ReportStore, customer: str, week_of: dt.date, render: dict, now: dt.datetime) -> bool:
    """True on the sensor's first look at this published version (remembered in the store)."""
    version = {**reviewed_version(render), "rendered_at": render.get("rendered_at")}
    seen = store.read_json(customer, week_of, VARIABLE_SEEN)
    if seen is not None and seen.get("version") == version:
        return False
    store.write_json(customer, week_of, VARIABLE_SEEN, {"version": version, "at": now.isoformat()})
    return True


def _check_binds(decision: Decision, render: dict, key: str, first_look: bool) -> None:
    """A decision binds to the current report only if it names it (a pin) or postdates it."""
    current = render["pdf_sha256"]
    if decision.pdf_sha256 and not current.startswith(decision.pdf_sha256):
        raise VariableRefused(f"Variable {key}: the decision names PDF {decision.pdf_sha256}, but the current report "
                              f"is {current[:12]}; review the current report and decide again")
    if decision.decision == "approve" and not decision.pdf_sha256 and first_look:
        raise VariableRefused(f"Variable {key}: this 'approve' was already set when report {current[:12]} was "
                              f"published, so it was not given for it; approve what you reviewed with "
                              f"'approve {current[:12]}' or on the review page")


def _refuse(store: ReportStore, customer: str, week_of: dt.date, raw: str, error: str, now: dt.datetime) -> str:
    """Record a value that is not a decision on the current report; the note the Variable now holds."""
    problem = {"value": raw.strip()[:200], "error": error, "refused_at": now.isoformat()}
    store.week(customer, week_of).write_variable_problem(problem)
    log.warning("%s %s: %s; still waiting for a decision (fix the Variable or use the review page)",
                customer, week_of, error)
    return json.dumps({"refused": problem["value"], "error": error, "refused_at": problem["refused_at"]},
                      sort_keys=True)


def variable_problem(store: ReportStore, customer: str, week_of: dt.date) -> dict | None:
    """The last value refused in the Variable, unless a decision was recorded after it."""
    problem = store.week(customer, week_of).variable_problem()
    last = latest_record(store, customer, week_of)
    if problem is None or (last is not None and dt.datetime.fromisoformat(last["recorded_at"])
                           >= dt.datetime.fromisoformat(problem["refused_at"])):
        return None
    return problem


def poll(store: ReportStore, customer: str, week_of: dt.date, raw: str | None, *,
         now: dt.datetime, not_before: dt.datetime,
         deadline: dt.datetime | None = None, key: str | None = None,
         set_by: Callable[[], str | None] | None = None) -> tuple[State, dict | None, str | None]:
    """One sensor poke. Returns (state, the record in force, new Variable value to write or None).

    A new decision in the Variable is recorded first, if it binds to the current report (see
    :func:`_check_binds`); a value that does not is recorded as a problem and the Variable gets a
    note instead, and the wait goes on. Then the record in force decides. With no decision
    standing at ``deadline``, an ``expired`` record is written and the state is ``expired``.

    :param key: the Variable's name, for the messages (default :func:`variable_key`; the QBR pack's differs).
    :param set_by: who set the Variable (Airflow's audit log; None if it does not say): the
        decision's ``by``, else :data:`VARIABLE_BY`.
    """
    key = key or variable_key(customer, week_of)
    render = current_render(store, customer, week_of)
    first_look = _first_look(store, customer, week_of, render, now)
    new_value = None
    if raw is not None and raw.strip():
        try:
            decision = parse_decision(raw, key)
            if decision is not None:
                _check_binds(decision, render, key, first_look)
                note = f"named in the Variable, not verified: {decision.named}" if decision.named else ""
                recorded = record_decision(store, customer, week_of, decision.decision,
                                           by=(set_by() if set_by else None) or VARIABLE_BY,
                                           reason=decision.reason, via="airflow-variable", now=now, note=note)
                new_value = variable_value(recorded)
        except ApprovalClosed:
            pass  # the expired record below is what stands
        except VariableRefused as exc:
            new_value = _refuse(store, customer, week_of, raw, str(exc), now)
    record = in_force(store, customer, week_of)
    if record is None and deadline is not None and now >= deadline:
        record = record_decision(store, customer, week_of, "expired", by="wait_for_approval",
                                 via="wait_for_approval", now=now,
                                 reason=f"not approved by {deadline:%Y-%m-%d %H:%M %Z}; nothing sent")
        new_value = variable_value(record)
    if record is None:
        return "awaiting_review", None, new_value
    if record["decision"] == "expired":
        return "expired", record, new_value
    if record["decision"] == "reject":
        return "rejected", record, new_value
    if now < not_before:
        return "approved_waiting_for_send_time", record, new_value
    return "approved", record, new_value


def pending_decision(store: ReportStore, customer: str, week_of: dt.date, raw: str | None) -> str | None:
    """A decision in the Variable that the sensor has not recorded yet (read-only; for the 09:00 list)."""
    if not raw or not raw.strip():
        return None
    try:
        decision = parse_decision(raw, variable_key(customer, week_of))
    except ApprovalError:
        return None
    return None if decision is None else decision.decision


def approved_pdf(store: ReportStore, customer: str, week_of: dt.date) -> tuple[bytes, dict]:
    """The approved PDF and its approval, or :class:`ApprovalError` if they do not match (delivery
    reads every artefact instead: :func:`approved_version`).

    Read under the week's lock, so never a PDF of one render beside the ``render.json`` of another."""
    with store.week_lock(customer, week_of, shared=True):
        record = latest_record(store, customer, week_of)
        if record is None or record["decision"] != "approve":
            raise ApprovalError(f"{customer} {week_of}: the report is not approved")
        pdf = store.read_bytes(customer, week_of, layout.REPORT_PDF)
        if pdf is None:
            raise ApprovalError(f"{customer} {week_of}: the approved report is missing from the store")
        if sha256(pdf) != record["pdf_sha256"]:
            raise ApprovalError(
                f"{customer} {week_of}: report.pdf changed after approval "
                f"(approved {record['pdf_sha256'][:12]}, now {sha256(pdf)[:12]}); it must be reviewed again"
            )
        if in_force(store, customer, week_of) is None:
            render = store.read_json(customer, week_of, layout.RENDER) or {}
            changed = [h.removesuffix("_sha256") for h in HASHES if record.get(h) != render.get(h)]
            raise ApprovalError(f"{customer} {week_of}: the report changed after approval (a new render: "
                                f"{', '.join(changed) or 'render.json missing'}); it must be reviewed again")
    return pdf, record


def approved_version(store: ReportStore, customer: str, week_of: dt.date, *,
                     artefacts: dict[str, str] = ARTEFACTS) -> tuple[dict[str, bytes], dict]:
    """Every artefact delivery sends (:data:`ARTEFACTS`), by file name, and its approval; each file's
    bytes checked against the hash the approval holds, all read under the week's lock.

    A week rendered before the messages were stored (its render.json, so its approval, has no
    subject, cover note or card hash; or no snapshot hash) is refused with
    :class:`RenderedBeforeMessages`, telling to re-render: delivering it would mean building the
    cover note and the card now, words nobody approved by hash. It is refused before any channel
    starts, so the re-render is still allowed.
    """
    with store.week_lock(customer, week_of, shared=True):
        pdf, record = approved_pdf(store, customer, week_of)
        unhashed = [name for key, name in artefacts.items() if not record.get(key)]
        if unhashed:
            raise RenderedBeforeMessages(
                f"{customer} {week_of}: the report was rendered before everything it sends was stored and "
                f"hashed (no hash of {', '.join(unhashed)} in the approved version), so delivering it would "
                "send content nobody approved; re-render to deliver (then review and approve it again)")
        files: dict[str, bytes] = {}
        for key, name in artefacts.items():
            data = pdf if name == layout.REPORT_PDF else store.read_bytes(customer, week_of, name)
            if data is None:
                raise ApprovalError(f"{customer} {week_of}: {name} of the approved version is missing from the "
                                    "store; nothing is sent without it (re-render, then review it again)")
            if sha256(data) != record[key]:
                raise ApprovalError(
                    f"{customer} {week_of}: {name} changed after approval (approved {record[key][:12]}, "
                    f"now {sha256(data)[:12]}); nothing is sent until the report is reviewed again")
            files[name] = data
    return files, record


def start_delivery(store: ReportStore, customer: str, week_of: dt.date, *,
                   now: dt.datetime, artefacts: dict[str, str] = ARTEFACTS) -> tuple[dict[str, bytes], dict]:
    """The approved artefacts (:func:`approved_version`), with the start of their delivery recorded
    under the week's lock: from then on the version is fixed (a re-render or a new decision on the
    review page is refused), so every channel carries the same report."""
    with store.week_lock(customer, week_of):
        files, record = approved_version(store, customer, week_of, artefacts=artefacts)
        if store.read_json(customer, week_of, DELIVERY_STARTED) is None:
            store.write_json(customer, week_of, DELIVERY_STARTED,
                             {**reviewed_version(record), "started_at": now.isoformat()})
    return files, record


def delivery_started(store: ReportStore, customer: str, week_of: dt.date) -> bool:
    """Whether any channel has been tried (the record, or a receipt from a week before it was kept)."""
    week = store.week(customer, week_of)
    return week.delivery_started() is not None or bool(week.receipt_channels())

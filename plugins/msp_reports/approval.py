"""Approval per customer per week, bound to exactly what was reviewed.

A decision is an append-only record in the store (``approvals/NNNN.json``): the decision
(``approve``, ``reject`` or ``expired``), who, when, why, how it arrived (``review-page``,
``airflow-variable``, ``wait_for_approval``) and the three hashes of what was reviewed, copied
from ``render.json``: the snapshot (the data), the commentary and the PDF. A decision stands
only while all three still match the current render; re-extracted data, new commentary or a new
PDF void it and the customer is back to *awaiting review*, with the old record kept as history.

Two ways to decide, one record:

- the review page in the Airflow UI (:mod:`msp_reports.review`) submits the hashes it showed;
  if the report changed since, :func:`record_decision` refuses with :class:`StaleReview`;
- an Airflow Variable, read by the ``wait_for_approval`` sensor (CLI, REST API, Variables page)::

      airflow variables set weekly_report_approval__ACME__2026-11-16 approve
      airflow variables set weekly_report_approval__ACME__2026-11-16 "approve 3f2a9c1e"   # pin the PDF
      airflow variables set weekly_report_approval__ACME__2026-11-16 "reject totals look wrong"

  or a JSON object ``{"decision": "approve", "by": "jane@msp.example", "pdf_sha256": "3f2a..."}``.
  The sensor records it against the current render and rewrites the Variable to the record, so
  the Variables page shows what was recorded (the review page writes the Variable the same way).

Nobody deciding is not a decision: when the cut-off passes (``msp.approval_cutoff`` after the
send time) the sensor records ``expired`` and fails with "not approved by ...; nothing sent".
An expired week stays expired. Delivery sends only a PDF whose hash is the one approved.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from msp_reports.exceptions import ApprovalError
from msp_reports.store import ReportStore, sha256

VARIABLE_PREFIX = "weekly_report_approval"
HASHES = ("snapshot_sha256", "commentary_sha256", "pdf_sha256")
State = Literal["awaiting_review", "approved_waiting_for_send_time", "approved", "rejected", "expired"]


class StaleReview(ApprovalError):
    """The decision names a version of the report that is no longer the current one."""


class ApprovalClosed(ApprovalError):
    """The week's wait for approval has expired; nothing more can be decided for it."""


def variable_key(customer: str, week_of: dt.date) -> str:
    return f"{VARIABLE_PREFIX}__{customer}__{week_of.isoformat()}"


@dataclass(frozen=True)
class Decision:
    decision: Literal["approve", "reject"]
    by: str = "unknown (Airflow Variable)"
    reason: str = ""
    pdf_sha256: str = ""  # optional prefix pinning the PDF that was reviewed
    recorded: bool = False  # the Variable already holds a record (written by the sensor or the page)


def parse_decision(raw: str, key: str) -> Decision:
    text = raw.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ApprovalError(f"Variable {key}: not valid JSON: {exc}") from None
        decision = str(doc.get("decision", "")).lower()
        if doc.get("recorded_at") and decision in ("approve", "reject", "expired"):
            return Decision("reject" if decision != "approve" else "approve", recorded=True)
        if decision not in ("approve", "reject"):
            raise ApprovalError(f"Variable {key}: 'decision' must be 'approve' or 'reject'")
        if decision == "reject" and not doc.get("reason"):
            raise ApprovalError(f"Variable {key}: a rejection needs a 'reason'")
        return Decision(decision, str(doc.get("by") or Decision.by), str(doc.get("reason") or ""),
                        str(doc.get("pdf_sha256") or ""))
    word, _, rest = text.partition(" ")
    word = word.lower().rstrip(":")
    rest = rest.strip()
    if word in ("approve", "approved"):
        if rest and not all(c in "0123456789abcdef" for c in rest.lower()):
            raise ApprovalError(f"Variable {key}: after 'approve' give nothing or the PDF hash prefix, not {rest!r}")
        return Decision("approve", pdf_sha256=rest.lower())
    if word in ("reject", "rejected"):
        if not rest:
            raise ApprovalError(f"Variable {key}: say why, e.g. 'reject backup numbers need checking'")
        return Decision("reject", reason=rest)
    raise ApprovalError(f"Variable {key}: expected 'approve' or 'reject <reason>', got {text[:40]!r}")


def current_render(store: ReportStore, customer: str, week_of: dt.date) -> dict:
    meta = store.read_json(customer, week_of, "render.json")
    if meta is None:
        raise ApprovalError(f"{customer} {week_of}: no rendered report in the store")
    return meta


def reviewed_version(render: dict) -> dict[str, str | None]:
    """The three hashes a decision is bound to."""
    return {h: render.get(h) for h in HASHES}


def latest_record(store: ReportStore, customer: str, week_of: dt.date) -> dict | None:
    records = store.records(customer, week_of, "approvals")
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
    render = store.read_json(customer, week_of, "render.json")
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
                    reviewed: dict[str, str] | None = None) -> dict:
    """Append a decision bound to the current render.

    :param reviewed: the hashes the decider was shown (the review page always sends them);
        if any differs from the current render the decision is refused with :class:`StaleReview`.
    """
    if decision not in ("approve", "reject", "expired"):
        raise ApprovalError(f"unknown decision {decision!r}")
    if decision == "reject" and not reason.strip():
        raise ApprovalError(f"{customer} {week_of}: a rejection needs a reason")
    render = current_render(store, customer, week_of)
    current = reviewed_version(render)
    if reviewed is not None:
        changed = [h.removesuffix("_sha256") for h in HASHES if reviewed.get(h) != current[h]]
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
        "by": by, "reason": reason.strip(), "via": via, "recorded_at": now.isoformat(), **current,
    }
    store.append_record(customer, week_of, "approvals", record)
    return record


def variable_value(record: dict) -> str:
    """What the Variable holds once a decision is recorded: the record itself."""
    return json.dumps(record, sort_keys=True)


def poll(store: ReportStore, customer: str, week_of: dt.date, raw: str | None, *,
         now: dt.datetime, not_before: dt.datetime,
         deadline: dt.datetime | None = None) -> tuple[State, dict | None, str | None]:
    """One sensor poke. Returns (state, the record in force, new Variable value to write or None).

    A new decision in the Variable is recorded first; then the record in force decides. With no
    decision standing at ``deadline``, an ``expired`` record is written and the state is
    ``expired``.
    """
    key = variable_key(customer, week_of)
    render = current_render(store, customer, week_of)
    new_value = None
    if raw is not None and raw.strip():
        decision = parse_decision(raw, key)
        if not decision.recorded:
            if decision.pdf_sha256 and not render["pdf_sha256"].startswith(decision.pdf_sha256):
                raise ApprovalError(
                    f"Variable {key}: the decision names PDF {decision.pdf_sha256}, but the current report is "
                    f"{render['pdf_sha256'][:12]}; review the current report and decide again"
                )
            try:
                recorded = record_decision(store, customer, week_of, decision.decision, by=decision.by,
                                           reason=decision.reason, via="airflow-variable", now=now)
                new_value = variable_value(recorded)
            except ApprovalClosed:
                pass  # the expired record below is what stands
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
    return None if decision.recorded else decision.decision


def approved_pdf(store: ReportStore, customer: str, week_of: dt.date) -> tuple[bytes, dict]:
    """The PDF to deliver and its approval, or :class:`ApprovalError` if they do not match."""
    record = latest_record(store, customer, week_of)
    if record is None or record["decision"] != "approve":
        raise ApprovalError(f"{customer} {week_of}: the report is not approved")
    pdf = store.read_bytes(customer, week_of, "report.pdf")
    if pdf is None:
        raise ApprovalError(f"{customer} {week_of}: the approved report is missing from the store")
    if sha256(pdf) != record["pdf_sha256"] or in_force(store, customer, week_of) is None:
        raise ApprovalError(
            f"{customer} {week_of}: the report changed after approval "
            f"(approved {record['pdf_sha256'][:12]}, now {sha256(pdf)[:12]}); it must be reviewed again"
        )
    return pdf, record

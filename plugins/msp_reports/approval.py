"""Approval per customer per week, bound to the exact PDF that was reviewed.

The account engineer decides with one Airflow Variable (CLI, REST API or the Variables page)::

    airflow variables set weekly_report_approval__ACME__2026-11-16 approve
    airflow variables set weekly_report_approval__ACME__2026-11-16 "approve 3f2a9c1e"   # pin the PDF
    airflow variables set weekly_report_approval__ACME__2026-11-16 "reject totals look wrong"

or a JSON object ``{"decision": "approve", "by": "jane@msp.example", "pdf_sha256": "3f2a..."}``.

When the sensor sees a decision it appends an approval record to the store (who, when, why,
which PDF hash) and rewrites the Variable to that record, so the Variable page shows what was
recorded. An approval covers one rendered PDF: if the report is re-rendered afterwards (new
commentary, re-extracted data) the approval no longer matches and the customer goes back to
awaiting review until someone decides again. Delivery sends only a PDF whose hash equals the
approved one.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Literal

from msp_reports.exceptions import ApprovalError
from msp_reports.store import ReportStore, sha256

VARIABLE_PREFIX = "weekly_report_approval"
State = Literal["awaiting_review", "approved_waiting_for_send_time", "approved", "rejected"]


def variable_key(customer: str, week_of: dt.date) -> str:
    return f"{VARIABLE_PREFIX}__{customer}__{week_of.isoformat()}"


@dataclass(frozen=True)
class Decision:
    decision: Literal["approve", "reject"]
    by: str = "unknown (Airflow Variable)"
    reason: str = ""
    pdf_sha256: str = ""  # optional prefix pinning the PDF that was reviewed
    recorded: bool = False  # the Variable already holds a record written by the sensor


def parse_decision(raw: str, key: str) -> Decision:
    text = raw.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ApprovalError(f"Variable {key}: not valid JSON: {exc}") from None
        decision = str(doc.get("decision", "")).lower()
        if decision not in ("approve", "reject"):
            raise ApprovalError(f"Variable {key}: 'decision' must be 'approve' or 'reject'")
        if decision == "reject" and not doc.get("reason"):
            raise ApprovalError(f"Variable {key}: a rejection needs a 'reason'")
        return Decision(decision, str(doc.get("by") or Decision.by), str(doc.get("reason") or ""),
                        str(doc.get("pdf_sha256") or ""), bool(doc.get("recorded_at")))
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


def latest_record(store: ReportStore, customer: str, week_of: dt.date) -> dict | None:
    records = store.records(customer, week_of, "approvals")
    return records[-1] if records else None


def poll(store: ReportStore, customer: str, week_of: dt.date, raw: str | None, *,
         now: dt.datetime, not_before: dt.datetime) -> tuple[State, dict | None, str | None]:
    """One sensor poke. Returns (state, the record in force, new Variable value to write or None)."""
    key = variable_key(customer, week_of)
    render = current_render(store, customer, week_of)
    if raw is None or not raw.strip():
        return "awaiting_review", None, None
    decision = parse_decision(raw, key)
    record = latest_record(store, customer, week_of)
    if decision.recorded:
        # the Variable holds our own record: it stands only for the PDF it was recorded against
        if record is None or record["pdf_sha256"] != render["pdf_sha256"]:
            return "awaiting_review", None, None
    else:
        if decision.pdf_sha256 and not render["pdf_sha256"].startswith(decision.pdf_sha256):
            raise ApprovalError(
                f"Variable {key}: the decision names PDF {decision.pdf_sha256}, but the current report is "
                f"{render['pdf_sha256'][:12]}; review the current report and decide again"
            )
        record = {
            "customer": customer, "week_of": week_of.isoformat(), "decision": decision.decision,
            "by": decision.by, "reason": decision.reason, "via": "airflow-variable",
            "pdf_sha256": render["pdf_sha256"], "snapshot_sha256": render.get("snapshot_sha256"),
            "commentary_sha256": render.get("commentary_sha256"),
            "recorded_at": now.isoformat(),
        }
        store.append_record(customer, week_of, "approvals", record)
    new_value = json.dumps(record, sort_keys=True) if not decision.recorded else None
    if record["decision"] == "reject":
        return "rejected", record, new_value
    if now < not_before:
        return "approved_waiting_for_send_time", record, new_value
    return "approved", record, new_value


def approved_pdf(store: ReportStore, customer: str, week_of: dt.date) -> tuple[bytes, dict]:
    """The PDF to deliver and its approval, or :class:`ApprovalError` if they do not match."""
    record = latest_record(store, customer, week_of)
    if record is None or record["decision"] != "approve":
        raise ApprovalError(f"{customer} {week_of}: the report is not approved")
    pdf = store.read_bytes(customer, week_of, "report.pdf")
    if pdf is None:
        raise ApprovalError(f"{customer} {week_of}: the approved report is missing from the store")
    if sha256(pdf) != record["pdf_sha256"]:
        raise ApprovalError(
            f"{customer} {week_of}: the report changed after approval "
            f"(approved {record['pdf_sha256'][:12]}, now {sha256(pdf)[:12]}); it must be reviewed again"
        )
    return pdf, record

"""What Airflow's Required Actions asks a reviewer, and what an answer there records (plain Python).

One customer-week's approval is asked as an Airflow Human-in-the-loop request
(:mod:`msp_reports.airflow_approval` parks the task on it): :func:`brief` gives its subject
(the customer and the week, the same words the review page bridge and the Variable watcher use
to find it: :func:`subject`), its Markdown body (the executive summary, the flags, the PDF's
hash, links to the review page and to the PDF; every value from a source escaped) and the
hashes of the version it shows. :func:`record_answer` turns the answer into the same approval
record the review page and the Variable write (:func:`msp_reports.approval.record_decision`),
bound to the hashes that were shown: if the report changed since, nothing is recorded and the
customer is back to awaiting review with the reason kept where the review page shows it.
Airflow never rewrites a request, so the current version is then decided on the review page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from msp_reports import approval
from msp_reports.escaping import escape_markdown
from msp_reports.store import ReportStore

APPROVE, REJECT = "Approve", "Reject"
OPTIONS = [APPROVE, REJECT]
DECISIONS = {APPROVE: "approve", REJECT: "reject"}
VIA = "required-actions"
TASK_ID = "customer_report.wait_for_approval"  # the DAG's task that asks
REVIEW_PATH = "/weekly-reports-review/"
SUMMARY_LIMIT = 600
# An answer waits until its task has been parked this long: answered sooner, the resumed try can
# be failed by Airflow (the executor's late report that the parking process finished is taken for
# the resumed try's end; msp_reports.review.hitl says more)
SETTLE = dt.timedelta(seconds=30)


def subject(customer: str, week_of: dt.date) -> str:
    """The request's headline: names the customer and the week; unique per customer-week."""
    return f"Weekly report {customer}, week of {week_of.isoformat()}: approve or reject"


def review_url(base_url: str, customer: str, week_of: dt.date) -> str:
    return f"{base_url.rstrip('/')}{REVIEW_PATH}?{urlencode({'week': week_of.isoformat(), 'customer': customer})}"


def pdf_url(base_url: str, customer: str, week_of: dt.date) -> str:
    return f"{base_url.rstrip('/')}{REVIEW_PATH}pdf/{quote(customer)}/{week_of.isoformat()}/report.pdf"


@dataclass(frozen=True)
class Brief:
    subject: str
    body: str
    shown: dict[str, str | None]  # the hashes of the version the body describes


def brief(store: ReportStore, customer: str, name: str, week_of: dt.date, summary: list[str],
          base_url: str) -> Brief:
    """The request for the current render: what a reviewer needs to decide, in Markdown."""
    render = approval.current_render(store, customer, week_of)
    reconciled = store.read_json(customer, week_of, "reconciled.json") or {}
    flags = reconciled.get("flags") or []
    lines = [f"**{escape_markdown(name)}** ({escape_markdown(customer)}), week of {week_of:%d %b %Y}", "",
             "**Executive summary**", ""]
    lines += [f"- {escape_markdown(s, SUMMARY_LIMIT)}" for s in summary] or ["- (no summary)"]
    lines += ["", f"**Flags** ({len(flags)})", ""]
    lines += [f"- {escape_markdown(f.get('severity', ''))}: {escape_markdown(f.get('message', ''), SUMMARY_LIMIT)}"
              for f in flags] or ["- none"]
    lines += ["", f"**PDF** `{render['pdf_sha256']}`", "",
              f"[Open the review page]({review_url(base_url, customer, week_of)}) · "
              f"[Open the PDF]({pdf_url(base_url, customer, week_of)})", "",
              "Approve sends exactly this version (the PDF, the email's cover note and the Teams card whose "
              "hashes the review page shows). To reject, give the reason in the form. If the report is "
              "re-rendered after this request was written, an answer here is not taken: decide the new "
              "version on the review page."]
    return Brief(subject(customer, week_of), "\n".join(lines), approval.reviewed_version(render))


@dataclass(frozen=True)
class Answer:
    """What became of an answer: ``recorded`` (the record), or ``refused`` saying why."""

    record: dict | None
    refused: str = ""


def record_answer(store: ReportStore, customer: str, week_of: dt.date, option: str, reason: str, *,
                  by: str, shown: dict, asked_at: dt.datetime, now: dt.datetime) -> Answer:
    """Record the answer given to the request asked at ``asked_at`` about the ``shown`` version.

    The review page and the Variable watcher record their decision in the store before they
    answer the request; such a decision (taken after the request was asked, and the one chosen)
    is the record, not a second one. Otherwise the answer is recorded here, by the Airflow user
    who gave it. A rejection without a reason, or an answer about a version that is no longer the
    current one, is refused: nothing is recorded, the refusal is kept for the review page.
    """
    decision = DECISIONS.get(option)
    with store.week_lock(customer, week_of):
        standing = approval.in_force(store, customer, week_of)
        if standing is not None and (standing["decision"] == decision or standing["decision"] == "expired") \
                and dt.datetime.fromisoformat(standing["recorded_at"]) >= asked_at:
            return Answer(standing)
        try:
            if decision is None:
                raise approval.ApprovalError(f"{customer} {week_of}: unknown answer {option!r}")
            if decision == "reject" and not reason.strip():
                raise approval.ApprovalError("a rejection needs a reason: give it in the form's Reason field")
            if approval.delivery_started(store, customer, week_of):
                raise approval.ApprovalError(f"{customer} {week_of}: delivery has started; the approved version "
                                             "can no longer change")
            return Answer(approval.record_decision(store, customer, week_of, decision, by=by, via=VIA,
                                                   reason=reason[:1000], reviewed=shown, now=now))
        except approval.ApprovalClosed:
            return Answer(approval.latest_record(store, customer, week_of))
        except approval.ApprovalError as exc:
            error = f"Required Actions answer {option!r} by {by} not taken: {exc}"
            store.week(customer, week_of).write_variable_problem(
                {"value": f"{option} (Required Actions, {by})", "error": error, "refused_at": now.isoformat()})
            return Answer(None, error)

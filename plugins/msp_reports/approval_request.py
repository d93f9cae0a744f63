"""What Airflow's Required Actions asks a reviewer, and what an answer there records (plain Python).

One customer's approval of a weekly report (one customer-week) or of a QBR pack (one
customer-quarter) is asked as an Airflow Human-in-the-loop request
(:mod:`msp_reports.airflow_approval` parks the task on it). What differs between the two is a
:class:`Kind` (:data:`WEEKLY`, :data:`QBR`): the DAG and task, the request's subject (the
customer and the period, the same words the review page bridge and the Variable watcher use to
find it: :meth:`Kind.subject`), the review page's view, the store and the Variable.
:func:`brief` (the weekly report) and :func:`qbr_brief` give the request: its subject, its
Markdown body (the executive summary and flags, or the pack's headlines; the PDF's hash, links
to the review page and to the PDF; every value from a source escaped) and the hashes of the
version it shows. :func:`record_answer` turns the answer into the same approval record the
review page and the Variable write (:func:`msp_reports.approval.record_decision`), bound to the
hashes that were shown: if the report changed since, nothing is recorded and the customer is back
to awaiting review with the reason kept where the review page shows it. Airflow never rewrites a
request, so the current version is then decided on the review page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from msp_reports import approval, qbr_store
from msp_reports.escaping import escape_markdown
from msp_reports.store import ReportStore

APPROVE, REJECT = "Approve", "Reject"
OPTIONS = [APPROVE, REJECT]
DECISIONS = {APPROVE: "approve", REJECT: "reject"}
VIA = "required-actions"
REVIEW_PATH = "/weekly-reports-review/"
SUMMARY_LIMIT = 600
# An answer waits until its task has been parked this long: answered sooner, the resumed try can
# be failed by Airflow (the executor's late report that the parking process finished is taken for
# the resumed try's end; msp_reports.review.hitl says more)
SETTLE = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class Kind:
    """One kind of report whose approval is a Required Action: the weekly report or the QBR pack.

    Names and places only, so the review page can find and answer a request with it; the task
    reaches the kind's pipeline (:attr:`pipeline`: its ``check_approval``, ``approval_brief``,
    ``answer_approval``, ``wait_deadline`` and ``send_time``, all taking the run's item) when it runs.
    A kind's period is a string in the item (:attr:`period_field`: ``2026-11-16``, ``2026-Q3``); its
    records are keyed by a day (:attr:`records_key`, and back: :attr:`period_of`).
    """

    title: str  # the task's subject until it writes its request
    noun: str
    dag_id: str
    task_id: str
    period_field: str
    subject_format: str  # the request's headline: names the customer and the period; unique per kind
    review_path: str  # the kind's view of the review page, from Airflow's base URL
    period_query: str  # the view's query parameter naming the period
    pipeline: str
    store: type[ReportStore]
    records_key: Callable[[str], dt.date]
    period_of: Callable[[dt.date], str]
    variable_key: Callable[[str, str], str]

    def period(self, item: dict) -> str:
        return item[self.period_field]

    def subject(self, customer: str, period: str) -> str:
        return self.subject_format.format(customer=customer, period=period)

    def review_url(self, base_url: str, customer: str, period: str) -> str:
        query = urlencode({self.period_query: period, "customer": customer})
        return f"{base_url.rstrip('/')}{self.review_path}?{query}"

    def pdf_url(self, base_url: str, customer: str, period: str) -> str:
        return f"{base_url.rstrip('/')}{self.review_path}pdf/{quote(customer)}/{period}/report.pdf"


WEEKLY = Kind(title="Weekly report approval", noun="report", dag_id="weekly_executive_report",
              task_id="customer_report.wait_for_approval", period_field="week_of",
              subject_format="Weekly report {customer}, week of {period}: approve or reject",
              review_path=REVIEW_PATH, period_query="week", pipeline="msp_reports.pipeline", store=ReportStore,
              records_key=dt.date.fromisoformat, period_of=dt.date.isoformat,
              variable_key=lambda customer, period: approval.variable_key(customer, dt.date.fromisoformat(period)))
QBR = Kind(title="QBR pack approval", noun="pack", dag_id="quarterly_business_review",
           task_id="customer_pack.wait_for_approval", period_field="quarter",
           subject_format="QBR pack approval: {customer} {period}",
           review_path=f"{REVIEW_PATH}qbr/", period_query="quarter", pipeline="msp_reports.qbr_pipeline",
           store=qbr_store.PackStore, records_key=qbr_store.quarter_first_day, period_of=qbr_store.quarter_label,
           variable_key=qbr_store.variable_key)


@dataclass(frozen=True)
class Brief:
    subject: str
    body: str
    shown: dict[str, str | None]  # the hashes of the version the body describes


def brief(store: ReportStore, customer: str, name: str, week_of: dt.date, summary: list[str],
          base_url: str) -> Brief:
    """The weekly report's request for the current render: the executive summary and the flags."""
    reconciled = store.read_json(customer, week_of, "reconciled.json") or {}
    flags = reconciled.get("flags") or []
    lines = [f"- {escape_markdown(f.get('severity', ''))}: {escape_markdown(f.get('message', ''), SUMMARY_LIMIT)}"
             for f in flags] or ["- none"]
    return kind_brief(WEEKLY, store, customer, name, week_of.isoformat(), f"week of {week_of:%d %b %Y}",
                      {"**Executive summary**": _listed(summary, "(no summary)"), f"**Flags** ({len(flags)})": lines},
                      base_url)


def qbr_brief(store: ReportStore, customer: str, name: str, quarter: str, headlines: list[str],
              base_url: str) -> Brief:
    """The QBR pack's request for the current render: the pack's headlines."""
    return kind_brief(QBR, store, customer, name, quarter, f"quarterly business review, {quarter}",
                      {"**Headlines**": _listed(headlines, "(no headlines)")}, base_url)


def _listed(texts: list[str], empty: str) -> list[str]:
    return [f"- {escape_markdown(s, SUMMARY_LIMIT)}" for s in texts] or [f"- {empty}"]


def kind_brief(kind: Kind, store: ReportStore, customer: str, name: str, period: str, period_text: str,
               sections: dict[str, list[str]], base_url: str) -> Brief:
    """What a reviewer needs to decide, in Markdown: the customer and the period, the ``sections``
    (bold titles and their list lines, escaped by the caller), the PDF's hash and the links."""
    render = approval.current_render(store, customer, kind.records_key(period))
    lines = [f"**{escape_markdown(name)}** ({escape_markdown(customer)}), {period_text}"]
    for title, items in sections.items():
        lines += ["", title, "", *items]
    lines += ["", f"**PDF** `{render['pdf_sha256']}`", "",
              f"[Open the review page]({kind.review_url(base_url, customer, period)}) · "
              f"[Open the PDF]({kind.pdf_url(base_url, customer, period)})", "",
              "Approve sends exactly this version (the PDF, the email's cover note and the Teams card whose "
              f"hashes the review page shows). To reject, give the reason in the form. If the {kind.noun} is "
              "re-rendered after this request was written, an answer here is not taken: decide the new "
              "version on the review page."]
    return Brief(kind.subject(customer, period), "\n".join(lines), approval.reviewed_version(render))


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

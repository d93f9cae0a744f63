"""The approval wait, the Airflow way: a Required Action per customer, and one Variable watcher per run.

:class:`ReportApproval` is the customer group's ``wait_for_approval``: an Airflow
Human-in-the-loop task. It first does what the sensor did on its first poke
(:func:`msp_reports.pipeline.check_approval`): a week already delivered, a decision already in
the store for the current version (or in the Variable) ends it at once. Otherwise it asks on
the Required Actions page (:func:`msp_reports.pipeline.approval_brief`: the customer and week,
the executive summary, flags, the PDF's hash, links to the review page and the PDF; Approve or
Reject, with a Reason field) and parks in ``awaiting_input``: no worker slot, no poke. Its
``response_timeout`` is ``msp.approval_cutoff`` (the same deadline the sensor held to); when the
scheduler's sweep ends the wait there, it records ``expired`` and fails saying nothing was sent.

Whoever answers: the Required Actions page (recorded here, as the Airflow user who answered),
the review page (records the decision, then answers through Airflow's own HITL route:
:mod:`msp_reports.review.hitl`), or the Variable (:func:`watch_variables`, one reschedule sensor
for the whole run, records it and answers through the REST API: :mod:`msp_reports.airflow_api`).
An answer about a version that is no longer the current one (or a rejection without a reason)
sends nothing: it is kept for the review page ("value refused") and the same request waits again.
Airflow keeps one request per task instance and never rewrites its subject or body (not on a
retry either: the request follows the task instance to its new try), so after a re-render the
request still describes the version it was written for, and an answer to it keeps being refused;
the current version is decided on the review page (the request links to it) or by the Variable,
both of which record their decision and then answer this same request.

The QBR pack waits the same way, on its own records, Variable and view of the review page: each
is the ``kind`` (:class:`msp_reports.approval_request.Kind`) the task and the watcher are given,
whose pipeline module (:mod:`msp_reports.pipeline`, :mod:`msp_reports.qbr_pipeline`) looks,
asks and answers for it.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk.definitions.param import Param, ParamsDict

from msp_reports import approval_request
from msp_reports.approval_request import Kind
from msp_reports.task_items import customer_item as _item
from msp_reports.task_items import item_settings as _settings

REASON = "reason"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _pipeline(kind: Kind):
    """The module whose functions serve this kind's wait (:attr:`Kind.pipeline`)."""
    return importlib.import_module(kind.pipeline)


def _variable(kind: Kind, item: dict) -> tuple[str, str | None]:
    from airflow.sdk import Variable

    key = kind.variable_key(item["customer"], kind.period(item))
    return key, Variable.get(key, default=None)


def _write_variable(key: str, value: str | None, by: str) -> None:
    if value is not None:
        from airflow.sdk import Variable

        Variable.set(key, value, description=f"Recorded by {by}")


def _run_record(kind: Kind, settings, item: dict) -> dict:
    """What the run did with this customer's period (``run.json``)."""
    from msp_reports import run_record

    return run_record.read(kind.store(settings.store_root), item["customer"],
                           kind.records_key(kind.period(item))) or {}


def _waiting_since(kind: Kind, settings, item: dict) -> dt.datetime | None:
    """When this run began waiting for this customer (kept in ``run.json`` across tries)."""
    record = _run_record(kind, settings, item)
    if record and record.get("run") == item.get("run") and record.get("phase") == "waiting" and record.get("since"):
        return dt.datetime.fromisoformat(record["since"])
    return None


def _setter(key: str):
    """Who set the Variable, from Airflow's audit log (None without the API connection)."""
    def lookup() -> str | None:
        from msp_reports.airflow_api import AirflowApi

        api = AirflowApi.from_connection()
        try:
            return api.variable_setter(key) if api else None
        except Exception as exc:  # noqa: BLE001 - the audit log is unreadable: recorded as unknown
            print(f"{key}: cannot read Airflow's audit log ({type(exc).__name__}: {exc}); recorded as unknown")
            return None
    return lookup


def _base_url() -> str:
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback="") or "http://localhost:8080"


class ReportApproval(HITLOperator):
    """``wait_for_approval`` for one customer (``code``: the group's mapped argument); ``kind``:
    what is approved (the weekly report by default, or the QBR pack: :data:`approval_request.QBR`)."""

    template_fields = ("code",)

    def __init__(self, *, code: Any, kind: Kind = approval_request.WEEKLY, params: Any = None, **kwargs) -> None:
        # ``params`` arrives holding the DAG's own Params (the trigger form's customers and week_of,
        # source "dag"), which HITLOperator leaves out of the answer form; the reason is this task's.
        form = ParamsDict(params or {})
        form[REASON] = Param(None, type=["null", "string"], title="Reason", source="task",
                             description="Why the report is rejected (needed to reject; ignored on approve)")
        super().__init__(
            subject=kind.title, options=list(approval_request.OPTIONS), multiple=False,
            params=form, **kwargs)
        self.code = code
        self.kind = kind

    @property
    def op_args(self) -> list:
        """The customer code, where the grid's label (``map_index_template``) looks for it."""
        return [self.code]

    def execute(self, context):
        item = _item(context, self.code)
        settings = _settings(item)
        pipeline = _pipeline(self.kind)
        since = _waiting_since(self.kind, settings, item) or _now()
        key, raw = _variable(self.kind, item)
        state, record, new_value = pipeline.check_approval(settings, item, raw, waiting_since=since,
                                                           set_by=_setter(key))
        _write_variable(key, new_value, "wait_for_approval")
        if state != "awaiting_review":
            return self._end(context, item, state, record)
        request = pipeline.approval_brief(settings, item, _base_url())
        self.subject, self.body = request.subject, request.body
        return self._park(context, item, request.shown, since)

    def _park(self, context, item: dict, shown: dict, since: dt.datetime, asked_at: dt.datetime | None = None):
        """Write the request (or, answered and refused, clear its answer: Airflow keeps one request per
        task instance, its subject and body as first written) and wait in ``awaiting_input``."""
        from airflow.sdk.exceptions import TaskAwaitingInput
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        pipeline = _pipeline(self.kind)
        asked_at = asked_at or _now()
        upsert_hitl_detail(ti_id=context["task_instance"].id, options=self.options, subject=self.subject,
                           body=self.body, defaults=None, multiple=False, params=self.serialized_params)
        # a decision recorded while the request was being written (the review page found nothing to
        # answer yet), or set in the Variable meanwhile: it stands; from here on an answer reaches
        # the request (Airflow resumes a task answered between writing its request and parking)
        key, raw = _variable(self.kind, item)
        state, record, new_value = pipeline.check_approval(_settings(item), item, raw, waiting_since=since,
                                                           set_by=_setter(key))
        _write_variable(key, new_value, "wait_for_approval")
        if state != "awaiting_review":
            return self._end(context, item, state, record)
        deadline = pipeline.wait_deadline(_settings(item), item, since)
        print(f"{item['customer']}: awaiting review on the Required Actions page until {deadline.isoformat()}")
        raise TaskAwaitingInput(method_name="execute_complete",
                                kwargs={"shown": shown, "asked_at": asked_at.isoformat(), "since": since.isoformat()},
                                timeout=max(deadline - _now(), dt.timedelta(seconds=1)))

    def execute_complete(self, context, event: dict[str, Any], shown: dict | None = None,
                         asked_at: str | None = None, since: str | None = None):
        from msp_reports import pipeline

        item = _item(context, self.code)
        settings = _settings(item)
        check_approval = _pipeline(self.kind).check_approval
        waiting_since = dt.datetime.fromisoformat(since) if since else None
        if "error" in event:  # the scheduler's sweep at the deadline: nobody answered
            state, record, new_value = check_approval(settings, item, None, waiting_since=waiting_since)
            _write_variable(_variable(self.kind, item)[0], new_value, "wait_for_approval")
            if state == "awaiting_review":  # resumed a moment before the cut-off (clocks): wait for it
                return self._park(context, item, shown or {}, waiting_since or _now(),
                                  asked_at=dt.datetime.fromisoformat(asked_at) if asked_at else None)
            return self._end(context, item, state, record)
        option = (event.get("chosen_options") or [""])[0]
        reason = str((event.get("params_input") or {}).get(REASON) or "")
        user = event.get("responded_by_user") or {}
        by = user.get("name") or user.get("id") or "unknown (Required Actions)"
        state, record, refused = pipeline.answer_approval(
            settings, item, option, reason, by=by, shown=shown or {}, waiting_since=waiting_since,
            asked_at=dt.datetime.fromisoformat(asked_at) if asked_at else _now(), kind=self.kind)
        if state == "awaiting_review":  # nothing recorded (refused): the same request waits again
            print(f"{item['customer']}: {refused or 'no decision in force'}; waiting again")
            return self._park(context, item, shown or {}, waiting_since or _now(),
                              asked_at=dt.datetime.fromisoformat(asked_at) if asked_at else None)
        if record is not None and record.get("via") == approval_request.VIA:
            from msp_reports import approval

            _write_variable(_variable(self.kind, item)[0], approval.variable_value(record), "Required Actions")
        return self._end(context, item, state, record)

    def _end(self, context, item: dict, state: str, record: dict | None):
        from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSkipException

        print(f"{item['customer']}: {state}")
        if state == "awaiting_review":  # never a success without a decision in force
            raise RuntimeError(f"{item['customer']}: the wait cannot end without a decision")
        if state == "rejected":
            raise AirflowSkipException(f"{item['customer']} rejected by {record['by']}: {record['reason']}")
        if state == "expired":  # fail loudly: deliveries do not run, the roll-up shows "expired"
            raise AirflowFailException(f"{item['customer']} {self.kind.period(item)}: {record['reason']}")
        if state == "approved_waiting_for_send_time":  # approved before 09:00: the deliveries wait for it
            raise AirflowRescheduleException(_pipeline(self.kind).send_time(_settings(item), item))
        return record  # approved, or "delivered": the ledger has this week sent on every channel (a re-run)


# ---- the run's Variable watcher ---------------------------------------------------------------
def watch_variables(items: list[dict], dag_id: str, run_id: str, kind: Kind = approval_request.WEEKLY) -> bool:
    """One look of the run's watcher: every customer of the run that is waiting gets its Variable
    read; a decision there is recorded (by the Airflow user the audit log names) and the parked
    request answered through the REST API; a decision already in the store (recorded by a path
    that could not answer) is answered too. True once nobody in the run is waiting any more.
    ``kind``: what the run's customers wait for (the weekly report, or the QBR pack)."""
    from msp_reports import approval, pipeline
    from msp_reports.airflow_api import AirflowApi

    if not items:
        return True
    api = AirflowApi.from_connection()
    parked: dict[str, dict] = {}
    settling: set[int] = set()  # map indexes parked too recently to be answered (approval_request.SETTLE)
    if api is None:
        print("No Airflow connection 'msp_airflow_api': decisions in Variables are recorded, but the parked "
              "requests cannot be answered from here (answer them on the Required Actions or the review page)")
    else:
        try:
            parked = {d["subject"]: d for d in api.parked(dag_id, run_id)}
            settling = api.parked_after(dag_id, run_id, kind.task_id, _now() - approval_request.SETTLE) if parked else set()
        except Exception as exc:  # noqa: BLE001 - the API is down: look again next time
            print(f"cannot list the run's Required Actions ({type(exc).__name__}: {exc}); looking again later")
            return False
    settings = _settings(items[0])
    store = kind.store(settings.store_root)
    check_approval = _pipeline(kind).check_approval
    waiting = []
    for item in items:
        code, period = item["customer"], kind.period(item)
        record = _run_record(kind, settings, item)
        if record.get("run") == item.get("run") and record.get("phase") == "ended":
            continue  # rejected, expired, or the run ended without releasing the deliveries
        if pipeline.already_delivered(store, code, kind.records_key(period)) is not None:
            continue
        if record.get("run") != item.get("run") or record.get("phase") != "waiting":
            waiting.append(code)  # not waiting yet (still extracting or rendering)
            continue
        detail = parked.get(kind.subject(code, period))
        key, raw = _variable(kind, item)
        try:
            state, decided, new_value = check_approval(
                settings, item, raw, waiting_since=dt.datetime.fromisoformat(record["since"]), expire=False,
                set_by=_setter(key))
        except approval.ApprovalError as exc:  # nothing rendered yet for this run
            print(f"{code}: {exc}")
            waiting.append(code)
            continue
        _write_variable(key, new_value, "the run's Variable watcher")
        if decided is None:
            waiting.append(code)
            continue
        if detail is not None and detail["task_instance"]["map_index"] in settling:
            print(f"{code}: {decided['decision']} recorded; its Required Action is answered once it has been "
                  f"parked {int(approval_request.SETTLE.total_seconds())} s")
            waiting.append(code)
            continue
        if detail is not None and api is not None:
            option = approval_request.APPROVE if decided["decision"] == "approve" else approval_request.REJECT
            try:
                api.answer(detail, option, decided.get("reason", ""))
                print(f"{code}: {decided['decision']} by {decided['by']} ({decided['via']}); its wait is answered")
            except Exception as exc:  # noqa: BLE001 - answered meanwhile, or the API is down
                print(f"{code}: could not answer its Required Action ({type(exc).__name__}: {exc})")
                waiting.append(code)
    print(f"still waiting: {', '.join(waiting) or 'nobody'}")
    return not waiting

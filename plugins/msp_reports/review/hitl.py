"""The review page's decision ends the run's wait: it answers the customer's Required Action
(the weekly report's, or from the QBR view the pack's: the request's ``kind``).

The page runs inside Airflow's API server, with its database, and its user is the Airflow user
signed in. So it answers the way Airflow's own ``PATCH .../hitlDetails`` route does, by calling
that route's function (:func:`airflow.api_fastapi.core_api.routes.public.hitl.update_hitl_detail`)
with the page's user and a database session: the same row locks, validation, resume of the parked
task and ``responded_by`` as an answer on the Required Actions page, and the same authorization
(``PUT`` on the DAG's HITL details), checked here because the route's dependency is not run. No
token is minted or forwarded: the user was already authenticated by the page (:mod:`.auth`).

The page records the decision in the store first (bound to the hashes it showed); the task, on
resume, finds that record and writes no second one (:func:`msp_reports.approval_request.record_answer`).

A request is answered only once its task has been parked for :data:`SETTLE`. Answered sooner, the
resumed try can be failed by Airflow itself: the executor's report that the process which parked
the task has finished arrives late, finds the same try queued or running again, and the scheduler
takes it for that try's end ("state mismatch" in ``SchedulerJobRunner._process_executor_events``;
seen once in CI as a 409 "TI was not in the running state" at the resumed try's end). A request
not settled yet is answered by a timer in this process when it is; if this process is gone by then,
the run's Variable watcher answers it from the recorded decision. A task still writing its request
(``running``) finds the recorded decision itself before it parks.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from msp_reports import approval_request
from msp_reports.approval_request import WEEKLY, Kind

log = logging.getLogger(__name__)

SETTLE = approval_request.SETTLE
LOOKS = 6  # how many times a timer looks again for a request that is not settled (about 3 minutes)


def settle_left(state: str, parked_at: dt.datetime | None, now: dt.datetime, settle: dt.timedelta = SETTLE) -> dt.timedelta:
    """How long before a request whose task is in ``state`` (parked at ``parked_at``, the task
    instance's last update) may be answered: zero once it has been parked ``settle``."""
    if state != "awaiting_input" or parked_at is None:
        return settle  # still writing its request, or resuming: look again later
    return max(parked_at + settle - now, dt.timedelta(0))


def waiting_requests(session, customer: str, period: str, kind: Kind = WEEKLY) -> list:
    """The unanswered requests about this customer's period (``2026-11-16``, ``2026-Q3``): a task
    parked, or about to park, on it."""
    from sqlalchemy import select

    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.state import TaskInstanceState

    return list(session.scalars(
        select(TI).join(HITLDetail, HITLDetail.ti_id == TI.id)
        .where(TI.dag_id == kind.dag_id, TI.task_id == kind.task_id,
               TI.state.in_([TaskInstanceState.AWAITING_INPUT, TaskInstanceState.RUNNING]),
               HITLDetail.subject == kind.subject(customer, period),
               HITLDetail.responded_at.is_(None))))


def answer(user, customer: str, period: str, decision: str, reason: str = "", *,
           store=None, looks: int = LOOKS, kind: Kind = WEEKLY) -> int:
    """Answer every settled waiting request about the customer's period with ``decision``, as
    ``user``. Returns how many were answered now (0: none was settled, or no run is waiting on
    one; the task reads the store itself). Given the ``store`` the decision is recorded in, a
    timer answers the requests not settled yet once they are, with the decision then in force."""
    from fastapi import HTTPException, status

    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if not get_auth_manager().is_authorized_dag(method="PUT", access_entity=DagAccessEntity.HITL_DETAIL,
                                                details=DagDetails(id=kind.dag_id), user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"{user.get_name()} may not answer {kind.dag_id}'s Required Actions")
    answered, later = respond(user, customer, period, decision, reason, settle=SETTLE, kind=kind)
    if later is not None and store is not None and looks > 0:
        timer = threading.Timer(later.total_seconds(), _answer_later,
                                args=(user, store, customer, period, looks - 1, kind))
        timer.daemon = True
        timer.start()
    return answered


def _answer_later(user, store, customer: str, period: str, looks: int, kind: Kind = WEEKLY) -> None:
    """The timer's look: answer with the decision in force now (a later one may have replaced it)."""
    from msp_reports import approval

    record = approval.in_force(store, customer, kind.records_key(period))
    if record is None or record["decision"] not in ("approve", "reject"):
        log.info("%s %s: no decision in force any more; its Required Action is left waiting", customer, period)
        return
    end_the_wait(user, customer, period, record, store, kind, looks=looks)


def end_the_wait(user, customer: str, period: str, record: dict, store, kind: Kind = WEEKLY, *,
                 looks: int = LOOKS) -> None:
    """Answer the run's Required Action for the customer's period with the recorded decision (at
    once, or by a timer once the request has settled); the decision stands in the store whether
    or not a run is waiting on it."""
    try:
        answer(user, customer, period, record["decision"], record.get("reason", ""), store=store, looks=looks,
               kind=kind)
    except Exception as exc:  # noqa: BLE001 - the decision stands; the run's watcher answers the wait
        log.warning("%s %s: the decision is recorded but its Required Action was not answered (%s: %s)",
                    customer, period, type(exc).__name__, getattr(exc, "detail", exc))


def respond(user, customer: str, period: str, decision: str, reason: str = "",
            *, settle: dt.timedelta = dt.timedelta(0), kind: Kind = WEEKLY) -> tuple[int, dt.timedelta | None]:
    """:func:`answer` for a caller that has authorized ``user`` itself: the requests settled for
    ``settle`` are answered. Returns how many, and how long until the next one settles (None:
    none left). The demo's simulated engineers answer at once (``settle`` zero): they run in the
    process that runs ``dag.test``, where no executor reports late."""
    from fastapi import HTTPException

    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    option = approval_request.APPROVE if decision == "approve" else approval_request.REJECT
    payload = UpdateHITLDetailPayload(chosen_options=[option], params_input={"reason": reason})
    answered, later = 0, None
    now = dt.datetime.now(dt.timezone.utc)
    with create_session() as session:
        for ti in waiting_requests(session, customer, period, kind):
            left = settle_left(ti.state, ti.updated_at, now, settle)
            if left > dt.timedelta(0):
                later = left if later is None else min(later, left)
                continue
            try:
                update_hitl_detail(dag_id=ti.dag_id, dag_run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index,
                                   update_hitl_detail_payload=payload, user=user, session=session)
                answered += 1
            except HTTPException as exc:  # answered meanwhile (409): that answer stands
                log.info("%s %s: Required Action of %s not answered: %s", customer, period, ti.run_id, exc.detail)
    return answered, later

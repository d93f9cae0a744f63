"""The review page's decision ends the run's wait: it answers the customer's Required Action.

The page runs inside Airflow's API server, with its database, and its user is the Airflow user
signed in. So it answers the way Airflow's own ``PATCH .../hitlDetails`` route does, by calling
that route's function (:func:`airflow.api_fastapi.core_api.routes.public.hitl.update_hitl_detail`)
with the page's user and a database session: the same row locks, validation, resume of the parked
task and ``responded_by`` as an answer on the Required Actions page, and the same authorization
(``PUT`` on the DAG's HITL details), checked here because the route's dependency is not run. No
token is minted or forwarded: the user was already authenticated by the page (:mod:`.auth`).

The page records the decision in the store first (bound to the hashes it showed); the task, on
resume, finds that record and writes no second one (:func:`msp_reports.approval_request.record_answer`).
"""

from __future__ import annotations

import datetime as dt
import logging

from msp_reports import approval_request
from msp_reports.review.auth import DAG_ID

log = logging.getLogger(__name__)


def waiting_requests(session, customer: str, week_of: dt.date) -> list:
    """The unanswered requests about this customer-week (a task parked, or about to park, on it)."""
    from sqlalchemy import select

    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.state import TaskInstanceState

    return list(session.scalars(
        select(TI).join(HITLDetail, HITLDetail.ti_id == TI.id)
        .where(TI.dag_id == DAG_ID, TI.task_id == approval_request.TASK_ID,
               TI.state.in_([TaskInstanceState.AWAITING_INPUT, TaskInstanceState.RUNNING]),
               HITLDetail.subject == approval_request.subject(customer, week_of),
               HITLDetail.responded_at.is_(None))))


def answer(user, customer: str, week_of: dt.date, decision: str, reason: str = "") -> int:
    """Answer every waiting request about the customer-week with ``decision``, as ``user``.
    Returns how many were answered (0: no run is waiting on one; the task reads the store itself)."""
    from fastapi import HTTPException, status

    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    if not get_auth_manager().is_authorized_dag(method="PUT", access_entity=DagAccessEntity.HITL_DETAIL,
                                                details=DagDetails(id=DAG_ID), user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{user.get_name()} may not answer {DAG_ID}'s Required Actions")
    return respond(user, customer, week_of, decision, reason)


def respond(user, customer: str, week_of: dt.date, decision: str, reason: str = "") -> int:
    """:func:`answer` for a caller that has authorized ``user`` itself (the demo's simulated
    engineers, in the process that runs ``dag.test``)."""
    from fastapi import HTTPException

    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    option = approval_request.APPROVE if decision == "approve" else approval_request.REJECT
    payload = UpdateHITLDetailPayload(chosen_options=[option], params_input={"reason": reason})
    answered = 0
    with create_session() as session:
        for ti in waiting_requests(session, customer, week_of):
            try:
                update_hitl_detail(dag_id=ti.dag_id, dag_run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index,
                                   update_hitl_detail_payload=payload, user=user, session=session)
                answered += 1
            except HTTPException as exc:  # answered meanwhile (409): that answer stands
                log.info("%s %s: Required Action of %s not answered: %s", customer, week_of, ti.run_id, exc.detail)
    return answered

"""
### Quarterly business review (QBR) pack

On the first Monday after each quarter, 06:00 (MSP time), each managed customer gets a QBR pack
for that quarter, built from the weekly snapshots the report store holds for it (13 or 14 weeks
in the customer's timezone). Per customer (one mapped task group, labelled with the code):
`wait_for_last_week` (the same Monday's weekly run reconciles the quarter's last week: the pack
waits for it, at most until the send time, then shows it as missing) → `render` the pack →
`wait_for_approval`, a Required Action like the weekly report's (the Required Actions page shows
"QBR pack approval: <CUSTOMER> <2026-Q3>" with the pack's headlines, PDF hash and links; Approve,
or Reject with a reason; the task waits in `awaiting_input`, holding no slot). The review page's
QBR view answers the same request, and so does the Airflow Variable
`qbr_approval__<CUSTOMER>__<2026-Q3>` (`approve <pdf hash>` or `reject <reason>`), read by
`watch_approval_variables`, one reschedule sensor for the whole run (it needs the Airflow
connection `msp_airflow_api` to answer). Delivery also waits for 09:00 on that Monday; after
`msp.approval_cutoff` the wait ends as expired and nothing is sent → `deliver_email`,
`post_to_teams`, `archive`, each exactly once.

Manual run: trigger with the Params `quarter` ("2026-Q3": a quarter that is over) and
`customers` (registry codes; empty: all). A pack the ledger has as sent on every channel finishes
at once as already delivered. Storage and rules: `msp_reports.qbr_pipeline`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk.definitions.context import get_current_context
from airflow.sdk.definitions.dag import dag
from airflow.sdk.definitions.decorators import task, task_group
from airflow.sdk.definitions.param import Param
from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable
from msp_reports.qbr_store import last_complete_quarter
from msp_reports.settings import schedule_timezone
from msp_reports.task_items import customer_item
from msp_reports.task_items import item_settings as _settings

MSP_TIMEZONE = schedule_timezone()
# 06:00 on the first Monday of January, April, July and October. Not "1-7 ... 1": croniter, like
# cron, takes a day-of-month and a day-of-week given together as either (tests/test_qbr_dag.py).
SCHEDULE = "0 6 * 1,4,7,10 1#1"
QUARTER_PATTERN = r"^[0-9]{4}-Q[1-4]$"
CUSTOMER_LABEL = "{{ customer if customer is defined else task.op_args[0] }}"
APPROVAL_BACKSTOP = dt.timedelta(days=7)


def _item(code: str) -> dict:
    return customer_item(get_current_context(), code)


@task(multiple_outputs=False)
def plan_customers() -> list[str]:
    """The run's quarter and customers (an unknown code or a quarter not over fails here, named)."""
    from airflow.sdk.exceptions import AirflowFailException
    from msp_reports import pipeline, qbr_pipeline
    from msp_reports.exceptions import RegistryError

    ctx = get_current_context()
    run, ti, params = ctx["dag_run"], ctx["ti"], ctx["params"]
    # a scheduled run reports on the quarter before its date; a manual one on its Param
    conf = {"quarter": None if run.run_type == "scheduled" else params.get("quarter"),
            "customers": params.get("customers") or None}
    try:
        items = qbr_pipeline.plan(_settings(), run.logical_date or run.run_after, conf, run_id=run.run_id,
                                  schedule_timezone=MSP_TIMEZONE)
    except RegistryError as exc:
        raise AirflowFailException(str(exc)) from exc
    for item in items:
        ti.xcom_push(pipeline.item_key(item["customer"]), item)
    ti.xcom_push("items", items)
    return [item["customer"] for item in items]


@task.sensor(map_index_template=CUSTOMER_LABEL, mode="reschedule", poke_interval=60,
             timeout=dt.timedelta(hours=6).total_seconds())
def wait_for_last_week(code: str) -> bool:
    item = _item(code)
    from msp_reports import qbr_pipeline

    return qbr_pipeline.weeks_ready(_settings(item), item)


@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False, pool="msp_render",
      retries=1, retry_delay=dt.timedelta(minutes=1), execution_timeout=dt.timedelta(minutes=15))
def render(code: str) -> dict:
    item = _item(code)
    from msp_reports import qbr_pipeline

    return qbr_pipeline.render(_settings(item), item)


def wait_for_approval(code):
    """The pack's Required Action (msp_reports.airflow_approval.ReportApproval, kind QBR): the same
    wait as the weekly report's, on the pack's records, Variable and review view."""
    from msp_reports.airflow_approval import ReportApproval
    from msp_reports.approval_request import QBR

    # one retry, as the weekly wait: a resumed answer marked failed by Airflow finds its decision
    return ReportApproval(task_id="wait_for_approval", code=code, kind=QBR, map_index_template=CUSTOMER_LABEL,
                          retries=1, retry_delay=dt.timedelta(seconds=15))


@task.sensor(mode="reschedule", poke_interval=60, timeout=APPROVAL_BACKSTOP.total_seconds(),
             priority_weight=1000, weight_rule="absolute")
def watch_approval_variables(items: list[dict]) -> bool:
    """One look for the whole run: decisions set in the packs' Variables end their customers' waits."""
    from msp_reports.airflow_approval import watch_variables
    from msp_reports.approval_request import QBR

    run = get_current_context()["dag_run"]
    return watch_variables(list(items), run.dag_id, run.run_id, QBR)


@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False, pool="msp_delivery",
      retries=3, retry_delay=dt.timedelta(minutes=2), retry_exponential_backoff=2.0,
      max_retry_delay=dt.timedelta(minutes=30), execution_timeout=dt.timedelta(minutes=10))
def deliver(code: str, channel: str) -> dict:
    item = _item(code)
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from msp_reports import qbr_pipeline
    from msp_reports.exceptions import AlreadyDelivered, ApprovalError, DeliveryStateUnknown

    try:
        return qbr_pipeline.deliver(_settings(item), item, channel)
    except AlreadyDelivered as exc:
        raise AirflowSkipException(str(exc)) from exc
    except (DeliveryStateUnknown, ApprovalError) as exc:
        raise AirflowFailException(str(exc)) from exc


@task_group
def customer_pack(code: str) -> None:
    approved = wait_for_approval(code)
    wait_for_last_week(code) >> render(code) >> approved
    approved >> [
        deliver.override(task_id="deliver_email")(code, "email"),
        deliver.override(task_id="post_to_teams")(code, "teams"),
        deliver.override(task_id="archive")(code, "archive"),
    ]


@dag(
    schedule=CronTriggerTimetable(SCHEDULE, timezone=MSP_TIMEZONE),
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["msp", "qbr"],
    doc_md=__doc__,
    default_args={"retries": 0},
    params={
        "quarter": Param(last_complete_quarter(dt.datetime.now(dt.timezone.utc), MSP_TIMEZONE), type="string",
                         pattern=QUARTER_PATTERN, title="Quarter",
                         description="The quarter the packs cover, e.g. 2026-Q3 (a quarter that is over). "
                                     "A scheduled run uses the quarter before its date."),
        "customers": Param([], type="array", items={"type": "string", "pattern": "^[A-Z0-9_-]+$"},
                           title="Customers", description="Registry codes; empty: every customer"),
    },
)
def quarterly_business_review():
    customers = plan_customers()
    customer_pack.expand(code=customers)
    watch_approval_variables(customers["items"])


quarterly_business_review()

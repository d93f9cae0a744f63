"""
### Weekly executive report

Every Monday 06:00 (MSP time) each managed customer gets a report on the previous week
(Monday 00:00 to Monday 00:00 in the customer's own timezone).

Per customer (one mapped task group; in the grid one `customer_report [ ]` row, and each mapped
task instance's Map Index is the customer's code once it has started):
five extracts (uptime, tickets, backups, security, sites) → `reconcile` with last week →
`render` the PDF → `wait_for_approval`, a Required Action (Airflow's Human-in-the-loop: the
Required Actions page shows "Weekly report <CUSTOMER>, week of <week_of>" with the executive
summary, flags, PDF hash and links; Approve, or Reject with a reason; the task waits in
`awaiting_input`, holding no slot). The "Weekly report review" page answers the same request,
and so does the Airflow Variable `weekly_report_approval__<CUSTOMER>__<week_of>` (`approve` or
`reject <reason>`), read by `watch_approval_variables`, one reschedule sensor for the whole run
(it needs the Airflow connection `msp_airflow_api` to answer). Delivery also waits for 09:00 →
`deliver_email`, `post_to_teams`, `archive`, each exactly once →
`pin_weekly_tab` (the Teams "Weekly report" tab opens the archived PDF, once teams and archive are sent).
After all customers: the internal roll-up to `#weekly-reports`, one per week (a second run for
the week updates it, covering every customer of the week). At 09:00, but not before reviewers
have had their window (a run for a past week starts after 09:00), `post_missed_approvals`
names there the customers nobody has decided on; after `msp.approval_cutoff` (registry, default
48 h: the request's response timeout) a customer's wait ends as expired: the task fails saying
so and nothing is sent.

Manual run: **Trigger** shows a form: *Customers* (registry codes, one per line; empty: every
customer) and *Week of* (the Monday the reported week starts; empty: the latest week). A code the
registry does not have, a day that is not a Monday, or a week not over yet fails `plan_customers`
naming the value. The same as conf JSON, e.g. `{"customers": ["ACME"], "week_of": "2026-11-09"}`
(REST API, CLI). A customer the ledger has as sent on every channel for the week
finishes at once as already delivered (nothing extracted or rendered again, no wait).
"""

from __future__ import annotations

import datetime as dt

# The public airflow.sdk names, imported from the modules that define them: airflow.sdk resolves
# them lazily, so the dag-processor's pre-import of this file's airflow.* modules would not load
# them and every parse child would import them again (docs/benchmarks.md, DAG parse).
from airflow.sdk.definitions.context import get_current_context
from airflow.sdk.definitions.dag import dag
from airflow.sdk.definitions.decorators import task, task_group
from airflow.sdk.definitions.param import Param
from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable
from msp_reports.settings import schedule_timezone
from msp_reports.task_items import customer_item
from msp_reports.task_items import item_settings as _settings
from msp_reports.snapshot import DOMAINS

MSP_TIMEZONE = schedule_timezone()  # $MSP_REPORTS_TIMEZONE; plan_customers checks msp.timezone agrees
# The grid's label for a mapped task instance (its "Map Index"): the customer code. Airflow renders
# it when the task starts, from the task's rendered arguments (the group's mapped `code` is each
# task's first argument), and again when it ends, from the context, where _item puts `customer`.
# A task that never ran (skipped by the scheduler, upstream failed) keeps its number.
CUSTOMER_LABEL = "{{ customer if customer is defined else task.op_args[0] }}"


def _item(code: str) -> dict:
    """This customer's item, pulled alone, and the grid label (map_index_template) set to its code."""
    return customer_item(get_current_context(), code)


PARAMS = {
    "customers": Param(
        [], type="array", items={"type": "string"}, title="Customers",
        description="Customer codes from the registry, one per line (e.g. ACME). Empty: every customer. "
                    "A code the registry does not have fails the run, naming it."),
    "week_of": Param(
        None, type=["null", "string"], format="date", title="Week of",
        description="The Monday the reported week starts (YYYY-MM-DD), in the past; that week's report is sent "
                    "as soon as it is approved. Empty: the latest week whose Monday has come."),
}


def _requested(params: dict, conf: dict | None) -> dict:
    """What the run was asked for: the form's values, with the conf's keys winning (a run triggered
    the old way, ``{"customers": [...]}``, or with dag_run_conf_overrides_params off)."""
    return {**{k: params.get(k) for k in PARAMS}, **(conf or {})}


@task(multiple_outputs=False)
def plan_customers() -> list[str]:
    """The run's customer codes (what the groups map over); each customer's item under its own
    XCom key, and all items under "items" for the run-level tasks."""
    from msp_reports import pipeline

    ctx = get_current_context()
    run, ti = ctx["dag_run"], ctx["ti"]
    items = pipeline.plan(_settings(), run.logical_date or run.run_after, _requested(ctx["params"], run.conf),
                          run_id=run.run_id, schedule_timezone=MSP_TIMEZONE)
    for item in items:
        ti.xcom_push(pipeline.item_key(item["customer"]), item)
    ti.xcom_push("items", items)
    return [item["customer"] for item in items]


@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False,
      retries=3, retry_delay=dt.timedelta(minutes=1), retry_exponential_backoff=2.0,
      max_retry_delay=dt.timedelta(minutes=15), execution_timeout=dt.timedelta(minutes=15))
def extract(code: str, domain: str) -> dict:
    item = _item(code)
    from msp_reports import pipeline

    return pipeline.extract(_settings(item), item, domain)


@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False, trigger_rule="all_done",
      execution_timeout=dt.timedelta(minutes=5))
def reconcile(code: str) -> dict:
    item = _item(code)
    from msp_reports import pipeline

    return pipeline.build_snapshot(_settings(item), item)


@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False, pool="msp_render",
      retries=1, retry_delay=dt.timedelta(minutes=1), execution_timeout=dt.timedelta(minutes=10))
def render(code: str) -> dict:
    item = _item(code)
    from msp_reports import pipeline

    return pipeline.render(_settings(item), item)


# The wait ends at the registry's msp.approval_cutoff: the request's response timeout (the
# scheduler's sweep), then "expired" is recorded and the task fails saying so. APPROVAL_BACKSTOP
# bounds the run-level watcher; the waits themselves hold no slot and poll nothing.
APPROVAL_BACKSTOP = dt.timedelta(days=7)


def wait_for_approval(code):
    """The customer's Required Action (msp_reports.airflow_approval.ReportApproval)."""
    from msp_reports.airflow_approval import ReportApproval

    # One retry: a resumed answer was once marked failed by Airflow while it was succeeding (409
    # "TI was not in the running state"); the retry finds the decision in force and ends at once.
    # An expiry raises AirflowFailException, which takes no retry.
    return ReportApproval(task_id="wait_for_approval", code=code, map_index_template=CUSTOMER_LABEL,
                          retries=1, retry_delay=dt.timedelta(seconds=15))


# First in the queue whenever it is due (one task per run): at 500 customers the waits' first runs
# (each parks itself) otherwise queue ahead of it and approvals by Variable wait behind them
# (docs/benchmarks.md, "Waiting for approval at scale").
@task.sensor(mode="reschedule", poke_interval=60, timeout=APPROVAL_BACKSTOP.total_seconds(),
             priority_weight=1000, weight_rule="absolute")
def watch_approval_variables(items: list[dict[str, str]]) -> bool:
    """One look for the whole run: decisions set in the approval Variables end their customers' waits."""
    from msp_reports.airflow_approval import watch_variables

    run = get_current_context()["dag_run"]
    return watch_variables(list(items), run.dag_id, run.run_id)


@task.sensor(mode="reschedule", poke_interval=60, timeout=APPROVAL_BACKSTOP.total_seconds())
def wait_for_send_time(items: list[dict[str, str]]) -> bool:
    """Until 09:00 (msp.deliver_not_before, MSP time) on the report's Monday, and until reviewers
    have had their window (pipeline.missed_approvals_ready): not at once on a past-week run."""
    from airflow.sdk import Variable
    from msp_reports import pipeline

    items = list(items)
    return not items or pipeline.missed_approvals_ready(_settings(items[0]), items,
                                                        lambda key: Variable.get(key, default=None),
                                                        run_start=get_current_context()["dag_run"].start_date)


@task(multiple_outputs=False, retries=2, retry_delay=dt.timedelta(minutes=2))
def post_missed_approvals(items: list[dict[str, str]]) -> dict:
    """At 09:00: name the customers nobody has approved yet in #weekly-reports (once per week)."""
    from airflow.sdk import Variable
    from msp_reports import pipeline

    items = list(items)
    return pipeline.post_missed_approvals(_settings(items[0] if items else None), items,
                                          lambda key: Variable.get(key, default=None),
                                          waiting_since=get_current_context()["dag_run"].start_date)


@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False, pool="msp_delivery",
      retries=3, retry_delay=dt.timedelta(minutes=2), retry_exponential_backoff=2.0,
      max_retry_delay=dt.timedelta(minutes=30), execution_timeout=dt.timedelta(minutes=10))
def deliver(code: str, channel: str) -> dict:
    item = _item(code)
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from msp_reports import pipeline
    from msp_reports.exceptions import AlreadyDelivered, ApprovalError, DeliveryStateUnknown

    try:
        return pipeline.deliver(_settings(item), item, channel)
    except AlreadyDelivered as exc:  # a re-run of a delivered week: nothing more goes out
        raise AirflowSkipException(str(exc)) from exc
    except (DeliveryStateUnknown, ApprovalError) as exc:  # retrying cannot fix these: a person must
        raise AirflowFailException(str(exc)) from exc


# After the three channels, whatever became of them (all_done); it pins only when the ledger has
# teams and archive sent, and skips saying which is not (pipeline.pin_tab).
@task(map_index_template=CUSTOMER_LABEL, multiple_outputs=False, trigger_rule="all_done",
      execution_timeout=dt.timedelta(minutes=5))
def pin_weekly_tab(code: str) -> dict:
    item = _item(code)
    from airflow.sdk.exceptions import AirflowSkipException
    from msp_reports import pipeline

    result = pipeline.pin_tab(_settings(item), item)
    if result.get("waiting_for"):
        raise AirflowSkipException(f"{code}: {', '.join(result['waiting_for'])} not sent; the Weekly report tab "
                                   "is left as it was")
    return result


@task(trigger_rule="all_done", multiple_outputs=False)
def rollup(items: list[dict[str, str]]) -> dict:
    from airflow.sdk.exceptions import AirflowFailException
    from msp_reports import pipeline

    items = list(items)
    result = pipeline.rollup(_settings(items[0] if items else None), items)
    if result["needs_attention"]:  # posted first; then the run shows red so nobody misses it
        raise AirflowFailException(f"needs attention: {'; '.join(result['needs_attention'])}")
    return result


@task_group
def customer_report(code: str) -> None:
    extracts = [extract.override(task_id=f"extract_{d}", pool=f"msp_source_{d}")(code, d) for d in DOMAINS]
    snapshot = reconcile(code)
    extracts >> snapshot
    approved = wait_for_approval(code)
    snapshot >> render(code) >> approved
    channels = [
        deliver.override(task_id="deliver_email")(code, "email"),
        deliver.override(task_id="post_to_teams")(code, "teams"),
        deliver.override(task_id="archive")(code, "archive"),
    ]
    approved >> channels
    channels >> pin_weekly_tab(code)


@dag(
    schedule=CronTriggerTimetable("0 6 * * 1", timezone=MSP_TIMEZONE),
    start_date=dt.datetime(2026, 1, 5),
    catchup=False,
    max_active_runs=1,
    tags=["msp", "weekly-report"],
    doc_md=__doc__,
    default_args={"retries": 0},
    params=PARAMS,
)
def weekly_executive_report():
    customers = plan_customers()
    reports = customer_report.expand(code=customers)
    items = customers["items"]
    reports >> rollup(items)
    watch_approval_variables(items)
    wait_for_send_time(items) >> post_missed_approvals(items)


weekly_executive_report()

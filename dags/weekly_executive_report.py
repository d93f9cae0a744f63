"""
### Weekly executive report

Every Monday 06:00 (MSP time) each managed customer gets a report on the previous week
(Monday 00:00 to Monday 00:00 in the customer's own timezone).

Per customer (one mapped task group, labelled by customer code in the grid):
five extracts (uptime, tickets, backups, security, sites) → `reconcile` with last week →
`render` the PDF → `wait_for_approval` (the account engineer sets the Airflow Variable
`weekly_report_approval__<CUSTOMER>__<week_of>` to `approve` or `reject <reason>`; delivery
also waits for 09:00) → `deliver_email`, `post_to_teams`, `archive`, each exactly once.
After all customers: the internal roll-up to `#weekly-reports`.

Manual run for some customers: trigger with conf `{"customers": ["ACME"]}`; for a past week
add `"week_of": "2026-11-09"`.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task, task_group

MSP_TIMEZONE = os.environ.get("MSP_REPORTS_TIMEZONE", "Europe/London")
CUSTOMER_LABEL = "{{ customer }}"  # each mapped task puts its customer code in the context
DOMAINS = ("uptime", "tickets", "backups", "security", "sites")


def _label(item: dict[str, str]) -> None:
    """Name this mapped task instance after its customer in the grid (map_index_template)."""
    get_current_context()["customer"] = item["customer"]  # type: ignore[typeddict-unknown-key]


def _settings():
    from airflow.sdk import Variable
    from msp_reports.settings import Settings

    return Settings.load(lambda key, default: Variable.get(key, default=default))


@task
def plan_customers() -> list[dict[str, str]]:
    from msp_reports import pipeline

    ctx = get_current_context()
    run = ctx["dag_run"]
    return pipeline.plan(_settings(), run.logical_date or run.run_after, run.conf)


@task(map_index_template=CUSTOMER_LABEL, retries=2, retry_delay=dt.timedelta(minutes=2))
def extract(item: dict[str, str], domain: str) -> dict:
    _label(item)
    from msp_reports import pipeline

    return pipeline.extract(_settings(), item, domain)


@task(map_index_template=CUSTOMER_LABEL, trigger_rule="all_done")
def reconcile(item: dict[str, str]) -> dict:
    _label(item)
    from msp_reports import pipeline

    return pipeline.build_snapshot(_settings(), item)


@task(map_index_template=CUSTOMER_LABEL)
def render(item: dict[str, str]) -> dict:
    _label(item)
    from msp_reports import pipeline

    return pipeline.render(_settings(), item)


@task.sensor(map_index_template=CUSTOMER_LABEL, mode="reschedule", poke_interval=60,
             timeout=dt.timedelta(days=2).total_seconds())
def wait_for_approval(item: dict[str, str]):
    _label(item)
    from airflow.sdk import PokeReturnValue, Variable
    from airflow.sdk.exceptions import AirflowSkipException
    from msp_reports import approval, pipeline

    key = approval.variable_key(item["customer"], dt.date.fromisoformat(item["week_of"]))
    state, record, new_value = pipeline.check_approval(_settings(), item, Variable.get(key, default=None))
    if new_value is not None:
        Variable.set(key, new_value, description="Recorded by wait_for_approval")
    print(f"{item['customer']}: {state}")
    if state == "rejected":
        raise AirflowSkipException(f"{item['customer']} rejected by {record['by']}: {record['reason']}")
    return PokeReturnValue(is_done=state == "approved", xcom_value=record)


@task(map_index_template=CUSTOMER_LABEL, retries=2, retry_delay=dt.timedelta(minutes=5))
def deliver(item: dict[str, str], channel: str) -> dict:
    _label(item)
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from msp_reports import pipeline
    from msp_reports.exceptions import AlreadyDelivered, ApprovalError, DeliveryStateUnknown

    try:
        return pipeline.deliver(_settings(), item, channel)
    except AlreadyDelivered as exc:  # a re-run of a delivered week: nothing more goes out
        raise AirflowSkipException(str(exc)) from exc
    except (DeliveryStateUnknown, ApprovalError) as exc:  # retrying cannot fix these: a person must
        raise AirflowFailException(str(exc)) from exc


@task(trigger_rule="all_done")
def rollup(items: list[dict[str, str]]) -> dict:
    from airflow.sdk.exceptions import AirflowFailException
    from msp_reports import pipeline

    result = pipeline.rollup(_settings(), list(items))
    if result["needs_attention"]:  # posted first; then the run shows red so nobody misses it
        raise AirflowFailException(f"needs attention: {'; '.join(result['needs_attention'])}")
    return result


@task_group
def customer_report(item: dict[str, str]) -> None:
    extracts = [extract.override(task_id=f"extract_{d}")(item, d) for d in DOMAINS]
    snapshot = reconcile(item)
    extracts >> snapshot
    approved = wait_for_approval(item)
    snapshot >> render(item) >> approved
    approved >> [
        deliver.override(task_id="deliver_email")(item, "email"),
        deliver.override(task_id="post_to_teams")(item, "teams"),
        deliver.override(task_id="archive")(item, "archive"),
    ]


@dag(
    schedule=CronTriggerTimetable("0 6 * * 1", timezone=MSP_TIMEZONE),
    start_date=dt.datetime(2026, 1, 5),
    catchup=False,
    max_active_runs=1,
    tags=["msp", "weekly-report"],
    doc_md=__doc__,
    default_args={"retries": 0},
)
def weekly_executive_report():
    customers = plan_customers()
    reports = customer_report.expand(item=customers)
    reports >> rollup(customers)


weekly_executive_report()

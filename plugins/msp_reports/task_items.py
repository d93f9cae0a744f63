"""What every mapped customer task reads first, in either DAG (weekly report, QBR pack).

Its own item, pulled alone from ``plan_customers``' XCom, and the settings the item carries.
The customer groups are mapped over the customer codes, not over the items: every mapped task
instance pulls the whole mapped list, so with the items in it each task would pull every
customer's registry entry (1 MB per task at 500 customers, quadratic over a run).

Airflow and the rest of the package are imported inside the functions: the DAG files import this
module when they are parsed, and a parse must stay light (tests/test_dag_integrity.py).
"""

from __future__ import annotations

from typing import Any


def customer_item(context: Any, code: str) -> dict:
    """This customer's item; ``context["customer"]`` set to its code (the grid's Map Index label)."""
    from airflow.sdk.exceptions import AirflowFailException
    from msp_reports import pipeline

    context["customer"] = code
    item = context["ti"].xcom_pull(task_ids="plan_customers", key=pipeline.item_key(code), map_indexes=-1)
    if not item:
        raise AirflowFailException(f"{code}: plan_customers holds no item for this customer in this run")
    return item


def item_settings(item: dict | None = None):
    """Where the registry, store and archive are: read once by plan_customers, then carried in each
    item; without an item (plan_customers itself), from the Airflow Variables."""
    from msp_reports.settings import Settings

    if item and "settings" in item:
        return Settings(**item["settings"])
    from airflow.sdk import Variable

    return Settings.load(lambda key, default: Variable.get(key, default=default))

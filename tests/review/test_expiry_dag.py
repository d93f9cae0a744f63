"""The real DAG when nobody approves: the wait ends at the registry's cut-off as a visible "expired"."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF
from tests.review.review_helpers import environment, hitl_timeout_sweep, migrate_db, sim_env

pytestmark = pytest.mark.e2e
REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)


def test_unapproved_report_expires_at_the_cutoff_and_nothing_is_sent(sim, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    from devtools.demo import import_pools
    from msp_reports.settings import INCLUDE
    from devtools.simulators.mailsink import MailSink

    registry = yaml.safe_load((INCLUDE / "customers.yaml").read_text())
    registry["msp"]["approval_cutoff"] = "1m"
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump(registry))
    with MailSink(tmp_path / "outbox") as mail, environment({
            **sim_env(sim, tmp_path / "msp"), "AIRFLOW_VAR_MSP_REPORTS_REGISTRY": str(path),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(mail.connection(registry["msp"]["from_email"]))}):
        migrate_db()
        import_pools()
        dag = DagBag(str(ROOT / "dags")).dags["weekly_executive_report"]
        run_at = dt.datetime.combine(REPORT_MONDAY, dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
        try:  # the cut-off is the Required Action's response timeout, ended by the scheduler's sweep
            with hitl_timeout_sweep():
                dr = dag.test(logical_date=run_at, run_after=run_at, run_conf={"customers": ["ACME"]})
        finally:
            from airflow.models import Variable

            Variable.delete(f"weekly_report_approval__ACME__{WEEK_OF}")  # the sensor's record; not for later tests
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
        store = tmp_path / "msp" / "store"
        assert mail.messages() == []
    assert states["customer_report.wait_for_approval"] == "failed"
    for channel in ("deliver_email", "post_to_teams", "archive"):
        assert states[f"customer_report.{channel}"] == "upstream_failed"
    assert states["post_missed_approvals"] == "success"
    [record] = [json.loads(p.read_text()) for p in sorted((store / "ACME" / WEEK_OF.isoformat() / "approvals").glob("*"))]
    assert record["decision"] == "expired" and record["via"] == "wait_for_approval"
    assert record["reason"].startswith("not approved by ") and record["reason"].endswith("; nothing sent")
    assert not (store / "ACME" / WEEK_OF.isoformat() / "ledger" / "email.json").exists()
    rollup = (store / "_rollup" / WEEK_OF.isoformat() / "rollup.md").read_text()
    assert "ACME | ⌛ expired: not approved by" in rollup
    assert str(dr.state) == "failed"  # the roll-up names ACME as needing attention and the run shows red

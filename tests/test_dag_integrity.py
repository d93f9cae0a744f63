"""The DAG file parses cleanly, cheaply (no DB, no network) and has the documented shape."""

from __future__ import annotations

from tests.dag_parsing import parse_dag_folder
from tests.factories import ROOT

DAG_ID = "weekly_executive_report"


def test_parses_without_db_or_network_and_without_heavy_imports(tmp_path):
    tasks, heavy = parse_dag_folder(DAG_ID, tmp_path)
    assert "customer_report.wait_for_approval" in tasks
    assert heavy == []  # the registry, renderer and WeasyPrint load in tasks, not at parse


def _assert_labelled_by_customer(dag, group) -> None:
    """Every mapped task's grid label (map_index_template) is its customer's code: from the task's
    first argument, the group's mapped ``code``, when it starts (Airflow renders the label then
    with the rendered arguments), and from ``customer`` in the context once it ran."""
    from types import SimpleNamespace

    env = dag.get_template_env()
    for task in group:
        template = task.map_index_template
        assert template and "customer" in template, f"{task.task_id} is not labelled by customer in the grid"
        first = task.op_args[0]
        assert type(first).__name__ == "MappedArgument" and first._key == "code", task.task_id
        started = SimpleNamespace(op_args=["ACME", *task.op_args[1:]])
        assert env.from_string(template).render({"task": started}) == "ACME", task.task_id
        assert env.from_string(template).render({"task": started, "customer": "ACME"}) == "ACME"


def test_shape_mapped_group_sensor_and_schedule():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags[DAG_ID]
    group = dag.task_group_dict["customer_report"]
    assert type(group).__name__ == "MappedTaskGroup"
    inside = {t.task_id.split(".", 1)[1] for t in group}
    assert inside == {"extract_uptime", "extract_tickets", "extract_backups", "extract_security", "extract_sites",
                      "reconcile", "render", "wait_for_approval", "deliver_email", "post_to_teams", "archive",
                      "pin_weekly_tab"}
    _assert_labelled_by_customer(dag, group)
    from airflow.providers.standard.operators.hitl import HITLOperator

    wait = dag.task_dict["customer_report.wait_for_approval"]
    # a Required Action: parks in awaiting_input, no worker slot held and nothing polled while waiting
    assert isinstance(wait, HITLOperator) and wait.options == ["Approve", "Reject"] and "reason" in wait.params
    # the Variable path: one reschedule sensor for the whole run, not one per customer
    watcher = dag.task_dict["watch_approval_variables"]
    assert watcher.mode == "reschedule" and watcher.poke_interval == 60 and watcher.task_group.group_id is None
    assert watcher.upstream_task_ids == {"plan_customers"}
    assert dag.task_dict["customer_report.reconcile"].trigger_rule == "all_done"
    assert dag.task_dict["rollup"].trigger_rule == "all_done"
    # besides plan_customers (which feeds every task its customer), each step waits for the one before
    def upstream(task_id):
        return dag.task_dict[task_id].upstream_task_ids - {"plan_customers"}

    assert upstream("customer_report.reconcile") == {f"customer_report.extract_{d}" for d in
                                                     ("uptime", "tickets", "backups", "security", "sites")}
    assert upstream("customer_report.render") == {"customer_report.reconcile"}
    assert upstream("customer_report.wait_for_approval") == {"customer_report.render"}
    for channel in ("deliver_email", "post_to_teams", "archive"):
        assert upstream(f"customer_report.{channel}") == {"customer_report.wait_for_approval"}
    # the tab is one step after the channels (no race between teams and archive), whatever became of them
    assert upstream("customer_report.pin_weekly_tab") == {"customer_report.deliver_email",
                                                          "customer_report.post_to_teams", "customer_report.archive"}
    assert dag.task_dict["customer_report.pin_weekly_tab"].trigger_rule == "all_done"
    assert dag.catchup is False
    assert dag.timetable.expression == "0 6 * * 1" and str(dag.timetable.timezone) == "Europe/London"


def _dag_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("weekly_executive_report_under_test",
                                                  ROOT / "dags" / "weekly_executive_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tab_step_skips_until_teams_and_archive_are_sent_and_pins_after(monkeypatch):
    """The task body is wiring only: pipeline.pin_tab decides; waiting on a channel is a skip."""
    import pytest
    from airflow.sdk.exceptions import AirflowSkipException
    from msp_reports import pipeline

    module = _dag_module()
    item = {"customer": "ACME", "week_of": "2026-11-16", "settings": {"registry_path": "r", "store_root": "s",
                                                                      "archive_root": "a"}}
    monkeypatch.setattr(module, "_item", lambda code: item)
    answers = iter([{"customer": "ACME", "pinned": False, "waiting_for": ["archive"]},
                    {"customer": "ACME", "pinned": True, "tab": {"action": "updated"}}])
    calls = []
    monkeypatch.setattr(pipeline, "pin_tab", lambda settings, it: calls.append((settings, it)) or next(answers))
    with pytest.raises(AirflowSkipException, match="ACME: archive not sent"):
        module.pin_weekly_tab.function("ACME")
    assert module.pin_weekly_tab.function("ACME")["pinned"] is True
    assert [it for _, it in calls] == [item, item] and calls[0][0].store_root == "s"

"""The MSP timezone is set twice: ``MSP_REPORTS_TIMEZONE`` (the DAG's Monday 06:00 schedule, read at
parse time, no registry read there) and ``msp.timezone`` in the registry (the reported week, the
09:00 send time, the approval deadline). plan_customers refuses to run when they disagree."""

from __future__ import annotations

import ast
import datetime as dt

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF

RUN_AFTER = dt.datetime.combine(WEEK_OF + dt.timedelta(days=7), dt.time(6), dt.timezone.utc)


def _settings(tmp_path, msp_timezone: str):
    from msp_reports.settings import Settings

    raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
    raw["msp"]["timezone"] = msp_timezone
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Settings(registry_path=str(path), store_root=str(tmp_path / "store"), archive_root=str(tmp_path / "a"))


def test_plan_refuses_a_registry_timezone_other_than_the_schedules(tmp_path, monkeypatch):
    from msp_reports import pipeline
    from msp_reports.exceptions import RegistryError

    monkeypatch.setenv("MSP_REPORTS_TIMEZONE", "Asia/Singapore")
    settings = _settings(tmp_path, "Europe/London")
    with pytest.raises(RegistryError) as err:
        pipeline.plan(settings, RUN_AFTER, None, run_id="tz-check")
    message = str(err.value)
    assert message.startswith(f"{settings.registry_path}: msp.timezone is 'Europe/London'")
    assert "'Asia/Singapore'" in message and "environment variable MSP_REPORTS_TIMEZONE" in message
    # what to change, either way
    assert "msp.timezone: Asia/Singapore" in message and "MSP_REPORTS_TIMEZONE=Europe/London" in message
    # the DAG passes the zone its schedule was built with; the same check applies
    with pytest.raises(RegistryError, match="'America/Chicago'"):
        pipeline.plan(settings, RUN_AFTER, None, run_id="tz-check", schedule_timezone="America/Chicago")


def test_plan_runs_when_they_agree(tmp_path, monkeypatch):
    from msp_reports import pipeline

    monkeypatch.delenv("MSP_REPORTS_TIMEZONE", raising=False)  # the default: Europe/London
    assert {i["week_of"] for i in pipeline.plan(_settings(tmp_path, "Europe/London"), RUN_AFTER, None)} == {
        WEEK_OF.isoformat()}
    monkeypatch.setenv("MSP_REPORTS_TIMEZONE", "America/New_York")
    items = pipeline.plan(_settings(tmp_path, "America/New_York"), RUN_AFTER, None)
    assert items and {i["msp"]["timezone"] for i in items} == {"America/New_York"}


def test_the_dag_schedules_in_the_setting_and_hands_it_to_plan(monkeypatch):
    """The schedule follows ``MSP_REPORTS_TIMEZONE``, and plan_customers checks the registry against
    that very value (not a second reading of it)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MSP_REPORTS_TIMEZONE", "Asia/Singapore")
    dag = DagBag(str(ROOT / "dags")).dags["weekly_executive_report"]
    assert str(dag.timetable.timezone) == "Asia/Singapore"
    tree = ast.parse((ROOT / "dags" / "weekly_executive_report.py").read_text())
    [task] = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "plan_customers"]
    [call] = [c for c in ast.walk(task) if isinstance(c, ast.Call) and getattr(c.func, "attr", "") == "plan"]
    assert ast.unparse(next(k.value for k in call.keywords if k.arg == "schedule_timezone")) == "MSP_TIMEZONE"

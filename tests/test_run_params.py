"""The DAG's trigger form (Params ``customers`` and ``week_of``) and what a run makes of them.

The schema is what the trigger dialog renders; the checks the schema cannot make (a code the
registry does not have, a day that is not a Monday, a week not over yet) are made at run time
by ``plan_customers``: through ``pipeline.plan`` directly, and through a real ``dag.test`` run.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from tests.factories import ROOT, WEEK_OF

REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)  # 2026-11-23: the run that reports on WEEK_OF
RUN_AFTER = dt.datetime.combine(REPORT_MONDAY, dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["weekly_executive_report"]


@pytest.fixture
def settings(tmp_path):
    from msp_reports.settings import Settings

    return Settings(registry_path=Settings.load().registry_path, store_root=str(tmp_path / "store"),
                    archive_root=str(tmp_path / "archive"))


def _codes(settings) -> list[str]:
    from msp_reports.registry import load_registry

    return [c.code for c in load_registry(settings.registry_path).customers]


# ---- the form ---------------------------------------------------------------------------------
def test_params_are_a_form_customers_list_and_optional_date(dag):
    params = dag.params
    assert set(params) == {"customers", "week_of"}
    customers, week_of = params.get_param("customers"), params.get_param("week_of")
    # a list of strings: the UI's one-per-line field; empty by default (every customer)
    assert customers.value == [] and customers.schema["type"] == "array"
    assert customers.schema["items"] == {"type": "string"}
    # a date picker that may be left empty (null: the latest week)
    assert week_of.value is None
    assert week_of.schema["type"] == ["null", "string"] and week_of.schema["format"] == "date"
    for p in (customers, week_of):
        assert p.schema["title"] and len(p.description) > 40
    assert "every customer" in customers.description and "latest week" in week_of.description


def _serialized_params(dag):
    """The params as the API server and the scheduler hold them (from the serialized DAG)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag)).params


def test_params_reach_the_serialized_dag_the_ui_renders(dag):
    """The trigger dialog reads the params from the serialized DAG: the schema must survive it."""
    params = _serialized_params(dag)
    assert params.get_param("week_of").schema["format"] == "date"
    assert params.get_param("customers").schema["items"] == {"type": "string"}


def test_the_schema_refuses_a_non_date_and_a_bare_string_at_trigger_time(dag):
    """What the schema can check, Airflow checks when the run is created (REST API, UI, CLI), as
    ``create_dagrun`` does: the serialized DAG's params merged with the conf, then validated."""
    from airflow.exceptions import ParamValidationError

    params = _serialized_params(dag)

    def check(conf):
        return params.deep_merge(conf).validate()

    assert check({"customers": ["ACME"], "week_of": "2026-11-09"}) == {"customers": ["ACME"], "week_of": "2026-11-09"}
    assert check({}) == {"customers": [], "week_of": None}
    assert check({"customers": ["ACME"]}) == {"customers": ["ACME"], "week_of": None}  # the old conf
    with pytest.raises(ParamValidationError, match="week_of"):
        check({"week_of": "last monday"})
    with pytest.raises(ParamValidationError, match="customers"):
        check({"customers": "ACME"})


# ---- what plan makes of them --------------------------------------------------------------------
def test_defaults_give_every_customer_and_the_latest_week(settings):
    from msp_reports import pipeline

    for conf in (None, {}, {"customers": [], "week_of": None}, {"customers": [""], "week_of": ""}):
        items = pipeline.plan(settings, RUN_AFTER, conf)
        assert [i["customer"] for i in items] == _codes(settings), conf
        assert {i["week_of"] for i in items} == {WEEK_OF.isoformat()}, conf


def test_customers_and_a_past_monday_limit_the_run(settings):
    from msp_reports import pipeline

    past = WEEK_OF - dt.timedelta(days=14)
    items = pipeline.plan(settings, RUN_AFTER, {"customers": ["FXTR", "ACME"], "week_of": past.isoformat()})
    assert [i["customer"] for i in items] == ["ACME", "FXTR"]  # registry order
    assert {i["week_of"] for i in items} == {past.isoformat()}
    # the old way: conf with the customers alone
    assert [i["customer"] for i in pipeline.plan(settings, RUN_AFTER, {"customers": ["BRVO"]})] == ["BRVO"]


def test_unknown_customer_code_is_refused_naming_it(settings):
    from msp_reports import pipeline
    from msp_reports.exceptions import RegistryError

    with pytest.raises(RegistryError) as err:
        pipeline.plan(settings, RUN_AFTER, {"customers": ["ACME", "ACNE", "brvo"]})
    message = str(err.value)
    assert "ACNE, brvo" in message and "ACME," not in message.split("(")[0]
    assert str(settings.registry_path) in message and "BRVO" in message  # where it looked, what it has


@pytest.mark.parametrize(("week_of", "expected"), [
    ("2026-11-17", "week_of 2026-11-17 is a Tuesday, not a Monday: a report week starts on a Monday (that "
                   "week's is 2026-11-16)"),
    ("2026-11-23", "week_of 2026-11-23 has not ended yet (it ends on 2026-11-30): the latest week a run on "
                   "2026-11-23 can report on is the week of 2026-11-16"),
    ("2027-01-04", "week_of 2027-01-04 is in the future"),
    ("16/11/2026", "week_of '16/11/2026' is not a date: give the Monday the week starts, as YYYY-MM-DD"),
])
def test_a_week_that_is_not_a_past_monday_is_refused_naming_it(settings, week_of, expected):
    from msp_reports import pipeline
    from msp_reports.exceptions import ReportError

    with pytest.raises(ReportError) as err:
        pipeline.plan(settings, RUN_AFTER, {"week_of": week_of})
    assert expected in str(err.value)


def test_requested_week_accepts_the_latest_finished_week_on_its_report_monday():
    from msp_reports.week import requested_week

    assert requested_week("2026-11-16", dt.date(2026, 11, 23)) == dt.date(2026, 11, 16)
    assert requested_week(dt.date(2026, 11, 9), dt.date(2026, 11, 23)) == dt.date(2026, 11, 9)  # a date object
    with pytest.raises(ValueError, match="has not ended yet"):
        requested_week("2026-11-16", dt.date(2026, 11, 22))  # Sunday: that week is still running
    assert requested_week(None, dt.date(2026, 11, 23)) is None
    assert requested_week("  ", dt.date(2026, 11, 23)) is None


# ---- through a real run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def airflow_db():
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)


def _failed_plan(dag, conf, capfd) -> str:
    """Run the DAG with ``conf``; plan_customers must fail, nothing else run; what the run printed
    (dag.test writes the task's log, with the error, to the console)."""
    capfd.readouterr()
    dr = dag.test(logical_date=RUN_AFTER, run_after=RUN_AFTER, run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "failed" and states["plan_customers"] == "failed", states
    assert not any(s == "success" for t, s in states.items() if t != "plan_customers"), states
    out = capfd.readouterr()
    return out.out + out.err


@pytest.mark.e2e
def test_a_real_run_refuses_an_unknown_code_and_a_tuesday_naming_them(dag, airflow_db, capfd, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("MSP_REPORTS_HOME", str(tmp_path))
    text = _failed_plan(dag, {"customers": ["ACME", "ZZZZ"]}, capfd)
    assert "unknown customer code(s) in the run's customers: ZZZZ" in text
    text = _failed_plan(dag, {"week_of": "2026-11-10"}, capfd)
    assert "week_of 2026-11-10 is a Tuesday, not a Monday" in text
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())  # nothing extracted

"""The QBR DAG's wiring without a run: it parses cheaply, the schedule fires on the first Monday
after each quarter at 06:00 MSP time (and nowhere else), the Params refuse what is not a quarter
or not a registry code, and the plan reads them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.dag_parsing import HEAVY, parse_dag_folder
from tests.factories import ROOT

DAG_ID = "quarterly_business_review"
LONDON = ZoneInfo("Europe/London")


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID]


def test_parses_without_db_or_network_and_without_heavy_imports(tmp_path):
    tasks, heavy = parse_dag_folder(DAG_ID, tmp_path, HEAVY + ("msp_reports.qbr", "msp_reports.pipeline"))
    for task in ("plan_customers", "customer_pack.wait_for_last_week", "customer_pack.render",
                 "customer_pack.wait_for_approval", "customer_pack.deliver_email", "customer_pack.post_to_teams",
                 "customer_pack.archive"):
        assert task in tasks
    assert heavy == []


def test_the_approval_wait_is_a_required_action_and_one_watcher_reads_the_variables():
    """As the weekly DAG's: the pack's wait parks on a Required Action (no slot, no poke) of the
    QBR kind; the Variable path is one reschedule sensor for the whole run."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    from msp_reports.approval_request import QBR

    dag = _dag()
    wait = dag.task_dict["customer_pack.wait_for_approval"]
    assert isinstance(wait, HITLOperator) and wait.kind is QBR and wait.task_id == QBR.task_id
    assert wait.options == ["Approve", "Reject"] and "reason" in wait.params and wait.subject == "QBR pack approval"
    watcher = dag.task_dict["watch_approval_variables"]
    assert watcher.mode == "reschedule" and watcher.poke_interval == 60 and watcher.task_group.group_id is None
    assert watcher.upstream_task_ids == {"plan_customers"}
    assert wait.upstream_task_ids == {"customer_pack.render", "plan_customers"}


def _fires(timetable, start: dt.datetime, n: int) -> list[dt.datetime]:
    from airflow.timetables.base import DataInterval, TimeRestriction

    out, last = [], None
    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    for _ in range(n):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        out.append(info.run_after.astimezone(LONDON))
        last = DataInterval(info.run_after, info.run_after)
    return out


def test_schedule_is_the_first_monday_after_each_quarter_at_six_msp_time():
    """Croniter takes "1-7 ... 1" (day of month and day of week together) as either, like cron: that
    would fire every day 1-7 and every Monday of the month. The DAG's "1#1" fires once."""
    from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable
    from airflow.serialization.encoders import coerce_to_core_timetable

    dag = _dag()
    core = coerce_to_core_timetable(dag.timetable)
    fires = _fires(core, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), 9)
    assert [f.date() for f in fires] == [dt.date(2026, 1, 5), dt.date(2026, 4, 6), dt.date(2026, 7, 6),
                                         dt.date(2026, 10, 5), dt.date(2027, 1, 4), dt.date(2027, 4, 5),
                                         dt.date(2027, 7, 5), dt.date(2027, 10, 4), dt.date(2028, 1, 3)]
    assert {(f.weekday(), f.hour, f.minute) for f in fires} == {(0, 6, 0)}  # 06:00 London, summer or winter
    assert {f.day <= 7 for f in fires} == {True}
    # a quarter whose next one starts on a Monday: that very day (2029-10-01 is a Monday)
    assert _fires(core, dt.datetime(2029, 9, 1, tzinfo=dt.timezone.utc), 1)[0].date() == dt.date(2029, 10, 1)
    # the rejected spelling really is wrong under this croniter: it fires on 2026-10-01, a Thursday
    naive = coerce_to_core_timetable(CronTriggerTimetable("0 6 1-7 1,4,7,10 1", timezone="Europe/London"))
    assert _fires(naive, dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc), 1)[0].date() == dt.date(2026, 10, 1)


def test_quarter_param_default_and_validation():
    """What a trigger (the UI form, the REST API, the CLI's conf) is checked against before a run starts."""
    import copy

    from airflow.sdk.exceptions import ParamValidationError

    from msp_reports.qbr_store import last_complete_quarter

    dag = _dag()
    assert dag.params["quarter"] == last_complete_quarter(dt.datetime.now(dt.timezone.utc), "Europe/London")
    assert dag.params["customers"] == []

    def given(**conf):
        params = copy.deepcopy(dag.params)
        for k, v in conf.items():
            params[k] = v
        return params.validate()

    assert given(quarter="2026-Q3", customers=["ACME", "CNDR"]) == {"quarter": "2026-Q3", "customers": ["ACME", "CNDR"]}
    for bad in ({"quarter": "2026-3"}, {"quarter": "2026-Q5"}, {"quarter": "Q3 2026"}, {"customers": "ACME"},
                {"customers": ["acme corp"]}):
        with pytest.raises(ParamValidationError):
            given(**bad)


def test_last_complete_quarter_and_due_monday():
    from msp_reports.qbr_store import due_monday, last_complete_quarter

    at = lambda *a: dt.datetime(*a, tzinfo=dt.timezone.utc)  # noqa: E731
    assert last_complete_quarter(at(2026, 12, 6, 20), "Europe/London") == "2026-Q3"
    assert last_complete_quarter(at(2026, 10, 5, 5), "Europe/London") == "2026-Q3"
    assert last_complete_quarter(at(2026, 3, 31, 22, 30), "Europe/London") == "2025-Q4"  # 23:30 BST, still March
    assert last_complete_quarter(at(2026, 3, 31, 22, 30), "Asia/Singapore") == "2026-Q1"  # 06:30 on April 1st there
    assert due_monday("2026-Q3") == dt.date(2026, 10, 5)
    assert due_monday("2026-Q4") == dt.date(2027, 1, 4)
    assert due_monday("2029-Q3") == dt.date(2029, 10, 1)


def test_plan_refuses_an_unknown_customer_and_a_quarter_not_over(tmp_path):
    from msp_reports.exceptions import RegistryError
    from msp_reports.qbr_pipeline import plan
    from msp_reports.settings import Settings

    settings = Settings.load()
    run_at = dt.datetime(2026, 10, 5, 6, tzinfo=LONDON)
    with pytest.raises(RegistryError, match="NOPE"):
        plan(settings, run_at, {"quarter": "2026-Q3", "customers": ["ACME", "NOPE"]}, schedule_timezone="Europe/London")
    with pytest.raises(RegistryError, match="not over"):
        plan(settings, run_at, {"quarter": "2026-Q4"}, schedule_timezone="Europe/London")
    with pytest.raises(RegistryError, match="not a quarter"):
        plan(settings, run_at, {"quarter": "2026-13"}, schedule_timezone="Europe/London")
    items = plan(settings, run_at, {"customers": ["CNDR", "ACME"]}, schedule_timezone="Europe/London")
    assert [(i["customer"], i["quarter"]) for i in items] == [("ACME", "2026-Q3"), ("CNDR", "2026-Q3")]
    assert len(plan(settings, run_at, {"quarter": "2026-Q2"}, schedule_timezone="Europe/London")) == 12


def test_the_pack_waits_for_the_last_week_and_is_not_delivered_before_nine(tmp_path, monkeypatch):
    """On the Monday: the pack is built once the weekly run stored the quarter's last week (or at
    09:00 without it), and an approved pack is held until 09:00 MSP time."""
    from msp_reports import approval, qbr_pipeline
    from msp_reports.qbr import Quarter
    from msp_reports.qbr_store import PackStore, quarter_first_day, record_decision
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore
    from tests.qbr.seed import seed

    monkeypatch.setenv("MSP_REPORTS_HOME", str(tmp_path))
    settings = Settings.load()
    weeks = Quarter.parse("2026-Q3").week_ofs()
    seed(ReportStore(settings.store_root), weeks[:-1])
    item = {"customer": "ACME", "quarter": "2026-Q3"}
    at = lambda h, m=0: dt.datetime(2026, 10, 5, h, m, tzinfo=LONDON)  # noqa: E731 - the due Monday
    assert not qbr_pipeline.weeks_ready(settings, item, now=at(6, 5))
    assert qbr_pipeline.weeks_ready(settings, item, now=at(9))  # the send time: build without it
    seed(ReportStore(settings.store_root), weeks)
    assert qbr_pipeline.weeks_ready(settings, item, now=at(6, 10))

    qbr_pipeline.render(settings, item)
    store = PackStore(settings.store_root)
    shown = approval.reviewed_version(store.week("ACME", quarter_first_day("2026-Q3")).render_record())
    record_decision(settings.store_root, "ACME", "2026-Q3", "approve", by="jane", via="review-page", reviewed=shown)
    since = at(6, 20)
    assert qbr_pipeline.check_approval(settings, item, None, now=at(8, 59), waiting_since=since)[0] == \
        "approved_waiting_for_send_time"
    assert qbr_pipeline.check_approval(settings, item, None, now=at(9), waiting_since=since)[0] == "approved"


def test_the_light_quarter_helpers_agree_with_the_pack_quarter():
    """qbr_store spells the quarter arithmetic the DAG file needs at parse time without importing the
    pack's renderer; it must agree with msp_reports.qbr.Quarter (and the pack's file name)."""
    from msp_reports import qbr, qbr_store

    assert qbr_store.SOURCES == qbr.SOURCES
    for year in (2026, 2027, 2028, 2029):
        for n in (1, 2, 3, 4):
            q = qbr.Quarter(year, n)
            assert qbr_store.quarter_first_day(str(q)) == q.first_day
            assert qbr_store.quarter_label(q.last_day) == str(q) == qbr_store.quarter_label(q.first_day)
            assert qbr_store.after(str(q)) == q.next().first_day
            monday = qbr_store.due_monday(str(q))
            assert monday.weekday() == 0 and q.last_day < monday <= q.last_day + dt.timedelta(days=7)
            assert q.ends <= monday  # the quarter's last week has ended by the day its pack is due

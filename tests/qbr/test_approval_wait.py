"""The QBR pack's wait, as the weekly one: the run's Variable watcher, given the QBR kind, reads the
pack's Variable for a customer whose wait is parked, records the decision on the pack (by the user
Airflow's audit log names) and answers that customer's QBR request, not a weekly one's."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from msp_reports.approval_request import QBR, WEEKLY

QUARTER = "2026-Q3"


class FakeApi:
    """Airflow's REST API as the watcher sees it: the run's parked requests, the answers given."""

    def __init__(self, parked: list[dict]) -> None:
        self._parked = parked
        self.answers: list[tuple[str, str, str]] = []
        self.settling_asked: list[str] = []

    def parked(self, dag_id: str, run_id: str) -> list[dict]:
        return self._parked

    def parked_after(self, dag_id: str, run_id: str, task_id: str, after: dt.datetime) -> set[int]:
        self.settling_asked.append(task_id)
        return set()  # every request has been parked long enough to be answered

    def answer(self, detail: dict, option: str, reason: str) -> None:
        self.answers.append((detail["subject"], option, reason))

    def variable_setter(self, key: str) -> str:
        return "jane"


def test_the_watcher_records_the_packs_variable_and_answers_its_parked_request(tmp_path, monkeypatch):
    from airflow.sdk import Variable

    from msp_reports import approval, qbr_pipeline
    from msp_reports.airflow_api import AirflowApi
    from msp_reports.airflow_approval import watch_variables
    from msp_reports.qbr import Quarter
    from msp_reports.qbr_store import PackStore, quarter_first_day, variable_key
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore
    from tests.qbr.seed import seed

    monkeypatch.setenv("MSP_REPORTS_HOME", str(tmp_path))
    settings = Settings.load()
    seed(ReportStore(settings.store_root), Quarter.parse(QUARTER).week_ofs())
    [item] = qbr_pipeline.plan(settings, dt.datetime(2026, 10, 5, 6, tzinfo=ZoneInfo("Europe/London")),
                               {"quarter": QUARTER, "customers": ["ACME"]}, run_id="run-1",
                               schedule_timezone="Europe/London")
    pdf = qbr_pipeline.render(settings, item)["pdf_sha256"]
    since = dt.datetime.now(dt.timezone.utc)
    assert qbr_pipeline.check_approval(settings, item, None, waiting_since=since)[0] == "awaiting_review"

    variables = {variable_key("ACME", QUARTER): f"approve {pdf[:12]}"}
    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None: variables.get(key, default)))
    monkeypatch.setattr(Variable, "set", staticmethod(lambda key, value, description=None: variables.update({key: value})))
    api = FakeApi([{"subject": WEEKLY.subject("ACME", "2026-06-29"), "task_instance": {"map_index": 0}},
                   {"subject": QBR.subject("ACME", QUARTER), "task_instance": {"map_index": 0}}])
    monkeypatch.setattr(AirflowApi, "from_connection", classmethod(lambda cls, conn_id=None: api))

    assert watch_variables([item], QBR.dag_id, "run-1", QBR) is True  # nobody in the run waits any more
    assert api.answers == [("QBR pack approval: ACME 2026-Q3", "Approve", "")]
    assert api.settling_asked == ["customer_pack.wait_for_approval"]  # the pack's task, not the weekly one
    record = approval.in_force(PackStore(settings.store_root), "ACME", quarter_first_day(QUARTER))
    assert (record["decision"], record["by"], record["via"], record["pdf_sha256"]) == \
        ("approve", "jane", "airflow-variable", pdf)
    assert json.loads(variables[variable_key("ACME", QUARTER)]) == record  # the Variable holds the record

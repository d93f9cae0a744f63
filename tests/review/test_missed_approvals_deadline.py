"""The 09:00 missed-approvals notice states the deadline the approval sensors will hold to: on
time it is the send time plus the cut-off; on a late run (a past week, a run started after
09:00) the wait began later, so does the deadline, and the notice never gives one already past."""

from __future__ import annotations

import datetime as dt
import json
import re
from zoneinfo import ZoneInfo

import pytest

from tests.factories import WEEK_OF
from tests.review.review_helpers import INTERNAL_CHANNEL, environment, sim_env

WEEK = WEEK_OF.isoformat()
ITEMS = [{"customer": "ACME", "week_of": WEEK}]


@pytest.fixture
def settings(sim, tmp_path):
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore, sha256

    with environment(sim_env(sim, tmp_path)):
        settings = Settings.load()
        store = ReportStore(settings.store_root)
        pdf = b"%PDF ACME"
        store.write_bytes("ACME", WEEK_OF, "report.pdf", pdf)
        store.write_json("ACME", WEEK_OF, "render.json", {"pdf_sha256": sha256(pdf), "snapshot_sha256": "s",
                                                          "commentary_sha256": sha256(b"")})
        yield settings


def _stated_deadline(sim, before: int) -> str:
    [post] = [p for p in sim.state.extra.get("teams_posts", {}).get(INTERNAL_CHANNEL, [])[before:]
              if "Not approved at" in json.dumps(p)]
    text = " ".join(b.get("text", "") for b in post["card"]["body"])
    return re.search(r"The wait ends at (\w{3} \d{2} \w{3} \d{2}:\d{2})", text).group(1)


def _posted(sim) -> int:
    return len(sim.state.extra.get("teams_posts", {}).get(INTERNAL_CHANNEL, []))


def _local(msp, when: dt.datetime) -> str:
    return f"{when.astimezone(ZoneInfo(msp.timezone)):%a %d %b %H:%M}"


def test_a_late_run_states_the_deadline_its_sensors_hold_to_not_one_already_past(sim, settings):
    """A run for a past week: 09:00 of its Monday plus the cut-off is long gone. The sensors'
    cut-off runs from when they began waiting; the notice says that, and it is in the future."""
    from msp_reports import pipeline
    from msp_reports.registry import load_registry

    msp = load_registry(settings.registry_path).msp
    stale = pipeline.approval_deadline(msp, WEEK_OF)
    assert stale < dt.datetime.now(dt.timezone.utc)  # the bug's deadline: already past
    before, start = _posted(sim), dt.datetime.now(dt.timezone.utc)
    assert pipeline.post_missed_approvals(settings, ITEMS, lambda key: None)["unapproved"] == ["ACME"]
    end = dt.datetime.now(dt.timezone.utc)
    shown = _stated_deadline(sim, before)
    assert shown != _local(msp, stale)
    # what wait_for_approval holds to, having begun waiting in this run
    assert shown in {_local(msp, pipeline.approval_deadline(msp, WEEK_OF, t)) for t in (start, end)}


def test_the_run_start_given_the_notice_states_the_sensors_deadline_exactly(sim, settings):
    """The DAG passes the run's start: no sensor began waiting before it, so the notice never
    promises more time than a sensor gives (on time: 09:00 plus the cut-off, to the minute)."""
    from msp_reports import pipeline
    from msp_reports.registry import load_registry

    msp = load_registry(settings.registry_path).msp
    on_time_start = pipeline._send_time(msp, WEEK_OF) - dt.timedelta(hours=3)  # Monday 06:00
    before = _posted(sim)
    pipeline.post_missed_approvals(settings, ITEMS, lambda key: None, waiting_since=on_time_start)
    assert _stated_deadline(sim, before) == _local(msp, pipeline._send_time(msp, WEEK_OF) + msp.approval_cutoff)


def test_the_dag_hands_the_notice_the_run_start():
    """The DAG task passes when its run began (the earliest any sensor of the run can have begun)."""
    import ast

    from tests.factories import ROOT

    tree = ast.parse((ROOT / "dags" / "weekly_executive_report.py").read_text())
    [task] = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "post_missed_approvals"]
    [call] = [c for c in ast.walk(task) if isinstance(c, ast.Call) and getattr(c.func, "attr", "") ==
              "post_missed_approvals"]
    assert "start_date" in ast.unparse(next(k.value for k in call.keywords if k.arg == "waiting_since"))

"""The roll-up is per week, not per run (issue 20, item 7): a second run for the same week keeps
the first run's customers in ``rollup.md`` and posts one update, never a partial roll-up; the
missed-approvals post waits until reviewers have had their window."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.factories import WEEK_OF
from tests.review.review_helpers import INTERNAL_CHANNEL, environment, sim_env

WEEK = WEEK_OF.isoformat()


@pytest.fixture
def week(sim, tmp_path):
    """ACME and BRVO rendered for the week, nobody decided yet (the demo registry); ``render``
    renders one more."""
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore, sha256

    with environment(sim_env(sim, tmp_path)):
        settings = Settings.load()
        store = ReportStore(settings.store_root)
        def render(code: str) -> None:
            pdf = f"%PDF {code}".encode()
            store.write_bytes(code, WEEK_OF, "report.pdf", pdf)
            store.write_json(code, WEEK_OF, "render.json", {"pdf_sha256": sha256(pdf), "snapshot_sha256": "s",
                                                             "commentary_sha256": sha256(b"")})

        render("ACME")
        render("BRVO")
        yield settings, store, render


def _rollups(sim) -> list[dict]:
    return [p for p in sim.state.extra.get("teams_posts", {}).get(INTERNAL_CHANNEL, [])
            if "Weekly reports: week of" in json.dumps(p)]


def _items(*codes: str, run: str) -> list[dict]:
    return [{"customer": c, "week_of": WEEK, "run": run} for c in codes]


def test_a_second_run_for_the_week_keeps_the_first_runs_customers_and_posts_one_update(sim, week):
    from msp_reports import pipeline

    settings, store, render = week
    before = len(_rollups(sim))
    first = pipeline.rollup(settings, _items("ACME", "BRVO", run="scheduled__1"))
    assert first["customers"] == 2 and len(_rollups(sim)) == before + 1
    render("CNDR")  # a second, manual run for the week, for CNDR only
    second = pipeline.rollup(settings, _items("CNDR", run="manual__2"))
    text = (store.root / "_rollup" / WEEK / "rollup.md").read_text()
    assert "0 of 3 customer reports delivered" in text
    assert all(f"| {code} |" in text for code in ("ACME", "BRVO", "CNDR"))
    assert second["customers"] == 3
    assert second["needs_attention"] == ["CNDR awaiting review"]  # the task fails only for its own customers
    posts = _rollups(sim)[before:]
    assert len(posts) == 2  # the first roll-up, then one update: never a partial roll-up
    update = json.dumps(posts[1]["card"])
    assert "(updated)" in update and "This replaces the earlier roll-up for the week." in update
    assert all(code in update for code in ("ACME", "BRVO", "CNDR"))
    # the same week's roll-up unchanged (a third run, a retry): nothing more is posted
    pipeline.rollup(settings, _items("ACME", run="manual__3"))
    pipeline.rollup(settings, _items("CNDR", run="manual__2"))
    assert len(_rollups(sim)) == before + 2


def test_the_missed_approvals_post_waits_for_the_reviewers_window_on_a_past_week_run(sim, week):
    """A manual run for a past week starts long after its send time: the post must not go 6 s in."""
    from msp_reports import approval, pipeline, run_record

    settings, store, _ = week
    items = _items("ACME", "BRVO", run="manual__past")
    started = dt.datetime.now(dt.timezone.utc)
    nobody = {}.get
    assert pipeline.send_time(settings, items[0]) < started  # the send time is long past
    assert not pipeline.missed_approvals_ready(settings, items, nobody, run_start=started,
                                               now=started + dt.timedelta(seconds=6))
    # the sensors began waiting an hour in: reviewers get the window from then
    waiting = started + dt.timedelta(hours=1)
    for code in ("ACME", "BRVO"):
        run_record.note_waiting(store, code, WEEK_OF, "manual__past", waiting)
    due = pipeline.missed_approvals_due(settings, items, started)
    assert due == waiting + pipeline.REVIEW_WINDOW
    assert not pipeline.missed_approvals_ready(settings, items, nobody, run_start=started,
                                               now=due - dt.timedelta(minutes=1))
    assert pipeline.missed_approvals_ready(settings, items, nobody, run_start=started, now=due)
    # everyone decided: nobody to name, so there is nothing to wait for
    decided = {approval.variable_key(c, WEEK_OF): "approve" for c in ("ACME", "BRVO")}
    assert pipeline.missed_approvals_ready(settings, items, decided.get, run_start=started,
                                           now=started + dt.timedelta(seconds=6))


def test_the_dag_gates_the_missed_approvals_post_on_the_reviewers_window():
    import ast

    from tests.factories import ROOT

    tree = ast.parse((ROOT / "dags" / "weekly_executive_report.py").read_text())
    [sensor] = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "wait_for_send_time"]
    [call] = [c for c in ast.walk(sensor) if isinstance(c, ast.Call)
              and getattr(c.func, "attr", "") == "missed_approvals_ready"]
    assert "start_date" in ast.unparse(next(k.value for k in call.keywords if k.arg == "run_start"))

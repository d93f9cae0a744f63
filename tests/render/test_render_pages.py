"""devtools/render_pages: finds the store's latest week and the history its charts draw from."""

from __future__ import annotations

import datetime as dt

from msp_reports.reconcile import reconcile
from msp_reports.registry import Thresholds
from tests.factories import WEEK_OF, make_snapshot


def test_render_pages_finds_the_latest_week_and_its_history(tmp_path):
    from devtools import render_pages

    for back in (0, 1, 3):
        snap = make_snapshot(WEEK_OF - dt.timedelta(days=7 * back), healthy=True)
        folder = tmp_path / "ACME" / snap.week_of.isoformat()
        folder.mkdir(parents=True)
        (folder / "snapshot.json").write_text(snap.model_dump_json())
        (folder / "reconciled.json").write_text(reconcile(snap, None, Thresholds()).model_dump_json())
    (tmp_path / "_rollup" / "2027-01-04").mkdir(parents=True)
    (tmp_path / "_rollup" / "2027-01-04" / "reconciled.json").write_text("{}")
    assert render_pages.latest_week(tmp_path) == WEEK_OF
    history = render_pages.history(tmp_path, "ACME", WEEK_OF, 7)
    assert [s.week_of for s in history] == [WEEK_OF - dt.timedelta(days=21), WEEK_OF - dt.timedelta(days=7)]
    assert render_pages.latest_week(tmp_path / "nothing") is None

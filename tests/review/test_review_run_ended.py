"""The review page and the run never disagree: a decision the run can no longer act on is shown
as such, with the way forward, and refused; earlier weeks are not "rendering"; the list's flag
chips, the rejection's colour and the cut-off's wording (issue 20, items 5 and 6)."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from tests.factories import WEEK_OF
from tests.review.review_helpers import TEST_USERS, api_clients, environment, migrate_db, render_week, sim_env
from tests.review.test_review_api import PREFIX, WEEK, _decide, _page, _records

RUN = "manual__2026-12-04T10:00:00+00:00"
EARLIER = WEEK_OF - dt.timedelta(days=28)  # older than any run can still be at work on


@pytest.fixture(scope="module")
def api(sim, tmp_path_factory):
    home = tmp_path_factory.mktemp("review-run-ended")
    with environment({**sim_env(sim, home), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": TEST_USERS}):
        migrate_db()
        render_week(WEEK_OF, ["ACME", "BRVO", "CNDR"])
        client = api_clients()
        yield {"client": client, "home": home}
        from airflow.models import Variable

        for code in ("ACME", "BRVO", "CNDR"):
            Variable.delete(f"weekly_report_approval__{code}__{WEEK}")


def _poke(code: str) -> str:
    """One poke of the run's wait_for_approval, as the DAG makes it (the Variable the page wrote)."""
    from airflow.models import Variable
    from msp_reports import pipeline
    from msp_reports.settings import Settings

    settings = Settings.load()
    item = {"customer": code, "week_of": WEEK, "run": RUN}
    raw = Variable.get(f"weekly_report_approval__{code}__{WEEK}", default_var=None)
    state, _, _ = pipeline.check_approval(settings, item, raw, waiting_since=dt.datetime.now(dt.timezone.utc))
    return state


def test_after_the_run_skipped_a_rejected_week_the_page_refuses_an_approval_and_says_re_run(api):
    reviewer = api["client"]("reviewer", "user")
    _, fields = _page(reviewer, "ACME")
    assert _poke("ACME") == "awaiting_review"  # the run waits: a decision is still acted on
    assert _decide(reviewer, fields, "reject", reason="backup figures need checking").status_code == 303
    html, fields = _page(reviewer, "ACME")
    assert 'id="approve"' in html  # the sensor has not acted yet: the rejection can still be undone
    assert _poke("ACME") == "rejected"  # now the run skips the deliveries
    html, fields = _page(reviewer, "ACME")
    assert 'id="approve"' not in html and 'id="reject"' not in html
    assert re.search(r'<textarea id="commentary"[^>]*disabled', html)
    closed = re.search(r'<p class="hint box" id="closed"[^>]*>(.*?)</p>', html, re.S).group(1)
    assert f"Deliveries skipped in run {RUN} because the report was rejected: re-run the week to send it" in closed
    assert "Reject below to stop it being sent" not in html
    before = _records(api["home"], "ACME")
    r = _decide(reviewer, fields, "approve")
    assert r.status_code == 409 and f"Deliveries skipped in run {RUN}" in r.json()["detail"]
    assert _records(api["home"], "ACME") == before
    r = reviewer.post(f"{PREFIX}/commentary/ACME/{WEEK}", follow_redirects=False, data={
        "commentary": "too late", "csrf_token": fields["csrf_token"],
        "shown_commentary_sha256": fields.get("shown_commentary_sha256", "")})
    assert r.status_code == 409 and "re-run" in r.json()["detail"]
    # the rejection's banner is not green like an approval's
    assert '<div class="decided decided-reject"><p class="decision">Rejected by' in html
    css = reviewer.get(f"{PREFIX}/static/review.css").text
    assert re.search(r"\.decided-reject \.decision \{[^}]*var\(--bad\)", css)


def test_after_the_run_ended_an_approval_is_not_taken_and_nothing_claims_it_will_be_sent(api):
    """Approved on the page after the sensor failed (the run ended with BRVO undecided)."""
    from msp_reports import pipeline
    from msp_reports.settings import Settings

    reviewer = api["client"]("reviewer", "user")
    assert _poke("BRVO") == "awaiting_review"
    _, fields = _page(reviewer, "BRVO")
    assert _decide(reviewer, fields, "approve", code="BRVO").status_code == 303
    # the sensor never saw it (it failed); the run's roll-up runs after every task ended
    pipeline.rollup(Settings.load(), [{"customer": "BRVO", "week_of": WEEK, "run": RUN}])
    html, fields = _page(reviewer, "BRVO")
    assert "Reject below to stop it being sent" not in html and 'id="reject"' not in html
    assert f"Run {RUN} ended without sending the report" in html and "re-run the week to send it" in html
    r = _decide(reviewer, fields, "reject", code="BRVO", reason="changed my mind")
    assert r.status_code == 409 and "ended without sending" in r.json()["detail"]
    # a new run for the week waits again: deciding works again
    from msp_reports import run_record
    from msp_reports.store import ReportStore

    store = ReportStore(Settings.load().store_root)
    run_record.note_waiting(store, "BRVO", WEEK_OF, "manual__again", dt.datetime.now(dt.timezone.utc))
    html, _ = _page(reviewer, "BRVO")
    assert 'id="closed"' not in html and 'id="reject"' in html


def test_earlier_weeks_are_not_rendering_flag_chips_once_and_the_cutoff_in_words(api):
    from msp_reports import run_record
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore

    store = ReportStore(Settings.load().store_root)
    doc = json.loads((api["home"] / "store" / "CNDR" / WEEK / "reconciled.json").read_text())
    flag = {"kind": "ticket_trend", "severity": "warning", "message": "P1 tickets grew", "recommendation": "r"}
    doc["flags"] = [flag, {**flag, "message": "P2 tickets grew"}]
    for code in ("CNDR", "DLTA", "ECHO"):  # an earlier week: extracted, never rendered, no run at work on it
        store.write_json(code, EARLIER, "sections/tickets.halo.json", {"status": {"ok": True}})
        store.write_json(code, EARLIER, "reconciled.json", doc)
    # DLTA's run recorded itself and ended; ECHO's run is still going (a manual run for that week)
    now = dt.datetime.now(dt.timezone.utc)
    run_record.note_running(store, "DLTA", EARLIER, "manual__old", now)
    run_record.note_ended(store, "DLTA", EARLIER, "manual__old", "ended", "render failed", now)
    run_record.note_running(store, "ECHO", EARLIER, "manual__now", now)
    reviewer = api["client"]("reviewer", "user")
    html = reviewer.get(f"{PREFIX}/", params={"week": EARLIER.isoformat()}).text
    states = dict(re.findall(r'data-state="([A-Z]+)">([^<]+)<', html))
    assert states["CNDR"] == "not rendered" and states["DLTA"] == "render failed" and states["ECHO"] == "rendering"
    assert states["ACME"] == "not run"  # nothing stored for it that week
    assert list(states.values()).count("rendering") == 1
    row = html[html.index('data-customer="CNDR"'):]
    row = row[:row.index("</tr>")]
    assert row.count("ticket trend") == 1 and "ticket trend ×2" in row
    assert 'title="P1 tickets grew; P2 tickets grew"' in row
    assert "2 days after the send time" in html and "0:00:00" not in html

"""At 09:00 the customers nobody has decided on are named in #weekly-reports, once."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.factories import WEEK_OF
from tests.review.review_helpers import INTERNAL_CHANNEL, environment, sim_env

WEEK = WEEK_OF.isoformat()


@pytest.fixture
def week(sim, tmp_path):
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore, sha256

    with environment(sim_env(sim, tmp_path)):
        settings = Settings.load()
        store = ReportStore(settings.store_root)
        for code in ("ACME", "BRVO", "CNDR", "DLTA"):
            pdf = f"%PDF {code}".encode()
            store.write_bytes(code, WEEK_OF, "report.pdf", pdf)
            store.write_json(code, WEEK_OF, "render.json", {"pdf_sha256": sha256(pdf), "snapshot_sha256": "s",
                                                             "commentary_sha256": sha256(b"")})
        yield settings, store


def _posts(sim) -> list[dict]:
    return [p for p in sim.state.extra.get("teams_posts", {}).get(INTERNAL_CHANNEL, [])
            if "Not approved at" in json.dumps(p)]


def test_unapproved_customers_are_listed_once_and_decided_ones_are_not(sim, week):
    from msp_reports import approval, pipeline

    settings, store = week
    approval.record_decision(store, "BRVO", WEEK_OF, "approve", by="priya", via="review-page",
                             now=dt.datetime.now(dt.timezone.utc))
    approval.record_decision(store, "CNDR", WEEK_OF, "reject", by="priya", via="review-page", reason="check incident",
                             now=dt.datetime.now(dt.timezone.utc))
    variables = {approval.variable_key("DLTA", WEEK_OF): "approve"}  # decided, not yet seen by its sensor
    items = [{"customer": c, "week_of": WEEK} for c in ("ACME", "BRVO", "CNDR", "DLTA", "ECHO")]
    before = len(_posts(sim))
    result = pipeline.post_missed_approvals(settings, items, variables.get)
    assert result == {"unapproved": ["ACME", "ECHO"], "posted": "sent"}
    [post] = _posts(sim)[before:]
    facts = {f["title"]: f["value"] for block in post["card"]["body"] if block["type"] == "FactSet"
             for f in block["facts"]}
    assert set(facts) == {"ACME", "ECHO"}
    assert facts["ACME"].startswith("awaiting review") and facts["ECHO"].startswith("rendering")
    assert "Priya Shah" in facts["ACME"]  # the account engineer to chase
    # a retry of the task posts nothing more
    assert pipeline.post_missed_approvals(settings, items, variables.get)["posted"] == "sent"
    assert len(_posts(sim)) == before + 1


def test_nothing_is_posted_when_everyone_has_decided(sim, week):
    from msp_reports import pipeline

    settings, _ = week
    before = len(_posts(sim))
    result = pipeline.post_missed_approvals(settings, [{"customer": "ACME", "week_of": WEEK}],
                                            lambda key: "approve")
    assert result == {"unapproved": [], "posted": "nothing to post"} and len(_posts(sim)) == before

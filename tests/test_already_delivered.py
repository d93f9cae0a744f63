"""A week the ledger has as sent on every channel finishes at once as "already delivered".

The README's path (the demo, then ``scripts/airflow.sh``, then a manual run) used to land on a
delivered week: the re-run extracted again, which voided the approval of the version that went
out, and the sensor then held the run's only slot until the cut-off. The ledger decides: with
every channel ``sent`` nothing is extracted, reconciled or rendered, the decision stands and
the sensor is done; with one channel not sent, the week runs as before.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import WEEK_OF

from msp_reports import approval, pipeline
from msp_reports import store as layout
from msp_reports.delivery.ledger import CHANNELS
from msp_reports.store import ReportStore

CODE = "ACME"


def _rendered_and_approved(settings) -> tuple[dict, ReportStore]:
    """ACME's week extracted, reconciled, rendered and approved, as the demo leaves it."""
    item = {"customer": CODE, "week_of": WEEK_OF.isoformat()}
    for domain in pipeline.DOMAINS:
        pipeline.extract(settings, item, domain)
    pipeline.build_snapshot(settings, item)
    pipeline.render(settings, item)
    store = ReportStore(settings.store_root)
    approval.record_decision(store, CODE, WEEK_OF, "approve", by="demo (account engineer)", via="review-page",
                             now=dt.datetime.now(dt.timezone.utc))
    return item, store


def _mark_sent(store: ReportStore, channels=CHANNELS) -> None:
    pdf = approval.current_render(store, CODE, WEEK_OF)["pdf_sha256"]
    for ch in channels:
        store.week(CODE, WEEK_OF).write_receipt(ch, {"channel": ch, "customer": CODE, "week_of": WEEK_OF.isoformat(),
                                                     "state": "sent", "pdf_sha256": pdf, "remote_id": f"<{ch}-1>",
                                                     "history": []})


def _files(store: ReportStore) -> dict[str, bytes | None]:
    return {name: store.read_bytes(CODE, WEEK_OF, name)
            for name in (layout.SNAPSHOT, layout.RECONCILED, layout.REPORT_PDF, layout.RENDER)}


def test_delivered_week_rerun_does_nothing_and_keeps_the_approval(sim_settings, monkeypatch):
    settings = sim_settings
    item, store = _rendered_and_approved(settings)
    _mark_sent(store)
    before = _files(store)

    def no_source(*_a, **_k):
        raise AssertionError("a delivered week must not be extracted again")

    monkeypatch.setattr(pipeline, "_extract_one", no_source)
    for domain in pipeline.DOMAINS:
        assert pipeline.extract(settings, item, domain)["already_delivered"] is True
    assert pipeline.build_snapshot(settings, item)["already_delivered"] is True
    assert pipeline.render(settings, item)["already_delivered"] is True
    assert _files(store) == before  # nothing re-extracted, reconciled or rendered

    # the sensor is done at once, and the approval of the version that went out still stands
    state, record, new_value = pipeline.check_approval(settings, item, None)
    assert state == "delivered" and new_value is None
    assert record is not None and record["decision"] == "approve"
    assert approval.in_force(store, CODE, WEEK_OF)["decision"] == "approve"


def test_partly_delivered_week_runs_as_before(sim_settings, monkeypatch):
    """One channel not sent: the ledger does not call it delivered, so the week is not skipped."""
    settings = sim_settings
    item, store = _rendered_and_approved(settings)
    _mark_sent(store, channels=("email", "teams"))
    assert pipeline.already_delivered(store, CODE, WEEK_OF) is None
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "_extract_one", lambda ctx, domain, src: calls.append(domain))
    assert "already_delivered" not in pipeline.extract(settings, item, "uptime")
    assert calls == ["uptime"] * len(calls) and calls
    state, _record, _ = pipeline.check_approval(settings, item, None)
    assert state != "delivered"


@pytest.mark.parametrize("state", ["attempted", "failed", "partial"])
def test_channel_not_sent_is_not_delivered(tmp_path, state):
    store = ReportStore(str(tmp_path))
    for ch in CHANNELS:
        store.week(CODE, WEEK_OF).write_receipt(ch, {"state": "sent" if ch != "archive" else state})
    assert pipeline.already_delivered(store, CODE, WEEK_OF) is None

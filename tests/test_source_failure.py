"""A source that fails: its section is stored as unavailable, the report says so and shows no
number for it, the other sections still come from their systems, the roll-up names it."""

from __future__ import annotations

import io

import pytest
import requests
from pypdf import PdfReader

from tests.factories import WEEK_OF

from msp_reports import pipeline
from msp_reports.exceptions import SourceUnavailable


@pytest.fixture
def settings(sim_settings):
    return sim_settings


def test_failed_backup_source_renders_unavailable_never_zero(sim, world, settings):
    from msp_reports.sources import SYSTEMS

    item = {"customer": "ECHO", "week_of": WEEK_OF.isoformat()}
    system = pipeline.load_registry(settings.registry_path).get("ECHO").sources["backups"][0].system
    requests.post(f"{sim.base_url}/_sim/faults/{system}", json={"mode": "down"}, timeout=5).raise_for_status()
    for domain in pipeline.DOMAINS:
        if domain == "backups":
            with pytest.raises(SourceUnavailable, match=f"{system}: HTTP 503"):
                pipeline.extract(settings, item, domain)
        else:
            pipeline.extract(settings, item, domain)
    requests.delete(f"{sim.base_url}/_sim/faults", timeout=5)
    summary = pipeline.build_snapshot(settings, item)
    assert summary["unavailable"] == ["backups"]
    pipeline.render(settings, item)

    from msp_reports.store import ReportStore

    store = ReportStore(settings.store_root)
    pdf = store.read_bytes("ECHO", WEEK_OF, "report.pdf")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    backups = text.split("Backups", 1)[1].split("Security", 1)[0]
    notice = backups.split("\n", 2)[2]  # after the "Source: <system> · fetched <time>" line
    assert notice.startswith(f"Data unavailable: {SYSTEMS[system].label}")
    assert not any(ch.isdigit() for ch in notice)  # no figure at all, let alone a zero
    assert "127.0.0.1" not in text and "HTTP 503" not in text  # technical detail stays internal
    for agent in world.customers["ECHO"].agents:
        assert agent.name not in text  # no backup rows were invented
    # the other sections still carry their systems' numbers
    tickets = store.read_json("ECHO", WEEK_OF, "sections/tickets.connectwise.json")["data"]
    assert f"{tickets['opened']}" in text.split("Tickets", 1)[1]

    status = pipeline.customer_status(store, pipeline.load_registry(settings.registry_path).get("ECHO"), WEEK_OF)
    assert status["unavailable"] == ["backups"]
    assert "source_unavailable" in {f["kind"] for f in status["flags"]}
    assert "HTTP 503" in status["errors"]["backups"]  # ... and reaches the internal roll-up


def test_unknown_extract_marks_section_missing(settings):
    """If an extract task never ran (killed, upstream failure), reconcile says so rather than guessing."""
    item = {"customer": "GOLF", "week_of": WEEK_OF.isoformat()}
    for domain in ("uptime", "tickets", "security", "sites"):
        pipeline.extract(settings, item, domain)
    assert pipeline.build_snapshot(settings, item)["unavailable"] == ["backups"]
    from msp_reports.store import ReportStore

    snap = ReportStore(settings.store_root).read_json("GOLF", WEEK_OF, "snapshot.json")
    assert snap["backups"]["status"]["error"] == "the extract task did not run" and snap["backups"]["data"] is None

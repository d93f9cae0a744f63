"""Issue 17 item 8: a huge week renders a bounded report; the long tables end in a summary line
that accounts for every row left out, by type, and the stored snapshot keeps the full list."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
from pypdf import PdfReader

from msp_reports.reconcile import reconcile
from msp_reports.registry import Thresholds
from msp_reports.render import TABLE_ROW_LIMIT, render_report
from msp_reports.snapshot import ChangeRecord, Incident, WeeklySnapshot
from msp_reports.store import ReportStore
from msp_reports.week import ReportWeek
from tests.factories import MSP, WEEK_OF, make_customer, make_previous, make_snapshot
from tests.render.reading import flat

CHANGES, INCIDENTS, TICKETS = 10_000, 2_000, 10_000
MAX_PAGES = 16  # the normal report is 5 pages; the capped tables add a few, however long the week


def huge_week() -> WeeklySnapshot:
    """10k tickets and changes, 2,000 incidents (one in six still open)."""
    snap = make_snapshot()
    week = ReportWeek.starting(WEEK_OF, "Europe/London")
    changes = [ChangeRecord(ref=f"CHG-{n:05d}", summary=f"Patch batch {n}",
                            executed_at=week.start + dt.timedelta(seconds=50 * n),
                            status="failed" if n % 5 == 0 else "completed", source="connectwise")
               for n in range(CHANGES)]
    severities = ("high", "medium", "low", "informational")
    incidents = [Incident(ref=f"INC-{n:05d}", title=f"Alert {n}", severity=severities[n % 4],
                          status="open" if n % 6 == 0 else "resolved",
                          created_at=week.start + dt.timedelta(seconds=200 * n), source="defender")
                 for n in range(INCIDENTS)]
    tickets = snap.tickets.data.model_copy(update={"opened": TICKETS, "closed": TICKETS - 120, "changes": changes})
    security = snap.security.data.model_copy(update={"incidents": incidents})
    return snap.model_copy(update={"tickets": snap.tickets.model_copy(update={"data": tickets}),
                                   "security": snap.security.model_copy(update={"data": security})})


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    snap = huge_week()
    store = ReportStore(str(tmp_path_factory.mktemp("store")))
    store.write_json("ACME", WEEK_OF, "snapshot.json", snap.model_dump(mode="json"))
    rec = reconcile(snap, make_previous(), Thresholds())
    rendered = render_report(rec, make_customer(), MSP)
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(rendered.pdf)).pages]
    return store, rec, rendered, pages


def test_a_10k_ticket_week_renders_a_bounded_number_of_pages(huge):
    _, _, _, pages = huge
    assert len(pages) <= MAX_PAGES, len(pages)


def test_every_capped_table_ends_in_a_summary_line_by_type_in_the_pdf(huge):
    _, rec, rendered, pages = huge
    text = flat("\n".join(pages))
    shown_changes = sum(f"CHG-{n:05d}" in text for n in range(CHANGES))
    left = CHANGES - shown_changes
    assert shown_changes == TABLE_ROW_LIMIT
    failed = sum(n % 5 == 0 for n in range(shown_changes, CHANGES))
    assert flat(f"… and {left:,} more changes, by status: {left - failed:,} completed, {failed:,} failed.") in text
    shown_incidents = sum(f"INC-{n:05d}" in text for n in range(INCIDENTS))
    assert shown_incidents == TABLE_ROW_LIMIT
    assert flat(f"… and {INCIDENTS - shown_incidents:,} more incidents, by severity:") in text
    # the open incidents' flags: the Recommendations table and the numbered actions are capped too
    assert len([f for f in rec.flags if f.kind == "open_incident"]) == len(range(0, INCIDENTS, 6))
    assert re.search(flat(r"… and [\d,]+ more findings, by priority: [\d,]+ (Critical|Warning), [\d,]+ (Critical|Warning)\."), text)
    assert re.search(flat(r"… and [\d,]+ more actions, by area: [\d,]+ Security"), text)
    assert "Patch batch 9999" not in rendered.markdown
    assert flat(f"the first {TABLE_ROW_LIMIT} are listed under Recommendations.") in text


def test_the_cut_shows_what_needs_attention_and_keeps_the_totals(huge):
    _, _, rendered, pages = huge
    text = flat("\n".join(pages))
    # the incident list starts with the open high-severity ones; the matrix still counts all 2,000
    assert flat("INC-00000 Alert 0 High Open") in text
    high_open = len(range(0, INCIDENTS, 12))
    assert flat(f"High {high_open} {INCIDENTS // 4 - high_open} {INCIDENTS // 4}") in text
    assert flat(f"Opened {TICKETS:,}") in text


def test_the_stored_snapshot_keeps_the_full_lists(huge):
    store, _, _, _ = huge
    stored = json.loads(store.read_bytes("ACME", WEEK_OF, "snapshot.json"))
    assert len(stored["tickets"]["data"]["changes"]) == CHANGES
    assert len(stored["security"]["data"]["incidents"]) == INCIDENTS

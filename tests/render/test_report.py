"""The whole report: section order, the snapshot's numbers, commentary, metadata, the appendix."""

from __future__ import annotations

import hashlib
import io
import re
from zoneinfo import ZoneInfo

from pypdf import PdfReader

from msp_reports.render import METRIC_DEFINITIONS, render_markdown
from msp_reports.week import ReportWeek
from tests.factories import MSP, TZ, WEEK_OF, make_customer, make_reconciled
from tests.render.reading import flat, pdf_text

HEADINGS = [
    "Executive summary",
    "Engineer's commentary",
    "Actions this week",
    "Trends over the last 8 weeks",
    "Uptime by site and device class",
    "Tickets",
    "Changes executed",
    "Backups",
    "Security",
    "Public sites",
    "Recommendations",
    "How we measure",
]


def test_sections_appear_in_order_with_summary_first(report):
    _, rendered = report
    lines = [line.strip() for line in pdf_text(rendered.pdf).splitlines()]
    positions = [lines.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions)
    assert lines.index("Executive summary") < lines.index("Actions this week")


def test_numbers_from_the_snapshot_appear(report):
    rec, rendered = report
    text = pdf_text(rendered.pdf)
    squashed = flat(text)
    for value in ("99.98%", "96.42%", "99.93%", "99.90%", "71.4%", "68.9%", "99.99%"):
        assert value in text
    assert re.search(r"Opened\s+23\s+19\s+\+4", text)
    assert re.search(r"Closed\s+17\s+21\s+−4", text)
    assert re.search(r"SLA breaches\s+3\s+1\s+\+2", text)
    assert re.search(r"Backlog at week end\s+14\s+8\s+\+6", text)
    for name in ("ACME-FS01", "ACME-SQL01", "CHG-1042", "INC-2231", "INC-2219"):
        assert name in text
    for title in ("Suspicious sign-in from unfamiliar location", "Malware blocked on LAPTOP-17",
                  "Firewall firmware upgrade to 7.2.8"):
        assert flat(title) in squashed
    # last good backup in the customer's timezone, and the source line of each section
    stale = rec.snapshot.backups.data.assets[0].last_good_backup.astimezone(ZoneInfo(TZ))
    assert flat(f"{stale:%a %d %b %Y %H:%M}") in squashed
    assert text.count("Source: ") == 6


def test_commentary_and_metadata(report):
    rec, rendered = report
    text = pdf_text(rendered.pdf)
    assert "The *file server* backups failed" in text  # literal, not emphasis
    assert "We rolled it back on Friday." in text
    reader = PdfReader(io.BytesIO(rendered.pdf))
    assert reader.metadata.title == f"Acme Manufacturing Ltd — weekly report, {ReportWeek.starting(WEEK_OF, TZ).label()}"
    assert reader.metadata.author == "Northwind Managed Services"
    assert str(reader.trailer["/Root"]["/Lang"]) == "en"
    assert reader.trailer["/Root"]["/MarkInfo"]["/Marked"]  # tagged (PDF/UA-1)
    assert rendered.sha256 == hashlib.sha256(rendered.pdf).hexdigest()


def test_commentary_section_is_left_out_when_empty():
    markdown = render_markdown(make_reconciled(), make_customer(), MSP, commentary="  \n")
    assert "Engineer's commentary" not in markdown


def test_no_baseline_says_so_instead_of_deltas():
    markdown = render_markdown(make_reconciled(baseline=False), make_customer(), MSP)
    assert "No previous week on record; week-over-week changes start next week" in markdown
    assert "Last week" not in markdown and "on last week" not in markdown


def test_appendix_defines_every_metric_in_plain_words(report):
    _, rendered = report
    required = ("Uptime %", "SLO met", "Tickets opened / closed", "SLA breach", "Backlog", "Change executed",
                "Last good backup", "RPO met", "Backup not run in 48 h", "Open incident", "Secure score",
                "Site availability")
    assert set(required) <= set(METRIC_DEFINITIONS)
    text = pdf_text(rendered.pdf)
    appendix = flat(text[text.index("How we measure"):])
    for term, definition in METRIC_DEFINITIONS.items():
        assert flat(term) in appendix and flat(definition) in appendix, term
    # the last section, on a page of its own
    last = PdfReader(io.BytesIO(rendered.pdf)).pages[-1].extract_text()
    assert "How we measure" in last and "Recommendations" not in last

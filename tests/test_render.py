"""The renderer: section order, numbers, unavailable sources, hostile text, fetching, metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import threading
from zoneinfo import ZoneInfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from markdown_it import MarkdownIt
from pypdf import PdfReader

from msp_reports import render
from msp_reports.reconcile import Reconciled, reconcile
from msp_reports.registry import Customer, Msp, Thresholds
from msp_reports.render import (
    TEMPLATES_DIR,
    UnsafeResourceError,
    escape_markdown,
    executive_summary,
    html_to_pdf,
    markdown_to_html,
    recommendations,
    render_markdown,
    render_report,
    teams_summary,
)
from msp_reports.snapshot import (
    BackupAsset,
    BackupData,
    ChangeRecord,
    Incident,
    PriorityCount,
    Section,
    SecurityData,
    SiteCheck,
    SiteData,
    SourceStatus,
    TicketData,
    UptimeData,
    UptimeRow,
    WeeklySnapshot,
)
from msp_reports.week import ReportWeek

UTC = dt.timezone.utc
WEEK_OF = dt.date(2026, 11, 16)
TZ = "Europe/London"
HEADINGS = [
    "Executive summary",
    "Engineer's commentary",
    "Actions this week",
    "Uptime by site and device class",
    "Tickets",
    "Changes executed",
    "Backups",
    "Security",
    "Public sites",
    "Recommendations",
]
SYSTEMS = {"uptime": "Zabbix", "tickets": "ConnectWise PSA", "backups": "Datto BCDR",
           "security": "Microsoft Defender", "sites": "Cloudflare health checks"}


# --- factories ------------------------------------------------------------------------------
def make_customer(name: str = "Acme Manufacturing Ltd") -> Customer:
    return Customer.model_validate({
        "code": "ACME", "name": name, "timezone": TZ,
        "cto": {"name": "Sarah Whitfield", "email": "sarah@acme.example"},
        "account_owner": {"name": "Marcus Bell", "email": "marcus@msp.example"},
        "account_engineer": {"name": "Priya Shah", "email": "priya@msp.example"},
        "sources": {
            "uptime": {"system": "zabbix", "conn_id": "z", "ref": {"service_tag": "ACME"}},
            "tickets": {"system": "connectwise", "conn_id": "c", "ref": {"company": "ACME"}},
            "backups": {"system": "datto", "conn_id": "d", "ref": {"client_company": "Acme"}},
            "security": {"system": "defender", "conn_id": "m", "ref": {"tenant_id": "t-1"}},
            "sites": {"system": "cloudflare", "conn_id": "f", "ref": {"zone_id": "z-1"}},
        },
        "delivery": {"teams": {"conn_id": "teams_acme"}, "archive": {"folder": "Acme/Weekly"}},
    })


MSP = Msp(name="Northwind Managed Services", from_email="reports@northwind.example")


def make_snapshot(week_of: dt.date = WEEK_OF, *, failed: dict[str, str] | None = None, healthy: bool = False,
                  text: dict[str, str] | None = None, extra_assets: int = 0) -> WeeklySnapshot:
    """A week of one customer. ``healthy`` gives a clean week; ``text`` overrides source strings."""
    failed, text = failed or {}, text or {}
    week = ReportWeek.starting(week_of, TZ)
    fetched = week.end + dt.timedelta(hours=6, minutes=5)

    def section(domain: str, data):
        if domain in failed:
            return Section(status=SourceStatus(domain=domain, system=SYSTEMS[domain], ok=False,
                                               error=failed[domain], fetched_at=fetched))
        status = SourceStatus(domain=domain, system=SYSTEMS[domain], ok=True, fetched_at=fetched,
                              as_of=week.end - dt.timedelta(minutes=5))
        return Section(status=status, data=data)

    servers = 99.97 if healthy else 96.42
    uptime = UptimeData(rows=[
        UptimeRow(site=text.get("site", "Leeds HQ"), device_class="Network", uptime_pct=99.982,
                  downtime_minutes=1.8, slo_pct=99.9, source="zabbix"),
        UptimeRow(site="Leeds HQ", device_class="Servers", uptime_pct=servers,
                  downtime_minutes=round((100 - servers) * 100.8, 1), slo_pct=99.9, source="zabbix"),
        UptimeRow(site="Manchester", device_class="Network", uptime_pct=99.931, downtime_minutes=7.0,
                  slo_pct=99.9, source="zabbix"),
    ])
    opened, closed, breaches, backlog = (12, 15, 0, 6) if healthy else (23, 17, 3, 14)
    tickets = TicketData(
        opened=opened, closed=closed, sla_breaches=breaches, backlog_end=backlog,
        by_priority=[PriorityCount(priority="P1 Critical", opened=2, closed=2, sla_breaches=min(breaches, 1)),
                     PriorityCount(priority="P3 Normal", opened=opened - 2, closed=closed - 2,
                                   sla_breaches=max(breaches - 1, 0))],
        changes=[ChangeRecord(ref="CHG-1042", summary=text.get("change", "Firewall firmware upgrade to 7.2.8"),
                              executed_at=week.start + dt.timedelta(days=2, hours=20), status="completed",
                              source="connectwise")],
    )
    stale = week.end - dt.timedelta(hours=20 if healthy else 93)
    assets = [
        BackupAsset(name=text.get("asset", "ACME-FS01"), appliance="S3-2000", last_good_backup=stale,
                    last_status="success" if healthy else "failed", backups_in_week=28 if healthy else 12,
                    failures_in_week=0 if healthy else 9, rpo_hours=24, source="datto"),
        BackupAsset(name="ACME-SQL01", appliance="S3-2000", last_good_backup=week.end - dt.timedelta(hours=2),
                    last_status="success", backups_in_week=168, failures_in_week=0, rpo_hours=4, source="datto"),
    ] + [
        BackupAsset(name=f"ACME-WS{n:03d}", appliance="Cloud", last_good_backup=week.end - dt.timedelta(hours=3),
                    last_status="success", backups_in_week=7, failures_in_week=0, rpo_hours=24, source="datto")
        for n in range(extra_assets)
    ]
    incidents = [
        Incident(ref="INC-2219", title="Malware blocked on LAPTOP-17", severity="medium", status="resolved",
                 created_at=week.start + dt.timedelta(days=1, hours=10), source="defender"),
    ]
    if not healthy:
        title = text.get("incident", "Suspicious sign-in from unfamiliar location")
        incidents.append(Incident(ref="INC-2231", title=title,
                                  severity="high", status="open",
                                  created_at=week.start + dt.timedelta(days=5, hours=3), source="defender"))
    security = SecurityData(incidents=incidents, secure_score_pct=71.4, secure_score_prev_pct=68.9)
    sites = SiteData(checks=[
        SiteCheck(name=text.get("check", "Customer portal"), address="https://portal.acme.example",
                  availability_pct=99.987, downtime_minutes=1.3, status_now="up", source="cloudflare"),
        SiteCheck(name="Public website", address="https://www.acme.example", availability_pct=100.0,
                  downtime_minutes=0, status_now="up", source="cloudflare"),
    ])
    return WeeklySnapshot(
        customer="ACME", customer_name="Acme Manufacturing Ltd", week_of=week_of, timezone=TZ,
        week_start=week.start, week_end=week.end,
        uptime=section("uptime", uptime), tickets=section("tickets", tickets),
        backups=section("backups", BackupData(assets=assets)),
        security=section("security", security), sites=section("sites", sites),
    )


def make_previous() -> WeeklySnapshot:
    prev = make_snapshot(WEEK_OF - dt.timedelta(days=7), healthy=True)
    tickets = prev.tickets.data.model_copy(update={"opened": 19, "closed": 21, "sla_breaches": 1, "backlog_end": 8})
    return prev.model_copy(update={"tickets": prev.tickets.model_copy(update={"data": tickets})})


def make_reconciled(*, baseline: bool = True, **kwargs) -> Reconciled:
    return reconcile(make_snapshot(**kwargs), make_previous() if baseline else None, Thresholds())


# page headers and footers, list markers (extracted out of flow) and the dated source line
FURNITURE = re.compile(r"— weekly report, |^Confidential: |^\d+\.\s*$|^Source: ")


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def between(text: str, start: str, end: str) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == start)
    last = next((i for i, line in enumerate(lines) if i > first and line.strip() == end), len(lines))
    return "\n".join(lines[first + 1:last])


# --- a server that records every request: rendering must never reach it ----------------------
@pytest.fixture(scope="module")
def tripwire():
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b"body { color: red }")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def report():
    rec = make_reconciled()
    commentary = "The *file server* backups failed after a NAS firmware update.\n\nWe rolled it back on Friday."
    return rec, render_report(rec, make_customer(), MSP, commentary=commentary)


# --- the report ------------------------------------------------------------------------------
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


def test_failed_source_is_unavailable_never_zero():
    failure = "service unavailable after retries"
    rec = make_reconciled(failed={"tickets": failure, "backups": "authentication rejected"})
    rendered = render_report(rec, make_customer(), MSP)
    text = pdf_text(rendered.pdf)
    tickets = between(text, "Tickets", "Changes executed")
    assert "Data unavailable: ConnectWise PSA did not provide this week" in tickets
    assert "service unavailable after retries" not in tickets  # the technical error stays internal
    backups = between(text, "Backups", "Security")
    assert "Data unavailable: Datto BCDR did not provide this week" in backups
    for body in (tickets, backups, between(text, "Changes executed", "Backups")):
        figures = "\n".join(line for line in body.splitlines() if not FURNITURE.search(line))
        assert not re.search(r"\d", figures), figures
        assert "Opened" not in figures and "ACME-FS01" not in figures
    summary = executive_summary(rec)
    assert any("tickets (ConnectWise PSA) and backups (Datto BCDR) were unavailable" in s for s in summary)
    assert not any("service desk" in s or "backup recovery point" in s for s in summary)
    card = teams_summary(rec, make_customer(), MSP)
    facts = {f["title"]: f["value"] for block in card["body"] if block["type"] == "FactSet" for f in block["facts"]}
    assert facts["Tickets"].startswith("Unavailable") and "SLA breaches" not in facts


# --- hostile source text -----------------------------------------------------------------------
def hostile_strings(base: str) -> dict[str, str]:
    return {
        "incident": "<script>alert(1)</script> evil\u202etxt.exe",
        "change": f'<img src="{base}/x.png"> and <link rel="attachment" href="file:///etc/passwd">',
        "asset": f"![x]({base}/y.png)",
        "site": "[click](file:///etc/passwd)",
        "check": f"<{base}/autolink> **bold** | pipe # heading",
    }


def test_hostile_text_is_inert(tripwire):
    base, hits = tripwire
    texts = hostile_strings(base)
    rec = make_reconciled(text=texts)
    customer = make_customer(name=f"Acme <b>Ltd</b> [x]({base}/c)")
    rendered = render_report(rec, customer, MSP, commentary=f"See ![pic]({base}/commentary.png)\n\n<iframe>")

    html = rendered.html.replace("\u200b", "").lower()  # zero-width spaces let long tokens wrap
    for tag in ("<script", "<img", "<a ", "<a>", "<link", "<iframe", "<b>", "<strong>bold"):
        assert tag not in html, tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\u202e" not in rendered.markdown + rendered.html

    text = pdf_text(rendered.pdf)
    squashed = flat(text)
    assert "\u202e" not in text
    assert flat("<script>alert(1)</script> eviltxt.exe") in squashed
    for key in ("change", "asset", "site"):
        assert flat(texts[key]) in squashed, key
    assert flat(f"<{base}/autolink> **bold** | pipe # heading") in squashed
    assert flat(f"See ![pic]({base}/commentary.png)") in squashed
    assert hits == []

    reader = PdfReader(io.BytesIO(rendered.pdf))
    assert reader.attachments == {}
    assert "/EmbeddedFiles" not in str(reader.trailer["/Root"].get("/Names", {}))
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            assert annot.get_object()["/Subtype"] not in ("/FileAttachment", "/Link")


@pytest.mark.parametrize("value", [
    "<script>alert(1)</script>", "![x](http://127.0.0.1/y.png)", "[click](file:///etc/passwd)",
    "<http://127.0.0.1/a>", "**bold** _it_ `code` ~~s~~", "a | b", "# heading", "- item", "1. item",
    "2) item", "> quote", "---", "===", "&amp; &#60;", "\\*not\\*", "line\nbreak\r\n# h", "x" * 400,
    "tab\there\x00nul\x1b[31m", "[a]: http://127.0.0.1/ref", "    indented code",
])
def test_escape_markdown_renders_literally(value):
    html = MarkdownIt("commonmark").enable("table").render(f"| c |\n|---|\n| {escape_markdown(value)} |\n\n"
                                                          f"- {escape_markdown(value)}\n\n{escape_markdown(value)}\n")
    expected = render.clean_text(value)
    escaped = expected.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert html.count(f"<td>{escaped}</td>") == 1
    assert html.count(f"<li>{escaped}</li>") == 1
    assert html.count(f"<p>{escaped}</p>") == 1
    assert len(expected) <= render.TEXT_LIMIT


def test_markdown_to_html_loads_and_links_nothing_by_itself():
    html = markdown_to_html("![x](https://127.0.0.1/y.png) <https://127.0.0.1/a> <b>b</b> https://127.0.0.1/c "
                            "[f](file:///etc/passwd) [j](javascript:alert(1))", "T", author="A <b>")
    assert "<img" not in html and "<a " not in html and "<b>" not in html
    assert '<meta name="author" content="A &lt;b&gt;">' in html and "<title>T</title>" in html
    assert '<html lang="en">' in html and "<link" not in html and "@page" in html
    with pytest.raises(ValueError):
        markdown_to_html("x", "T", lang='en" onload="x')


# --- fetching ----------------------------------------------------------------------------------
def _page(head: str = "", body: str = "<p>x</p>") -> str:
    return f"<!DOCTYPE html><html lang=en><head><title>t</title>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize("html", [
    _page(body='<img src="file:///etc/hostname">'),
    _page(head='<link rel="stylesheet" href="../../pyproject.toml">'),
    _page(head='<style>@import url("TRIPWIRE/imported.css");</style>'),
    _page(body='<img src="TRIPWIRE/pixel.png">'),
    _page(body='<p style="background: url(TRIPWIRE/bg.png)">x</p>'),
])
def test_html_to_pdf_refuses_anything_outside_the_templates(html, tripwire):
    base, hits = tripwire
    with pytest.raises(UnsafeResourceError):
        html_to_pdf(html.replace("TRIPWIRE", base))
    assert hits == []


def test_fetcher_serves_templates_and_data_only():
    fetcher = render.templates_fetcher()
    assert b"@page" in fetcher.fetch((TEMPLATES_DIR / "report.css").resolve().as_uri()).read()
    assert fetcher.fetch("data:text/plain,hello").read() == b"hello"
    for url in ("file:///etc/passwd", (TEMPLATES_DIR / ".." / ".." / "pyproject.toml").as_uri(),
                "http://127.0.0.1:9/", "https://example.com/", "ftp://example.com/x",
                "file://otherhost" + str(TEMPLATES_DIR.resolve() / "report.css")):
        with pytest.raises(UnsafeResourceError):
            fetcher.fetch(url)


def test_attachments_are_never_embedded():
    html = _page(head='<link rel="attachment" href="report.css" title="x">',
                 body='<p><a rel="attachment" href="report.css">css</a></p>'
                      '<p><a rel="attachment" href="file:///etc/passwd">passwd</a></p>')
    reader = PdfReader(io.BytesIO(html_to_pdf(html)))
    assert reader.attachments == {}
    assert all(a.get_object()["/Subtype"] != "/FileAttachment"
               for page in reader.pages for a in page.get("/Annots") or [])


# --- the words -----------------------------------------------------------------------------------
def test_executive_summary_is_deterministic_and_worst_first():
    rec = make_reconciled()
    summary = executive_summary(rec)
    shuffled = rec.model_copy(update={"flags": list(reversed(rec.flags))})
    assert executive_summary(shuffled) == summary == executive_summary(make_reconciled())
    assert 3 <= len(summary) <= 6
    worst = next(f for f in rec.flags if f.kind == "sla_drop")
    assert summary[0] == worst.message
    assert recommendations(rec)[0] == worst.recommendation
    assert summary[-1] == f"Our first action: {worst.recommendation}"


def test_healthy_week_says_so_with_numbers():
    rec = make_reconciled(healthy=True, baseline=False)
    assert rec.flags == []
    summary = executive_summary(rec)
    assert 3 <= len(summary) <= 6
    assert summary[0].startswith("A healthy week: uptime averaged 99.96%")
    assert "12 tickets opened and 15 closed, 0 SLA breaches, 6 open at week end" in summary[0]
    assert recommendations(rec) == [render.STANDING_RECOMMENDATION]


def test_recommendations_are_deduplicated():
    rec = make_reconciled(extra_assets=0)
    doubled = rec.model_copy(update={"flags": rec.flags + rec.flags})
    assert recommendations(doubled) == recommendations(rec)
    assert len(set(recommendations(rec))) == len(recommendations(rec))


def test_teams_card(tripwire):
    base, _ = tripwire
    rec = make_reconciled(text=hostile_strings(base))
    card = teams_summary(rec, make_customer(), MSP)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [block["text"] for block in card["body"] if block["type"] == "TextBlock"]
    assert texts[0].startswith("Acme Manufacturing Ltd — weekly report")
    summary = executive_summary(rec)
    assert texts[2:5] == [escape_markdown(s) for s in (summary[0], summary[-2], summary[-1])]
    facts = {f["title"]: f["value"] for block in card["body"] if block["type"] == "FactSet" for f in block["facts"]}
    assert facts["Tickets opened / closed"] == "23 / 17" and facts["Backlog at week end"] == "14"
    every = " ".join(texts)
    assert "<script>" not in every and "](" not in every.replace("\\](", "")
    assert "\\<script\\>" in every and "\u202e" not in every

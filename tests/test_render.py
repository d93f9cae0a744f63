"""The renderer: section order, numbers, unavailable sources, hostile text, fetching, metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import threading
import xml.etree.ElementTree as ET
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


def only_brand_images(html: str) -> bool:
    """The page's only images are the branding logos, loaded from the templates folder."""
    sources = re.findall(r"<img\b[^>]*>", html, flags=re.I)
    return bool(sources) and all(re.fullmatch(r'<img src="brand/[a-z0-9/_-]+\.svg" alt="[^"<>]*">', tag, flags=re.I)
                                 for tag in sources)


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
    for tag in ("<script", "<a ", "<a>", "<link", "<iframe", "<b>", "<strong>bold"):
        assert tag not in html, tag
    assert only_brand_images(html)
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


def test_source_text_cannot_forge_the_chart_placeholder():
    fence = "```msp-block\ntrends\n```\n\n~~~msp-block\ntrends\n~~~"
    rec = make_reconciled(text={"change": fence, "incident": fence})
    markdown = render_markdown(rec, make_customer(), MSP, commentary=fence)
    html = markdown_to_html(markdown, "T", blocks={"trends": render.trends_html(rec, [])})
    assert html.count("<svg") == 3 and html.count('class="trends"') == 1
    assert 'class="language-msp-block"' not in html and "```msp-block" in html


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
    assert only_brand_images(html) and "<a " not in html and "<b>" not in html
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


# --- trends --------------------------------------------------------------------------------------
HISTORY_BACKLOG = (31, 32, 33, 34, 35, 36, 37)  # weeks 7..1 before WEEK_OF; distinct from every other figure


def make_history(*, missing: tuple[int, ...] = (),
                 failed: dict[int, dict[str, str]] | None = None) -> list[WeeklySnapshot]:
    """The seven weeks before WEEK_OF, oldest first; ``missing`` / ``failed`` count weeks back (1 = last week)."""
    failed = failed or {}
    weeks = []
    for back, backlog in zip(range(7, 0, -1), HISTORY_BACKLOG):
        if back in missing:
            continue
        snap = make_snapshot(WEEK_OF - dt.timedelta(days=7 * back), healthy=True, failed=failed.get(back))
        if snap.tickets.data is not None:
            data = snap.tickets.data.model_copy(update={"backlog_end": backlog})
            snap = snap.model_copy(update={"tickets": snap.tickets.model_copy(update={"data": data})})
        weeks.append(snap)
    return weeks


def page_with(pdf: bytes, heading: str) -> str:
    return next(text for page in PdfReader(io.BytesIO(pdf)).pages if heading in (text := page.extract_text()))


def svg_charts(html: str) -> dict[str, ET.Element]:
    """The inline SVG charts of a rendered page, by title."""
    ns = {"svg": "http://www.w3.org/2000/svg"}
    charts = {}
    for markup in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
        root = ET.fromstring(markup)
        charts[root.find("svg:title", ns).text] = root
    return charts


def svg_items(chart: ET.Element, tag: str, cls: str | None = None) -> list[ET.Element]:
    found = chart.findall(f"{{http://www.w3.org/2000/svg}}{tag}")
    return [e for e in found if cls is None or e.get("class") == cls]


def test_trend_charts_are_inline_svg_whose_text_the_pdf_keeps():
    rec = make_reconciled()
    rendered = render_report(rec, make_customer(), MSP, history=make_history())
    charts = svg_charts(rendered.html)
    assert list(charts) == ["Uptime, average of all rows", "Ticket backlog at week end", "Secure score"]
    backlog = charts["Ticket backlog at week end"]
    assert len(svg_items(backlog, "rect", "bar")) == 8 and not svg_items(backlog, "text", "gap")
    assert len(svg_items(charts["Uptime, average of all rows"], "circle", "point")) == 8

    lines = {line.strip() for line in page_with(rendered.pdf, "Trends over the last 8 weeks").splitlines()}
    # axis and bar labels exist only as SVG <text>: WeasyPrint drew them as real text (pypdf
    # extracts them after the page's tagged flow, hence lines of the page, not of the section)
    for label in ("5 Oct", "19 Oct", "2 Nov", "16 Nov", "98%", "100%", "0", "40", *map(str, HISTORY_BACKLOG)):
        assert label in lines, label
    trends = between(pdf_text(rendered.pdf), "Trends over the last 8 weeks", "Uptime by site and device class")
    for title in charts:
        assert title in trends
    assert "This week: 14" in trends and "This week: 71.4%" in trends and "This week: 98.78%" in trends
    assert "Range over 8 weeks: 14–37" in trends and "Same in all 8 weeks on record" in trends


def test_trend_weeks_without_data_are_gaps_never_zero():
    # three weeks back is not on record; last week the PSA and Defender failed; two weeks back Zabbix did
    history = make_history(missing=(3,), failed={1: {"tickets": "down", "security": "down"}, 2: {"uptime": "down"}})
    rec = make_reconciled()
    series = {t.metric.key: t.values for t in render.trends(rec, history)}
    assert series["backlog"] == [31, 32, 33, 34, None, 36, None, 14]
    assert series["uptime"][4:6] == [None, None] and None not in series["uptime"][:4] + series["uptime"][6:]
    assert series["secure_score"][4] is None and series["secure_score"][6] is None

    charts = svg_charts(render.trends_html(rec, history))
    backlog = charts["Ticket backlog at week end"]
    bars = svg_items(backlog, "rect", "bar")
    assert len(bars) == 6 and all(float(b.get("height")) > 0 for b in bars)
    assert len(svg_items(backlog, "text", "gap")) == 2
    bar_labels = {round(float(t.get("x"))): t.text for t in svg_items(backlog, "text")
                  if t.get("class") is None and float(t.get("y")) < render._PLOT_BOTTOM
                  and t.get("text-anchor") == "middle"}
    assert sorted(bar_labels.values(), key=int) == ["14", "31", "32", "33", "34", "36"]  # no bar labelled 0
    uptime = charts["Uptime, average of all rows"]
    assert len(svg_items(uptime, "circle", "point")) == 6
    # the line breaks at each gap instead of running through a zero
    assert len(svg_items(uptime, "polyline", "line")) == 2
    lows = [float(p.get("cy")) for p in svg_items(uptime, "circle", "point")]
    assert max(lows) < render._PLOT_BOTTOM

    rendered = render_report(rec, make_customer(), MSP, history=history)
    lines = [line.strip() for line in page_with(rendered.pdf, "Trends over the last 8 weeks").splitlines()]
    assert lines.count("n/a") == 6


def test_trends_without_history_say_so():
    html = render.trends_html(make_reconciled(baseline=False), [])
    assert "Earlier weeks are not on record yet" in html
    backlog = svg_charts(html)["Ticket backlog at week end"]
    assert len(svg_items(backlog, "rect", "bar")) == 1 and len(svg_items(backlog, "text", "gap")) == 7


# --- freshness and partial sections ---------------------------------------------------------------
def with_as_of(snap: WeeklySnapshot, domain: str, hours_before_end: float) -> WeeklySnapshot:
    section = getattr(snap, domain)
    status = section.status.model_copy(update={"as_of": snap.week_end - dt.timedelta(hours=hours_before_end)})
    return snap.model_copy(update={domain: section.model_copy(update={"status": status})})


def test_stale_data_gets_a_banner_and_fresh_data_none():
    snap = with_as_of(with_as_of(make_snapshot(), "backups", 30), "uptime", 7)
    rec = reconcile(snap, make_previous(), Thresholds())
    text = pdf_text(render_report(rec, make_customer(), MSP).pdf)
    backups = between(text, "Backups", "Security")
    as_of = (snap.week_end - dt.timedelta(hours=30)).astimezone(ZoneInfo(TZ))
    assert flat(f"Stale data: Datto BCDR last reported data at {as_of:%a %d %b %Y %H:%M}, 30 hours before "
                "the end of the week; we expect backups data within 26 hours.") in flat(backups)
    assert "ACME-SQL01" in backups  # the figures are still shown, under the banner
    assert "Stale data: Zabbix" in between(text, "Uptime by site and device class", "Tickets")
    assert text.count("Stale data:") == 2

    # a threshold per domain can be raised; fresh sections carry no banner
    relaxed = render_markdown(rec, make_customer(), MSP, freshness_hours={"backups": 48, "uptime": 8})
    assert "Stale data:" not in relaxed
    assert "Stale data:" not in render_markdown(make_reconciled(), make_customer(), MSP)
    tight = render_markdown(make_reconciled(), make_customer(), MSP, freshness_hours={"sites": 0.01})
    assert tight.count("Stale data:") == 1 and "**Stale data: Cloudflare health checks**" in tight

    card = teams_summary(rec, make_customer(), MSP)
    notes = [b["text"] for b in card["body"] if b["type"] == "TextBlock" and b.get("color") == "Warning"
             and "older than" in b["text"]]
    assert len(notes) == 2 and any("Backups: Datto BCDR data as of" in n for n in notes)
    with pytest.raises(ValueError, match="unknown domain"):
        render_markdown(rec, make_customer(), MSP, freshness_hours={"backup": 48})
    with pytest.raises(ValueError, match="positive number"):
        render_markdown(rec, make_customer(), MSP, freshness_hours={"backups": -1})


def test_every_section_names_its_source_and_as_of_time(report):
    rec, rendered = report
    text = pdf_text(rendered.pdf)
    as_of = rec.snapshot.uptime.status.as_of.astimezone(ZoneInfo(TZ))
    for heading, end, system in (("Uptime by site and device class", "Tickets", "Zabbix"),
                                 ("Tickets", "Changes executed", "ConnectWise PSA"),
                                 ("Changes executed", "Backups", "ConnectWise PSA"),
                                 ("Backups", "Security", "Datto BCDR"),
                                 ("Security", "Public sites", "Microsoft Defender"),
                                 ("Public sites", "Recommendations", "Cloudflare health checks")):
        assert flat(f"Source: {system} · fetched") in flat(between(text, heading, end)), heading
        assert flat(f"data as of {as_of:%a %d %b %Y %H:%M}") in flat(between(text, heading, end)), heading


def partial_section(status: SourceStatus, data, parts: list[SourceStatus]):
    """A section served by two systems; works before and after ``Section.parts`` lands in snapshot.py."""
    if "parts" in Section.model_fields:
        return Section[type(data)](status=status, data=data, parts=parts)

    class SectionWithParts(Section[type(data)]):
        parts: list[SourceStatus] = []

    return SectionWithParts(status=status, data=data, parts=parts)


def test_partial_section_shows_the_answering_system_and_names_the_failed_one():
    snap = make_snapshot()
    fetched = snap.uptime.status.fetched_at
    parts = [SourceStatus(domain="uptime", system="Zabbix", ok=True, fetched_at=fetched,
                          as_of=snap.week_end - dt.timedelta(minutes=5)),
             SourceStatus(domain="uptime", system="LibreNMS", ok=False, error="timeout", fetched_at=fetched)]
    aggregate = SourceStatus(domain="uptime", system="Zabbix + LibreNMS", ok=False, error="LibreNMS: timeout",
                             fetched_at=fetched, as_of=parts[0].as_of)
    rows = [r.model_copy(update={"source": "Zabbix"}) for r in snap.uptime.data.rows]
    section = partial_section(aggregate, UptimeData(rows=rows), parts)
    snap = snap.model_copy(update={"uptime": section})
    assert render.section_state(section) == "partial"
    rec = reconcile(snap, make_previous(), Thresholds())

    text = pdf_text(render_report(rec, make_customer(), MSP).pdf)
    uptime = between(text, "Uptime by site and device class", "Tickets")
    assert "Partial data: LibreNMS did not provide this week" in uptime
    assert "The figures below come from Zabbix only" in uptime
    assert "Data unavailable" not in uptime
    assert re.search(r"Sources: Zabbix \(data as of .*\), LibreNMS \(unavailable\)", uptime)
    assert re.search(r"Downtime \(min\)\s+Source", uptime)
    assert re.search(r"Leeds HQ Servers 96\.42% 99\.90% No 361 Zabbix", uptime)
    assert "Average across rows: 98.78%" in uptime
    summary = " ".join(executive_summary(rec))
    assert "Uptime figures cover Zabbix only, as LibreNMS did not answer" in summary
    assert "uptime averaged 98.78%" in summary  # the answering system's figures still count
    # single-system sections keep their plain tables
    assert not re.search(r"RPO met\s+Source", text)


def test_section_state_trusts_data_only_from_systems_that_answered():
    snap = make_snapshot(failed={"tickets": "down"})
    ok, failed = snap.uptime, snap.tickets
    assert render.section_state(ok) == "ok" and render.section_state(failed) == "failed"
    # data left behind by a failed fetch is never shown
    broken = ok.model_copy(update={"status": ok.status.model_copy(update={"ok": False})})
    assert render.section_state(broken) == "failed" and render.section_data(broken) is None
    good, bad = ok.status, ok.status.model_copy(update={"ok": False, "system": "LibreNMS"})
    assert render.section_state(partial_section(bad, ok.data, [good, bad])) == "partial"
    assert render.section_state(partial_section(bad, ok.data, [bad, bad])) == "failed"
    assert render.section_state(partial_section(good, ok.data, [good, good])) == "ok"


# --- appendix, branding, fonts ---------------------------------------------------------------------
def test_appendix_defines_every_metric_in_plain_words(report):
    _, rendered = report
    required = ("Uptime %", "SLO met", "Tickets opened / closed", "SLA breach", "Backlog", "Change executed",
                "Last good backup", "RPO met", "Backup not run in 48 h", "Open incident", "Secure score",
                "Site availability")
    assert set(required) <= set(render.METRIC_DEFINITIONS)
    text = pdf_text(rendered.pdf)
    appendix = flat(text[text.index("How we measure"):])
    for term, definition in render.METRIC_DEFINITIONS.items():
        assert flat(term) in appendix and flat(definition) in appendix, term
    # the last section, on a page of its own
    last = PdfReader(io.BytesIO(rendered.pdf)).pages[-1].extract_text()
    assert "How we measure" in last and "Recommendations" not in last


def brand(**changes) -> render.Branding:
    fields = {"msp_name": "Contoso IT", "primary_colour": "#336699", "accent_colour": "#cc3300",
              "logo": "brand/msp-logo.svg", "footer": "Contoso IT · 0800 123 456"}
    return render.Branding(**{**fields, **changes})


def test_branding_colours_logo_and_footer_are_applied():
    branding = brand(customer_logo="brand/customers/ACME.svg")
    rendered = render_report(make_reconciled(), make_customer(), MSP, branding=branding)
    assert ":root { --brand-primary: #336699; --brand-accent: #cc3300; }" in rendered.html
    content = "".join(page.get_contents().get_data().decode("latin-1")
                      for page in PdfReader(io.BytesIO(rendered.pdf)).pages)
    assert "0.2 0.4 0.6 rg" in content  # headings in the primary colour
    assert "0.8 0.2 0 rg" in content  # chart bars in the accent colour
    text = pdf_text(rendered.pdf)
    pages = len(PdfReader(io.BytesIO(rendered.pdf)).pages)
    assert text.count("Contoso IT · 0800 123 456") == pages
    for n in range(1, pages + 1):
        assert f"Page {n} of {pages}" in text
    assert text.count("weekly report, 16 Nov 2026 – 22 Nov 2026") == pages  # the week on every page
    assert '<img src="brand/customers/ACME.svg"' in rendered.html and '<img src="brand/msp-logo.svg"' in rendered.html


def test_branding_file_and_customer_logo_lookup(tmp_path):
    default = render.load_branding()
    assert default.msp_name == "Northwind Managed Services" and default.customer_logo is None
    assert default.for_customer("ACME").customer_logo == "brand/customers/ACME.svg"
    assert default.for_customer("BRVO").customer_logo is None
    assert default.for_customer("../ACME").customer_logo is None

    bad = tmp_path / "branding.yaml"
    bad.write_text('msp_name: X\nprimary_colour: "red; } body { background: url(http://x/) }"\n'
                   'accent_colour: "#000000"\nlogo: brand/msp-logo.svg\nfooter: x\n')
    with pytest.raises(render.ReportError, match=r"branding.yaml: primary_colour .* is not a colour"):
        render.load_branding(bad)
    bad.write_text("msp_name: X\ncolour: '#000000'\n")
    with pytest.raises(render.ReportError, match="unknown field"):
        render.load_branding(bad)


@pytest.mark.parametrize("changes", [
    {"primary_colour": "red"}, {"primary_colour": "#12345g"}, {"accent_colour": "#123"},
    {"accent_colour": "#123456; } h1 { color: red"}, {"accent_colour": "var(--x)"},
    {"logo": "../../pyproject.toml"}, {"logo": "/etc/passwd"}, {"logo": "http://127.0.0.1/logo.svg"},
    {"logo": "report.css"}, {"customer_logo": "brand/customers/NOPE.svg"}, {"footer": "  "},
])
def test_branding_rejects_what_could_inject_or_escape(changes):
    with pytest.raises(ValueError):
        brand(**changes)


@pytest.fixture
def fetched(monkeypatch):
    """Every URL the PDF renderer's fetcher is asked for."""
    urls: list[str] = []
    cls = render._fetcher_class()
    original = cls.fetch

    def spy(self, url, headers=None):
        urls.append(url)
        return original(self, url, headers)

    monkeypatch.setattr(cls, "fetch", spy)
    return urls


def test_shipped_fonts_and_logos_load_through_the_fetcher(fetched):
    rendered = render_report(make_reconciled(), make_customer(), MSP, commentary="_emphasis_ stays literal")
    root = TEMPLATES_DIR.resolve()
    assert {u.rsplit("/", 1)[1] for u in fetched} >= {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf",
                                                       "DejaVuSans-Oblique.ttf", "msp-logo.svg", "ACME.svg"}
    assert all(u.startswith(root.as_uri() + "/") for u in fetched)
    fonts = set()
    for page in PdfReader(io.BytesIO(rendered.pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]).split("+", 1)[1])
    # "DejaVu Sans Report" is the @font-face family of the shipped files: no system font has that name
    assert fonts and all(name.startswith("DejaVu-Sans-Report") for name in fonts), fonts
    assert "DejaVu-Sans-Report-Bold" in fonts
    assert (root / "fonts" / "LICENSE").read_text().count("Bitstream") > 1


def test_long_tables_repeat_their_header_on_every_page():
    shown = render.TABLE_ROW_LIMIT  # the two named assets and all but two of the workstations
    rendered = render_report(make_reconciled(extra_assets=shown), make_customer(), MSP)
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(rendered.pdf)).pages]
    with_rows = [text for text in pages if "ACME-WS0" in text]
    assert len(with_rows) >= 2
    for text in with_rows:
        assert re.search(r"Asset\s+Appliance\s+Last good backup", text)
    text = flat("".join(pages))
    # the failed ACME-FS01 (RPO missed) is shown first however long the list; the rest is counted
    assert "ACME-FS01" in text and f"ACME-WS{shown - 3:03d}" in text and f"ACME-WS{shown - 2:03d}" not in text
    assert flat("… and 2 more assets, by last status: 2 success.") in text


# --- the same facts on every channel -------------------------------------------------------------
def test_teams_card_and_rollup_carry_the_pdf_numbers(report, tmp_path):
    from msp_reports.pipeline import customer_status
    from msp_reports.rollup import rollup_cards, rollup_markdown
    from msp_reports.store import ReportStore

    rec, rendered = report
    text = pdf_text(rendered.pdf)
    card = teams_summary(rec, make_customer(), MSP)
    facts = {f["title"]: f["value"] for block in card["body"] if block["type"] == "FactSet" for f in block["facts"]}
    assert facts["Uptime"] == re.search(r"Average across rows: (\S+?),", text).group(1) == "98.78%"
    opened, closed = (re.search(rf"{m}\s+(\d+)\s", text).group(1) for m in ("Opened", "Closed"))
    assert facts["Tickets opened / closed"] == f"{opened} / {closed}" == "23 / 17"
    assert facts["SLA breaches"] == re.search(r"SLA breaches\s+(\d+)\s", text).group(1) == "3"
    assert facts["Backlog at week end"] == re.search(r"Backlog at week end\s+(\d+)\s", text).group(1) == "14"
    assert facts["Secure score"] == re.search(r"Secure score: (\S+?),", text).group(1) == "71.4%"
    assert facts["Open incidents"] == re.search(r"Open incidents at week end: (\d+)", text).group(1) == "1"
    assert f"{facts['Backups within RPO']} backed-up assets within recovery point objective" in text.replace("\n", " ")
    for flag in rec.flags:  # the card's flag lines are the PDF's findings
        assert flat(flag.message) in flat(text)

    store = ReportStore(str(tmp_path))
    store.write_json("ACME", WEEK_OF, "reconciled.json", rec.model_dump(mode="json"))
    status = customer_status(store, make_customer(), WEEK_OF)
    markdown = rollup_markdown(MSP, WEEK_OF, [status])
    [card] = rollup_cards(MSP, WEEK_OF, [status])
    rollup_texts = " ".join(b["text"] for b in card["body"] if b["type"] == "TextBlock")
    critical = [f for f in rec.flags if f.severity == "critical"]
    assert critical
    for flag in critical:
        quoted = escape_markdown(f"ACME: {flag.message}", 600)
        assert quoted in markdown and quoted in rollup_texts
    for flag in rec.flags:
        assert escape_markdown(f"ACME: {flag.recommendation}", 600) in markdown
        assert flat(flag.recommendation) in flat(text)


# --- render_pages ---------------------------------------------------------------------------------
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

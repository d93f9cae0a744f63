"""The trend charts: inline SVG from the stored snapshots; a week without data is a gap, never zero."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

from pypdf import PdfReader

from msp_reports.render import render_report, trends, trends_html
from msp_reports.render.charts import _PLOT_BOTTOM
from tests.factories import HISTORY_BACKLOG, MSP, make_customer, make_history, make_reconciled
from tests.render.reading import between, pdf_text


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
    assert list(charts) == ["Uptime, average of all rows", "Ticket backlog at week end", "Secure score",
                            "Recovery proven within RTO"]
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
    series = {t.metric.key: t.values for t in trends(rec, history)}
    assert series["backlog"] == [31, 32, 33, 34, None, 36, None, 14]
    assert series["uptime"][4:6] == [None, None] and None not in series["uptime"][:4] + series["uptime"][6:]
    assert series["secure_score"][4] is None and series["secure_score"][6] is None

    charts = svg_charts(trends_html(rec, history))
    backlog = charts["Ticket backlog at week end"]
    bars = svg_items(backlog, "rect", "bar")
    assert len(bars) == 6 and all(float(b.get("height")) > 0 for b in bars)
    assert len(svg_items(backlog, "text", "gap")) == 2
    bar_labels = {round(float(t.get("x"))): t.text for t in svg_items(backlog, "text")
                  if t.get("class") is None and float(t.get("y")) < _PLOT_BOTTOM
                  and t.get("text-anchor") == "middle"}
    assert sorted(bar_labels.values(), key=int) == ["14", "31", "32", "33", "34", "36"]  # no bar labelled 0
    uptime = charts["Uptime, average of all rows"]
    assert len(svg_items(uptime, "circle", "point")) == 6
    # the line breaks at each gap instead of running through a zero
    assert len(svg_items(uptime, "polyline", "line")) == 2
    lows = [float(p.get("cy")) for p in svg_items(uptime, "circle", "point")]
    assert max(lows) < _PLOT_BOTTOM

    rendered = render_report(rec, make_customer(), MSP, history=history)
    lines = [line.strip() for line in page_with(rendered.pdf, "Trends over the last 8 weeks").splitlines()]
    # two gaps in each of the three charts above, and the recovery chart's gap three weeks back
    assert lines.count("n/a") == 7


def test_trends_without_history_say_so():
    html = trends_html(make_reconciled(baseline=False), [])
    assert "Earlier weeks are not on record yet" in html
    backlog = svg_charts(html)["Ticket backlog at week end"]
    assert len(svg_items(backlog, "rect", "bar")) == 1 and len(svg_items(backlog, "text", "gap")) == 7

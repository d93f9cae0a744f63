"""Hostile source text: escaped for Markdown, inert in the HTML, literal in the PDF; nothing fetched."""

from __future__ import annotations

import io
import re

import pytest
from markdown_it import MarkdownIt
from pypdf import PdfReader

from msp_reports.escaping import TEXT_LIMIT, clean_text, escape_markdown
from msp_reports.render import markdown_to_html, render_markdown, render_report, trends_html
from msp_reports.render.charts import TREND_METRICS
from tests.factories import MSP, hostile_strings, make_customer, make_reconciled
from tests.render.reading import flat, pdf_text


def only_brand_images(html: str) -> bool:
    """The page's only images are the branding logos, loaded from the templates folder."""
    sources = re.findall(r"<img\b[^>]*>", html, flags=re.I)
    return bool(sources) and all(re.fullmatch(r'<img src="brand/[a-z0-9/_-]+\.svg" alt="[^"<>]*">', tag, flags=re.I)
                                 for tag in sources)


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
    html = markdown_to_html(markdown, "T", blocks={"trends": trends_html(rec, [])})
    assert html.count("<svg") == len(TREND_METRICS) and html.count('class="trends"') == 1
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
    expected = clean_text(value)
    escaped = expected.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert html.count(f"<td>{escaped}</td>") == 1
    assert html.count(f"<li>{escaped}</li>") == 1
    assert html.count(f"<p>{escaped}</p>") == 1
    assert len(expected) <= TEXT_LIMIT


def test_markdown_to_html_loads_and_links_nothing_by_itself():
    html = markdown_to_html("![x](https://127.0.0.1/y.png) <https://127.0.0.1/a> <b>b</b> https://127.0.0.1/c "
                            "[f](file:///etc/passwd) [j](javascript:alert(1))", "T", author="A <b>")
    assert only_brand_images(html) and "<a " not in html and "<b>" not in html
    assert '<meta name="author" content="A &lt;b&gt;">' in html and "<title>T</title>" in html
    assert '<html lang="en">' in html and "<link" not in html and "@page" in html
    with pytest.raises(ValueError):
        markdown_to_html("x", "T", lang='en" onload="x')

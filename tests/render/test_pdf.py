"""WeasyPrint reads nothing but the templates and ``data:`` URIs, and embeds no attachment."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from msp_reports.render import TEMPLATES_DIR, UnsafeResourceError, html_to_pdf, render_report, templates_fetcher
from msp_reports.render.pdf import _fetcher_class
from tests.factories import MSP, make_customer, make_reconciled


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
    fetcher = templates_fetcher()
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


@pytest.fixture
def fetched(monkeypatch):
    """Every URL the PDF renderer's fetcher is asked for."""
    urls: list[str] = []
    cls = _fetcher_class()
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

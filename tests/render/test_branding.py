"""Branding: colours, logos and footer applied; anything that could inject CSS or escape the templates refused."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from msp_reports.exceptions import ReportError
from msp_reports.render import Branding, load_branding, render_report
from tests.factories import MSP, make_customer, make_reconciled
from tests.render.reading import pdf_text


def brand(**changes) -> Branding:
    fields = {"msp_name": "Contoso IT", "primary_colour": "#336699", "accent_colour": "#cc3300",
              "logo": "brand/msp-logo.svg", "footer": "Contoso IT · 0800 123 456"}
    return Branding(**{**fields, **changes})


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
    default = load_branding()
    assert default.msp_name == "Northwind Managed Services" and default.customer_logo is None
    assert default.for_customer("ACME").customer_logo == "brand/customers/ACME.svg"
    assert default.for_customer("BRVO").customer_logo is None
    assert default.for_customer("../ACME").customer_logo is None

    bad = tmp_path / "branding.yaml"
    bad.write_text('msp_name: X\nprimary_colour: "red; } body { background: url(http://x/) }"\n'
                   'accent_colour: "#000000"\nlogo: brand/msp-logo.svg\nfooter: x\n')
    with pytest.raises(ReportError, match=r"branding.yaml: primary_colour .* is not a colour"):
        load_branding(bad)
    bad.write_text("msp_name: X\ncolour: '#000000'\n")
    with pytest.raises(ReportError, match="unknown field"):
        load_branding(bad)


@pytest.mark.parametrize("changes", [
    {"primary_colour": "red"}, {"primary_colour": "#12345g"}, {"accent_colour": "#123"},
    {"accent_colour": "#123456; } h1 { color: red"}, {"accent_colour": "var(--x)"},
    {"logo": "../../pyproject.toml"}, {"logo": "/etc/passwd"}, {"logo": "http://127.0.0.1/logo.svg"},
    {"logo": "report.css"}, {"customer_logo": "brand/customers/NOPE.svg"}, {"footer": "  "},
])
def test_branding_rejects_what_could_inject_or_escape(changes):
    with pytest.raises(ValueError):
        brand(**changes)

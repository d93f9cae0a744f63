"""One customer's week, rendered: Markdown → HTML (with the trend charts) → PDF."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msp_reports.reconcile import Reconciled
from msp_reports.render.branding import Branding, load_branding
from msp_reports.render.charts import trends_html
from msp_reports.render.markdown import markdown_to_html, render_markdown
from msp_reports.render.pdf import html_to_pdf
from msp_reports.render.wording import executive_summary, report_title

if TYPE_CHECKING:
    from msp_reports.registry import Customer, Msp
    from msp_reports.snapshot import WeeklySnapshot


@dataclass(frozen=True)
class RenderedReport:
    markdown: str
    html: str
    pdf: bytes
    sha256: str


def render_report(rec: Reconciled, customer: Customer, msp: Msp, commentary: str = "",
                  history: Iterable[WeeklySnapshot] | None = None, branding: Branding | None = None, *,
                  freshness_hours: Mapping[str, float] | None = None) -> RenderedReport:
    """The customer's PDF (and the Markdown and HTML it came from).

    :param commentary: the account engineer's text, shown under the executive summary.
    :param history: earlier weeks' snapshots from the store (any order, up to ``TREND_WEEKS - 1``
        are drawn); a week that is missing or whose source failed is a gap in the charts.
    :param branding: used as given; by default ``branding.yaml`` with the customer's logo, if one exists.
    :param freshness_hours: per-domain overrides of :data:`FRESHNESS_HOURS`.
    """
    if branding is None:
        branding = load_branding().for_customer(customer.code)
    markdown = render_markdown(rec, customer, msp, commentary, freshness_hours=freshness_hours)
    summary = executive_summary(rec)
    html = markdown_to_html(markdown, report_title(rec, customer), "en", author=msp.name,
                            description=summary[0], branding=branding,
                            blocks={"trends": trends_html(rec, history, branding)}, customer_name=customer.name)
    pdf = html_to_pdf(html)
    return RenderedReport(markdown=markdown, html=html, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())

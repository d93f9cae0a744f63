"""Turn a reconciled week into the customer's report: Markdown → HTML → PDF, plus a Teams card.

Everything a source system said (ticket and change summaries, incident titles, asset, site and
check names, customer names, error messages) is untrusted text. It reaches the Markdown only
through the Jinja2 ``finalize`` hook, which escapes every ``{{ }}`` output for Markdown, so a
template author cannot forget it; only the renderer's own number and date filters return
:class:`Md` and pass through as written. Markdown-it then runs with raw HTML, images, links
and autolinks off; WeasyPrint gets a URL fetcher that reads nothing but files inside
``TEMPLATES_DIR`` and ``data:`` URIs, and the rendered document is stripped of attachments.

A section whose source failed renders a "Data unavailable" notice and no figures: a missing
number is never shown, summarised or compared as zero. A section served by two systems of
which one failed shows the other's figures under a "Partial data" banner; data older than
:data:`FRESHNESS_HOURS` at week end gets a "Stale data" banner.

However long the week, the report stays a few pages: a list of records (changes, incidents,
assets, findings, ...) longer than :data:`TABLE_ROW_LIMIT` shows its first rows, those that need
attention first, and one line that counts the rest by type ("… and 9,970 more changes, by
status: 7,976 completed, 1,994 failed"). The stored snapshot keeps every record, and every
total the report prints is computed from all of them.

The renderer's own HTML (three trend charts as inline SVG, drawn from the stored snapshots'
numbers) replaces an ``msp-block`` fence after Markdown → HTML; escaped text cannot produce
one. Branding (colours, logos, footer) comes from ``branding.yaml``; fonts and logos are
files in ``TEMPLATES_DIR``, loaded through the same fetcher.

One module per job; this package re-exports the names the rest of the project uses:

- :mod:`msp_reports.escaping`: plain text and Markdown escaping (outside the package, so the
  roll-up and the review page need not import the renderer);
- :mod:`.templates`: where the templates live; :mod:`.branding`: ``branding.yaml``;
- :mod:`.filters`: the Jinja number and date filters; :mod:`.sections`: failed, partial and
  stale sections and their notices; :mod:`.tables`: long lists cut to a few rows;
- :mod:`.wording`: the executive summary, actions and title; :mod:`.markdown`: Markdown and
  HTML; :mod:`.charts`: the trend charts; :mod:`.pdf`: WeasyPrint and its fetcher;
- :mod:`.report`: :func:`render_report`; :mod:`.teams_card`: the Teams card.
"""

from __future__ import annotations

from msp_reports.escaping import (
    COMMENTARY_LIMIT, SUMMARY_LIMIT, TEXT_LIMIT, Md, clean_text, escape_markdown, escape_paragraphs,
)
from msp_reports.exceptions import ReportError, UnsafeResourceError
from msp_reports.render.branding import Branding, load_branding
from msp_reports.render.charts import CHART_SIZE, TREND_METRICS, TREND_WEEKS, Trend, TrendMetric, trends, trends_html
from msp_reports.render.markdown import INCIDENT_SEVERITIES, WORD_CHUNK, markdown_to_html, render_markdown
from msp_reports.render.pdf import PDF_VARIANT, html_to_pdf, templates_fetcher
from msp_reports.render.report import RenderedReport, render_report
from msp_reports.render.sections import (
    DOMAIN_LABELS, FRESHNESS_HOURS, SectionState, freshness_limits, section_data, section_state, stale_statuses,
    system_label,
)
from msp_reports.render.tables import (
    ACTION_LIMIT, BREAKDOWN_LIMIT, TABLE_ROW_LIMIT, LongTable, Shown, cut, long_tables,
)
from msp_reports.render.teams_card import data_caveats, teams_summary
from msp_reports.render.templates import (
    BRANDING_FILE, CHART_TEMPLATE, FONT_FAMILY, PAGE_TEMPLATE, REPORT_TEMPLATE, STYLESHEET, TEMPLATES_DIR,
    TRENDS_TEMPLATE,
)
from msp_reports.render.wording import (
    KIND_ORDER, METRIC_DEFINITIONS, NO_BASELINE, STANDING_RECOMMENDATION, Action, actions, executive_summary,
    recommendations, report_title, report_week,
)

__all__ = [
    "ACTION_LIMIT", "BRANDING_FILE", "BREAKDOWN_LIMIT", "CHART_SIZE", "CHART_TEMPLATE", "COMMENTARY_LIMIT",
    "DOMAIN_LABELS", "FONT_FAMILY", "FRESHNESS_HOURS", "INCIDENT_SEVERITIES", "KIND_ORDER", "METRIC_DEFINITIONS",
    "NO_BASELINE", "PAGE_TEMPLATE", "PDF_VARIANT", "REPORT_TEMPLATE", "STANDING_RECOMMENDATION", "STYLESHEET",
    "SUMMARY_LIMIT", "TABLE_ROW_LIMIT", "TEMPLATES_DIR", "TEXT_LIMIT", "TREND_METRICS", "TREND_WEEKS",
    "TRENDS_TEMPLATE", "WORD_CHUNK",
    "Action", "Branding", "LongTable", "Md", "RenderedReport", "ReportError", "SectionState", "Shown", "Trend",
    "TrendMetric", "UnsafeResourceError",
    "actions", "clean_text", "cut", "data_caveats", "escape_markdown", "escape_paragraphs", "executive_summary",
    "freshness_limits", "html_to_pdf", "load_branding", "long_tables", "markdown_to_html", "recommendations",
    "render_markdown", "render_report", "report_title", "report_week", "section_data", "section_state",
    "stale_statuses", "system_label", "teams_summary", "templates_fetcher", "trends", "trends_html",
]

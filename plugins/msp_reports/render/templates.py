"""Where the report's templates, stylesheet, fonts and logos live, and how HTML templates load.

``TEMPLATES_DIR`` is ``include/templates`` beside ``plugins/`` (``MSP_REPORTS_TEMPLATES``
overrides it). It is the only folder the PDF renderer may read from.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(
    os.environ.get("MSP_REPORTS_TEMPLATES") or Path(__file__).resolve().parents[3] / "include" / "templates"
)
REPORT_TEMPLATE = "report.md.j2"
PAGE_TEMPLATE = "page.html.j2"
STYLESHEET = "report.css"
CHART_TEMPLATE = "chart.svg.j2"
TRENDS_TEMPLATE = "trends.html.j2"
BRANDING_FILE = "branding.yaml"
FONT_FAMILY = "DejaVu Sans Report"  # the @font-face family in report.css: the shipped files, not the system's


@functools.cache
def page_environment(root: Path) -> jinja2.Environment:
    """Jinja for the HTML templates (page, charts): HTML autoescape on, undefined names fail."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined,
                              autoescape=True)

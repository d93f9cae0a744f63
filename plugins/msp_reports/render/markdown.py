"""The report as Markdown (Jinja2), then as one self-contained HTML page (Markdown-it).

Every value from a source system reaches the Markdown only through the Jinja2 ``finalize``
hook, which escapes every ``{{ }}`` output for Markdown; only the renderer's own number and
date filters return :class:`Md` and pass through as written. Markdown-it then runs with raw
HTML, images, links and autolinks off.

The renderer's own HTML (the trend charts) replaces an ``msp-block`` fence after Markdown →
HTML; escaped text cannot produce one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from msp_reports.escaping import SUMMARY_LIMIT, clean_text, escape_markdown, escape_paragraphs
from msp_reports.exceptions import ReportError
from msp_reports.reconcile import Reconciled, customer_action
from msp_reports.render import filters, sections
from msp_reports.render.branding import Branding, load_branding
from msp_reports.render.charts import TREND_WEEKS
from msp_reports.render.sections import DOMAIN_LABELS, freshness_limits, section_data
from msp_reports.render import recovery
from msp_reports.render.tables import capped
from msp_reports.render.templates import (
    PAGE_TEMPLATE, REPORT_TEMPLATE, STYLESHEET, TEMPLATES_DIR, page_environment,
)
from msp_reports.render.wording import (
    NO_BASELINE, STANDING_RECOMMENDATION, actions, executive_summary, metric_definitions, report_week,
    sorted_flags,
)

if TYPE_CHECKING:
    from msp_reports.registry import Customer, Msp

INCIDENT_SEVERITIES = ("high", "medium", "low", "informational", "unknown")


def _incident_matrix(rec: Reconciled) -> list[dict[str, Any]]:
    data = section_data(rec.snapshot.security)
    if data is None:
        return []
    rows = []
    for severity in INCIDENT_SEVERITIES:
        found = [i for i in data.incidents if i.severity == severity]
        if found or severity != "unknown":
            opened = sum(i.status == "open" for i in found)
            rows.append({"severity": severity.capitalize(), "open": opened,
                         "resolved": len(found) - opened, "total": len(found)})
    return rows


def _incidents(rec: Reconciled) -> list[Any]:
    data = section_data(rec.snapshot.security)
    if data is None:
        return []
    rank = {s: n for n, s in enumerate(INCIDENT_SEVERITIES)}
    return sorted(data.incidents, key=lambda i: (rank[i.severity], i.status != "open", i.created_at, i.ref))


@functools.cache
def _environment(root: Path) -> jinja2.Environment:
    """Jinja for ``report.md.j2``: no HTML autoescape (wrong for Markdown); ``finalize`` escapes instead."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # HTML autoescape is wrong for Markdown; finalize escapes instead
        finalize=filters.finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=filters.pct, num=filters.num, signed=filters.signed, yesno=filters.yesno,
                       when=filters.when, paragraphs=escape_paragraphs, system=sections.system_name)
    env.globals.update(source_line=sections.source_line, unavailable=sections.unavailable,
                       delta=filters.delta, versus=filters.versus, banners=sections.banners,
                       state=sections.section_state, source_column=sections.source_column, capped=capped,
                       customer_action=customer_action, precedence_note=sections.precedence_note)
    env.globals.update(rto_met=recovery.rto_met, recovery_result=recovery.recovery_result,
                       recovery_time=recovery.recovery_time, rto_target=recovery.rto_target)
    return env


def render_markdown(rec: Reconciled, customer: Customer, msp: Msp, commentary: str = "", *,
                    freshness_hours: Mapping[str, float] | None = None) -> str:
    """The report as Markdown: every value from a source system is escaped by ``finalize``.

    The trend charts are a placeholder here (a fenced block no escaped text can produce);
    :func:`markdown_to_html` puts the SVG in its place.
    """
    snap = rec.snapshot
    template = _environment(TEMPLATES_DIR.resolve()).get_template(REPORT_TEMPLATE)
    return template.render(
        rec=rec,
        snap=snap,
        customer=customer,
        msp=msp,
        timezone=snap.timezone,
        week_label=report_week(rec).label(),
        summary=[escape_markdown(s, SUMMARY_LIMIT) for s in executive_summary(rec)],
        actions=actions(rec),
        flags=sorted_flags(rec.flags),
        commentary=commentary if commentary and commentary.strip() else "",
        incident_matrix=_incident_matrix(rec),
        incidents=_incidents(rec),
        open_incidents=sum(i.status == "open" for i in _incidents(rec)),
        no_baseline=NO_BASELINE,
        standing_recommendation=STANDING_RECOMMENDATION,
        domain_labels=DOMAIN_LABELS,
        freshness_hours=freshness_limits(freshness_hours),
        metric_definitions={term: escape_markdown(text, SUMMARY_LIMIT)
                            for term, text in metric_definitions(rec.thresholds).items()},
        thresholds=rec.thresholds,
        trend_weeks=TREND_WEEKS,
    )


# --- HTML -------------------------------------------------------------------------------
_BLOCK = re.compile(r'<pre><code class="language-msp-block">([a-z]+)\n</code></pre>\n?')
_LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_LONG_WORD = re.compile(r"\S{25,}")
WORD_CHUNK = 12


def _breakable_words(state: Any) -> None:
    """Let very long tokens (hashes, paths, hostile strings) wrap inside narrow table cells.

    CSS ``overflow-wrap: anywhere`` would do it too, but it also lets the table layout squeeze
    short words ("Critical") into one-letter columns; a zero-width space only where needed
    keeps both. Applied to the HTML only: the Markdown and the Teams card stay as written.
    """
    def split(match: re.Match[str]) -> str:
        word = match.group(0)
        return "\u200b".join(word[i:i + WORD_CHUNK] for i in range(0, len(word), WORD_CHUNK))

    for token in state.tokens:
        for child in token.children or ():
            if child.type == "text":
                child.content = _LONG_WORD.sub(split, child.content)


#: the class a centred table cell reading "No" gets (a target missed: Met, RPO met); report.css colours it
MISSED_CLASS = "missed"
#: the class of a table short enough to keep on one page (report.css: ``break-inside: avoid``), so
#: that a section's heading is never left at a page foot with one or two rows of its table
KEEP_CLASS = "keep"
KEEP_ROWS = 8


def _short_tables(state: Any) -> None:
    """Mark tables of at most :data:`KEEP_ROWS` body rows with :data:`KEEP_CLASS`; longer ones may break."""
    tokens, start, rows = state.tokens, None, 0
    for token in tokens:
        if token.type == "table_open":
            start, rows = token, 0
        elif token.type == "tr_open":
            rows += 1
        elif token.type == "table_close" and start is not None:
            if rows - 1 <= KEEP_ROWS:  # the header row is not a body row
                start.attrSet("class", KEEP_CLASS)
            start = None


def _missed_cells(state: Any) -> None:
    """Mark the centred cells that read "No" (the Met and RPO met columns) with :data:`MISSED_CLASS`.

    Only centred columns carry a yes/no verdict in report.md.j2, so a source's text "No" in a
    left-aligned column (a ticket title) is never coloured as a missed target.
    """
    tokens = state.tokens
    for n, token in enumerate(tokens[:-1]):
        if token.type == "td_open" and "text-align:center" in str(token.attrGet("style") or "") \
                and tokens[n + 1].type == "inline" and tokens[n + 1].content.strip() == "No":
            token.attrSet("class", MISSED_CLASS)


@functools.cache
def _markdown_parser():
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable("table")
    # A PDF report neither loads images nor carries links: none can be smuggled in either.
    parser.disable(["image", "link", "autolink", "reference", "html_inline", "html_block"])
    parser.core.ruler.push("breakable_words", _breakable_words)
    parser.core.ruler.push("missed_cells", _missed_cells)
    parser.core.ruler.push("short_tables", _short_tables)
    return parser


def markdown_to_html(markdown: str, title: str, lang: str = "en", *, author: str = "",
                     description: str = "", branding: Branding | None = None,
                     blocks: Mapping[str, Markup] | None = None, customer_name: str = "") -> str:
    """A complete, self-contained HTML document: the stylesheet is inlined, nothing is linked.

    ``blocks`` are HTML the renderer built itself (the trend charts); each replaces the
    ``msp-block`` fence of the same name in the Markdown, which escaped text cannot produce.
    Logos and fonts are referenced relative to the templates folder, the only place the
    PDF renderer may read.
    """
    if not _LANG.match(lang):
        raise ValueError(f"lang {lang!r} is not a language tag such as 'en' or 'en-GB'")
    root = TEMPLATES_DIR.resolve()
    branding = branding or load_branding()
    css = (root / STYLESHEET).read_text(encoding="utf-8")
    if "</style" in css.lower():
        raise ReportError(f"{root / STYLESHEET}: must not contain '</style'")
    body = _BLOCK.sub(lambda m: str((blocks or {}).get(m.group(1), "")), _markdown_parser().render(markdown))
    return page_environment(root).get_template(PAGE_TEMPLATE).render(
        lang=lang,
        title=clean_text(title),
        author=clean_text(author),
        description=clean_text(description),
        css=Markup(css),
        brand_css=Markup(branding.css()),
        branding=branding,
        customer_name=clean_text(customer_name),
        body=Markup(body),
    )

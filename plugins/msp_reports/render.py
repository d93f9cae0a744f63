"""Turn a reconciled week into the customer's report: Markdown → HTML → PDF, plus a Teams card.

Everything a source system said (ticket and change summaries, incident titles, asset, site and
check names, customer names, error messages) is untrusted text. It reaches the Markdown only
through the Jinja2 ``finalize`` hook, which escapes every ``{{ }}`` output for Markdown, so a
template author cannot forget it; only the renderer's own number and date filters return
:class:`Md` and pass through as written. Markdown-it then runs with raw HTML, images, links
and autolinks off; WeasyPrint gets a URL fetcher that reads nothing but files inside
``TEMPLATES_DIR`` and ``data:`` URIs, and the rendered document is stripped of attachments.

A section whose source failed renders a "Data unavailable" notice and no figures: a missing
number is never shown, summarised or compared as zero.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import mimetypes
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from msp_reports.exceptions import ReportError, UnsafeResourceError
from msp_reports.reconcile import SEVERITY_ORDER, Flag, Reconciled
from msp_reports.week import ReportWeek

if TYPE_CHECKING:
    from msp_reports.registry import Customer, Msp
    from msp_reports.snapshot import WeeklySnapshot

TEMPLATES_DIR = Path(
    os.environ.get("MSP_REPORTS_TEMPLATES") or Path(__file__).resolve().parents[2] / "include" / "templates"
)
REPORT_TEMPLATE = "report.md.j2"
PAGE_TEMPLATE = "page.html.j2"
STYLESHEET = "report.css"

# PDF/UA-1 (tagged PDF 1.7 with title, language and XMP metadata) renders cleanly on WeasyPrint 70.
PDF_VARIANT = "pdf/ua-1"

TEXT_LIMIT = 300  # one table cell or sentence from a source system
SUMMARY_LIMIT = 600  # one sentence of the executive summary (may quote a flag's message)
COMMENTARY_LIMIT = 6000
NO_BASELINE = "No previous week on record; week-over-week changes start next week."
STANDING_RECOMMENDATION = (
    "Keep the current patching and backup-verification schedule; we will review capacity and "
    "lifecycle risks with you at the next quarterly business review."
)

# Within one severity, the flag an executive should read first comes first: a trend in the
# service desk outranks a row that missed its uptime target by a few hundredths of a point.
KIND_ORDER = {"sla_drop": 0, "backup_stale": 1, "open_incident": 2, "ticket_trend": 3,
              "slo_missed": 4, "source_unavailable": 5}
INCIDENT_SEVERITIES = ("high", "medium", "low", "informational", "unknown")
DOMAIN_LABELS = {"uptime": "Uptime", "tickets": "Tickets", "backups": "Backups",
                 "security": "Security", "sites": "Public sites"}




@dataclass(frozen=True)
class RenderedReport:
    markdown: str
    html: str
    pdf: bytes
    sha256: str


# --- Markdown escaping ---------------------------------------------------------------------
class Md(str):
    """Markdown the renderer wrote itself (numbers, dates): ``finalize`` passes it through."""

    __slots__ = ()


# C0/C1 controls (tab, newline and carriage return become spaces instead), bidi embeddings,
# overrides, isolates and marks, and the byte-order mark.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_WHITESPACE = re.compile(r"\s+")
# Every character with inline or block meaning in CommonMark + tables, wherever it stands.
_MD_ACTIVE = re.compile(r"([\\`*_\[\]<>#|!~&=+])")
# Characters that only mean something at the start of a line: list bullets, ordered lists.
_LINE_START = re.compile(r"^(-|\d{1,9}(?=[.)]))")


def clean_text(value: object, limit: int = TEXT_LIMIT) -> str:
    """One line of plain text: controls and bidi overrides removed, whitespace collapsed, capped."""
    text = _WHITESPACE.sub(" ", _INVISIBLE.sub("", str(value))).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def escape_markdown(value: object, limit: int = TEXT_LIMIT) -> Md:
    """Make ``value`` render as its literal characters in CommonMark, on one line."""
    text = _MD_ACTIVE.sub(r"\\\1", clean_text(value, limit))
    return Md(_LINE_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\-", text))


def escape_paragraphs(value: object, limit: int = COMMENTARY_LIMIT) -> Md:
    """Escape free text but keep its paragraphs and line breaks (the engineer's commentary)."""
    text = _INVISIBLE.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [escape_markdown(line, limit) for line in block.split("\n") if line.strip()]
        if lines:
            paragraphs.append("\\\n".join(lines))
    return Md("\n\n".join(paragraphs))


def _finalize(value: Any) -> str:
    if isinstance(value, Md):
        return value
    if value is None:
        return "—"
    return escape_markdown(value)


# --- filters: the only producers of Md ---------------------------------------------------
def _pct(value: float | None, digits: int = 2) -> Md:
    return Md("—" if value is None else f"{value:.{digits}f}%")


def _num(value: float | None, digits: int = 0) -> Md:
    return Md("—" if value is None else f"{value:,.{digits}f}")


def _signed(value: float | None, digits: int = 0, unit: str = "") -> Md:
    if value is None:
        return Md("—")
    if round(value, digits) == 0:
        return Md(f"±0{unit}")
    sign = "+" if value > 0 else "−"
    return Md(f"{sign}{abs(value):,.{digits}f}{unit}")


def _yesno(value: bool | None) -> Md:
    return Md("—" if value is None else ("Yes" if value else "No"))


def _local(moment: dt.datetime | None, timezone: str) -> dt.datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(ZoneInfo(timezone))


@jinja2.pass_context
def _when(context: Any, moment: dt.datetime | None) -> Md:
    local = _local(moment, context["timezone"])
    return Md("—" if local is None else f"{local:%a %d %b %Y %H:%M}")


# Jinja macros return plain text that ``finalize`` would escape a second time, so the few
# building blocks that mix Markdown with source values are functions that escape explicitly.
@jinja2.pass_context
def _source_line(context: Any, section: Any) -> Md:
    status = section.status
    line = f"_Source: {escape_markdown(status.system)} · fetched {_when(context, status.fetched_at)}"
    if status.as_of is not None:
        line += f" · data as of {_when(context, status.as_of)}"
    return Md(line + "_")


def _unavailable(section: Any) -> Md:
    """Customer-facing: which system, not the technical error (that goes to the internal roll-up)."""
    from msp_reports.sources import SYSTEMS

    status = section.status
    label = SYSTEMS[status.system].label if status.system in SYSTEMS else status.system
    return Md(f"> **Data unavailable: {escape_markdown(label)}** did not provide this week's data in time.\n>\n"
              "> The figures for this section are left out rather than shown as zero; "
              "your account engineer will follow up.")


@jinja2.pass_context
def _delta(context: Any, name: str, digits: int = 0, unit: str = "") -> Md:
    change = context["rec"].deltas[name].change
    if change is None:
        return Md("no comparable figure last week")
    return _signed(change, digits, unit)


@functools.cache
def _environment(root: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # HTML autoescape is wrong for Markdown; finalize escapes instead
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=_pct, num=_num, signed=_signed, yesno=_yesno, when=_when,
                       paragraphs=escape_paragraphs)
    env.globals.update(source_line=_source_line, unavailable=_unavailable, delta=_delta)
    return env


@functools.cache
def _page_environment(root: Path) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined,
                              autoescape=True)


# --- the words --------------------------------------------------------------------------
def _sorted_flags(flags: Iterable[Flag]) -> list[Flag]:
    return sorted(flags, key=lambda f: (SEVERITY_ORDER[f.severity], KIND_ORDER.get(f.kind, 9),
                                        f.domain, f.subject, f.message))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def _rpo_met(snap: WeeklySnapshot) -> tuple[int, int]:
    assets = snap.backups.data.assets
    return sum(a.rpo_met(snap.week_end) for a in assets), len(assets)


def _facts(rec: Reconciled) -> list[str]:
    """One clause per domain with data; a failed domain contributes nothing, never a zero."""
    snap, clauses = rec.snapshot, []
    if snap.uptime.data is not None and snap.uptime.data.overall_pct is not None:
        rows = [r for r in snap.uptime.data.rows if r.uptime_pct is not None]
        clause = f"uptime averaged {snap.uptime.data.overall_pct:.2f}%"
        change = rec.deltas.get("uptime_pct")
        if rec.has_baseline and change is not None and change.change is not None:
            clause += f" ({_signed(change.change, 2, ' points')} on last week)"
        clauses.append(clause + f", {sum(bool(r.slo_met) for r in rows)} of {len(rows)} targets met")
    if (t := snap.tickets.data) is not None:
        clauses.append(f"{_plural(t.opened, 'ticket')} opened and {t.closed} closed, "
                       f"{_plural(t.sla_breaches, 'SLA breach', 'SLA breaches')}, {t.backlog_end} open at week end")
    if snap.backups.data is not None and snap.backups.data.assets:
        met, total = _rpo_met(snap)
        clauses.append(f"{met} of {_plural(total, 'backed-up asset')} within recovery point objective")
    if (s := snap.security.data) is not None:
        still_open = sum(i.status == "open" for i in s.incidents)
        clause = f"{_plural(still_open, 'security incident')} open"
        if s.secure_score_pct is not None:
            clause += f", secure score {s.secure_score_pct:.1f}%"
        clauses.append(clause)
    if snap.sites.data is not None:
        values = [c.availability_pct for c in snap.sites.data.checks if c.availability_pct is not None]
        if values:
            clauses.append(f"public sites {sum(values) / len(values):.2f}% available")
    return clauses


def _unavailable_sentence(snap: WeeklySnapshot) -> str | None:
    failed = [f"{DOMAIN_LABELS[d].lower()} ({snap.sections()[d].status.system})" for d in snap.failed_domains]
    if not failed:
        return None
    listed = failed[0] if len(failed) == 1 else ", ".join(failed[:-1]) + " and " + failed[-1]
    verb = "was" if len(failed) == 1 else "were"
    return (f"Data for {listed} {verb} unavailable this week, so "
            f"{'that area is' if len(failed) == 1 else 'those areas are'} not counted in these figures.")


@dataclass(frozen=True)
class _Summary:
    happened: list[str]  # worst findings first, or the healthy-week statement with its numbers
    context: list[str]  # the week's figures and which sources were unavailable
    meaning: str
    action: str

    def sentences(self) -> list[str]:
        return [*self.happened, *self.context, *([self.meaning] if self.meaning else []), self.action]


def _summary(rec: Reconciled) -> _Summary:
    snap = rec.snapshot
    problems = [f for f in _sorted_flags(rec.flags) if f.kind != "source_unavailable"]
    facts = _facts(rec)
    unavailable = _unavailable_sentence(snap)
    any_data = len(snap.failed_domains) < len(snap.sections())
    context: list[str] = []

    if problems:
        happened = [f.message for f in problems[:2]]
        if facts:
            context.append("Across the week: " + "; ".join(facts) + ".")
    elif any_data:
        lead = "A healthy week" if unavailable is None else "No problems in the areas we could measure"
        happened = [f"{lead}: {'; '.join(facts) if facts else 'the sources reported no activity'}."]
    else:
        happened = ["No source system delivered data for this week, so this report carries no figures."]
    if unavailable:
        context.append(unavailable)

    critical = sum(f.severity == "critical" for f in problems)
    warnings = len(problems) - critical
    meaning = ""
    if critical:
        meaning = f"{_plural(critical, 'critical finding')} need{'s' if critical == 1 else ''} attention this week"
        meaning += f", with {_plural(warnings, 'further point')} to watch." if warnings else "."
    elif warnings:
        meaning = f"Service was broadly stable, with {_plural(warnings, 'point')} to watch."
    elif any_data:
        meaning = "Every area we could measure met its targets."
    if meaning and len(problems) > 2:
        meaning = meaning[:-1] + "; all are listed under Recommendations."

    action = f"{'Our first action' if rec.flags else 'Next step'}: {recommendations(rec)[0]}"
    return _Summary(happened, context, meaning, action)


def executive_summary(rec: Reconciled) -> list[str]:
    """Three to six sentences, worst first: what happened, what it means, what we do.

    At most two findings are quoted; a failed source is named, never counted as zero.
    """
    return _summary(rec).sentences()


def recommendations(rec: Reconciled) -> list[str]:
    """What we do about the flags, worst first, each once; a quiet week gets a standing one."""
    seen: dict[str, None] = {}
    for flag in _sorted_flags(rec.flags):
        seen.setdefault(flag.recommendation.strip(), None)
    return list(seen) or [STANDING_RECOMMENDATION]


def report_week(rec: Reconciled) -> ReportWeek:
    return ReportWeek.starting(rec.snapshot.week_of, rec.snapshot.timezone)


def report_title(rec: Reconciled, customer: Customer) -> str:
    return f"{clean_text(customer.name)} — weekly report, {report_week(rec).label()}"


# --- Markdown ---------------------------------------------------------------------------
def _incident_matrix(rec: Reconciled) -> list[dict[str, Any]]:
    data = rec.snapshot.security.data
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
    data = rec.snapshot.security.data
    if data is None:
        return []
    rank = {s: n for n, s in enumerate(INCIDENT_SEVERITIES)}
    return sorted(data.incidents, key=lambda i: (rank[i.severity], i.status != "open", i.created_at, i.ref))


def render_markdown(rec: Reconciled, customer: Customer, msp: Msp, commentary: str = "") -> str:
    """The report as Markdown: every value from a source system is escaped by ``finalize``."""
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
        actions=recommendations(rec),
        flags=_sorted_flags(rec.flags),
        commentary=commentary if commentary and commentary.strip() else "",
        incident_matrix=_incident_matrix(rec),
        incidents=_incidents(rec),
        no_baseline=NO_BASELINE,
        standing_recommendation=STANDING_RECOMMENDATION,
        domain_labels=DOMAIN_LABELS,
    )


# --- HTML -------------------------------------------------------------------------------
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


@functools.cache
def _markdown_parser():
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable("table")
    # A PDF report neither loads images nor carries links: none can be smuggled in either.
    parser.disable(["image", "link", "autolink", "reference", "html_inline", "html_block"])
    parser.core.ruler.push("breakable_words", _breakable_words)
    return parser


def markdown_to_html(markdown: str, title: str, lang: str = "en", *, author: str = "",
                     description: str = "") -> str:
    """A complete, self-contained HTML document: the stylesheet is inlined, nothing is linked."""
    if not _LANG.match(lang):
        raise ValueError(f"lang {lang!r} is not a language tag such as 'en' or 'en-GB'")
    root = TEMPLATES_DIR.resolve()
    css = (root / STYLESHEET).read_text(encoding="utf-8")
    if "</style" in css.lower():
        raise ReportError(f"{root / STYLESHEET}: must not contain '</style'")
    body = _markdown_parser().render(markdown)
    return _page_environment(root).get_template(PAGE_TEMPLATE).render(
        lang=lang,
        title=clean_text(title),
        author=clean_text(author),
        description=clean_text(description),
        css=Markup(css),
        body=Markup(body),
    )


# --- PDF --------------------------------------------------------------------------------
def _template_file(url: str, root: Path) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UnsafeResourceError(f"refusing {url!r}: only files inside {root} may be loaded")
    path = Path(url2pathname(parts.path)).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise UnsafeResourceError(f"refusing {url!r}: only files inside {root} may be loaded")
    return path


@functools.cache
def _fetcher_class():
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class TemplatesOnlyFetcher(URLFetcher):
        """Serves files inside the templates folder and ``data:`` URIs; refuses everything else.

        ``fail_on_errors`` makes a refused URL stop the rendering instead of leaving a hole.
        """

        def __init__(self, root: Path) -> None:
            super().__init__(timeout=5, allowed_protocols=("file", "data"), allow_redirects=False,
                             fail_on_errors=True)
            self.root = root

        def fetch(self, url, headers=None):
            scheme = url.split(":", 1)[0].lower() if ":" in url else ""
            if scheme == "data":
                return super().fetch(url, headers)
            if scheme == "file":
                path = _template_file(url, self.root)
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": mime})
            raise UnsafeResourceError(f"refusing {url[:200]!r}: reports load no remote resources")

    return TemplatesOnlyFetcher


def templates_fetcher():
    """The URL fetcher every WeasyPrint object of a report must use."""
    return _fetcher_class()(TEMPLATES_DIR.resolve())


def html_to_pdf(html: str) -> bytes:
    """Render with WeasyPrint; nothing outside the templates is read, nothing is attached."""
    from weasyprint import HTML
    from weasyprint.urls import FatalURLFetchingError

    root = TEMPLATES_DIR.resolve()
    try:
        document = HTML(string=html, base_url=root.as_uri() + "/", url_fetcher=templates_fetcher()).render(
            pdf_variant=PDF_VARIANT)
    except FatalURLFetchingError as exc:
        cause = exc.__cause__
        if isinstance(cause, UnsafeResourceError):
            raise UnsafeResourceError(str(cause)) from None
        raise ReportError(f"report rendering failed: {exc}: {cause}") from None
    # <link rel=attachment> and <a rel=attachment> become embedded files; a report has none.
    document.metadata.attachments = []
    for page in document.pages:
        page.links = [link for link in page.links if link[0] != "attachment"]
    return document.write_pdf(pdf_variant=PDF_VARIANT, attachments=None)


def render_report(rec: Reconciled, customer: Customer, msp: Msp, commentary: str = "") -> RenderedReport:
    markdown = render_markdown(rec, customer, msp, commentary)
    summary = executive_summary(rec)
    html = markdown_to_html(markdown, report_title(rec, customer), "en", author=msp.name,
                            description=summary[0])
    pdf = html_to_pdf(html)
    return RenderedReport(markdown=markdown, html=html, pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())


# --- Teams ------------------------------------------------------------------------------
def _text(value: object, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape_markdown(value), "wrap": True, **extra}


def _key_numbers(rec: Reconciled) -> list[dict[str, str]]:
    snap = rec.snapshot

    def missing(domain: str) -> str:
        return escape_markdown(f"Unavailable ({snap.sections()[domain].status.system})")

    facts = []
    uptime = snap.uptime.data
    facts.append(("Uptime", missing("uptime") if uptime is None else _pct(uptime.overall_pct)))
    if (t := snap.tickets.data) is None:
        facts.append(("Tickets", missing("tickets")))
    else:
        facts.append(("Tickets opened / closed", f"{t.opened} / {t.closed}"))
        facts.append(("SLA breaches", str(t.sla_breaches)))
        facts.append(("Backlog at week end", str(t.backlog_end)))
    if snap.backups.data is None:
        facts.append(("Backups", missing("backups")))
    else:
        met, total = _rpo_met(snap)
        facts.append(("Backups within RPO", f"{met} of {total}"))
    if (s := snap.security.data) is None:
        facts.append(("Security", missing("security")))
    else:
        facts.append(("Open incidents", str(sum(i.status == "open" for i in s.incidents))))
        facts.append(("Secure score", _pct(s.secure_score_pct, 1)))
    if snap.sites.data is None:
        facts.append(("Public sites", missing("sites")))
    else:
        down = sum(c.availability_pct is not None and c.availability_pct < 100 for c in snap.sites.data.checks)
        facts.append(("Public sites with downtime", f"{down} of {len(snap.sites.data.checks)}"))
    return [{"title": title, "value": value} for title, value in facts]


def _card_lines(rec: Reconciled) -> list[str]:
    """Three lines from the executive summary: worst finding, what it means, what we do."""
    summary = _summary(rec)
    middle = summary.meaning or (summary.context[0] if summary.context else "")
    return [line for line in (summary.happened[0], middle, summary.action) if line]


def teams_summary(rec: Reconciled, customer: Customer, msp: Msp) -> dict[str, Any]:
    """An Adaptive Card 1.4 for the channel post, built from the same words as the PDF."""
    flags = _sorted_flags(rec.flags)
    body: list[dict[str, Any]] = [
        _text(report_title(rec, customer), size="Large", weight="Bolder"),
        _text(f"Prepared by {msp.name} · times in {rec.snapshot.timezone}", isSubtle=True, spacing="None"),
        *(_text(line) for line in _card_lines(rec)),
        {"type": "FactSet", "facts": _key_numbers(rec)},
    ]
    if flags:
        body.append(_text("Flags", weight="Bolder", separator=True))
        body += [_text(f"{f.severity.upper()} · {f.message}",
                       color="Attention" if f.severity == "critical" else "Warning", spacing="Small")
                 for f in flags[:8]]
        if len(flags) > 8:
            body.append(_text(f"and {len(flags) - 8} more in the report", isSubtle=True))
    else:
        body.append(_text("No flags this week.", separator=True))
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": body,
    }

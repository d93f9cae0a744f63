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
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import hashlib
import math
import mimetypes
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
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
    from msp_reports.snapshot import SourceStatus, WeeklySnapshot

TEMPLATES_DIR = Path(
    os.environ.get("MSP_REPORTS_TEMPLATES") or Path(__file__).resolve().parents[2] / "include" / "templates"
)
REPORT_TEMPLATE = "report.md.j2"
PAGE_TEMPLATE = "page.html.j2"
STYLESHEET = "report.css"
CHART_TEMPLATE = "chart.svg.j2"
TRENDS_TEMPLATE = "trends.html.j2"

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

# How old (hours before week end) each domain's newest data point may be before the section
# carries a "Stale data" banner. Monitoring is near real time; the PSA and backup appliances
# report in batches; Defender's secure score is recomputed about once a day.
FRESHNESS_HOURS: dict[str, float] = {"uptime": 6, "tickets": 24, "backups": 26, "security": 48, "sites": 6}

# The appendix "How we measure", in the customer's words. The README quotes these.
METRIC_DEFINITIONS: dict[str, str] = {
    "Uptime %": "The share of the week a service (one site and device class) was up: time up divided by "
                "time up plus time down, from the monitoring system's daily figures. Time before a service "
                "existed counts as no data, not as uptime. The average is the plain mean of the rows.",
    "SLO met": "Yes when a row's uptime is at or above its service-level objective, the uptime target agreed "
               "for that site and device class. A row without data is neither met nor missed.",
    "Tickets opened / closed": "Service-desk tickets created, or closed, between Monday 00:00 and the "
                               "following Monday 00:00 in your timezone.",
    "SLA breach": "A ticket from the week that missed its agreed response or resolution time. Each ticket "
                  "counts once, however many targets it missed.",
    "Backlog": "Tickets still open at the end of the week.",
    "Change executed": "A planned change (a ticket on the change board) completed during the week.",
    "Last good backup": "The newest successful backup of an asset before the end of the week.",
    "RPO met": "Yes when the last good backup is no older than the asset's recovery point objective (the "
               "most recent work, in hours, you could afford to lose), measured at the end of the week.",
    "Backup not run in 48 h": "An asset with no successful backup in the 48 hours before the end of the "
                              "week. We raise it as a critical finding.",
    "Open incident": "A security incident that is not resolved at the end of the week.",
    "Secure score": "Microsoft's rating of your security settings: points achieved divided by points "
                    "available, read at the start and at the end of the week.",
    "Site availability": "The share of the week's automated health checks of a public site that found it "
                         "working.",
    "Data as of": "The newest data point the source system reported. A section shows a Stale data banner "
                  "when it is older than we expect at the end of the week ("
                  + ", ".join(f"{DOMAIN_LABELS[d].lower()} {h:g} h" for d, h in FRESHNESS_HOURS.items())
                  + "), and a Data unavailable banner, never a zero, when the source did not answer.",
}

TREND_WEEKS = 8  # the charts show this week and the seven before it
BRANDING_FILE = "branding.yaml"
FONT_FAMILY = "DejaVu Sans Report"  # the @font-face family in report.css: the shipped files, not the system's
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_LOGO_SUFFIXES = (".svg", ".png")


@dataclass(frozen=True)
class RenderedReport:
    markdown: str
    html: str
    pdf: bytes
    sha256: str


# --- branding ------------------------------------------------------------------------------
def _template_asset(value: str, what: str, root: Path) -> str:
    """A path relative to the templates folder that names an existing logo file inside it."""
    if not isinstance(value, str) or not value or value.startswith("/") or ":" in value or "\\" in value:
        raise ValueError(f"{what} {value!r} must be a path relative to {root}")
    path = (root / value).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ValueError(f"{what} {value!r} is not a file inside {root}")
    if path.suffix.lower() not in _LOGO_SUFFIXES:
        raise ValueError(f"{what} {value!r} must be one of {', '.join(_LOGO_SUFFIXES)}")
    return path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Branding:
    """How the MSP's reports look: name, two colours, logo, footer; optionally a customer logo.

    Colours are ``#rrggbb`` only, since they are written into the stylesheet; logo paths are
    relative to ``TEMPLATES_DIR`` and must name files inside it (the PDF renderer reads nothing
    else). Invalid values raise :class:`ValueError` naming the field.

    :param msp_name: shown next to the logo on every page.
    :param primary_colour: headings, table headers, chart values.
    :param accent_colour: chart lines and bars, rules.
    :param logo: the MSP logo, e.g. ``brand/msp-logo.svg``.
    :param footer: plain text at the foot of every page.
    :param customer_logo: the customer's logo on the first page, if any.
    :param customer_logo_dir: where :meth:`for_customer` looks for ``<CODE>.svg`` or ``<CODE>.png``.
    """

    msp_name: str
    primary_colour: str
    accent_colour: str
    logo: str
    footer: str
    customer_logo: str | None = None
    customer_logo_dir: str = "brand/customers"

    def __post_init__(self) -> None:
        root = TEMPLATES_DIR.resolve()
        for name in ("primary_colour", "accent_colour"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _HEX_COLOUR.match(value):
                raise ValueError(f"{name} {value!r} is not a colour such as '#0b3d62'")
        for name in ("msp_name", "footer"):
            if not isinstance(getattr(self, name), str) or not clean_text(getattr(self, name)):
                raise ValueError(f"{name} must be non-empty text")
        object.__setattr__(self, "logo", _template_asset(self.logo, "logo", root))
        if self.customer_logo is not None:
            object.__setattr__(self, "customer_logo", _template_asset(self.customer_logo, "customer_logo", root))

    def for_customer(self, code: str) -> Branding:
        """This branding with the customer's logo, when ``<customer_logo_dir>/<code>.svg|.png`` exists."""
        root = TEMPLATES_DIR.resolve()
        for suffix in _LOGO_SUFFIXES:
            candidate = f"{self.customer_logo_dir.rstrip('/')}/{code}{suffix}"
            path = (root / candidate).resolve()
            if re.fullmatch(r"[A-Za-z0-9_-]+", code) and path.is_relative_to(root) and path.is_file():
                return dataclasses.replace(self, customer_logo=candidate)
        return dataclasses.replace(self, customer_logo=None)

    def css(self) -> str:
        """The colours as CSS custom properties; safe to inline because both are validated hex."""
        return f":root {{ --brand-primary: {self.primary_colour}; --brand-accent: {self.accent_colour}; }}"


def load_branding(path: str | Path | None = None) -> Branding:
    """Read ``branding.yaml`` from the templates folder; errors name the file and the field."""
    import yaml

    path = Path(path) if path is not None else TEMPLATES_DIR / BRANDING_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: branding file not found") from None
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not valid YAML: {exc}") from None
    fields = {f.name for f in dataclasses.fields(Branding)}
    if not isinstance(raw, dict):
        raise ReportError(f"{path}: expected a mapping with {', '.join(sorted(fields))}")
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ReportError(f"{path}: unknown field(s) {', '.join(unknown)}")
    try:
        return Branding(**raw)
    except TypeError as exc:
        raise ReportError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ReportError(f"{path}: {exc}") from None


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


# --- sections: answered, partly answered or failed; fresh or stale --------------------------
SectionState = Literal["ok", "partial", "failed"]


def system_label(system: str) -> str:
    """The product name a customer knows ("Zabbix"), also for "zabbix + librenms" aggregates."""
    from msp_reports.sources import SYSTEMS

    return " + ".join(SYSTEMS[s].label if s in SYSTEMS else s for s in str(system).split(" + "))


def _parts(section: Any) -> list[SourceStatus]:
    """One status per system when two systems serve the domain; ``[]`` when one does."""
    return list(getattr(section, "parts", None) or [])


def section_state(section: Any) -> SectionState:
    """``partial``: some of the domain's systems answered and their data is shown."""
    if section.data is None:
        return "failed"
    parts = _parts(section)
    if not parts:
        return "ok" if section.status.ok else "failed"
    answered = sum(p.ok for p in parts)
    return "failed" if answered == 0 else ("ok" if answered == len(parts) else "partial")


def section_data(section: Any) -> Any:
    """The data a report may show: ``None`` for a failed section, whatever it carries."""
    return None if section_state(section) == "failed" else section.data


def freshness_limits(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    limits = dict(FRESHNESS_HOURS)
    for domain, hours in (overrides or {}).items():
        if domain not in FRESHNESS_HOURS:
            raise ValueError(f"freshness_hours: unknown domain {domain!r}; use one of {', '.join(FRESHNESS_HOURS)}")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
            raise ValueError(f"freshness_hours.{domain}: {hours!r} is not a positive number of hours")
        limits[domain] = float(hours)
    return limits


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def stale_statuses(section: Any, week_end: dt.datetime, hours: float) -> list[SourceStatus]:
    """The answering systems whose newest data point is more than ``hours`` before week end."""
    limit = _utc(week_end) - dt.timedelta(hours=hours)
    return [p for p in (_parts(section) or [section.status])
            if p.ok and p.as_of is not None and _utc(p.as_of) < limit]


# Jinja macros return plain text that ``finalize`` would escape a second time, so the few
# building blocks that mix Markdown with source values are functions that escape explicitly.
@jinja2.pass_context
def _source_line(context: Any, section: Any) -> Md:
    status, parts = section.status, _parts(section)
    fetched = f"fetched {_when(context, status.fetched_at)}"
    if len(parts) > 1:
        described = []
        for part in parts:
            if not part.ok:
                what = "unavailable"
            elif part.as_of is not None:
                what = f"data as of {_when(context, part.as_of)}"
            else:
                what = "as-of time not reported"
            described.append(f"{escape_markdown(system_label(part.system))} ({what})")
        return Md(f"_Sources: {', '.join(described)} · {fetched}_")
    line = f"_Source: {escape_markdown(system_label(status.system))} · {fetched}"
    if status.as_of is not None:
        line += f" · data as of {_when(context, status.as_of)}"
    elif status.ok:
        line += " · as-of time not reported"
    return Md(line + "_")


def _unavailable(section: Any) -> Md:
    """Customer-facing: which system, not the technical error (that goes to the internal roll-up)."""
    label = system_label(section.status.system)
    return Md(f"> **Data unavailable: {escape_markdown(label)}** did not provide this week's data in time.\n>\n"
              "> The figures for this section are left out rather than shown as zero; "
              "your account engineer will follow up.")


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _partial(section: Any) -> Md:
    failed = [escape_markdown(system_label(p.system)) for p in _parts(section) if not p.ok]
    answered = [escape_markdown(system_label(p.system)) for p in _parts(section) if p.ok]
    return Md(f"> **Partial data: {_listed(failed)}** did not provide this week's data in time.\n>\n"
              f"> The figures below come from {_listed(answered)} only; what "
              f"{'it monitors' if len(failed) == 1 else 'they monitor'} is left out rather than shown as zero.")


@jinja2.pass_context
def _banners(context: Any, section: Any) -> Md:
    """Every notice a section needs, above its figures: unavailable, partial, stale."""
    state = section_state(section)
    if state == "failed":
        return _unavailable(section)
    notices = [_partial(section)] if state == "partial" else []
    domain = section.status.domain
    hours = context["freshness_hours"][domain]
    for status in stale_statuses(section, context["snap"].week_end, hours):
        behind = (_utc(context["snap"].week_end) - _utc(status.as_of)).total_seconds() / 3600
        notices.append(Md(
            f"> **Stale data: {escape_markdown(system_label(status.system))}** last reported data at "
            f"{_when(context, status.as_of)}, {behind:,.0f} hours before the end of the week; we expect "
            f"{DOMAIN_LABELS[domain].lower()} data within {hours:g} hours.\n>\n"
            "> Anything after that time is missing from these figures; your account engineer will follow up."))
    return Md("\n\n".join(notices))


def _source_column(section: Any) -> bool:
    """Rows name their system when two systems serve the section."""
    return len(_parts(section)) > 1


def _system(value: object) -> Md:
    return escape_markdown(system_label(str(value)))


@jinja2.pass_context
def _delta(context: Any, name: str, digits: int = 0, unit: str = "") -> Md:
    change = context["rec"].deltas[name].change
    if change is None:
        return Md("no comparable figure last week")
    return _signed(change, digits, unit)


@jinja2.pass_context
def _versus(context: Any, name: str, digits: int = 0, unit: str = "") -> Md:
    """"+2 on last week", or why there is no comparison (no figure, or a partial week)."""
    change = context["rec"].deltas[name].change
    if change is None:
        return Md("no comparable figure for last week")
    return Md(f"{_signed(change, digits, unit)} on last week")


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
                       paragraphs=escape_paragraphs, system=_system)
    env.globals.update(source_line=_source_line, unavailable=_unavailable, delta=_delta, versus=_versus,
                       banners=_banners, state=section_state, source_column=_source_column,
                       capped=_capped)
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
    assets = section_data(snap.backups).assets
    return sum(a.rpo_met(snap.week_end) for a in assets), len(assets)


def _facts(rec: Reconciled) -> list[str]:
    """One clause per domain with data; a failed domain contributes nothing, never a zero."""
    snap, clauses = rec.snapshot, []
    if (u := section_data(snap.uptime)) is not None and u.overall_pct is not None:
        rows = [r for r in u.rows if r.uptime_pct is not None]
        clause = f"uptime averaged {u.overall_pct:.2f}%"
        change = rec.deltas.get("uptime_pct")
        if rec.has_baseline and change is not None and change.change is not None:
            clause += f" ({_signed(change.change, 2, ' points')} on last week)"
        clauses.append(clause + f", {sum(bool(r.slo_met) for r in rows)} of {len(rows)} targets met")
    if (t := section_data(snap.tickets)) is not None:
        clauses.append(f"{_plural(t.opened, 'ticket')} opened and {t.closed} closed, "
                       f"{_plural(t.sla_breaches, 'SLA breach', 'SLA breaches')}, {t.backlog_end} open at week end")
    if (b := section_data(snap.backups)) is not None and b.assets:
        met, total = _rpo_met(snap)
        clauses.append(f"{met} of {_plural(total, 'backed-up asset')} within recovery point objective")
    if (s := section_data(snap.security)) is not None:
        still_open = sum(i.status == "open" for i in s.incidents)
        clause = f"{_plural(still_open, 'security incident')} open"
        if s.secure_score_pct is not None:
            clause += f", secure score {s.secure_score_pct:.1f}%"
        clauses.append(clause)
    if (w := section_data(snap.sites)) is not None:
        values = [c.availability_pct for c in w.checks if c.availability_pct is not None]
        if values:
            clauses.append(f"public sites {sum(values) / len(values):.2f}% available")
    return clauses


def _unavailable_sentence(snap: WeeklySnapshot) -> str | None:
    """Which areas have no figures, and which show only some of their systems: one sentence."""
    failed, partial = [], []
    for domain, section in snap.sections().items():
        state = section_state(section)
        if state == "failed":
            failed.append(f"{DOMAIN_LABELS[domain].lower()} ({system_label(section.status.system)})")
        elif state == "partial":
            answered = [system_label(p.system) for p in _parts(section) if p.ok]
            missing = [system_label(p.system) for p in _parts(section) if not p.ok]
            partial.append(f"{DOMAIN_LABELS[domain].lower()} figures cover {_listed(answered)} only, as "
                           f"{_listed(missing)} did not answer")
    if not failed and not partial:
        return None
    clauses = []
    if failed:
        verb = "was" if len(failed) == 1 else "were"
        clauses.append(f"Data for {_listed(failed)} {verb} unavailable this week, so "
                       f"{'that area is' if len(failed) == 1 else 'those areas are'} not counted in these figures")
    if partial:
        clauses.append("; ".join(partial))
    text = "; ".join(clauses) + "."
    return text[0].upper() + text[1:]


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
    any_data = any(section_state(s) != "failed" for s in snap.sections().values())
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
        met, total = _rpo_met(snap) if section_data(snap.backups) is not None else (0, 0)
        meaning = "Every area we could measure met its targets."
        if met < total:  # older than the RPO, but not yet stale enough for a flag
            missed = total - met
            meaning = (f"Every other area we could measure met its targets; {_plural(missed, 'backed-up asset')} "
                       f"missed {'its' if missed == 1 else 'their'} recovery point objective at week end.")
    if meaning and len(problems) > 2:
        listed = "all are" if len(rec.flags) <= TABLE_ROW_LIMIT else f"the first {TABLE_ROW_LIMIT} are"
        meaning = meaning[:-1] + f"; {listed} listed under Recommendations."

    action = f"{'Our first action' if rec.flags else 'Next step'}: {recommendations(rec)[0]}"
    return _Summary(happened, context, meaning, action)


def executive_summary(rec: Reconciled) -> list[str]:
    """Three to six sentences, worst first: what happened, what it means, what we do.

    At most two findings are quoted; a failed source is named, never counted as zero.
    """
    return _summary(rec).sentences()


@dataclass(frozen=True)
class Action:
    text: str
    area: str  # the domain label of the worst flag that asks for it


def actions(rec: Reconciled) -> list[Action]:
    """What we do about the flags, worst first, each once; a quiet week gets a standing one."""
    first: dict[str, str] = {}
    for flag in _sorted_flags(rec.flags):
        first.setdefault(flag.recommendation.strip(), DOMAIN_LABELS.get(flag.domain, flag.domain))
    return [Action(text, area) for text, area in first.items()] or [Action(STANDING_RECOMMENDATION, "General")]


def recommendations(rec: Reconciled) -> list[str]:
    """The text of :func:`actions`."""
    return [a.text for a in actions(rec)]


def report_week(rec: Reconciled) -> ReportWeek:
    return ReportWeek.starting(rec.snapshot.week_of, rec.snapshot.timezone)


def report_title(rec: Reconciled, customer: Customer) -> str:
    return f"{clean_text(customer.name)} — weekly report, {report_week(rec).label()}"


# --- Markdown ---------------------------------------------------------------------------
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


# --- long tables ----------------------------------------------------------------------
TABLE_ROW_LIMIT = 30  # rows one table of records shows; one summary line accounts for the rest
ACTION_LIMIT = 10  # numbered items under "Actions this week"
BREAKDOWN_LIMIT = 5  # types a summary line names; the rest are counted together


@dataclass(frozen=True)
class LongTable:
    """How a list of records is cut when it is long: what a record is called, the type the
    rest is counted by, and which records come first when the list is cut, so that what needs
    attention is shown. The cut is a rendering decision only: the stored snapshot keeps every
    record, and every total in the report (counts, averages, the incident matrix) uses them all.
    """

    noun: str  # singular; "s" makes the plural
    by: str
    kind: Callable[[Any], object]
    attention: Callable[[Any], Any] | None = None
    limit: int = TABLE_ROW_LIMIT


@dataclass(frozen=True)
class Shown:
    rows: list[Any]
    rest: Md  # the summary line; empty when every record is shown


def cut(items: Sequence[Any], table: LongTable) -> Shown:
    """The first ``table.limit`` records and "… and 9,950 more changes, by status: …"."""
    if len(items) <= table.limit:
        return Shown(list(items), Md(""))
    ordered = sorted(items, key=table.attention) if table.attention else list(items)
    rows, left = ordered[:table.limit], ordered[table.limit:]
    counts = Counter(clean_text(table.kind(item), 60) or "not stated" for item in left)
    named = counts.most_common(BREAKDOWN_LIMIT)
    parts = [f"{n:,} {escape_markdown(label, 60)}" for label, n in named]
    if other := len(left) - sum(n for _, n in named):
        parts.append(f"{other:,} other")
    noun = table.noun if len(left) == 1 else table.noun + "s"
    return Shown(rows, Md(f"_… and {len(left):,} more {noun}, by {table.by}: {', '.join(parts)}. "
                          "Your account engineer can send you the full list._"))


def _uptime_result(row: Any) -> str:
    return "no data" if row.uptime_pct is None else ("target met" if row.slo_met else "target missed")


def long_tables(snap: WeeklySnapshot) -> dict[str, LongTable]:
    """Every list of records the report shows, by the name the template uses."""
    return {
        "uptime": LongTable("row", "result", _uptime_result,
                            lambda r: {"target missed": 0, "no data": 1}.get(_uptime_result(r), 2)),
        "changes": LongTable("change", "status", lambda c: c.status),
        "assets": LongTable("asset", "last status", lambda a: a.last_status,
                            lambda a: bool(a.rpo_met(snap.week_end))),
        "incidents": LongTable("incident", "severity", lambda i: i.severity.capitalize()),
        "sites": LongTable("site", "status", lambda c: c.status_now,
                           lambda c: (c.availability_pct is None, c.availability_pct or 0.0)),
        "findings": LongTable("finding", "priority", lambda f: f.severity.capitalize()),
        "actions": LongTable("action", "area", lambda a: a.area, limit=ACTION_LIMIT),
    }


@jinja2.pass_context
def _capped(context: Any, name: str, items: Sequence[Any]) -> Shown:
    return cut(items, long_tables(context["snap"])[name])


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
        flags=_sorted_flags(rec.flags),
        commentary=commentary if commentary and commentary.strip() else "",
        incident_matrix=_incident_matrix(rec),
        incidents=_incidents(rec),
        open_incidents=sum(i.status == "open" for i in _incidents(rec)),
        no_baseline=NO_BASELINE,
        standing_recommendation=STANDING_RECOMMENDATION,
        domain_labels=DOMAIN_LABELS,
        freshness_hours=freshness_limits(freshness_hours),
        metric_definitions={term: escape_markdown(text, SUMMARY_LIMIT) for term, text in METRIC_DEFINITIONS.items()},
        trend_weeks=TREND_WEEKS,
    )


# --- trends -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrendMetric:
    key: str
    title: str
    unit: str
    digits: int
    kind: Literal["line", "bar"]
    domain: str
    value: Callable[[WeeklySnapshot], float | None]


def _complete(section: Any) -> Any:
    """Data only when every system of the section answered: a partial week is not comparable."""
    return section.data if section_state(section) == "ok" else None


def _uptime_value(snap: WeeklySnapshot) -> float | None:
    data = _complete(snap.uptime)
    return None if data is None else data.overall_pct


def _backlog_value(snap: WeeklySnapshot) -> float | None:
    data = _complete(snap.tickets)
    return None if data is None else data.backlog_end


def _secure_score_value(snap: WeeklySnapshot) -> float | None:
    data = _complete(snap.security)
    return None if data is None else data.secure_score_pct


TREND_METRICS = (
    TrendMetric("uptime", "Uptime, average of all rows", "%", 2, "line", "uptime", _uptime_value),
    TrendMetric("backlog", "Ticket backlog at week end", "", 0, "bar", "tickets", _backlog_value),
    TrendMetric("secure_score", "Secure score", "%", 1, "line", "security", _secure_score_value),
)


@dataclass(frozen=True)
class Trend:
    """One metric over the chart's weeks, oldest first; ``None`` where there is no comparable figure.

    ``partial`` marks the weeks whose section only some of its systems answered.
    """

    metric: TrendMetric
    weeks: list[dt.date]
    values: list[float | None]
    partial: list[bool]


def trends(rec: Reconciled, history: Iterable[WeeklySnapshot] | None = None) -> list[Trend]:
    """The last ``TREND_WEEKS`` weeks from the stored snapshots; a missing, failed or partial week is a gap."""
    current = rec.snapshot
    weeks = [current.week_of - dt.timedelta(days=7 * n) for n in range(TREND_WEEKS - 1, -1, -1)]
    by_week = {s.week_of: s for s in history or () if s.customer == current.customer}
    by_week[current.week_of] = current
    found = [by_week.get(w) for w in weeks]
    return [Trend(m, weeks, [None if s is None else m.value(s) for s in found],
                  [s is not None and section_state(getattr(s, m.domain)) == "partial" for s in found])
            for m in TREND_METRICS]


# The chart canvas in SVG units (4 per millimetre when drawn 55 mm wide) and its plot area.
CHART_SIZE = (220, 124)
_PLOT_LEFT, _PLOT_TOP, _PLOT_RIGHT, _PLOT_BOTTOM = 38, 12, 214, 100


def _axis(trend: Trend) -> tuple[float, float]:
    present = [v for v in trend.values if v is not None]
    if trend.metric.kind == "bar":
        top = max(present, default=0)
        hi = next((c for c in (4, 10, 20, 40, 100, 200, 400, 1000) if c >= top), 2 * math.ceil(top / 2))
        return 0.0, float(hi)
    if trend.metric.key == "uptime":
        return float(min(math.floor(min(present, default=99)), 99)), 100.0
    lo = min(max(10 * math.floor(min(present, default=0) / 10), 0), 90)
    hi = min(max(10 * math.ceil(max(present, default=100) / 10), lo + 10), 100)
    return float(lo), float(hi)


def _tick(value: float, unit: str) -> str:
    return f"{value:g}{unit}"


def _chart(trend: Trend, colour: str) -> dict[str, Any]:
    """Coordinates for chart.svg.j2: numbers from the snapshots only, never source text."""
    lo, hi = _axis(trend)
    n = len(trend.weeks)
    slot = (_PLOT_RIGHT - _PLOT_LEFT) / n

    def x(i: int) -> float:
        return round(_PLOT_LEFT + slot * (i + 0.5), 1)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return round(_PLOT_BOTTOM - (v - lo) / (hi - lo) * (_PLOT_BOTTOM - _PLOT_TOP), 1)

    unit, digits = trend.metric.unit, trend.metric.digits
    chart: dict[str, Any] = {
        "title": trend.metric.title, "width": CHART_SIZE[0], "height": CHART_SIZE[1], "colour": colour,
        "left": _PLOT_LEFT, "right": _PLOT_RIGHT, "bottom": _PLOT_BOTTOM, "font": FONT_FAMILY,
        "grid": [{"y": y(v), "label": _tick(v, unit)} for v in (lo, (lo + hi) / 2, hi)],
        "weeks": [{"x": x(i), "label": f"{w.day} {w:%b}"} for i, w in enumerate(trend.weeks) if (n - 1 - i) % 2 == 0],
        "gaps": [{"x": x(i), "y": _PLOT_BOTTOM - 4, "label": "part" if trend.partial[i] else "n/a"}
                 for i, v in enumerate(trend.values) if v is None],
        "bars": [], "lines": [], "points": [],
    }
    if trend.metric.kind == "bar":
        width = round(slot * 0.6, 1)
        for i, v in enumerate(trend.values):
            if v is not None:
                top = y(v)
                chart["bars"].append({"x": round(x(i) - width / 2, 1), "y": top, "width": width,
                                      "height": round(_PLOT_BOTTOM - top, 1), "cx": x(i),
                                      "label": f"{v:,.{digits}f}", "label_y": round(top - 2.5, 1)})
    else:
        run: list[str] = []
        for i, v in enumerate([*trend.values, None]):
            if v is None:
                if len(run) > 1:
                    chart["lines"].append(" ".join(run))
                run = []
                continue
            run.append(f"{x(i)},{y(v)}")
            chart["points"].append({"x": x(i), "y": y(v), "current": i == n - 1})
    return chart


def _trend_notes(trend: Trend) -> list[str]:
    unit, digits = trend.metric.unit, trend.metric.digits
    present = [v for v in trend.values if v is not None]
    current = trend.values[-1]
    if current is not None:
        notes = [f"This week: {current:,.{digits}f}{unit}"]
    else:
        notes = ["This week: " + ("partial data, not plotted" if trend.partial[-1] else "no data")]
    low, high = (f"{v:,.{digits}f}" for v in (min(present, default=0), max(present, default=0)))
    if len(present) > 1 and low != high:
        notes.append(f"Range over {len(trend.weeks)} weeks: {low}–{high}{unit}")
    elif len(present) > 1:
        notes.append(f"Same in all {len(present)} weeks on record")
    return notes


def trends_html(rec: Reconciled, history: Iterable[WeeklySnapshot] | None = None,
                branding: Branding | None = None) -> Markup:
    """Three small inline SVG charts; their text is real text in the PDF."""
    branding = branding or load_branding()
    series = trends(rec, history)
    env = _page_environment(TEMPLATES_DIR.resolve())
    svg = env.get_template(CHART_TEMPLATE)
    charts = [{"title": t.metric.title, "notes": _trend_notes(t),
               "svg": Markup(svg.render(c=_chart(t, branding.accent_colour)))} for t in series]
    earlier = sum(v is not None for t in series for v in t.values[:-1])
    return Markup(env.get_template(TRENDS_TEMPLATE).render(
        charts=charts, weeks=TREND_WEEKS, no_history=earlier == 0, any_partial=any(any(t.partial) for t in series)))


_BLOCK = re.compile(r'<pre><code class="language-msp-block">([a-z]+)\n</code></pre>\n?')


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
    return _page_environment(root).get_template(PAGE_TEMPLATE).render(
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


_NO_FULL_COLLECTIONS = threading.Lock()
_renders_running = 0
_saved_thresholds: tuple[int, int, int] | None = None


@contextlib.contextmanager
def _no_full_collections():
    """No full (oldest-generation) collections while the block runs; the young ones still run.

    WeasyPrint allocates millions of small objects, so full collections run during a render; in
    an Airflow process each one also walks the 0.8 million objects that Airflow, SQLAlchemy and
    FastAPI hold (0.4 s apiece here), which made a render 30 % slower in a task than in a plain
    process. The render's own short-lived cycles die in the young generations, which still run.
    The third threshold is raised for the block and put back after, so the freeze state is not
    touched: a process whose start-up heap is frozen (Airflow's executors ``gc.freeze()`` before
    they fork task processes) keeps it frozen. Process-wide; overlapping renders (the review
    page) count in and out, and the last one out restores the thresholds.
    """
    global _renders_running, _saved_thresholds
    with _NO_FULL_COLLECTIONS:
        if _renders_running == 0:
            _saved_thresholds = gc.get_threshold()
            gc.set_threshold(_saved_thresholds[0], _saved_thresholds[1], 1_000_000)
        _renders_running += 1
    try:
        yield
    finally:
        with _NO_FULL_COLLECTIONS:
            _renders_running -= 1
            if _renders_running == 0 and _saved_thresholds is not None:
                gc.set_threshold(*_saved_thresholds)


def html_to_pdf(html: str) -> bytes:
    """Render with WeasyPrint; nothing outside the templates is read, nothing is attached."""
    with _no_full_collections():
        return _weasyprint_pdf(html)


def _weasyprint_pdf(html: str) -> bytes:
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


# --- Teams ------------------------------------------------------------------------------
def _text(value: object, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape_markdown(value), "wrap": True, **extra}


def _key_numbers(rec: Reconciled) -> list[dict[str, str]]:
    snap = rec.snapshot

    def missing(domain: str) -> str:
        return escape_markdown(f"Unavailable ({system_label(snap.sections()[domain].status.system)})")

    facts = []
    uptime = section_data(snap.uptime)
    facts.append(("Uptime", missing("uptime") if uptime is None else _pct(uptime.overall_pct)))
    if (t := section_data(snap.tickets)) is None:
        facts.append(("Tickets", missing("tickets")))
    else:
        facts.append(("Tickets opened / closed", f"{t.opened} / {t.closed}"))
        facts.append(("SLA breaches", str(t.sla_breaches)))
        facts.append(("Backlog at week end", str(t.backlog_end)))
    if section_data(snap.backups) is None:
        facts.append(("Backups", missing("backups")))
    else:
        met, total = _rpo_met(snap)
        facts.append(("Backups within RPO", f"{met} of {total}"))
    if (s := section_data(snap.security)) is None:
        facts.append(("Security", missing("security")))
    else:
        facts.append(("Open incidents", str(sum(i.status == "open" for i in s.incidents))))
        facts.append(("Secure score", _pct(s.secure_score_pct, 1)))
    if (w := section_data(snap.sites)) is None:
        facts.append(("Public sites", missing("sites")))
    else:
        down = sum(c.availability_pct is not None and c.availability_pct < 100 for c in w.checks)
        facts.append(("Public sites with downtime", f"{down} of {len(w.checks)}"))
    return [{"title": title, "value": value} for title, value in facts]


def data_caveats(snap: WeeklySnapshot, freshness_hours: Mapping[str, float] | None = None) -> list[str]:
    """Plain sentences for sections shown with partial or stale data (failed ones say so already)."""
    limits = freshness_limits(freshness_hours)
    caveats = []
    for domain, section in snap.sections().items():
        state = section_state(section)
        if state == "failed":
            continue
        label = DOMAIN_LABELS[domain]
        if state == "partial":
            missing = [system_label(p.system) for p in _parts(section) if not p.ok]
            answered = [system_label(p.system) for p in _parts(section) if p.ok]
            caveats.append(f"{label}: {_listed(missing)} unavailable; figures from {_listed(answered)} only.")
        for status in stale_statuses(section, snap.week_end, limits[domain]):
            local = _local(status.as_of, snap.timezone)
            caveats.append(f"{label}: {system_label(status.system)} data as of {local:%a %d %b %H:%M}, "
                           f"older than the {limits[domain]:g} hours we expect.")
    return caveats


def _card_lines(rec: Reconciled) -> list[str]:
    """Three lines from the executive summary: worst finding, what it means, what we do."""
    summary = _summary(rec)
    middle = summary.meaning or (summary.context[0] if summary.context else "")
    return [line for line in (summary.happened[0], middle, summary.action) if line]


def teams_summary(rec: Reconciled, customer: Customer, msp: Msp, *,
                  freshness_hours: Mapping[str, float] | None = None) -> dict[str, Any]:
    """An Adaptive Card 1.4 for the channel post, built from the same words as the PDF."""
    flags = _sorted_flags(rec.flags)
    body: list[dict[str, Any]] = [
        _text(report_title(rec, customer), size="Large", weight="Bolder"),
        _text(f"Prepared by {msp.name} · times in {rec.snapshot.timezone}", isSubtle=True, spacing="None"),
        *(_text(line) for line in _card_lines(rec)),
        {"type": "FactSet", "facts": _key_numbers(rec)},
    ]
    caveats = data_caveats(rec.snapshot, freshness_hours)
    if caveats:
        body.append(_text("Data notes", weight="Bolder", separator=True))
        body += [_text(c, color="Warning", spacing="Small") for c in caveats]
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

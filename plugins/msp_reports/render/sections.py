"""Whether a report section may show figures, and the notices above them.

A section whose source failed renders a "Data unavailable" notice and no figures: a missing
number is never shown, summarised or compared as zero. A section served by two systems of
which one failed shows the other's figures under a "Partial data" banner; data older than
:data:`FRESHNESS_HOURS` at week end gets a "Stale data" banner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import jinja2

from msp_reports.escaping import Md, escape_markdown
from msp_reports.render.filters import when

if TYPE_CHECKING:
    from msp_reports.snapshot import SourceStatus

SectionState = Literal["ok", "partial", "failed"]

DOMAIN_LABELS = {"uptime": "Uptime", "tickets": "Tickets", "backups": "Backups",
                 "security": "Security", "sites": "Public sites"}

# How old (hours before week end) each domain's newest data point may be before the section
# carries a "Stale data" banner. Monitoring is near real time; the PSA and backup appliances
# report in batches; Defender's secure score is recomputed about once a day.
FRESHNESS_HOURS: dict[str, float] = {"uptime": 6, "tickets": 24, "backups": 26, "security": 48, "sites": 6}


def system_label(system: str) -> str:
    """The product name a customer knows ("Zabbix"), also for "zabbix + librenms" aggregates."""
    from msp_reports.sources import SYSTEMS

    return " + ".join(SYSTEMS[s].label if s in SYSTEMS else s for s in str(system).split(" + "))


def section_parts(section: Any) -> list[SourceStatus]:
    """One status per system when two systems serve the domain; ``[]`` when one does."""
    return list(getattr(section, "parts", None) or [])


def section_state(section: Any) -> SectionState:
    """``partial``: some of the domain's systems answered and their data is shown."""
    if section.data is None:
        return "failed"
    parts = section_parts(section)
    if not parts:
        return "ok" if section.status.ok else "failed"
    answered = sum(p.ok for p in parts)
    return "failed" if answered == 0 else ("ok" if answered == len(parts) else "partial")


def section_data(section: Any) -> Any:
    """The data a report may show: ``None`` for a failed section, whatever it carries."""
    return None if section_state(section) == "failed" else section.data


def freshness_limits(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """:data:`FRESHNESS_HOURS` with per-domain overrides; an unknown domain or a bad number raises."""
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
    return [p for p in (section_parts(section) or [section.status])
            if p.ok and p.as_of is not None and _utc(p.as_of) < limit]


def listed(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# Jinja macros return plain text that ``finalize`` would escape a second time, so the few
# building blocks that mix Markdown with source values are functions that escape explicitly.
@jinja2.pass_context
def source_line(context: Any, section: Any) -> Md:
    """"Source: Zabbix · fetched … · data as of …", one entry per system when two serve the section."""
    status, parts = section.status, section_parts(section)
    fetched = f"fetched {when(context, status.fetched_at)}"
    if len(parts) > 1:
        described = []
        for part in parts:
            if not part.ok:
                what = "unavailable"
            elif part.as_of is not None:
                what = f"data as of {when(context, part.as_of)}"
            else:
                what = "as-of time not reported"
            described.append(f"{escape_markdown(system_label(part.system))} ({what})")
        return Md(f"_Sources: {', '.join(described)} · {fetched}_")
    line = f"_Source: {escape_markdown(system_label(status.system))} · {fetched}"
    if status.as_of is not None:
        line += f" · data as of {when(context, status.as_of)}"
    elif status.ok:
        line += " · as-of time not reported"
    return Md(line + "_")


def unavailable(section: Any) -> Md:
    """Customer-facing: which system, not the technical error (that goes to the internal roll-up)."""
    label = system_label(section.status.system)
    return Md(f"> **Data unavailable: {escape_markdown(label)}** did not provide this week's data in time.\n>\n"
              "> The figures for this section are left out rather than shown as zero; "
              "your account engineer will follow up.")


def _partial(section: Any) -> Md:
    failed = [escape_markdown(system_label(p.system)) for p in section_parts(section) if not p.ok]
    answered = [escape_markdown(system_label(p.system)) for p in section_parts(section) if p.ok]
    return Md(f"> **Partial data: {listed(failed)}** did not provide this week's data in time.\n>\n"
              f"> The figures below come from {listed(answered)} only; what "
              f"{'it monitors' if len(failed) == 1 else 'they monitor'} is left out rather than shown as zero.")


@jinja2.pass_context
def banners(context: Any, section: Any) -> Md:
    """Every notice a section needs, above its figures: unavailable, partial, stale."""
    state = section_state(section)
    if state == "failed":
        return unavailable(section)
    notices = [_partial(section)] if state == "partial" else []
    domain = section.status.domain
    hours = context["freshness_hours"][domain]
    for status in stale_statuses(section, context["snap"].week_end, hours):
        behind = (_utc(context["snap"].week_end) - _utc(status.as_of)).total_seconds() / 3600
        notices.append(Md(
            f"> **Stale data: {escape_markdown(system_label(status.system))}** last reported data at "
            f"{when(context, status.as_of)}, {behind:,.0f} hours before the end of the week; we expect "
            f"{DOMAIN_LABELS[domain].lower()} data within {hours:g} hours.\n>\n"
            "> Anything after that time is missing from these figures; your account engineer will follow up."))
    return Md("\n\n".join(notices))


def source_column(section: Any) -> bool:
    """Rows name their system when two systems serve the section."""
    return len(section_parts(section)) > 1


def precedence_note(section: Any) -> Md:
    """Under a table two systems serve: which system's figure a site and class shows (registry order)."""
    parts = section_parts(section)
    if len(parts) < 2:
        return Md("")
    names = [escape_markdown(system_label(p.system)) for p in parts]
    return Md(f"_Where {listed(names)} both watch a site and device class, the row shows {names[0]}'s figure "
              f"(listed first for you), and {listed(names[1:])}'s only where {names[0]} has none. "
              "Downtime is in minutes of the whole row for every system._")


def system_name(value: object) -> Md:
    """The ``system`` filter: a row's system as the customer knows it, escaped."""
    return escape_markdown(system_label(str(value)))

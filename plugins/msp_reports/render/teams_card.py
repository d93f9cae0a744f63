"""The Teams channel post: an Adaptive Card built from the same words and numbers as the PDF.

Every text is escaped for Markdown (Teams renders a subset of it); a failed section says
"Unavailable", never zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msp_reports.escaping import escape_markdown
from msp_reports.reconcile import Reconciled
from msp_reports.render.filters import local_time, pct
from msp_reports.render.sections import (
    DOMAIN_LABELS, freshness_limits, listed, section_data, section_parts, section_state, stale_statuses,
    system_label,
)
from msp_reports.render.wording import report_title, rpo_met, sorted_flags, summarise

if TYPE_CHECKING:
    from msp_reports.registry import Customer, Msp
    from msp_reports.snapshot import WeeklySnapshot


def _text(value: object, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape_markdown(value), "wrap": True, **extra}


def _key_numbers(rec: Reconciled) -> list[dict[str, str]]:
    """The FactSet: one or more figures per domain, or which system did not answer."""
    snap = rec.snapshot

    def missing(domain: str) -> str:
        return escape_markdown(f"Unavailable ({system_label(snap.sections()[domain].status.system)})")

    facts = []
    uptime = section_data(snap.uptime)
    facts.append(("Uptime", missing("uptime") if uptime is None else pct(uptime.overall_pct)))
    if (t := section_data(snap.tickets)) is None:
        facts.append(("Tickets", missing("tickets")))
    else:
        facts.append(("Tickets opened / closed", f"{t.opened} / {t.closed}"))
        facts.append(("SLA breaches", str(t.sla_breaches)))
        facts.append(("Backlog at week end", str(t.backlog_end)))
    if section_data(snap.backups) is None:
        facts.append(("Backups", missing("backups")))
    else:
        met, total = rpo_met(snap)
        facts.append(("Backups within RPO", f"{met} of {total}"))
    if (s := section_data(snap.security)) is None:
        facts.append(("Security", missing("security")))
    else:
        facts.append(("Open incidents", str(sum(i.status == "open" for i in s.incidents))))
        facts.append(("Secure score", pct(s.secure_score_pct, 1)))
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
            missing = [system_label(p.system) for p in section_parts(section) if not p.ok]
            answered = [system_label(p.system) for p in section_parts(section) if p.ok]
            caveats.append(f"{label}: {listed(missing)} unavailable; figures from {listed(answered)} only.")
        for status in stale_statuses(section, snap.week_end, limits[domain]):
            local = local_time(status.as_of, snap.timezone)
            caveats.append(f"{label}: {system_label(status.system)} data as of {local:%a %d %b %H:%M}, "
                           f"older than the {limits[domain]:g} hours we expect.")
    return caveats


def _card_lines(rec: Reconciled) -> list[str]:
    """Three lines from the executive summary: worst finding, what it means, what we do."""
    summary = summarise(rec)
    middle = summary.meaning or (summary.context[0] if summary.context else "")
    return [line for line in (summary.happened[0], middle, summary.action) if line]


def teams_summary(rec: Reconciled, customer: Customer, msp: Msp, *,
                  freshness_hours: Mapping[str, float] | None = None) -> dict[str, Any]:
    """An Adaptive Card 1.4 for the channel post, built from the same words as the PDF."""
    flags = sorted_flags(rec.flags)
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

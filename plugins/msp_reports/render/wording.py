"""The report's own words: the executive summary, the actions, the title, the appendix.

Deterministic and worst first: the same week gives the same sentences whatever order the flags
arrive in. A failed source is named, never counted as zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msp_reports.escaping import clean_text
from msp_reports.reconcile import SEVERITY_ORDER, Flag, Reconciled, customer_action
from msp_reports.render.filters import signed
from msp_reports.render.sections import (
    DOMAIN_LABELS, FRESHNESS_HOURS, listed, section_data, section_parts, section_state, system_label,
)
from msp_reports.render.recovery import RECOVERY_DEFINITIONS, RECOVERY_KIND_ORDER, recovery_clause
from msp_reports.render.tables import TABLE_ROW_LIMIT
from msp_reports.week import ReportWeek

if TYPE_CHECKING:
    from msp_reports.registry import Customer, Thresholds
    from msp_reports.snapshot import WeeklySnapshot

NO_BASELINE = "No previous week on record; week-over-week changes start next week."
STANDING_RECOMMENDATION = (
    "Keep the current patching and backup-verification schedule; we will review capacity and "
    "lifecycle risks with you at the next quarterly business review."
)

# Within one severity, the flag an executive should read first comes first: a trend in the
# service desk outranks a row that missed its uptime target by a few hundredths of a point.
KIND_ORDER = {"sla_drop": 0, "backup_stale": 1, "open_incident": 2, "ticket_trend": 3,
              "slo_missed": 4, "rpo_missed": 5, "source_unavailable": 6}
KIND_ORDER.update(RECOVERY_KIND_ORDER)

# The appendix "How we measure", in the customer's words. The README quotes these.
METRIC_DEFINITIONS: dict[str, str] = {
    "Uptime %": "The share of the week a service (one site and device class) was up: time up divided by "
                "time up plus time down, from the monitoring system's daily figures. Time before a service "
                "existed counts as no data, not as uptime. The average is the plain mean of the rows.",
    "Downtime (min)": "Minutes a service was down in the week. Where the monitoring system measures each "
                      "device (LibreNMS), it is the devices' downtime divided by the number of devices, so that it "
                      "always matches the uptime figure beside it.",
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
    **RECOVERY_DEFINITIONS,
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


def finding_rules(thresholds: Thresholds) -> str:
    """When we raise a finding, with this customer's thresholds: the appendix states them."""
    return (f"We raise a critical finding when a site and device class's uptime falls {thresholds.sla_drop_points:g} "
            f"points or more on the week before, when an asset has no successful backup for more than "
            f"{thresholds.backup_stale_hours:g} hours, and for an open high-severity incident. We raise a point to "
            f"watch when uptime is below its target, when a backup is older than its recovery point objective, "
            f"for any other open incident, when the backlog grows by {thresholds.backlog_growth} or more while more "
            f"tickets are opened than closed, and when SLA breaches rise by {thresholds.sla_breach_growth} or more "
            "on the week before.")


def metric_definitions(thresholds: Thresholds) -> dict[str, str]:
    """:data:`METRIC_DEFINITIONS` with this customer's thresholds, and when each finding is raised."""
    stale = thresholds.backup_stale_hours
    definitions = {(f"Backup not run in {stale:g} h" if term == "Backup not run in 48 h" else term):
                   (text.replace("48 hours", f"{stale:g} hours") if term == "Backup not run in 48 h" else text)
                   for term, text in METRIC_DEFINITIONS.items()}
    definitions["SLA breach"] += (f" A rise of {thresholds.sla_breach_growth} or more on the week before is "
                                  "raised as a finding.")
    definitions["Findings"] = finding_rules(thresholds)
    return definitions


def sorted_flags(flags: Iterable[Flag]) -> list[Flag]:
    """Worst first: severity, then :data:`KIND_ORDER`, then domain, subject and message."""
    return sorted(flags, key=lambda f: (SEVERITY_ORDER[f.severity], KIND_ORDER.get(f.kind, 9),
                                        f.domain, f.subject, f.message))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def rpo_met(snap: WeeklySnapshot) -> tuple[int, int]:
    """(assets within their recovery point objective at week end, assets); backups must have data."""
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
            clause += f" ({signed(change.change, 2, ' points')} on last week)"
        clauses.append(clause + f", {sum(bool(r.slo_met) for r in rows)} of {len(rows)} targets met")
    if (t := section_data(snap.tickets)) is not None:
        clauses.append(f"{_plural(t.opened, 'ticket')} opened and {t.closed} closed, "
                       f"{_plural(t.sla_breaches, 'SLA breach', 'SLA breaches')}, {t.backlog_end} open at week end")
    if (b := section_data(snap.backups)) is not None and b.assets:
        met, total = rpo_met(snap)
        clauses.append(f"{met} of {_plural(total, 'backed-up asset')} within recovery point objective")
        clauses.extend([c] if (c := recovery_clause(snap)) else [])
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
            answered = [system_label(p.system) for p in section_parts(section) if p.ok]
            missing = [system_label(p.system) for p in section_parts(section) if not p.ok]
            partial.append(f"{DOMAIN_LABELS[domain].lower()} figures cover {listed(answered)} only, as "
                           f"{listed(missing)} did not answer")
    if not failed and not partial:
        return None
    clauses = []
    if failed:
        verb = "was" if len(failed) == 1 else "were"
        clauses.append(f"Data for {listed(failed)} {verb} unavailable this week, so "
                       f"{'that area is' if len(failed) == 1 else 'those areas are'} not counted in these figures")
    if partial:
        clauses.append("; ".join(partial))
    text = "; ".join(clauses) + "."
    return text[0].upper() + text[1:]


def missed_targets(rec: Reconciled) -> list[str]:
    """Every target the week missed, flagged or not: uptime rows below target, SLA breaches, RPOs.

    A week with any of these is never called healthy, even when no alert threshold was crossed.
    """
    snap, missed = rec.snapshot, []
    if (u := section_data(snap.uptime)) is not None:
        below = [r for r in u.rows if r.slo_met is False]
        if below:
            missed.append(f"{_plural(len(below), 'uptime row')} below target")
    if (t := section_data(snap.tickets)) is not None and t.sla_breaches:
        clause = f"{_plural(t.sla_breaches, 'ticket')} missed {'its' if t.sla_breaches == 1 else 'their'} SLA"
        before = rec.deltas.get("sla_breaches")
        if rec.has_baseline and before is not None and before.previous is not None:
            clause += f" ({before.previous:g} the week before)"
        missed.append(clause)
    if section_data(snap.backups) is not None:
        met, total = rpo_met(snap)
        if met < total:
            missed.append(f"{_plural(total - met, 'backed-up asset')} missed "
                          f"{'its' if total - met == 1 else 'their'} recovery point objective")
    return missed


@dataclass(frozen=True)
class Summary:
    """The executive summary in its parts; the Teams card quotes some of them."""

    happened: list[str]  # worst findings first, or the healthy-week statement with its numbers
    context: list[str]  # the week's figures and which sources were unavailable
    meaning: str
    action: str

    def sentences(self) -> list[str]:
        return [*self.happened, *self.context, *([self.meaning] if self.meaning else []), self.action]


def _meaning(rec: Reconciled, problems: list[Flag], any_data: bool) -> str:
    """What the findings mean: how many critical ones, how many to watch, or which targets were missed."""
    critical = sum(f.severity == "critical" for f in problems)
    warnings = len(problems) - critical
    missed = missed_targets(rec)
    meaning = ""
    if critical:
        meaning = f"{_plural(critical, 'critical finding')} need{'s' if critical == 1 else ''} attention this week"
        meaning += f", with {_plural(warnings, 'further point')} to watch." if warnings else "."
    elif warnings:
        meaning = f"Service was broadly stable, with {_plural(warnings, 'point')} to watch."
    elif missed:  # below the alert thresholds, but a target is a target
        th = rec.thresholds
        meaning = (f"Not every target was met: {listed(missed)}, below the thresholds at which we raise a "
                   f"finding (for SLA breaches, a rise of {th.sla_breach_growth} or more on the week before).")
    elif any_data:
        meaning = "Every area we could measure met its targets."
    if meaning and len(problems) > 2:
        shown = "all are" if len(rec.flags) <= TABLE_ROW_LIMIT else f"the first {TABLE_ROW_LIMIT} are"
        meaning = meaning[:-1] + f"; {shown} listed under Recommendations."
    return meaning


def summarise(rec: Reconciled) -> Summary:
    """The executive summary's parts: what happened, the week's figures, what it means, what we do."""
    snap = rec.snapshot
    problems = [f for f in sorted_flags(rec.flags) if f.kind != "source_unavailable"]
    facts = _facts(rec)
    unavailable = _unavailable_sentence(snap)
    any_data = any(section_state(s) != "failed" for s in snap.sections().values())
    context: list[str] = []

    if problems:
        happened = [f.message for f in problems[:2]]
        if facts:
            context.append("Across the week: " + "; ".join(facts) + ".")
    elif any_data:
        if missed_targets(rec):
            lead = "No finding crossed our alert thresholds this week"
        elif unavailable is None:
            lead = "A healthy week"
        else:
            lead = "No problems in the areas we could measure"
        happened = [f"{lead}: {'; '.join(facts) if facts else 'the sources reported no activity'}."]
    else:
        happened = ["No source system delivered data for this week, so this report carries no figures."]
    if unavailable:
        context.append(unavailable)

    action = f"{'Our first action' if rec.flags else 'Next step'}: {recommendations(rec)[0]}"
    return Summary(happened, context, _meaning(rec, problems, any_data), action)


def executive_summary(rec: Reconciled) -> list[str]:
    """Three to six sentences, worst first: what happened, what it means, what we do.

    At most two findings are quoted; a failed source is named, never counted as zero.
    """
    return summarise(rec).sentences()


@dataclass(frozen=True)
class Action:
    text: str
    area: str  # the domain label of the worst flag that asks for it


def actions(rec: Reconciled) -> list[Action]:
    """What we do about the flags, worst first, each once, in the customer's words
    (:func:`msp_reports.reconcile.customer_action`); a quiet week gets a standing one.

    The internal wording of the same steps (:func:`msp_reports.reconcile.internal_action`) is
    for the roll-up only and never reaches the report, the cover note or the Teams card.
    """
    first: dict[str, str] = {}
    for flag in sorted_flags(rec.flags):
        first.setdefault(customer_action(flag), DOMAIN_LABELS.get(flag.domain, flag.domain))
    return [Action(text, area) for text, area in first.items()] or [Action(STANDING_RECOMMENDATION, "General")]


def recommendations(rec: Reconciled) -> list[str]:
    """The text of :func:`actions`."""
    return [a.text for a in actions(rec)]


def report_week(rec: Reconciled) -> ReportWeek:
    return ReportWeek.starting(rec.snapshot.week_of, rec.snapshot.timezone)


def report_title(rec: Reconciled, customer: Customer) -> str:
    return f"{clean_text(customer.name)} — weekly report, {report_week(rec).label()}"

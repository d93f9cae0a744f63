"""Compare a customer's week with the week before and raise the flags an engineer acts on.

The rules, with per-customer thresholds:

- ``sla_drop``: an uptime row (site x device class) fell by ``sla_drop_points`` or more;
- ``backup_stale``: an asset's last good backup is older than ``backup_stale_hours`` at week end;
- ``open_incident``: a security incident is still open at week end;
- ``recovery_failed``: an asset's last recovery test (screenshot verification, SureBackup,
  restore) within its verification window failed;
- ``recovery_unverified``: no recovery test within the asset's verification window (the backup
  source's ``ref.recovery_days``, default 30);
- ``rto_missed``: the last recovery passed, but its measured (or, with nothing measured, its
  estimated) time is longer than the asset's RTO;
- ``ticket_trend``: the backlog grew by ``backlog_growth`` or more while more tickets were opened
  than closed, or SLA breaches rose by ``sla_breach_growth`` or more.

Two more say a target was missed without crossing an alert threshold: ``slo_missed`` (an uptime
row below its target) and ``rpo_missed`` (an asset whose last good backup is older than its
recovery point objective, but not yet ``backup_stale``).

Each flag carries two texts for what we do: ``recommendation``, the internal action the
engineer takes (the roll-up's "Actions this week"), and ``customer_action``, the same step in
words addressed to the customer (the report, the cover note, the Teams card). Read them through
:func:`internal_action` and :func:`customer_action`: a flag stored before ``customer_action``
existed has none, and its internal wording must still not reach the customer.

A rule that needs last week is not evaluated without it: the result says there is no baseline
instead of inventing one. A failed source raises ``source_unavailable`` and no other flag for
that domain, since nothing can be said about data we do not have.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from msp_reports.registry import Thresholds
from msp_reports.snapshot import WeeklySnapshot

FlagKind = Literal["sla_drop", "slo_missed", "backup_stale", "rpo_missed", "recovery_failed", "recovery_unverified",
                   "rto_missed", "open_incident", "ticket_trend", "source_unavailable"]
Severity = Literal["critical", "warning", "info"]
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


class Flag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FlagKind
    severity: Severity
    domain: str
    subject: str  # what it is about: "Leeds / Network", "ACME-FS01", incident ref
    message: str  # one factual sentence for the summary
    recommendation: str  # what we do about it, internally: the roll-up's action (see internal_action)
    customer_action: str = ""  # the same step in the customer's words (see customer_action)


#: what we do, in the customer's words, for a flag stored without ``customer_action``
_CUSTOMER_FALLBACK: dict[str, str] = {
    "sla_drop": "We are reviewing the root cause of this outage and will propose resilience improvements.",
    "slo_missed": "We are reviewing the incidents behind this downtime and will report what we change.",
    "backup_stale": "We are restoring this backup schedule and will confirm a verified recovery point.",
    "rpo_missed": "We are checking the recent backup failures and will confirm a verified recovery point.",
    "recovery_failed": "We are fixing why this recovery test failed and will repeat it this week.",
    "recovery_unverified": "We are running a recovery test this week and will report how long it took.",
    "rto_missed": "We are proposing a faster recovery path so recovery fits its agreed time.",
    "open_incident": "We are working to contain this incident and will send you a written update.",
    "ticket_trend": "We are reviewing the service-desk workload and will discuss the causes with you.",
    "source_unavailable": "We are restoring this data feed; the figures will follow separately.",
}


def internal_action(flag: Flag | dict) -> str:
    """What the engineer does about ``flag``: internal wording, for the roll-up only."""
    return str(flag["recommendation"] if isinstance(flag, dict) else flag.recommendation).strip()


def customer_action(flag: Flag) -> str:
    """What we do about ``flag``, addressed to the customer: the report, cover note and card use this.

    Never the internal wording: a flag without ``customer_action`` (stored by an older release)
    gets its kind's standard sentence.
    """
    return flag.customer_action.strip() or _CUSTOMER_FALLBACK[flag.kind]


class Delta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    current: float | None
    previous: float | None

    @property
    def change(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return round(self.current - self.previous, 3)


class Reconciled(BaseModel):
    model_config = ConfigDict(extra="forbid")

    snapshot: WeeklySnapshot
    previous_week_of: dt.date | None
    flags: list[Flag]
    deltas: dict[str, Delta]
    thresholds: Thresholds = Thresholds()  # the rules the flags were raised by; the report states them

    @property
    def has_baseline(self) -> bool:
        return self.previous_week_of is not None


def _round(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def deltas(current: WeeklySnapshot, previous: WeeklySnapshot | None) -> dict[str, Delta]:
    def pick(snap: WeeklySnapshot | None, fn) -> float | None:
        if snap is None:
            return None
        try:
            return fn(snap)
        except AttributeError:  # the section had no data that week
            return None

    def complete(snap: WeeklySnapshot | None, domain: str) -> WeeklySnapshot | None:
        # a partial week (one of two systems failed) is not comparable: no delta from it
        return snap if snap is not None and snap.sections()[domain].status.ok else None

    metrics = {
        "uptime_pct": ("uptime", lambda s: s.uptime.data.overall_pct),
        "tickets_opened": ("tickets", lambda s: s.tickets.data.opened),
        "tickets_closed": ("tickets", lambda s: s.tickets.data.closed),
        "sla_breaches": ("tickets", lambda s: s.tickets.data.sla_breaches),
        "backlog": ("tickets", lambda s: s.tickets.data.backlog_end),
        "secure_score_pct": ("security", lambda s: s.security.data.secure_score_pct),
        "incidents_open": ("security", lambda s: sum(i.status == "open" for i in s.security.data.incidents)),
    }
    return {name: Delta(current=pick(complete(current, d), fn), previous=pick(complete(previous, d), fn))
            for name, (d, fn) in metrics.items()}


def reconcile(current: WeeklySnapshot, previous: WeeklySnapshot | None, thresholds: Thresholds) -> Reconciled:
    flags: list[Flag] = []
    for domain in current.failed_domains:
        section = current.sections()[domain]
        for status in [p for p in section.parts if not p.ok] or [section.status]:
            flags.append(_unavailable_flag(domain, status.system))
    flags += _uptime_flags(current, previous, thresholds)
    flags += _backup_flags(current, thresholds)
    flags += _recovery_flags(current)
    flags += _incident_flags(current)
    flags += _ticket_flags(current, previous, thresholds)
    flags.sort(key=lambda f: (SEVERITY_ORDER[f.severity], f.domain, f.subject))
    return Reconciled(
        snapshot=current,
        previous_week_of=previous.week_of if previous is not None else None,
        flags=flags,
        deltas=deltas(current, previous),
        thresholds=thresholds,
    )


def _unavailable_flag(domain: str, system: str) -> Flag:
    from msp_reports.sources import SYSTEMS

    label = SYSTEMS[system].label if system in SYSTEMS else system
    return Flag(
        kind="source_unavailable", severity="warning", domain=domain, subject=system,
        message=f"{domain.capitalize()} data from {label} was unavailable for this week.",
        recommendation=f"We are restoring the {label} data feed; the {domain} figures will follow separately.",
        customer_action=f"We are restoring the {label} data feed; the {domain} figures will follow separately.",
    )


def _uptime_flags(cur: WeeklySnapshot, prev: WeeklySnapshot | None, th: Thresholds) -> list[Flag]:
    data = cur.uptime.data
    if data is None:
        return []
    before = {}
    if prev is not None and prev.uptime.data is not None:
        before = {(r.site, r.device_class): r.uptime_pct for r in prev.uptime.data.rows}
    flags = []
    for row in data.rows:
        if row.uptime_pct is None:
            continue
        subject = f"{row.site} / {row.device_class}"
        was = before.get((row.site, row.device_class))
        if was is not None and was - row.uptime_pct >= th.sla_drop_points:
            flags.append(Flag(
                kind="sla_drop", severity="critical", domain="uptime", subject=subject,
                message=(f"Uptime for {subject} fell {was - row.uptime_pct:.2f} points to {row.uptime_pct:.2f}% "
                         f"({row.downtime_minutes:.0f} minutes down; {was:.2f}% the week before)."),
                recommendation=f"Root-cause review of the {subject} outage and a resilience proposal for the next QBR.",
                customer_action=(f"We are reviewing the root cause of the {subject} outage and will bring a "
                                 "resilience proposal to our next quarterly business review."),
            ))
        elif row.uptime_pct < row.slo_pct:
            flags.append(Flag(
                kind="slo_missed", severity="warning", domain="uptime", subject=subject,
                message=f"{subject} ran at {row.uptime_pct:.2f}% against a {row.slo_pct:g}% target.",
                recommendation=f"Review the {subject} incidents that caused {row.downtime_minutes:.0f} minutes of downtime.",
                customer_action=(f"We are reviewing the incidents behind the {row.downtime_minutes:.0f} minutes of "
                                 f"{subject} downtime and will report what we change."),
            ))
    return flags


def _local_day(moment: dt.datetime, timezone: str, pattern: str = "%d %b") -> str:
    """The day of ``moment`` in the customer's timezone (a recovery test's date in a finding)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)
    return aware.astimezone(ZoneInfo(timezone)).strftime(pattern)


def local_label(moment: dt.datetime, timezone: str) -> str:
    """``moment`` in the customer's timezone, as the report's tables write times ("Fri 27 Nov 2026 09:00")."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)
    return f"{aware.astimezone(ZoneInfo(timezone)):%a %d %b %Y %H:%M}"


def _backup_flags(cur: WeeklySnapshot, th: Thresholds) -> list[Flag]:
    """``backup_stale`` past the threshold; ``rpo_missed`` for an asset older than its RPO short of that.

    Times are in the customer's timezone, like every time in their report.
    """
    data = cur.backups.data
    if data is None:
        return []
    flags = []
    for asset in data.assets:
        hours = asset.hours_since_good(cur.week_end)
        if hours is None or hours > th.backup_stale_hours:
            when = "has no successful backup on record" if hours is None else \
                (f"has not backed up successfully for {hours:.0f} hours "
                 f"(last good {local_label(asset.last_good_backup, cur.timezone)})")
            flags.append(Flag(
                kind="backup_stale", severity="critical", domain="backups", subject=asset.name,
                message=f"{asset.name} {when}.",
                recommendation=f"Restore {asset.name}'s backup schedule today and confirm a verified recovery point.",
                customer_action=(f"We are restoring {asset.name}'s backup schedule today and will confirm a "
                                 "verified recovery point."),
            ))
        elif not asset.rpo_met(cur.week_end):
            flags.append(Flag(
                kind="rpo_missed", severity="warning", domain="backups", subject=asset.name,
                message=(f"{asset.name} missed its {asset.rpo_hours:g}-hour recovery point objective: last good "
                         f"backup {hours:.0f} hours before week end ({local_label(asset.last_good_backup, cur.timezone)}), "
                         f"last status {asset.last_status}."),
                recommendation=f"Find why {asset.name}'s latest backups did not succeed and run a verified backup today.",
                customer_action=(f"We are checking why {asset.name}'s latest backups did not succeed and will confirm "
                                 "a verified recovery point."),
            ))
    return flags


def _hours(minutes: float) -> str:
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"


def _recovery_flags(cur: WeeklySnapshot) -> list[Flag]:
    """Recovery posture per asset at week end (see the module docstring); assets without an RTO
    (weeks stored before it was reported) are not judged."""
    data = cur.backups.data
    if data is None:
        return []
    flags = []
    for asset in data.assets:
        if asset.rto_hours is None:
            continue
        test, days, name = asset.last_recovery_test, asset.verify_within_days, asset.name
        if not asset.recovery_verified(cur.week_end):
            when = "has never had a recovery test on record" if test is None else \
                f"has not had a recovery test for {(cur.week_end - test.at).days} days (last {_local_day(test.at, cur.timezone)})"
            flags.append(Flag(
                kind="recovery_unverified", severity="warning", domain="backups", subject=name,
                message=f"{name} {when}; nobody has proved it can be recovered in the last {days} days.",
                recommendation=f"Run a recovery test of {name} this week and record how long it takes.",
                customer_action=f"We are running a recovery test of {name} this week and will report how long it took.",
            ))
        elif test is not None and not test.passed:
            flags.append(Flag(
                kind="recovery_failed", severity="critical", domain="backups", subject=name,
                message=f"The recovery test of {name} failed on {_local_day(test.at, cur.timezone, '%a %d %b')} ({test.status}).",
                recommendation=f"Find why {name}'s recovery test failed, fix it and repeat the test this week.",
                customer_action=f"We are fixing why {name}'s recovery test failed and will repeat it this week.",
            ))
        elif asset.rto_state(cur.week_end) == "missed":
            minutes, measured = asset.recovery_minutes(cur.week_end)
            how = "took" if measured else "is estimated at"
            flags.append(Flag(
                kind="rto_missed", severity="warning", domain="backups", subject=name,
                message=(f"Recovering {name} {how} {_hours(minutes or 0)}, longer than its "
                         f"{asset.rto_hours:g} h recovery time objective."),
                recommendation=(f"Propose a faster recovery path for {name} (local virtualization or "
                                "instant recovery), or agree a realistic recovery time objective."),
                customer_action=(f"We will propose a faster recovery path for {name}, or agree with you a "
                                 "recovery time objective it can meet."),
            ))
    return flags


def _incident_flags(cur: WeeklySnapshot) -> list[Flag]:
    data = cur.security.data
    if data is None:
        return []
    return [
        Flag(
            kind="open_incident", severity="critical" if inc.severity == "high" else "warning",
            domain="security", subject=inc.ref,
            message=f"{inc.severity.capitalize()}-severity incident \"{inc.title}\" ({inc.ref}) is still open.",
            recommendation=f"Drive incident {inc.ref} to containment and send the customer a written update.",
            customer_action=f"We are working to contain incident {inc.ref} and will send you a written update.",
        )
        for inc in data.incidents
        if inc.status == "open"
    ]


def _ticket_flags(cur: WeeklySnapshot, prev: WeeklySnapshot | None, th: Thresholds) -> list[Flag]:
    data = cur.tickets.data
    if not cur.tickets.status.ok or prev is None or not prev.tickets.status.ok:
        return []  # counts from part of the systems are not comparable with a whole week
    was = prev.tickets.data
    flags = []
    growth = data.backlog_end - was.backlog_end
    if growth >= th.backlog_growth and data.opened > data.closed:
        flags.append(Flag(
            kind="ticket_trend", severity="warning", domain="tickets", subject="backlog",
            message=(f"The open-ticket backlog grew from {was.backlog_end} to {data.backlog_end}: "
                     f"{data.opened} tickets opened and {data.closed} closed."),
            recommendation="Add service-desk capacity this week and review recurring ticket causes with the customer.",
            customer_action=("We are adding service-desk capacity this week and will review the recurring "
                             "ticket causes with you."),
        ))
    if data.sla_breaches - was.sla_breaches >= th.sla_breach_growth:
        flags.append(Flag(
            kind="ticket_trend", severity="warning", domain="tickets", subject="sla_breaches",
            message=f"SLA breaches rose from {was.sla_breaches} to {data.sla_breaches}.",
            recommendation="Review breached tickets by priority and adjust dispatch for the worst queue.",
            customer_action=("We are reviewing the breached tickets by priority and adjusting how we dispatch "
                             "the queue that missed most."),
        ))
    return flags

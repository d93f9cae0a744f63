"""A quarter's figures, summed from the stored weekly snapshots' raw figures.

Every figure is computed from the raw numbers of the weeks, never by averaging the weeks'
percentages: an uptime is ``1 - Σ downtime seconds / Σ week seconds`` over the weeks the row
has data (the weeks' own lengths, so a DST week counts 167 or 169 hours), ticket figures are
sums of the weekly counts, "within RPO" is asset-weeks within RPO over asset-weeks on record.

A week is *missing* (no ``snapshot.json``) or *not usable* (it fails today's figure checks, or
names another customer): it is shown as such and contributes nothing. Within a usable week, a
domain whose source failed is *unavailable* for that week and excluded from that domain's sums;
a domain only some of its systems answered (*partial*) is excluded too, except for uptime and
public sites, whose rows each carry their own system's complete figure and are summed per row.
A period without any counted week has no figure (``None``), never zero.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from msp_reports import store as layout
from msp_reports.qbr.quarter import Quarter, week_month
from msp_reports.reconcile import Flag, Reconciled
from msp_reports.render.sections import section_data, section_state
from msp_reports.snapshot import DOMAINS, WeeklySnapshot
from msp_reports.store import ReportStore, sha256

log = logging.getLogger(__name__)

WeekState = Literal["ok", "missing", "invalid"]
QUARTER = "quarter"  # the period key of the whole quarter; months are "YYYY-MM"


def month_key(month: dt.date) -> str:
    return f"{month:%Y-%m}"


@dataclass
class StoredWeek:
    """One week of the quarter as the store holds it."""

    week_of: dt.date
    month: str  # "YYYY-MM": the month of its Thursday
    state: WeekState
    snapshot_sha256: str | None = None
    snapshot: WeeklySnapshot | None = None
    reconciled_sha256: str | None = None
    flags: list[Flag] = field(default_factory=list)
    flags_note: str = ""  # why the week's flags are not shown, when they are not
    commentary: str = ""
    commentary_sha256: str | None = None
    problem: str = ""

    def domain_state(self, domain: str) -> str:
        """``ok``, ``partial``, ``failed`` (source unavailable), or the week's own state."""
        if self.snapshot is None:
            return self.state
        return section_state(getattr(self.snapshot, domain))

    @property
    def seconds(self) -> int:
        assert self.snapshot is not None
        return int((self.snapshot.week_end - self.snapshot.week_start).total_seconds())


def load_week(store: ReportStore, customer: str, week_of: dt.date, *, details: bool = True) -> StoredWeek:
    """The stored week: its snapshot (from the exact bytes hashed), and with ``details`` its flags
    and commentary (the previous quarter's comparison needs only the figures)."""
    week = store.week(customer, week_of)
    month = month_key(week_month(week_of))
    raw = week.snapshot_bytes()
    if raw is None:
        return StoredWeek(week_of, month, "missing")
    digest = sha256(raw)
    try:
        snap = WeeklySnapshot.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        log.warning("%s %s: snapshot.json is not usable for the QBR: %s", customer, week_of, str(exc).splitlines()[0])
        return StoredWeek(week_of, month, "invalid", digest, problem="fails the figure checks")
    if snap.customer != customer or snap.week_of != week_of:
        return StoredWeek(week_of, month, "invalid", digest, problem="belongs to another customer or week")
    out = StoredWeek(week_of, month, "ok", digest, snap)
    if not details:
        return out
    rec_raw = store.read_bytes(customer, week_of, layout.RECONCILED)
    if rec_raw is None:
        out.flags_note = "no reconciled.json"
    else:
        out.reconciled_sha256 = sha256(rec_raw)
        try:
            rec = Reconciled.model_validate_json(rec_raw)
        except (ValidationError, ValueError):
            out.flags_note = "reconciled.json is not readable"
        else:
            if rec.snapshot.model_dump(mode="json") == snap.model_dump(mode="json"):
                out.flags = list(rec.flags)
            else:
                out.flags_note = "reconciled.json does not match snapshot.json"
    text = week.commentary()
    if text is not None:
        out.commentary_sha256 = sha256(text.encode("utf-8"))
        out.commentary = text.strip()
    return out


def load_weeks(store: ReportStore, customer: str, quarter: Quarter, *, details: bool = True) -> list[StoredWeek]:
    return [load_week(store, customer, w, details=details) for w in quarter.week_ofs()]


# ---- ratios from raw figures -----------------------------------------------------------------
@dataclass
class Ratio:
    """Downtime over time watched, both summed over the counted weeks."""

    downtime_seconds: float = 0.0
    seconds: int = 0
    weeks: int = 0

    def add(self, downtime_seconds: float, seconds: int) -> None:
        self.downtime_seconds += downtime_seconds
        self.seconds += seconds
        self.weeks += 1

    @property
    def pct(self) -> float | None:
        if not self.seconds:
            return None
        return round(100 * max(0.0, 1 - self.downtime_seconds / self.seconds), 3)

    def as_dict(self) -> dict[str, Any]:
        return {"downtime_seconds": round(self.downtime_seconds, 2), "seconds": self.seconds,
                "weeks": self.weeks, "pct": self.pct}


def _periods(quarter: Quarter) -> list[str]:
    return [month_key(m) for m in quarter.months()] + [QUARTER]


@dataclass
class UptimeLine:
    """One site and device class (or one public site) over the quarter."""

    key: tuple[str, str]
    slo_pct: float | None
    periods: dict[str, Ratio]
    weekly: list[float | None]  # the week's own figure, per quarter week (None: no data)
    weeks_met: int = 0
    weeks_measured: int = 0

    @property
    def met(self) -> bool | None:
        pct = self.periods[QUARTER].pct
        return None if pct is None or self.slo_pct is None else pct >= self.slo_pct

    def as_dict(self) -> dict[str, Any]:
        return {"key": list(self.key), "slo_pct": self.slo_pct, "met": self.met, "weeks_met": self.weeks_met,
                "weeks_measured": self.weeks_measured,
                "periods": {k: v.as_dict() for k, v in self.periods.items()}}


def _lines(weeks: list[StoredWeek], quarter: Quarter, domain: str) -> tuple[list[UptimeLine], dict[str, Ratio],
                                                                        list[float | None]]:
    """Per row, per period; the total over all rows per period; the all-rows figure per week."""
    periods = _periods(quarter)
    lines: dict[tuple[str, str], UptimeLine] = {}
    total = {p: Ratio() for p in periods}
    weekly_all: list[float | None] = []
    for n, week in enumerate(weeks):
        data = section_data(getattr(week.snapshot, domain)) if week.snapshot is not None else None
        week_total = Ratio()
        for row in (data.rows if domain == "uptime" else data.checks) if data is not None else ():
            pct = row.uptime_pct if domain == "uptime" else row.availability_pct
            key = (row.site, row.device_class) if domain == "uptime" else (row.name, row.address)
            line = lines.get(key)
            if line is None:
                line = lines[key] = UptimeLine(key, None, {p: Ratio() for p in periods}, [None] * len(weeks))
            if domain == "uptime":
                line.slo_pct = row.slo_pct  # the newest week's target
            if pct is None:
                continue
            down = row.downtime_minutes * 60
            for p in (week.month, QUARTER):
                line.periods[p].add(down, week.seconds)
                total[p].add(down, week.seconds)
            week_total.add(down, week.seconds)
            line.weekly[n] = pct
            line.weeks_measured += 1
            if domain == "uptime" and pct >= row.slo_pct:
                line.weeks_met += 1
        complete = week.snapshot is not None and week.domain_state(domain) == "ok"
        weekly_all.append(week_total.pct if complete else None)
    ordered = sorted(lines.values(), key=lambda line: line.key)
    return ordered, total, weekly_all


# ---- tickets and changes -----------------------------------------------------------------------
@dataclass
class TicketPeriod:
    weeks: int = 0
    opened: int = 0
    closed: int = 0
    sla_breaches: int = 0
    backlog_end: int | None = None  # at the end of the period's last counted week
    backlog_week: dt.date | None = None
    changes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(self).items()}


@dataclass
class ChangeLine:
    week_of: dt.date
    ref: str
    summary: str
    executed_at: dt.datetime | None
    status: str
    source: str


def _tickets(weeks: list[StoredWeek], quarter: Quarter) -> tuple[dict[str, TicketPeriod], list[ChangeLine]]:
    periods = {p: TicketPeriod() for p in _periods(quarter)}
    changes: list[ChangeLine] = []
    for week in weeks:
        if week.snapshot is None or week.domain_state("tickets") != "ok":
            continue
        t = week.snapshot.tickets.data
        executed = [c for c in t.changes if c.executed_at is not None]
        for p in (week.month, QUARTER):
            agg = periods[p]
            agg.weeks += 1
            agg.opened += t.opened
            agg.closed += t.closed
            agg.sla_breaches += t.sla_breaches
            agg.backlog_end, agg.backlog_week = t.backlog_end, week.week_of
            agg.changes += len(executed)
        changes += [ChangeLine(week.week_of, c.ref, c.summary, c.executed_at, c.status, c.source) for c in executed]
    return periods, changes


# ---- backups -----------------------------------------------------------------------------------
@dataclass
class BackupPeriod:
    weeks: int = 0
    asset_weeks: int = 0
    rpo_met: int = 0
    rto_met: int = 0
    rto_missed: int = 0
    rto_not_verified: int = 0

    @property
    def rpo_pct(self) -> float | None:
        return round(100 * self.rpo_met / self.asset_weeks, 1) if self.asset_weeks else None

    @property
    def rto_pct(self) -> float | None:
        return round(100 * self.rto_met / self.asset_weeks, 1) if self.asset_weeks else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rpo_pct": self.rpo_pct, "rto_pct": self.rto_pct}


@dataclass
class AssetLine:
    name: str
    source: str
    weeks: int = 0
    rpo_met_weeks: int = 0
    rto_state: str | None = None  # at the end of the last week on record
    rto_hours: float | None = None
    last_test_at: dt.datetime | None = None
    last_test_passed: bool | None = None
    last_week: dt.date | None = None


def _backups(weeks: list[StoredWeek], quarter: Quarter) -> tuple[dict[str, BackupPeriod], list[AssetLine],
                                                                 list[float | None], list[float | None]]:
    periods = {p: BackupPeriod() for p in _periods(quarter)}
    assets: dict[tuple[str, str], AssetLine] = {}
    rpo_weekly: list[float | None] = []
    rto_weekly: list[float | None] = []
    for week in weeks:
        if week.snapshot is None or week.domain_state("backups") != "ok":
            rpo_weekly.append(None)
            rto_weekly.append(None)
            continue
        end = week.snapshot.week_end
        items = week.snapshot.backups.data.assets
        met = sum(a.rpo_met(end) for a in items)
        states = [a.rto_state(end) for a in items]
        for p in (week.month, QUARTER):
            agg = periods[p]
            agg.weeks += 1
            agg.asset_weeks += len(items)
            agg.rpo_met += met
            agg.rto_met += states.count("met")
            agg.rto_missed += states.count("missed")
            agg.rto_not_verified += states.count("not_verified")
        rpo_weekly.append(round(100 * met / len(items), 1) if items else None)
        rto_weekly.append(round(100 * states.count("met") / len(items), 1) if items else None)
        for a, state in zip(items, states):
            line = assets.setdefault((a.source, a.name), AssetLine(a.name, a.source))
            line.weeks += 1
            line.rpo_met_weeks += a.rpo_met(end)
            line.rto_state, line.rto_hours, line.last_week = state, a.rto_hours, week.week_of
            if a.last_recovery_test is not None:
                line.last_test_at, line.last_test_passed = a.last_recovery_test.at, a.last_recovery_test.passed
    return periods, sorted(assets.values(), key=lambda a: (a.name, a.source)), rpo_weekly, rto_weekly


# ---- security ----------------------------------------------------------------------------------
@dataclass
class IncidentLine:
    ref: str
    title: str
    severity: str
    status: str  # as of the last week it was reported in
    created_at: dt.datetime
    source: str
    first_week: dt.date
    last_week: dt.date
    raised_in_quarter: bool


@dataclass
class SecurityPeriod:
    weeks: int = 0
    raised: int = 0
    high: int = 0
    score_start: float | None = None
    score_end: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _security(weeks: list[StoredWeek], quarter: Quarter) -> tuple[dict[str, SecurityPeriod], list[IncidentLine],
                                                                  list[float | None], list[float | None]]:
    periods = {p: SecurityPeriod() for p in _periods(quarter)}
    incidents: dict[tuple[str, str], IncidentLine] = {}
    scores: list[float | None] = []
    raised_weekly: list[float | None] = []
    for week in weeks:
        if week.snapshot is None or week.domain_state("security") != "ok":
            scores.append(None)
            raised_weekly.append(None)
            continue
        snap, data = week.snapshot, week.snapshot.security.data
        raised = 0
        for i in data.incidents:
            key = (i.source, i.ref)
            new_here = snap.week_start <= i.created_at < snap.week_end
            line = incidents.get(key)
            if line is None:
                line = incidents[key] = IncidentLine(i.ref, i.title, i.severity, i.status, i.created_at, i.source,
                                                     week.week_of, week.week_of, False)
            line.status, line.last_week, line.title, line.severity = i.status, week.week_of, i.title, i.severity
            if new_here and not line.raised_in_quarter:
                line.raised_in_quarter = True
                raised += 1
                for p in (week.month, QUARTER):
                    periods[p].raised += 1
                    periods[p].high += i.severity == "high"
        for p in (week.month, QUARTER):
            agg = periods[p]
            agg.weeks += 1
            if data.secure_score_pct is not None:
                if agg.score_start is None:
                    agg.score_start = data.secure_score_prev_pct if data.secure_score_prev_pct is not None \
                        else data.secure_score_pct
                agg.score_end = data.secure_score_pct
        scores.append(data.secure_score_pct)
        raised_weekly.append(float(raised))
    return periods, sorted(incidents.values(), key=lambda i: (i.created_at, i.ref)), scores, raised_weekly


# ---- the quarter -------------------------------------------------------------------------------
@dataclass
class FlagLine:
    week_of: dt.date
    flag: Flag


@dataclass
class QuarterFigures:
    quarter: Quarter
    customer: str
    weeks: list[StoredWeek]
    uptime: list[UptimeLine]
    uptime_total: dict[str, Ratio]
    uptime_weekly: list[float | None]
    tickets: dict[str, TicketPeriod]
    changes: list[ChangeLine]
    backlog_weekly: list[float | None]
    opened_weekly: list[float | None]
    breaches_weekly: list[float | None]
    backups: dict[str, BackupPeriod]
    assets: list[AssetLine]
    rpo_weekly: list[float | None]
    rto_weekly: list[float | None]
    security: dict[str, SecurityPeriod]
    incidents: list[IncidentLine]
    score_weekly: list[float | None]
    incidents_weekly: list[float | None]
    sites: list[UptimeLine]
    sites_total: dict[str, Ratio]
    sites_weekly: list[float | None]
    flags: list[FlagLine]

    @property
    def usable_weeks(self) -> list[StoredWeek]:
        return [w for w in self.weeks if w.state == "ok"]

    @property
    def on_record(self) -> bool:
        return bool(self.usable_weeks)

    def unavailable(self, domain: str) -> list[StoredWeek]:
        """The usable weeks whose ``domain`` source did not answer (or only partly, for sums)."""
        return [w for w in self.usable_weeks if w.domain_state(domain) != "ok"]

    def as_dict(self) -> dict[str, Any]:
        """The figures ``sources.json`` records: what the pack's numbers were computed as."""
        def periods(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v.as_dict() for k, v in d.items()}
        return {
            "weeks_on_record": len(self.usable_weeks),
            "weeks_missing": [w.week_of.isoformat() for w in self.weeks if w.state == "missing"],
            "weeks_not_usable": [w.week_of.isoformat() for w in self.weeks if w.state == "invalid"],
            "unavailable": {d: [w.week_of.isoformat() for w in self.unavailable(d)] for d in DOMAINS},
            "uptime": {"total": periods(self.uptime_total), "rows": [line.as_dict() for line in self.uptime]},
            "tickets": periods(self.tickets),
            "backups": periods(self.backups),
            "security": {**periods(self.security),
                         "open_at_end": sum(i.status == "open" for i in self.incidents)},
            "sites": {"total": periods(self.sites_total), "checks": [line.as_dict() for line in self.sites]},
            "flags": len(self.flags),
        }


def _weekly(weeks: list[StoredWeek], domain: str, value) -> list[float | None]:
    return [float(value(w.snapshot)) if w.snapshot is not None and w.domain_state(domain) == "ok" else None
            for w in weeks]


def aggregate(weeks: list[StoredWeek], quarter: Quarter, customer: str) -> QuarterFigures:
    uptime, uptime_total, uptime_weekly = _lines(weeks, quarter, "uptime")
    sites, sites_total, sites_weekly = _lines(weeks, quarter, "sites")
    tickets, changes = _tickets(weeks, quarter)
    backups, assets, rpo_weekly, rto_weekly = _backups(weeks, quarter)
    security, incidents, scores, incidents_weekly = _security(weeks, quarter)
    flags = [FlagLine(w.week_of, f) for w in weeks for f in w.flags]
    return QuarterFigures(
        quarter=quarter, customer=customer, weeks=weeks, uptime=uptime, uptime_total=uptime_total,
        uptime_weekly=uptime_weekly, tickets=tickets, changes=changes,
        backlog_weekly=_weekly(weeks, "tickets", lambda s: s.tickets.data.backlog_end),
        opened_weekly=_weekly(weeks, "tickets", lambda s: s.tickets.data.opened),
        breaches_weekly=_weekly(weeks, "tickets", lambda s: s.tickets.data.sla_breaches),
        backups=backups, assets=assets, rpo_weekly=rpo_weekly, rto_weekly=rto_weekly,
        security=security, incidents=incidents, score_weekly=scores, incidents_weekly=incidents_weekly,
        sites=sites, sites_total=sites_total, sites_weekly=sites_weekly, flags=flags,
    )


def quarter_figures(store: ReportStore, customer: str, quarter: Quarter, *, details: bool = True) -> QuarterFigures:
    """The quarter's figures from the store; ``details=False`` skips the flags and commentaries."""
    return aggregate(load_weeks(store, customer, quarter, details=details), quarter, customer)

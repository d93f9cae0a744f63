"""The normalized weekly snapshot: what every source system is turned into.

A domain whose source failed keeps ``data=None`` and an error in its status: the renderer
shows it as unavailable, and no code path may turn it into a zero.

Every figure is typed with its possible range (:data:`Percent`, :data:`Count`, :data:`Amount`):
the sources check what they parse (:mod:`msp_reports.sources.figures`) and say which field was
wrong; these types are the last line of defence, so that no impossible figure can be built into
a section, whichever code computed it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

Domain = Literal["uptime", "tickets", "backups", "security", "sites"]
DOMAINS: tuple[Domain, ...] = get_args(Domain)  # the one list of domains (the DAG's extract tasks too)

Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, strict=True)]  # strict: neither True nor 12.9 is a count
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # minutes, hours: finite, not negative


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceStatus(_Model):
    """How one source system answered for one customer and week."""

    domain: Domain
    system: str
    ok: bool
    error: str | None = None
    fetched_at: dt.datetime
    as_of: dt.datetime | None = None  # newest data point the source reported


# --- uptime (Zabbix, LibreNMS) -------------------------------------------------------------
class UptimeRow(_Model):
    site: str
    device_class: str
    uptime_pct: Percent | None  # None: the source had no data for this row (not 0)
    downtime_minutes: Amount
    slo_pct: Percent
    devices: Count | None = None
    source: str

    @property
    def slo_met(self) -> bool | None:
        return None if self.uptime_pct is None else self.uptime_pct >= self.slo_pct


class UptimeData(_Model):
    rows: list[UptimeRow]

    @property
    def overall_pct(self) -> float | None:
        """Unweighted mean of the rows with data; weights are not comparable across sites."""
        values = [r.uptime_pct for r in self.rows if r.uptime_pct is not None]
        return round(sum(values) / len(values), 3) if values else None


# --- tickets and changes (ConnectWise PSA, HaloPSA) -----------------------------------------
class PriorityCount(_Model):
    priority: str
    opened: Count
    closed: Count
    sla_breaches: Count


class ChangeRecord(_Model):
    ref: str
    summary: str
    executed_at: dt.datetime | None
    status: str
    source: str


class TicketData(_Model):
    opened: Count
    closed: Count
    sla_breaches: Count
    backlog_end: Count  # tickets open at the end of the week
    by_priority: list[PriorityCount]
    changes: list[ChangeRecord]


# --- backups (Datto, Veeam) ----------------------------------------------------------------
AssetClass = Literal["server", "workstation"]
ASSET_CLASSES: tuple[AssetClass, ...] = get_args(AssetClass)
RecoveryKind = Literal["screenshot", "surebackup", "restore"]
RestoreSite = Literal["local", "offsite", "unknown"]
RtoState = Literal["met", "missed", "not_verified"]


class RecoveryTest(_Model):
    """One proof (or failed proof) that an asset can be recovered: a Datto screenshot
    verification, a Veeam SureBackup run, or a real restore session."""

    kind: RecoveryKind
    at: dt.datetime  # when the outcome was known
    passed: bool
    status: str  # the system's raw result, shown in the report
    minutes: Amount | None = None  # how long the recovery took, when the system gives start and end


class BackupAsset(_Model):
    name: str
    appliance: str
    last_good_backup: dt.datetime | None
    last_status: str
    backups_in_week: Count
    failures_in_week: Count
    rpo_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    source: str
    # Recovery (RTO) posture; the defaults keep weeks stored before it was reported readable,
    # and say "not verified" for them, never "met".
    asset_class: AssetClass = "server"
    rto_hours: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    verify_within_days: Annotated[int, Field(ge=1, le=366, strict=True)] = 30
    last_recovery_test: RecoveryTest | None = None  # the newest test before week end
    measured_recovery: RecoveryTest | None = None  # the newest passed test with a measured duration
    estimated_recovery_minutes: Amount | None = None  # the MSP's planning figure where nothing is measured
    restore_site: RestoreSite | None = None  # where a restore could run, as the source says

    def hours_since_good(self, now: dt.datetime) -> float | None:
        if self.last_good_backup is None:
            return None
        return (now - self.last_good_backup).total_seconds() / 3600

    def rpo_met(self, now: dt.datetime) -> bool:
        hours = self.hours_since_good(now)
        return hours is not None and hours <= self.rpo_hours

    def recovery_verified(self, now: dt.datetime) -> bool:
        """A recovery test (passed or failed) ran within ``verify_within_days`` before ``now``."""
        test = self.last_recovery_test
        return test is not None and now - test.at <= dt.timedelta(days=self.verify_within_days)

    def recovery_minutes(self, now: dt.datetime) -> tuple[float | None, bool]:
        """(the recovery time the report states, whether it was measured): a measurement from
        within the verification window, else the estimate, else ``None``."""
        measured = self.measured_recovery
        window = dt.timedelta(days=self.verify_within_days)
        if measured is not None and measured.minutes is not None and now - measured.at <= window:
            return measured.minutes, True
        return self.estimated_recovery_minutes, False

    def rto_state(self, now: dt.datetime) -> RtoState:
        """``met`` only with evidence: a passed test within the window and a recovery time (measured,
        or estimated from where the restore would run) within the RTO. A failed test, or a time
        over the RTO, is ``missed``; no target, no recent test or no time is ``not_verified``."""
        if self.rto_hours is None or not self.recovery_verified(now):
            return "not_verified"
        assert self.last_recovery_test is not None
        if not self.last_recovery_test.passed:
            return "missed"
        minutes, _ = self.recovery_minutes(now)
        if minutes is None:
            return "not_verified"
        return "met" if minutes <= self.rto_hours * 60 else "missed"


class BackupData(_Model):
    assets: list[BackupAsset]


# --- security (Defender, Sentinel) ---------------------------------------------------------
Severity = Literal["high", "medium", "low", "informational", "unknown"]


class Incident(_Model):
    ref: str
    title: str
    severity: Severity
    status: Literal["open", "resolved"]
    created_at: dt.datetime
    source: str


class SecurityData(_Model):
    incidents: list[Incident]  # created in the week, or still open at week end
    secure_score_pct: Percent | None
    secure_score_prev_pct: Percent | None  # at the start of the week, from the same source


# --- public sites (Cloudflare, status checks) ----------------------------------------------
class SiteCheck(_Model):
    name: str
    address: str
    availability_pct: Percent | None
    downtime_minutes: Amount
    status_now: str
    source: str


class SiteData(_Model):
    checks: list[SiteCheck]


DataT = TypeVar("DataT", UptimeData, TicketData, BackupData, SecurityData, SiteData)


class Section(_Model, Generic[DataT]):
    """One domain of one customer's week: the data, or ``None`` with the reason.

    When two systems serve the domain, ``parts`` holds each one's status and ``status`` sums
    them up: ok only if every part answered. ``data`` then holds what the answering systems
    gave (each row names its source), and is ``None`` only if none answered.
    """

    status: SourceStatus
    data: DataT | None = None
    parts: list[SourceStatus] = Field(default_factory=list)

    @property
    def partial(self) -> bool:
        return not self.status.ok and self.data is not None


class WeeklySnapshot(_Model):
    customer: str
    customer_name: str
    week_of: dt.date
    timezone: str
    week_start: dt.datetime
    week_end: dt.datetime
    uptime: Section[UptimeData]
    tickets: Section[TicketData]
    backups: Section[BackupData]
    security: Section[SecurityData]
    sites: Section[SiteData]

    def sections(self) -> dict[Domain, Section]:
        return {d: getattr(self, d) for d in DOMAINS}

    @property
    def failed_domains(self) -> list[Domain]:
        return [d for d, s in self.sections().items() if not s.status.ok]


SECTION_DATA: dict[Domain, type[BaseModel]] = {
    "uptime": UptimeData,
    "tickets": TicketData,
    "backups": BackupData,
    "security": SecurityData,
    "sites": SiteData,
}


def _merge_tickets(parts: list[TicketData]) -> TicketData:
    by_priority: dict[str, list[int]] = {}
    for part in parts:
        for p in part.by_priority:
            counts = by_priority.setdefault(p.priority, [0, 0, 0])
            counts[0] += p.opened
            counts[1] += p.closed
            counts[2] += p.sla_breaches
    changes = sorted((c for part in parts for c in part.changes),
                     key=lambda c: (c.executed_at is None, c.executed_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc)))
    return TicketData(
        opened=sum(p.opened for p in parts), closed=sum(p.closed for p in parts),
        sla_breaches=sum(p.sla_breaches for p in parts), backlog_end=sum(p.backlog_end for p in parts),
        by_priority=[PriorityCount(priority=k, opened=v[0], closed=v[1], sla_breaches=v[2])
                     for k, v in sorted(by_priority.items())],
        changes=changes,
    )


def _uptime_by_precedence(parts: list[UptimeData]) -> UptimeData:
    """One row per site and device class when two systems watch the same devices (a migration).

    Precedence is the registry's order: the row of the first system listed under the customer's
    ``sources.uptime`` that has a figure for it; a later system's row for the same site and class
    is left out, so one outage is never shown twice with two different uptimes. Rows that only
    one system reports are all kept, in the order the systems are listed.
    """
    chosen: dict[tuple[str, str], UptimeRow] = {}
    for part in parts:
        for row in part.rows:
            key = (row.site, row.device_class)
            if key not in chosen or (chosen[key].uptime_pct is None and row.uptime_pct is not None):
                chosen[key] = row
    return UptimeData(rows=list(chosen.values()))


def _first(values):
    return next((v for v in values if v is not None), None)


def merge_data(domain: Domain, parts: list[BaseModel]) -> BaseModel | None:
    """One domain's data from several systems: rows side by side (uptime: one per site and class,
    by registry order, :func:`_uptime_by_precedence`), counts added up."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if domain == "uptime":
        return _uptime_by_precedence(parts)
    if domain == "tickets":
        return _merge_tickets(parts)
    if domain == "backups":
        return BackupData(assets=[a for p in parts for a in p.assets])
    if domain == "security":
        # only Defender has a secure score; Sentinel adds incidents
        return SecurityData(incidents=sorted((i for p in parts for i in p.incidents), key=lambda i: i.created_at),
                            secure_score_pct=_first(p.secure_score_pct for p in parts),
                            secure_score_prev_pct=_first(p.secure_score_prev_pct for p in parts))
    return SiteData(checks=[c for p in parts for c in p.checks])


def merge_sections(domain: Domain, sections: list[Section]) -> Section:
    """Combine one domain's per-system sections into the section the report shows."""
    if len(sections) == 1:
        return sections[0]
    statuses = [s.status for s in sections]
    failed = [st for st in statuses if not st.ok]
    answered = [st.as_of for st in statuses if st.ok and st.as_of is not None]
    status = SourceStatus(
        domain=domain, system=" + ".join(st.system for st in statuses), ok=not failed,
        error="; ".join(st.error or f"{st.system}: failed" for st in failed) or None,
        fetched_at=min(st.fetched_at for st in statuses),
        as_of=min(answered) if answered else None,  # the oldest answer bounds how fresh the section is
    )
    data = merge_data(domain, [s.data for s in sections if s.status.ok and s.data is not None])
    return Section(status=status, data=data, parts=statuses)

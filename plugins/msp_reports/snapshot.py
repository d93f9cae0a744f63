"""The normalized weekly snapshot: what every source system is turned into.

A domain whose source failed keeps ``data=None`` and an error in its status: the renderer
shows it as unavailable, and no code path may turn it into a zero.
"""

from __future__ import annotations

import datetime as dt
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Domain = Literal["uptime", "tickets", "backups", "security", "sites"]
DOMAINS: tuple[Domain, ...] = ("uptime", "tickets", "backups", "security", "sites")


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
    uptime_pct: float | None  # None: the source had no data for this row (not 0)
    downtime_minutes: float
    slo_pct: float
    devices: int | None = None
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
    opened: int
    closed: int
    sla_breaches: int


class ChangeRecord(_Model):
    ref: str
    summary: str
    executed_at: dt.datetime | None
    status: str
    source: str


class TicketData(_Model):
    opened: int
    closed: int
    sla_breaches: int
    backlog_end: int  # tickets open at the end of the week
    by_priority: list[PriorityCount]
    changes: list[ChangeRecord]


# --- backups (Datto, Veeam) ----------------------------------------------------------------
class BackupAsset(_Model):
    name: str
    appliance: str
    last_good_backup: dt.datetime | None
    last_status: str
    backups_in_week: int
    failures_in_week: int
    rpo_hours: float
    source: str

    def hours_since_good(self, now: dt.datetime) -> float | None:
        if self.last_good_backup is None:
            return None
        return (now - self.last_good_backup).total_seconds() / 3600

    def rpo_met(self, now: dt.datetime) -> bool:
        hours = self.hours_since_good(now)
        return hours is not None and hours <= self.rpo_hours


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
    secure_score_pct: float | None
    secure_score_prev_pct: float | None  # at the start of the week, from the same source


# --- public sites (Cloudflare, status checks) ----------------------------------------------
class SiteCheck(_Model):
    name: str
    address: str
    availability_pct: float | None
    downtime_minutes: float
    status_now: str
    source: str


class SiteData(_Model):
    checks: list[SiteCheck]


DataT = TypeVar("DataT", UptimeData, TicketData, BackupData, SecurityData, SiteData)


class Section(_Model, Generic[DataT]):
    """One domain of one customer's week: the data, or ``None`` with the reason."""

    status: SourceStatus
    data: DataT | None = None


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

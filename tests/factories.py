"""The tests' shared constants and builders: the fixed week, the project root, snapshots and
report weeks, so rule tests read like the rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from msp_reports.snapshot import (
    BackupAsset, BackupData, Incident, PriorityCount, SecurityData, Section, SiteCheck, SiteData,
    SourceStatus, TicketData, UptimeData, UptimeRow, WeeklySnapshot,
)
from msp_reports.week import ReportWeek

ROOT = Path(__file__).resolve().parents[1]
# A fixed latest week keeps every test deterministic, whatever day the suite runs.
WEEK_OF = dt.date(2026, 11, 16)
NOW = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.timezone.utc)


def status(domain: str, system: str, ok: bool = True, error: str | None = None) -> SourceStatus:
    return SourceStatus(domain=domain, system=system, ok=ok, error=error, fetched_at=NOW, as_of=NOW if ok else None)


def snapshot(week_of: dt.date = WEEK_OF, *, uptime=None, backlog=10, opened=20, closed=19,
             breaches=1, assets=None, incidents=(), score=(71.0, 70.5), failed=(), tz="Europe/London",
             customer="ACME") -> WeeklySnapshot:
    week = ReportWeek.starting(week_of, tz)
    rows = uptime if uptime is not None else [("Leeds", "Network", 99.95), ("Leeds", "Servers", 100.0)]
    if assets is None:
        assets = [("ACME-DC01", week.end - dt.timedelta(hours=3))]
    data = {
        "uptime": UptimeData(rows=[UptimeRow(site=s, device_class=c, uptime_pct=p, downtime_minutes=0 if p is None else round((100 - p) / 100 * week.seconds / 60, 1),
                                             slo_pct=99.9, source="zabbix") for s, c, p in rows]),
        "tickets": TicketData(opened=opened, closed=closed, sla_breaches=breaches, backlog_end=backlog,
                              by_priority=[PriorityCount(priority="Priority 3 - Medium", opened=opened, closed=closed, sla_breaches=breaches)],
                              changes=[]),
        "backups": BackupData(assets=[BackupAsset(name=n, appliance="SIRIS", last_good_backup=t, last_status="success",
                                                  backups_in_week=14, failures_in_week=0, rpo_hours=24, source="datto")
                                      for n, t in assets]),
        "security": SecurityData(incidents=[Incident(ref=r, title=t, severity=sev, status=st, created_at=week.start, source="defender")
                                            for r, t, sev, st in incidents],
                                 secure_score_pct=score[0], secure_score_prev_pct=score[1]),
        "sites": SiteData(checks=[SiteCheck(name="www", address="https://www.acme.example/", availability_pct=100.0,
                                            downtime_minutes=0, status_now="healthy", source="cloudflare")]),
    }
    systems = {"uptime": "zabbix", "tickets": "connectwise", "backups": "datto", "security": "defender", "sites": "cloudflare"}
    sections = {}
    for domain, d in data.items():
        if domain in failed:
            sections[domain] = Section(status=status(domain, systems[domain], ok=False, error=f"{systems[domain]}: HTTP 503"))
        else:
            sections[domain] = Section(status=status(domain, systems[domain]), data=d)
    return WeeklySnapshot(customer=customer, customer_name="Acme Manufacturing Ltd", week_of=week_of, timezone=tz,
                          week_start=week.start, week_end=week.end, **sections)


def report_week(world, code: str, offset: int = 0) -> ReportWeek:
    """The product's week for ``code`` in the simulated world, ``offset`` weeks before its latest."""
    profile = world.customers[code].profile
    return ReportWeek.starting(world.latest_week_of - dt.timedelta(weeks=offset), profile.timezone)

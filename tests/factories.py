"""The tests' shared constants and builders: the fixed week, the project root, snapshots and
report weeks, so rule tests read like the rule.

Two snapshot builders, for two kinds of test: :func:`snapshot` takes the figures a reconcile
rule looks at as arguments; :func:`make_snapshot` is one realistic customer week (with
changes, incidents, a stale backup) that the renderer's tests read back from the PDF. Both
assemble their sections with :func:`week_snapshot`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msp_reports.reconcile import Reconciled, reconcile
from msp_reports.registry import Customer, Msp, Thresholds
from msp_reports.snapshot import (
    BackupAsset, BackupData, ChangeRecord, Incident, PriorityCount, RecoveryTest, SecurityData, Section, SiteCheck, SiteData,
    SourceStatus, TicketData, UptimeData, UptimeRow, WeeklySnapshot,
)
from msp_reports.week import ReportWeek

ROOT = Path(__file__).resolve().parents[1]
# A fixed latest week keeps every test deterministic, whatever day the suite runs.
WEEK_OF = dt.date(2026, 11, 16)
NOW = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.timezone.utc)
TZ = "Europe/London"
SYSTEM_CODES = {"uptime": "zabbix", "tickets": "connectwise", "backups": "datto", "security": "defender",
                "sites": "cloudflare"}
# make_snapshot's systems, named as the report names them
SYSTEM_LABELS = {"uptime": "Zabbix", "tickets": "ConnectWise PSA", "backups": "Datto BCDR",
                 "security": "Microsoft Defender", "sites": "Cloudflare health checks"}
MSP = Msp(name="Northwind Managed Services", from_email="reports@northwind.example")


def status(domain: str, system: str, ok: bool = True, error: str | None = None) -> SourceStatus:
    return SourceStatus(domain=domain, system=system, ok=ok, error=error, fetched_at=NOW, as_of=NOW if ok else None)


def week_snapshot(week_of: dt.date, tz: str, data: Mapping[str, Any], systems: Mapping[str, str],
                  failed: Mapping[str, str], *, fetched_at: dt.datetime, as_of: dt.datetime,
                  customer: str = "ACME") -> WeeklySnapshot:
    """One week of ``customer``: a section per domain of ``data``; a domain in ``failed`` (domain →
    error) has a failed status and no data, the others answered at ``as_of``."""
    week = ReportWeek.starting(week_of, tz)
    sections = {}
    for domain, d in data.items():
        if domain in failed:
            sections[domain] = Section(status=SourceStatus(domain=domain, system=systems[domain], ok=False,
                                                           error=failed[domain], fetched_at=fetched_at))
        else:
            sections[domain] = Section(status=SourceStatus(domain=domain, system=systems[domain], ok=True,
                                                           fetched_at=fetched_at, as_of=as_of), data=d)
    return WeeklySnapshot(customer=customer, customer_name="Acme Manufacturing Ltd", week_of=week_of, timezone=tz,
                          week_start=week.start, week_end=week.end, **sections)


def with_tickets(snap: WeeklySnapshot, **update: Any) -> WeeklySnapshot:
    """``snap`` with some ticket figures changed (``backlog_end=8``, ...)."""
    tickets = snap.tickets.data.model_copy(update=update)
    return snap.model_copy(update={"tickets": snap.tickets.model_copy(update={"data": tickets})})


# --- rule tests: the figures as arguments ------------------------------------------------------
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
    errors = {domain: f"{SYSTEM_CODES[domain]}: HTTP 503" for domain in data if domain in failed}
    return week_snapshot(week_of, tz, data, SYSTEM_CODES, errors, fetched_at=NOW, as_of=NOW, customer=customer)


def report_week(world, code: str, offset: int = 0) -> ReportWeek:
    """The product's week for ``code`` in the simulated world, ``offset`` weeks before its latest."""
    profile = world.customers[code].profile
    return ReportWeek.starting(world.latest_week_of - dt.timedelta(weeks=offset), profile.timezone)


# --- renderer tests: one realistic customer week -----------------------------------------------
def make_customer(name: str = "Acme Manufacturing Ltd") -> Customer:
    return Customer.model_validate({
        "code": "ACME", "name": name, "timezone": TZ,
        "cto": {"name": "Sarah Whitfield", "email": "sarah@acme.example"},
        "account_owner": {"name": "Marcus Bell", "email": "marcus@msp.example"},
        "account_engineer": {"name": "Priya Shah", "email": "priya@msp.example"},
        "sources": {
            "uptime": {"system": "zabbix", "conn_id": "z", "ref": {"service_tag": "ACME"}},
            "tickets": {"system": "connectwise", "conn_id": "c", "ref": {"company": "ACME"}},
            "backups": {"system": "datto", "conn_id": "d", "ref": {"client_company": "Acme"}},
            "security": {"system": "defender", "conn_id": "m", "ref": {"tenant_id": "t-1"}},
            "sites": {"system": "cloudflare", "conn_id": "f", "ref": {"zone_id": "z-1"}},
        },
        "delivery": {"teams": {"conn_id": "teams_acme"}, "archive": {"folder": "Acme/Weekly"}},
    })


def _uptime(healthy: bool, text: Mapping[str, str]) -> UptimeData:
    servers = 99.97 if healthy else 96.42
    return UptimeData(rows=[
        UptimeRow(site=text.get("site", "Leeds HQ"), device_class="Network", uptime_pct=99.982,
                  downtime_minutes=1.8, slo_pct=99.9, source="zabbix"),
        UptimeRow(site="Leeds HQ", device_class="Servers", uptime_pct=servers,
                  downtime_minutes=round((100 - servers) * 100.8, 1), slo_pct=99.9, source="zabbix"),
        UptimeRow(site="Manchester", device_class="Network", uptime_pct=99.931, downtime_minutes=7.0,
                  slo_pct=99.9, source="zabbix"),
    ])


def _tickets(week: ReportWeek, healthy: bool, text: Mapping[str, str]) -> TicketData:
    opened, closed, breaches, backlog = (12, 15, 0, 6) if healthy else (23, 17, 3, 14)
    return TicketData(
        opened=opened, closed=closed, sla_breaches=breaches, backlog_end=backlog,
        by_priority=[PriorityCount(priority="P1 Critical", opened=2, closed=2, sla_breaches=min(breaches, 1)),
                     PriorityCount(priority="P3 Normal", opened=opened - 2, closed=closed - 2,
                                   sla_breaches=max(breaches - 1, 0))],
        changes=[ChangeRecord(ref="CHG-1042", summary=text.get("change", "Firewall firmware upgrade to 7.2.8"),
                              executed_at=week.start + dt.timedelta(days=2, hours=20), status="completed",
                              source="connectwise")],
    )


def verified(asset: BackupAsset, *, at: dt.datetime, passed: bool = True, rto_hours: float = 8,
             asset_class: str = "server", minutes: float | None = None, kind: str = "screenshot") -> BackupAsset:
    """The asset with one recovery test at ``at`` (measured when ``minutes`` is given, else the
    local-virtualization estimate of 60 min)."""
    test = RecoveryTest(kind=kind, at=at, passed=passed, status=f"{kind} {'success' if passed else 'failed'}",
                        minutes=minutes)
    return asset.model_copy(update={
        "asset_class": asset_class, "rto_hours": rto_hours, "last_recovery_test": test,
        "measured_recovery": test if passed and minutes is not None else None,
        "estimated_recovery_minutes": 60.0, "restore_site": "local"})


def _backups(week: ReportWeek, healthy: bool, text: Mapping[str, str], extra_assets: int) -> BackupData:
    tested = week.end - dt.timedelta(days=1, hours=5)
    return BackupData(assets=[
        verified(a, at=tested, rto_hours=24 if a.name.startswith("ACME-WS") else 8,
                 asset_class="workstation" if a.name.startswith("ACME-WS") else "server")
        for a in _backup_assets(week, healthy, text, extra_assets)])


def _backup_assets(week: ReportWeek, healthy: bool, text: Mapping[str, str], extra_assets: int) -> list[BackupAsset]:
    stale = week.end - dt.timedelta(hours=20 if healthy else 93)
    return [
        BackupAsset(name=text.get("asset", "ACME-FS01"), appliance="S3-2000", last_good_backup=stale,
                    last_status="success" if healthy else "failed", backups_in_week=28 if healthy else 12,
                    failures_in_week=0 if healthy else 9, rpo_hours=24, source="datto"),
        BackupAsset(name="ACME-SQL01", appliance="S3-2000", last_good_backup=week.end - dt.timedelta(hours=2),
                    last_status="success", backups_in_week=168, failures_in_week=0, rpo_hours=4, source="datto"),
    ] + [
        BackupAsset(name=f"ACME-WS{n:03d}", appliance="Cloud", last_good_backup=week.end - dt.timedelta(hours=3),
                    last_status="success", backups_in_week=7, failures_in_week=0, rpo_hours=24, source="datto")
        for n in range(extra_assets)
    ]


def _security(week: ReportWeek, healthy: bool, text: Mapping[str, str]) -> SecurityData:
    incidents = [
        Incident(ref="INC-2219", title="Malware blocked on LAPTOP-17", severity="medium", status="resolved",
                 created_at=week.start + dt.timedelta(days=1, hours=10), source="defender"),
    ]
    if not healthy:
        title = text.get("incident", "Suspicious sign-in from unfamiliar location")
        incidents.append(Incident(ref="INC-2231", title=title,
                                  severity="high", status="open",
                                  created_at=week.start + dt.timedelta(days=5, hours=3), source="defender"))
    return SecurityData(incidents=incidents, secure_score_pct=71.4, secure_score_prev_pct=68.9)


def _sites(text: Mapping[str, str]) -> SiteData:
    return SiteData(checks=[
        SiteCheck(name=text.get("check", "Customer portal"), address="https://portal.acme.example",
                  availability_pct=99.987, downtime_minutes=1.3, status_now="up", source="cloudflare"),
        SiteCheck(name="Public website", address="https://www.acme.example", availability_pct=100.0,
                  downtime_minutes=0, status_now="up", source="cloudflare"),
    ])


def make_snapshot(week_of: dt.date = WEEK_OF, *, failed: dict[str, str] | None = None, healthy: bool = False,
                  text: dict[str, str] | None = None, extra_assets: int = 0) -> WeeklySnapshot:
    """A week of one customer. ``healthy`` gives a clean week; ``text`` overrides source strings
    (keys ``site``, ``change``, ``asset``, ``incident``, ``check``); ``failed`` maps domain → error."""
    failed, text = failed or {}, text or {}
    week = ReportWeek.starting(week_of, TZ)
    data = {"uptime": _uptime(healthy, text), "tickets": _tickets(week, healthy, text),
            "backups": _backups(week, healthy, text, extra_assets), "security": _security(week, healthy, text),
            "sites": _sites(text)}
    return week_snapshot(week_of, TZ, data, SYSTEM_LABELS, failed,
                         fetched_at=week.end + dt.timedelta(hours=6, minutes=5),
                         as_of=week.end - dt.timedelta(minutes=5))


def make_previous() -> WeeklySnapshot:
    """The healthy week before :data:`WEEK_OF`, with last week's ticket figures."""
    prev = make_snapshot(WEEK_OF - dt.timedelta(days=7), healthy=True)
    return with_tickets(prev, opened=19, closed=21, sla_breaches=1, backlog_end=8)


def make_reconciled(*, baseline: bool = True, **kwargs) -> Reconciled:
    """:func:`make_snapshot` (``kwargs``) reconciled against :func:`make_previous`, or against nothing."""
    return reconcile(make_snapshot(**kwargs), make_previous() if baseline else None, Thresholds())


HISTORY_BACKLOG = (31, 32, 33, 34, 35, 36, 37)  # weeks 7..1 before WEEK_OF; distinct from every other figure


def make_history(*, missing: tuple[int, ...] = (),
                 failed: dict[int, dict[str, str]] | None = None) -> list[WeeklySnapshot]:
    """The seven weeks before WEEK_OF, oldest first; ``missing`` / ``failed`` count weeks back (1 = last week)."""
    failed = failed or {}
    weeks = []
    for back, backlog in zip(range(7, 0, -1), HISTORY_BACKLOG):
        if back in missing:
            continue
        snap = make_snapshot(WEEK_OF - dt.timedelta(days=7 * back), healthy=True, failed=failed.get(back))
        if snap.tickets.data is not None:
            snap = with_tickets(snap, backlog_end=backlog)
        weeks.append(snap)
    return weeks


def hostile_strings(base: str) -> dict[str, str]:
    """Source text that tries HTML, Markdown, links, images and bidi tricks; ``base`` is a URL that must never be fetched."""
    return {
        "incident": "<script>alert(1)</script> evil\u202etxt.exe",
        "change": f'<img src="{base}/x.png"> and <link rel="attachment" href="file:///etc/passwd">',
        "asset": f"![x]({base}/y.png)",
        "site": "[click](file:///etc/passwd)",
        "check": f"<{base}/autolink> **bold** | pipe # heading",
    }

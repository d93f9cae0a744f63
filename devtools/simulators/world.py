"""The demo's world: twelve customers and what happened to them, week by week.

Every simulator serves this one world in its own wire format, so the numbers a report shows
can be checked against the truth here. Deterministic: the same ``latest_week_of`` always gives
the same world. The stories (an SLA drop, a silent backup, an open incident, a growing ticket
backlog, a failed recovery test, a slow restore) happen in the latest week, and one customer's
recovery has not been tested for 40 days; earlier weeks are each customer's normal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


@dataclass(frozen=True)
class SimWeek:
    """One customer's week in the world: Monday 00:00 to the next Monday 00:00, local time (as UTC).

    The simulators' own notion, kept apart from the product's ``ReportWeek`` so that a wrong week
    boundary in the product shows up as a wrong figure instead of agreeing with itself.
    """

    week_of: dt.date
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def starting(cls, week_of: dt.date, timezone: str) -> SimWeek:
        zone = ZoneInfo(timezone)
        start, end = (dt.datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)
                      for d in (week_of, week_of + dt.timedelta(days=7)))
        return cls(week_of, start, end)

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())
WEEKS = 9  # the latest week and eight before it (trend charts want eight)

BOUNDARY_HEAD_MINUTES = 6  # the outage across the latest week's start: minutes before it


def boundary_tail_minutes(site: str) -> int:
    """Minutes of that outage inside the latest week (differs per site, to catch mix-ups)."""
    return 1 + len(site) % 3


PRIORITIES = ("Priority 1 - Critical", "Priority 2 - High", "Priority 3 - Medium", "Priority 4 - Low")
CHANGE_BOARD = "Change Management"
SERVICE_BOARD = "Service Desk"


@dataclass(frozen=True)
class Profile:
    code: str
    name: str
    timezone: str
    sites: tuple[str, ...]
    classes: tuple[str, ...] = ("Servers", "Network", "Firewalls")
    domain: str = ""
    stories: tuple[str, ...] = ()
    tickets_per_week: int = 18
    agents: int = 4
    web_checks: tuple[str, ...] = ("www", "portal")

    @property
    def mail_domain(self) -> str:
        return self.domain or f"{self.code.lower()}.example"


PROFILES: tuple[Profile, ...] = (
    Profile("ACME", "Acme Manufacturing Ltd", "Europe/London", ("Leeds", "Sheffield"), stories=("sla_drop",)),
    Profile("BRVO", "Bravo Legal LLP", "America/New_York", ("Manhattan", "Newark"), stories=("backup_stale",)),
    Profile("CNDR", "Condor Logistics Pte Ltd", "Asia/Singapore", ("Changi", "Jurong"), stories=("open_incident",)),
    Profile("DLTA", "Delta Dental Group", "America/Los_Angeles", ("Pasadena", "Irvine", "Long Beach"),
            stories=("backlog_growth",), tickets_per_week=22),
    Profile("ECHO", "Echo Architects GmbH", "Europe/Berlin", ("Berlin",), stories=("restore_failed",)),
    Profile("FXTR", "Foxtrot Retail plc", "Europe/London", ("Bristol", "Cardiff", "Swansea"), agents=6,
            stories=("hostile_titles",)),
    Profile("GOLF", "Golf Course Holdings Pty", "Australia/Sydney", ("Sydney", "Newcastle")),
    Profile("HTEL", "Hotel Meridian Group", "America/Chicago", ("Chicago",), web_checks=("www", "booking", "portal")),
    Profile("INDG", "Indigo Health Clinics", "Europe/London", ("Oxford", "Reading")),
    Profile("JULT", "Juliet Insurance Brokers", "America/New_York", ("Boston",), stories=("recovery_untested",)),
    Profile("KILO", "Kilo Engineering BV", "Europe/Amsterdam", ("Rotterdam", "Utrecht"), stories=("recovery_slow",)),
    Profile("LIMA", "Lima Foods Ltd", "Asia/Singapore", ("Tuas",), agents=3),
)


# --------------------------------------------------------------------------------------------
@dataclass
class Outage:
    start: dt.datetime
    end: dt.datetime | None  # None: still down


@dataclass
class Service:
    """One site x device class, as a Zabbix business service tagged by customer/site/class."""

    serviceid: int
    site: str
    device_class: str
    devices: int
    slo: float
    outages: list[Outage] = field(default_factory=list)


@dataclass
class Ticket:
    id: int
    summary: str
    board: str
    type: str
    priority: str
    entered: dt.datetime
    closed: dt.datetime | None
    in_sla: bool
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "Closed" if self.closed else "In Progress"


@dataclass
class BackupRun:
    at: dt.datetime
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class RecoveryRun:
    """One recovery test or restore of an agent: ``screenshot`` (Datto's screenshot
    verification), ``surebackup`` (Veeam's weekly lab boot) or ``restore`` (a real restore)."""

    kind: str
    started: dt.datetime
    ended: dt.datetime
    ok: bool


@dataclass
class BackupAgent:
    name: str
    appliance_serial: str
    appliance_name: str
    rpo_hours: float
    runs: list[BackupRun] = field(default_factory=list)  # ascending by time
    recoveries: list[RecoveryRun] = field(default_factory=list)  # ascending by start


@dataclass
class SecurityIncident:
    id: str
    title: str
    severity: str  # Graph enum: high, medium, low, informational
    created: dt.datetime
    resolved: dt.datetime | None


@dataclass
class SecureScore:
    day: dt.date
    current: float
    max: float


@dataclass
class HealthCheck:
    id: str
    name: str
    address: str
    outages: list[Outage] = field(default_factory=list)

    @property
    def short_name(self) -> str:
        """The site's first label (``www``): the check's name in Cloudflare, which allows only
        alphanumerics, ``-`` and ``_`` in a check name (so not the host name with its dots)."""
        return self.name.split(".", 1)[0]


@dataclass
class CustomerWorld:
    profile: Profile
    zone_id: str
    tenant_id: str
    services: list[Service] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    agents: list[BackupAgent] = field(default_factory=list)
    incidents: list[SecurityIncident] = field(default_factory=list)
    secure_scores: list[SecureScore] = field(default_factory=list)
    checks: list[HealthCheck] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.profile.code


def _stable_hex(*parts: object, n: int = 32) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:n]


def _guid(*parts: object) -> str:
    h = _stable_hex(*parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class World:
    """All customers' events from ``weeks`` (default :data:`WEEKS`) weeks before ``latest_week_of``
    to shortly after; the QBR demo asks for a whole quarter (13 or 14). The stories are in the latest week."""

    def __init__(self, latest_week_of: dt.date, profiles: tuple[Profile, ...] = PROFILES, *,
                 weeks: int = WEEKS) -> None:
        self.latest_week_of = latest_week_of
        self.weeks = weeks
        self.customers: dict[str, CustomerWorld] = {}
        self._ticket_id = 10000
        self._service_id = 100
        for profile in profiles:
            self.customers[profile.code] = self._build(profile)

    def emptied(self) -> World:
        """The same customers and identifiers with no records: what an ``empty`` answer serves."""
        import copy

        twin = copy.copy(self)
        twin.customers = {
            code: CustomerWorld(c.profile, zone_id=c.zone_id, tenant_id=c.tenant_id)
            for code, c in self.customers.items()
        }
        return twin

    # ---- lookups used by the simulators
    def week(self, code: str, offset: int = 0) -> SimWeek:
        """The customer's week ``offset`` weeks before the latest one."""
        tz = self.customers[code].profile.timezone
        return SimWeek.starting(self.latest_week_of - dt.timedelta(weeks=offset), tz)

    def by_zone(self, zone_id: str) -> CustomerWorld | None:
        return next((c for c in self.customers.values() if c.zone_id == zone_id), None)

    def by_tenant(self, tenant_id: str) -> CustomerWorld | None:
        return next((c for c in self.customers.values() if c.tenant_id == tenant_id), None)

    def by_company(self, name_or_code: str) -> CustomerWorld | None:
        return next(
            (c for c in self.customers.values() if name_or_code in (c.code, c.profile.name)), None
        )

    # ---- generation
    def _build(self, p: Profile) -> CustomerWorld:
        cw = CustomerWorld(p, zone_id=_stable_hex("zone", p.code), tenant_id=_guid("tenant", p.code))
        weeks = [SimWeek.starting(self.latest_week_of - dt.timedelta(weeks=k), p.timezone)
                 for k in range(self.weeks - 1, -1, -1)]
        tail_end = weeks[-1].end + dt.timedelta(days=2)  # events after the week must be ignored
        self._services(cw, weeks)
        self._tickets(cw, weeks, tail_end)
        self._backups(cw, weeks, tail_end)
        self._security(cw, weeks, tail_end)
        self._checks(cw, weeks)
        return cw

    def _rng(self, *parts: object) -> random.Random:
        return random.Random(_stable_hex(*parts))

    def _services(self, cw: CustomerWorld, weeks: list[SimWeek]) -> None:
        p = cw.profile
        for site in p.sites:
            for cls in p.classes:
                self._service_id += 1
                r = self._rng("svc", p.code, site, cls)
                svc = Service(self._service_id, site, cls, devices=r.randint(2, 12),
                              slo=99.5 if cls == "Firewalls" else 99.9)
                for i, w in enumerate(weeks):
                    latest = i == len(weeks) - 1
                    rw = self._rng("outage", p.code, site, cls, w.week_of)
                    if rw.random() < 0.25:  # a short blip some weeks, inside a 99.9% SLO
                        start = w.start + dt.timedelta(seconds=rw.randint(3600, w.seconds - 7200))
                        svc.outages.append(Outage(start, start + dt.timedelta(minutes=rw.randint(1, 3))))
                    if latest and "sla_drop" in p.stories and site == p.sites[0] and cls == "Network":
                        # core switch failure at the first site: about 7 hours down on Wednesday
                        start = w.start + dt.timedelta(days=2, hours=9, minutes=12)
                        svc.outages.append(Outage(start, start + dt.timedelta(hours=7, minutes=5)))
                # an outage that spans the boundary into the previous week counts only in-week
                svc.outages.append(Outage(weeks[-1].start - dt.timedelta(minutes=BOUNDARY_HEAD_MINUTES),
                                          weeks[-1].start + dt.timedelta(minutes=boundary_tail_minutes(site))))
                svc.outages.sort(key=lambda o: o.start)
                cw.services.append(svc)

    def _tickets(self, cw: CustomerWorld, weeks: list[SimWeek], tail_end: dt.datetime) -> None:
        p = cw.profile
        subjects = ("Password reset for {u}", "Outlook not syncing on {u}'s laptop", "VPN drops at {s}",
                    "New starter setup: {u}", "Printer offline at {s}", "Shared drive permissions for {u}",
                    "Wi-Fi slow in {s} meeting room", "Teams calls dropping for {u}", "MFA re-registration for {u}",
                    "Laptop replacement for {u}", "Phishing email reported by {u}", "Disk space alert on {s} file server")
        changes = ("Patch Tuesday rollout to {s} servers", "Firewall firmware upgrade at {s}",
                   "Replace core switch at {s}", "Rotate VPN pre-shared keys", "Decommission legacy file server at {s}",
                   "Enable conditional access for admins")
        users = ("j.smith", "a.patel", "m.garcia", "l.chen", "s.okafor", "r.muller", "k.tanaka", "e.rossi")
        hostile = ('<script>alert("x")</script> Printer at {s} shows <b>ERROR</b> & 50% toner',
                   'Invoice link <img src="https://evil.example/t.png"> from {u}',
                   'See <a href="file:///etc/passwd">this</a> \u202egnp.exe')
        start_backlog = 9
        first = weeks[0]
        # open tickets carried into the first week
        r0 = self._rng("backlog", p.code)
        for n in range(start_backlog):
            entered = first.start - dt.timedelta(hours=r0.randint(10, 200))
            closes = first.start + dt.timedelta(hours=r0.randint(5, 150))
            self._add_ticket(cw, r0, subjects, users, entered, closes, SERVICE_BOARD, "Incident")
        for i, w in enumerate(weeks):
            r = self._rng("tickets", p.code, w.week_of)
            growth = "backlog_growth" in p.stories
            n_open = p.tickets_per_week + r.randint(-4, 4) + (i * 3 if growth else 0)
            close_rate = 0.55 if growth and i >= self.weeks - 4 else 0.92
            for _ in range(n_open):
                entered = w.start + dt.timedelta(seconds=r.randint(0, w.seconds - 1))
                if r.random() < close_rate:
                    closed = entered + dt.timedelta(hours=r.choice((1, 2, 4, 8, 20, 30, 60)))
                elif growth:
                    closed = None  # the story: work piles up
                else:
                    closed = entered + dt.timedelta(hours=r.randint(80, 300))  # slow, but closed
                tmpl = subjects
                if "hostile_titles" in p.stories and i == self.weeks - 1 and r.random() < 0.3:
                    tmpl = hostile
                self._add_ticket(cw, r, tmpl, users, entered, closed, SERVICE_BOARD, "Incident")
            for _ in range(r.randint(1, 3)):
                executed = w.start + dt.timedelta(seconds=r.randint(3600, w.seconds - 3600))
                entered = executed - dt.timedelta(days=r.randint(2, 6))
                self._add_ticket(cw, r, changes, users, entered, executed, CHANGE_BOARD, "Change", in_sla=True)
            if "hostile_titles" in p.stories and i == self.weeks - 1:
                # a change whose title came from an e-mail: must render as inert text
                executed = w.start + dt.timedelta(days=3, hours=14)
                self._add_ticket(cw, r, hostile, users, executed - dt.timedelta(days=1), executed,
                                 CHANGE_BOARD, "Change", in_sla=True)
        # Monday morning after the latest week: must not be counted in it
        r = self._rng("after", p.code)
        for _ in range(3):
            entered = weeks[-1].end + dt.timedelta(minutes=r.randint(5, 300))
            self._add_ticket(cw, r, subjects, users, entered, None, SERVICE_BOARD, "Incident")
        cw.tickets.sort(key=lambda t: t.id)

    def _add_ticket(self, cw, r, templates, users, entered, closed, board, kind, in_sla=None) -> None:
        self._ticket_id += 1
        p = cw.profile
        summary = r.choice(templates).format(u=r.choice(users), s=r.choice(p.sites))
        priority = r.choices(PRIORITIES, weights=(1, 3, 8, 6))[0]
        if in_sla is None:
            in_sla = r.random() > (0.25 if "backlog_growth" in p.stories else 0.06)
        cw.tickets.append(Ticket(self._ticket_id, summary, board, kind, priority, entered, closed, in_sla))

    def _backups(self, cw: CustomerWorld, weeks: list[SimWeek], tail_end: dt.datetime) -> None:
        p = cw.profile
        serial = _stable_hex("siris", p.code, n=12).upper()
        roles = ("DC01", "FS01", "SQL01", "APP01", "EXCH01", "RDS01", "PRINT01")
        for n in range(p.agents):
            name = f"{p.code}-{roles[n % len(roles)]}"
            agent = BackupAgent(name, serial, f"{p.code}-SIRIS-01", rpo_hours=24.0 if n else 12.0)
            r = self._rng("backup", p.code, name)
            t = weeks[0].start - dt.timedelta(hours=12)
            stop = weeks[-1].end - dt.timedelta(hours=1)
            if "backup_stale" in p.stories and n == 1:
                stop = weeks[-1].end - dt.timedelta(hours=74)  # agent stopped checking in
            while t < stop:
                ok = r.random() > 0.04
                agent.runs.append(BackupRun(t, ok, "" if ok else "VSS writer timed out"))
                t += dt.timedelta(hours=agent.rpo_hours / 2)
            self._recoveries(cw, agent, n, weeks)
            cw.agents.append(agent)

    def _recoveries(self, cw: CustomerWorld, agent: BackupAgent, n: int, weeks: list[SimWeek]) -> None:
        """A passed screenshot verification every day at 03:00 and a passed SureBackup every
        Saturday at 22:00 (customer time), each lasting minutes; then the demo stories:

        - ``restore_failed``: the first agent's screenshot and SureBackup of the latest week fail;
        - ``recovery_untested``: no test of any agent in the last 40 days before the latest week end;
        - ``recovery_slow``: the first agent was restored on the latest week's Wednesday, taking
          11 hours (its RTO is the server default, 8 h), after its last SureBackup.
        """
        p, r = cw.profile, self._rng("recovery", cw.profile.code, agent.name)
        latest = weeks[-1]
        untested_from = latest.end - dt.timedelta(days=40)
        for week in weeks:
            for day in range(7):
                start = week.start + dt.timedelta(days=day, hours=3)
                kinds = [("screenshot", 6 + r.randrange(8))]
                if day == 5:
                    kinds.append(("surebackup", 20 + r.randrange(30)))
                for kind, minutes in kinds:
                    at = start if kind == "screenshot" else week.start + dt.timedelta(days=5, hours=22)
                    if "recovery_untested" in p.stories and at >= untested_from:
                        continue
                    failed = "restore_failed" in p.stories and n == 0 and week is latest
                    agent.recoveries.append(RecoveryRun(kind, at, at + dt.timedelta(minutes=minutes), not failed))
        if "recovery_slow" in p.stories and n == 0:
            at = latest.start + dt.timedelta(days=2, hours=9)
            agent.recoveries.append(RecoveryRun("restore", at, at + dt.timedelta(hours=11, minutes=5), True))
            agent.recoveries = [x for x in agent.recoveries
                                if not (x.kind == "surebackup" and x.started > at)]
        agent.recoveries.sort(key=lambda x: x.started)

    def _security(self, cw: CustomerWorld, weeks: list[SimWeek], tail_end: dt.datetime) -> None:
        p = cw.profile
        titles = (("Suspicious sign-in from unfamiliar location", "medium"),
                  ("Malware detected and quarantined on endpoint", "low"),
                  ("Multiple failed sign-ins on admin account", "medium"),
                  ("Phishing email delivered then removed by ZAP", "low"),
                  ("Unusual file download activity", "informational"))
        score, max_score = 58.0 + len(p.code) * 2.0, 100.0
        for i, w in enumerate(weeks):
            r = self._rng("sec", p.code, w.week_of)
            for _ in range(r.randint(0, 2)):
                created = w.start + dt.timedelta(seconds=r.randint(0, w.seconds - 7200))
                title, sev = r.choice(titles)
                cw.incidents.append(SecurityIncident(_stable_hex("inc", p.code, created, n=8), title, sev,
                                                     created, created + dt.timedelta(hours=r.randint(1, 30))))
            if "open_incident" in p.stories and i == self.weeks - 1:
                created = w.start + dt.timedelta(days=4, hours=3, minutes=41)
                cw.incidents.append(SecurityIncident(_stable_hex("inc-open", p.code, n=8),
                                                     "Ransomware behaviour detected on file server", "high",
                                                     created, None))
            for d in range(7):
                day = w.week_of + dt.timedelta(days=d)
                score = max(20.0, min(max_score, score + r.uniform(-0.4, 0.6)))
                cw.secure_scores.append(SecureScore(day, round(score, 2), max_score))

    def _checks(self, cw: CustomerWorld, weeks: list[SimWeek]) -> None:
        p = cw.profile
        for name in p.web_checks:
            check = HealthCheck(_stable_hex("hc", p.code, name), f"{name}.{p.mail_domain}",
                                f"https://{name}.{p.mail_domain}/")
            for w in weeks:
                r = self._rng("hc", p.code, name, w.week_of)
                if r.random() < 0.3:
                    start = w.start + dt.timedelta(seconds=r.randint(0, w.seconds - 3600))
                    check.outages.append(Outage(start, start + dt.timedelta(minutes=r.randint(1, 40))))
            cw.checks.append(check)


def latest_complete_week(now: dt.datetime, msp_timezone: str = "Europe/London",
                         deliver_at: dt.time = dt.time(9, 0)) -> dt.date:
    """``week_of`` of the latest week whose report is due by ``now`` (Monday 09:00 MSP time)."""
    local = now.astimezone(ZoneInfo(msp_timezone))
    monday = local.date() - dt.timedelta(days=local.weekday())
    if local.weekday() == 0 and local.time() < deliver_at:
        monday -= dt.timedelta(days=7)
    return monday - dt.timedelta(days=7)

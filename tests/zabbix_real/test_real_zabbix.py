"""The Zabbix extract against a real Zabbix 6.0 server, set up as the README's recipe says.

The server, its frontend and ``zabbix_sender`` come from Debian's packages (see ``server.py``).
The seed goes through the server's own API and ``zabbix_sender -T`` with back-dated history:
three customers in London, New York and Singapore, two weeks (London's week of 19 October 2026
holds the end of British summer time, New York's week of 26 October the end of US daylight time:
both are 169 hours), outages inside a week, overlapping on two hosts of one row, across a week's
end, across a week's start, before the week, and one still open. Around them, what a real MSP
server also holds: an MSP-wide SLA on ``class=Servers`` in UTC with the lowest id, a parent
service per customer, another customer's retired SLA (by ``customer`` and ``class``) in another
timezone, and a disabled SLA on a customer's own tag. None may change a figure.

The expected figures are computed here from the raw outage intervals (union per site x class,
clipped to the customer's Monday-to-Monday week), never with the project's code.

Skipped with a message when the packages are missing and cannot be installed; mandatory under
``CI=true`` (``scripts/test.sh`` installs them there).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest

from msp_reports.exceptions import SourceResponseError
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import zabbix
from msp_reports.sources.zabbix_setup import RowSpec, provision
from msp_reports.week import ReportWeek

from .server import ZabbixServer, ZabbixUnavailable, missing

UTC = dt.timezone.utc
WEEKS = (dt.date(2026, 10, 19), dt.date(2026, 10, 26))
CREATED = dt.datetime(2026, 10, 1, tzinfo=UTC)  # services and SLAs "exist" from here (back-dated by SQL)
SEED_START = dt.datetime(2026, 10, 5, tzinfo=UTC)  # every host reports "up" here first


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Row:
    site: str
    device_class: str
    slo: float
    hosts: int
    outages: dict[int, list[tuple[dt.datetime, dt.datetime | None]]] = field(default_factory=dict)  # per host


@dataclass
class Customer:
    code: str
    timezone: str
    rows: list[Row]


CUSTOMERS = [
    Customer("ACME", "Europe/London", [
        Row("HQ", "Servers", 99.9, 2, {
            1: [(at("2026-10-20T10:00"), at("2026-10-20T11:30"))],           # inside week 1
            2: [(at("2026-10-20T11:00"), at("2026-10-20T12:15")),            # overlaps host 1
                (at("2026-10-28T09:00"), at("2026-10-28T09:20"))],
        }),
        Row("HQ", "Network", 99.9, 1, {
            1: [(at("2026-10-25T22:00"), at("2026-10-26T02:00"))],           # across week 1's end
        }),
        Row("HQ", "Firewalls", 99.5, 1, {
            1: [(at("2026-10-15T08:00"), at("2026-10-15T09:00")),            # before week 1
                (at("2026-10-18T22:30"), at("2026-10-18T23:30"))],           # across week 1's start (23:00 UTC)
        }),
        Row("DR", "Servers", 99.9, 2, {
            2: [(at("2026-10-29T06:00"), None)],                             # still open
        }),
    ]),
    Customer("BRVO", "America/New_York", [
        Row("NYC", "Servers", 99.9, 3, {
            1: [(at("2026-11-01T05:30"), at("2026-11-01T06:40"))],           # across the DST change
            3: [(at("2026-10-21T13:00"), at("2026-10-21T13:05"))],
        }),
        Row("NYC", "Storage", 99.5, 1, {
            1: [(at("2026-10-27T14:00"), at("2026-10-27T14:20"))],
        }),
    ]),
    Customer("CNDR", "Asia/Singapore", [
        Row("Tuas", "Servers", 99.95, 2, {
            1: [(at("2026-10-21T03:00"), at("2026-10-21T03:45"))],
            2: [(at("2026-10-25T15:50"), at("2026-10-25T16:30"))],           # across week 1's end (16:00 UTC)
        }),
    ]),
]


def host_name(c: Customer, row: Row, n: int) -> str:
    return f"{c.code}-{row.site}-{row.device_class}-{n:02d}".lower()


def sla_key(c: Customer, slo: float) -> str:
    return f"{c.code}:{slo:g}"


# ---- expected figures, from the raw intervals ----------------------------------------------------
def expected(c: Customer, week_of: dt.date) -> list[tuple]:
    zone = ZoneInfo(c.timezone)
    start = dt.datetime.combine(week_of, dt.time(0), tzinfo=zone).astimezone(UTC)
    end = dt.datetime.combine(week_of + dt.timedelta(days=7), dt.time(0), tzinfo=zone).astimezone(UTC)
    total = (end - start).total_seconds()
    rows = []
    for row in c.rows:
        spans = sorted((max(s, start), min(e or end, end)) for host in row.outages.values() for s, e in host)
        down, reach = 0.0, start
        for s, e in spans:
            s = max(s, reach)
            if e > s:
                down += (e - s).total_seconds()
                reach = e
        rows.append((row.site, row.device_class, (total - down) / total * 100, down, row.slo, row.hosts))
    return sorted(rows)


# ---- the seed, as the README's recipe says --------------------------------------------------------
def seed(zbx: ZabbixServer) -> None:
    groupid = zbx.api("hostgroup.create", {"name": "Managed customers"})["groupids"][0]
    # distractor 1, created first so it has the lowest id: an MSP-wide SLA that ORs into every customer
    zbx.api("sla.create", {"name": "MSP all servers (internal)", "period": 0, "slo": 99.0, "timezone": "UTC",
                           "effective_date": int(CREATED.timestamp()),
                           "service_tags": [{"tag": "class", "operator": 0, "value": "Servers"}]})
    events = []
    for c in CUSTOMERS:
        rows = []
        for row in c.rows:
            for n in range(1, row.hosts + 1):
                name = host_name(c, row, n)
                hostid = zbx.api("host.create", {
                    "host": name, "groups": [{"groupid": groupid}],
                    "tags": [{"tag": "customer", "value": c.code}, {"tag": "site", "value": row.site},
                             {"tag": "class", "value": row.device_class}]})["hostids"][0]
                zbx.api("item.create", {"hostid": hostid, "name": "Device reachable", "key_": "msp.up",
                                        "type": 2, "value_type": 3})  # trapper, unsigned
                zbx.api("trigger.create", {"description": f"{name} is down", "priority": 4,
                                           "expression": f"last(/{name}/msp.up)=0"})
                events.append((SEED_START, name, "1"))
                for s, e in row.outages.get(n, []):
                    events.append((s, name, "0"))
                    if e is not None:
                        events.append((e, name, "1"))
            serviceid = zbx.api("service.create", {
                "name": f"{c.code} {row.site} {row.device_class}", "algorithm": 1, "sortorder": 0,
                "problem_tags": [{"tag": "customer", "operator": 0, "value": c.code},
                                 {"tag": "site", "operator": 0, "value": row.site},
                                 {"tag": "class", "operator": 0, "value": row.device_class}],
                "tags": [{"tag": "customer", "value": c.code}, {"tag": "site", "value": row.site},
                         {"tag": "class", "value": row.device_class}, {"tag": "sla", "value": sla_key(c, row.slo)}],
            })["serviceids"][0]
            rows.append(serviceid)
        # distractor 2: the customer's parent service, tagged customer=<CODE> only
        zbx.api("service.create", {"name": f"{c.code} (all sites)", "algorithm": 1, "sortorder": 0,
                                   "children": [{"serviceid": s} for s in rows],
                                   "tags": [{"tag": "customer", "value": c.code}]})
        for slo in sorted({row.slo for row in c.rows}, reverse=True):
            zbx.api("sla.create", {"name": f"{c.code} uptime {slo:g}%", "period": 0, "slo": slo,
                                   "timezone": c.timezone, "effective_date": int(CREATED.timestamp()),
                                   "service_tags": [{"tag": "sla", "operator": 0, "value": sla_key(c, slo)}]})
    # distractor 3: BRVO's retired SLA, by customer AND class as the old docstring said, in another timezone
    zbx.api("sla.create", {"name": "BRVO retired", "period": 0, "slo": 95.0, "timezone": "America/Los_Angeles",
                           "effective_date": int(CREATED.timestamp()),
                           "service_tags": [{"tag": "customer", "operator": 0, "value": "BRVO"},
                                            {"tag": "class", "operator": 0, "value": "Servers"}]})
    # distractor 4: a disabled SLA on ACME's own tag with another SLO
    zbx.api("sla.create", {"name": "ACME old target", "period": 0, "slo": 50.0, "timezone": "Europe/London",
                           "status": 0, "effective_date": int(CREATED.timestamp()),
                           "service_tags": [{"tag": "sla", "operator": 0, "value": "ACME:99.9"}]})
    # sla.getsli ignores time before services.created_at, which the API stamps "now": back-date it
    zbx.sql(f"UPDATE services SET created_at = {int(CREATED.timestamp())}")
    zbx.reload_config()
    time.sleep(4)  # the configuration cache and the service manager (sync every 1 s) pick it all up
    # one value at a time, each waited for: the history syncer takes a batch item by item, not in
    # time order, and the service manager then misses or misorders overlapping outages
    zbx.send([(name, "msp.up", int(when.timestamp()), value) for when, name, value in events if when == SEED_START])
    transitions = sorted(e for e in events if e[0] != SEED_START)
    for n, (when, name, value) in enumerate(transitions, 1):
        zbx.send([(name, "msp.up", int(when.timestamp()), value)])
        wait_for(lambda: int(zbx.sql("SELECT count(*) FROM events WHERE source=0").strip()) >= n,
                 30, f"the trigger event of {name} at {when}", every=0.1)
    last = [-1]

    def settled() -> bool:
        count = int(zbx.sql("SELECT count(*) FROM service_alarms").strip())
        done = count == last[0] and count > 0
        last[0] = count
        return done

    wait_for(settled, 60, "service alarms", every=2.0)


def wait_for(check, seconds: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"{what}: not there after {seconds:.0f} s")


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_zabbix():
    reason = missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the real Zabbix test is mandatory in CI: {reason}")
        pytest.skip(f"real Zabbix 6.0 not available: {reason}")
    started = time.monotonic()
    try:
        server = ZabbixServer().__enter__()
    except ZabbixUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the real Zabbix test is mandatory in CI: {exc}")
        pytest.skip(f"real Zabbix 6.0 did not start: {exc}")
    try:
        seed(server)
        print(f"\nreal Zabbix {server.api('apiinfo.version', {}, auth=False)}: started and seeded in "
              f"{time.monotonic() - started:.1f} s ({server.calls} API calls)")
        yield server
    finally:
        server.stop()


@pytest.fixture
def hook(real_zabbix, monkeypatch):
    def make(**extra) -> zabbix.ZabbixHook:
        conn = dict(real_zabbix.connection())
        if extra:
            conn["extra"] = json.dumps(extra)
            conn.pop("login"), conn.pop("password")
        monkeypatch.setenv("AIRFLOW_CONN_ZABBIX_REAL", json.dumps(conn))
        return zabbix.ZabbixHook("zabbix_real", policy=RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2))
    return make


def counted(hook: zabbix.ZabbixHook) -> list[str]:
    """Record every JSON-RPC method the hook calls."""
    calls: list[str] = []
    rpc = hook.rpc

    def wrapper(method, params, *, auth=True):
        calls.append(method)
        return rpc(method, params, auth=auth)

    hook.rpc = wrapper  # type: ignore[method-assign]
    return calls


# ---- the figures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("week_of", WEEKS, ids=[str(w) for w in WEEKS])
@pytest.mark.parametrize("customer", CUSTOMERS, ids=[c.code for c in CUSTOMERS])
def test_real_server_uptime_equals_the_raw_outages(hook, customer, week_of):
    week = ReportWeek.starting(week_of, customer.timezone)
    h = hook()
    calls = counted(h)
    got = zabbix.extract(h, {"service_tag": customer.code}, week).data.rows
    want = expected(customer, week_of)
    assert [(r.site, r.device_class) for r in sorted(got, key=lambda r: (r.site, r.device_class))] == \
        [(w[0], w[1]) for w in want], "no missing or extra rows"
    for row, (site, cls, pct, down, slo, devices) in zip(sorted(got, key=lambda r: (r.site, r.device_class)), want):
        assert row.uptime_pct == pytest.approx(pct, abs=0.001), (site, cls)
        assert row.downtime_minutes * 60 == pytest.approx(down, abs=1), (site, cls)
        assert row.slo_pct == slo, (site, cls)  # its own SLA's, not the MSP-wide or the disabled one
        assert row.devices == devices, (site, cls)
    slas = len({r.slo for r in customer.rows})
    # apiinfo.version, user.login, service.get, sla.get, host.get, one sla.getsli per SLA, user.logout
    assert calls.count("sla.getsli") == slas and len(calls) == 6 + slas, calls
    print(f"{customer.code} {week_of} ({week.hours:g} h): {len(got)} rows, {len(calls)} API calls")


def test_the_weeks_include_two_dst_weeks():
    assert ReportWeek.starting(WEEKS[0], "Europe/London").hours == 169
    assert ReportWeek.starting(WEEKS[1], "America/New_York").hours == 169


def test_an_api_token_skips_login_and_logout(real_zabbix, hook):
    userid = real_zabbix.api("user.get", {"output": ["userid"], "filter": {"username": "Admin"}})[0]["userid"]
    tokenid = real_zabbix.api("token.create", {"name": f"msp-reports {time.time_ns()}", "userid": userid})["tokenids"][0]
    token = real_zabbix.api("token.generate", [tokenid])[0]["token"]
    h = hook(api_token=token)
    calls = counted(h)
    acme = CUSTOMERS[0]
    rows = zabbix.extract(h, {"service_tag": acme.code}, ReportWeek.starting(WEEKS[0], acme.timezone)).data.rows
    assert len(rows) == len(acme.rows)
    assert "user.login" not in calls and "user.logout" not in calls
    assert len(calls) == 4 + len({r.slo for r in acme.rows}), calls


def test_real_server_ors_an_slas_service_tags(real_zabbix):
    """Why the convention is one tag per SLA: the retired SLA (customer=BRVO, class=Servers) holds
    every customer's servers on the real server."""
    slaid = real_zabbix.api("sla.get", {"output": ["slaid"], "filter": {"name": "BRVO retired"}})[0]["slaid"]
    names = {s["name"] for s in real_zabbix.api("service.get", {"output": ["name"], "slaids": [slaid]})}
    assert {"ACME HQ Servers", "ACME DR Servers", "CNDR Tuas Servers", "BRVO NYC Storage"} <= names


def test_a_misconfigured_customer_sla_is_refused_with_the_fix(real_zabbix, hook):
    """Adding a second tag to a customer's own SLA is this customer's misconfiguration: one clear error."""
    sla = real_zabbix.api("sla.get", {"output": ["slaid"], "filter": {"name": "CNDR uptime 99.95%"}})[0]
    real_zabbix.api("sla.update", {"slaid": sla["slaid"], "service_tags": [
        {"tag": "sla", "operator": 0, "value": "CNDR:99.95"}, {"tag": "class", "operator": 0, "value": "Servers"}]})
    try:
        with pytest.raises(SourceResponseError) as caught:
            zabbix.extract(hook(), {"service_tag": "CNDR"}, ReportWeek.starting(WEEKS[0], "Asia/Singapore"))
        message = str(caught.value)
        assert message.startswith("zabbix: customer CNDR: Zabbix SLA 'CNDR uptime 99.95%'")
        assert "must select by exactly one tag, sla equals CNDR:99.95: remove the others" in message
        # ... and no other customer is affected by CNDR's mistake
        acme = CUSTOMERS[0]
        rows = zabbix.extract(hook(), {"service_tag": "ACME"}, ReportWeek.starting(WEEKS[0], acme.timezone)).data.rows
        assert len(rows) == len(acme.rows)
    finally:
        real_zabbix.api("sla.update", {"slaid": sla["slaid"], "service_tags": [
            {"tag": "sla", "operator": 0, "value": "CNDR:99.95"}]})


def test_provisioning_builds_the_convention_idempotently(real_zabbix, hook):
    """``zabbix_setup.provision`` twice for a new customer: the second run changes nothing, and the
    extract reads what it built (a past week before the services existed has no data, not zero)."""
    rows = [RowSpec("Ports", "Servers", 99.9), RowSpec("Ports", "Firewalls", 99.5)]
    h = hook()
    first = provision(h, "DLTA", "America/Los_Angeles", rows, effective=CREATED)
    second = provision(h, "DLTA", "America/Los_Angeles", rows)
    h.logout()
    assert sorted(first.created) == ["SLA 'DLTA uptime 99.5%'", "SLA 'DLTA uptime 99.9%'",
                                     "service 'DLTA Ports Firewalls'", "service 'DLTA Ports Servers'"]
    assert (second.created, second.updated, len(second.unchanged)) == ([], [], 4)
    got = zabbix.extract(hook(), {"service_tag": "DLTA"}, ReportWeek.starting(WEEKS[1], "America/Los_Angeles"))
    assert sorted((r.site, r.device_class, r.slo_pct, r.uptime_pct) for r in got.data.rows) == [
        ("Ports", "Firewalls", 99.5, None), ("Ports", "Servers", 99.9, None)]
    # a wrong SLO set by hand is corrected in place, not duplicated
    slaid = real_zabbix.api("sla.get", {"output": ["slaid"], "filter": {"name": "DLTA uptime 99.9%"}})[0]["slaid"]
    real_zabbix.api("sla.update", {"slaid": slaid, "slo": 90, "timezone": "UTC"})
    third = provision(hook(), "DLTA", "America/Los_Angeles", rows)
    assert third.updated == ["SLA 'DLTA uptime 99.9%'"] and third.created == []
    sla = real_zabbix.api("sla.get", {"output": ["slo", "timezone"], "slaids": [slaid]})[0]
    assert (float(sla["slo"]), sla["timezone"]) == (99.9, "America/Los_Angeles")


def test_real_server_wire_facts_the_simulator_copies(real_zabbix):
    """What ``simulators/zabbix.py`` claims, seen on the real server: ``period_to`` inclusive,
    ``serviceids`` as ints, ids as strings in ``*.get``, negative error budgets, ``sli == -1``
    before a service existed, the session in the body's ``auth`` on 6.0."""
    acme = CUSTOMERS[0]
    week = ReportWeek.starting(WEEKS[0], acme.timezone)
    sla = real_zabbix.api("sla.get", {"output": "extend", "filter": {"name": "ACME uptime 99.9%"}})[0]
    assert isinstance(sla["slaid"], str) and sla["period"] == "0" and sla["status"] == "1"
    lo, hi = int(week.start.timestamp()), int(week.end.timestamp())
    inclusive = real_zabbix.api("sla.getsli", {"slaid": sla["slaid"], "period_from": lo, "period_to": hi})
    assert len(inclusive["periods"]) == 8  # the Monday after is a slice too
    sli = real_zabbix.api("sla.getsli", {"slaid": sla["slaid"], "period_from": lo, "period_to": hi - 1})
    assert len(sli["periods"]) == 7 and sorted(p["period_to"] - p["period_from"] for p in sli["periods"]) == \
        [86400] * 6 + [90000]  # Sunday 25 October is 25 hours in London
    assert all(isinstance(i, int) for i in sli["serviceids"])
    budgets = [cell["error_budget"] for row in sli["sli"] for cell in row]
    assert min(budgets) < 0  # 2 h 15 min down on Tuesday against 86 s of budget
    before = real_zabbix.api("sla.getsli", {"slaid": sla["slaid"], "period_from": lo - 28 * 86400,
                                            "period_to": lo - 21 * 86400})
    assert before["sli"] and all(cell["sli"] == -1 for row in before["sli"] for cell in row)
    assert real_zabbix.api("apiinfo.version", {}, auth=False) == "6.0.14"

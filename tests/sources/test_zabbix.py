"""Zabbix hook and simulator: the week's uptime per site and class equals the world's outages."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from devtools.simulators import zabbix as zabbix_sim
from devtools.simulators.credentials import SimCredentials
from devtools.simulators.server import SimServer
from devtools.simulators.world import BOUNDARY_HEAD_MINUTES, WEEKS, World, boundary_tail_minutes
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import zabbix
from msp_reports.week import ReportWeek
from tests.factories import report_week

DST_WEEK_OF = dt.date(2026, 10, 19)  # London leaves summer time on Sunday 25 October: 169 hours


class Sleeps(list):
    """A RetryPolicy.sleep that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_hook(use_connection, server, creds, conn_id="zabbix_test", sleeps=None, login=False,
              **changes) -> zabbix.ZabbixHook:
    conn = (zabbix_sim.login_connection(server.base_url, creds) if login
            else zabbix_sim.demo_connections(server.base_url, creds, {})["zabbix_default"])
    conn.update(changes)
    use_connection(conn_id, conn)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, sleep=sleeps if sleeps is not None else Sleeps())
    return zabbix.ZabbixHook(conn_id, policy=policy)


def downtime_seconds(outages, week: ReportWeek) -> float:
    """Outages clipped to the week and merged where they overlap, summed."""
    spans = sorted((max(o.start, week.start), min(o.end or week.end, week.end)) for o in outages)
    total, reach = 0.0, week.start
    for start, end in spans:
        start = max(start, reach)
        if end > start:
            total += (end - start).total_seconds()
            reach = end
    return total


def expected_rows(world: World, code: str, week: ReportWeek) -> list[tuple]:
    rows = []
    for svc in world.customers[code].services:
        down = downtime_seconds(svc.outages, week)
        pct = round((week.seconds - down) / week.seconds * 100, 3)
        rows.append((svc.site, svc.device_class, pct, round(down / 60, 2), svc.slo, svc.devices))
    return sorted(rows)


def as_tuples(data) -> list[tuple]:
    return [(r.site, r.device_class, r.uptime_pct, r.downtime_minutes, r.slo_pct, r.devices) for r in data.rows]


def rpc(server, method, params, token=None, **body_extra):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"jsonrpc": "2.0", "method": method, "params": params, "id": 7, **body_extra}
    response = requests.post(f"{server.base_url}/zabbix/api_jsonrpc.php", json=body, headers=headers, timeout=10)
    assert response.status_code == 200  # JSON-RPC errors still answer 200
    return response.json()


@pytest.fixture(scope="module")
def dst_world() -> World:
    return World(DST_WEEK_OF)


@pytest.fixture(scope="module")
def dst_sim(dst_world, creds):
    with SimServer(dst_world, creds) as server:
        yield server


# ---- extract against the simulator ----------------------------------------------------------
@pytest.mark.parametrize("code", ["ACME", "BRVO", "DLTA", "CNDR"])  # London (distractor SLAs), its disabled SLA, LA, Singapore
def test_extract_equals_world_outages(sim, world, creds, use_connection, code):
    week = report_week(world, code)
    result = zabbix.extract(make_hook(use_connection, sim, creds), {"service_tag": code}, week)
    assert as_tuples(result.data) == expected_rows(world, code, week)
    assert all(r.source == "zabbix" for r in result.data.rows)
    assert result.as_of == week.end


def test_sla_drop_story_shows_in_the_row(sim, world, creds, use_connection):
    data = zabbix.extract(make_hook(use_connection, sim, creds), {"service_tag": "ACME"}, report_week(world, "ACME")).data
    leeds_network = next(r for r in data.rows if (r.site, r.device_class) == ("Leeds", "Network"))
    assert leeds_network.downtime_minutes >= 7 * 60 + 5
    assert leeds_network.slo_met is False


def test_outage_across_week_start_counts_only_inside_each_week(sim, world, creds, use_connection):
    """The world's outage from just before the latest week: its tail in this week, its head in the last."""
    code = "ACME"
    latest, previous = report_week(world, code), report_week(world, code, offset=1)
    boundary_start = latest.start - dt.timedelta(minutes=BOUNDARY_HEAD_MINUTES)
    only_boundary = [s for s in world.customers[code].services
                     if [o.start for o in s.outages if o.end > previous.start and o.start < latest.end]
                     == [boundary_start]]
    assert only_boundary, "the world should have services whose only outage in both weeks is the boundary one"
    hook = make_hook(use_connection, sim, creds)
    this_week = {(r.site, r.device_class): r for r in
                 zabbix.extract(hook, {"service_tag": code}, latest).data.rows}
    last_week = {(r.site, r.device_class): r for r in
                 zabbix.extract(hook, {"service_tag": code}, previous).data.rows}
    for svc in only_boundary:
        key = (svc.site, svc.device_class)
        assert this_week[key].downtime_minutes == boundary_tail_minutes(svc.site)
        assert last_week[key].downtime_minutes == BOUNDARY_HEAD_MINUTES


def test_dst_week_is_169_hours_of_daily_slices(dst_sim, dst_world, creds, use_connection):
    week = report_week(dst_world, "ACME")
    assert week.hours == 169
    hook = make_hook(use_connection, dst_sim, creds, conn_id="zabbix_dst")
    result = zabbix.extract(hook, {"service_tag": "ACME"}, week)
    assert as_tuples(result.data) == expected_rows(dst_world, "ACME", week)

    slaid = hook.rpc("sla.get", {"output": ["slaid", "name"], "search": {"name": "ACME daily"}})[0]["slaid"]
    sli = hook.rpc("sla.getsli", {"slaid": slaid, "period_from": int(week.start.timestamp()),
                                  "period_to": int(week.end.timestamp()) - 1})
    lengths = [p["period_to"] - p["period_from"] for p in sli["periods"]]
    assert sorted(lengths) == [86400] * 6 + [90000]  # the Sunday is 25 hours
    hook.logout()


def test_week_before_services_existed_has_no_data_not_zero(sim, world, creds, use_connection):
    week = ReportWeek.starting(world.latest_week_of - dt.timedelta(weeks=WEEKS + 1), "Europe/London")
    data = zabbix.extract(make_hook(use_connection, sim, creds), {"service_tag": "ACME"}, week).data
    assert data.rows and all(r.uptime_pct is None and r.downtime_minutes == 0 for r in data.rows)
    assert data.overall_pct is None


def test_sla_in_another_timezone_is_refused(sim, world, creds, use_connection):
    week = ReportWeek.starting(world.latest_week_of, "Asia/Singapore")  # ACME's SLA is London's
    with pytest.raises(SourceResponseError, match="customer ACME: .*ACME daily uptime.* set it to Asia/Singapore"):
        zabbix.extract(make_hook(use_connection, sim, creds), {"service_tag": "ACME"}, week)


def test_unknown_service_tag_says_what_to_fix(sim, world, creds, use_connection):
    with pytest.raises(SourceResponseError, match="customer NOPE: no Zabbix service is tagged customer=NOPE"):
        zabbix.extract(make_hook(use_connection, sim, creds), {"service_tag": "NOPE"}, report_week(world, "ACME"))


def test_session_is_logged_out_after_extract(sim, world, creds, use_connection):
    sessions = sim.state.extra[zabbix_sim.SESSIONS]
    before = set(sessions)
    zabbix.extract(make_hook(use_connection, sim, creds, login=True), {"service_tag": "ECHO"}, report_week(world, "ECHO"))
    assert set(sessions) == before


def test_api_token_needs_no_login_or_logout(sim, world, creds, use_connection):
    hook = make_hook(use_connection, sim, creds)
    methods = []
    rpc = hook.rpc
    hook.rpc = lambda method, params, *, auth=True: methods.append(method) or rpc(method, params, auth=auth)
    result = zabbix.extract(hook, {"service_tag": "ACME"}, report_week(world, "ACME"))
    assert as_tuples(result.data) == expected_rows(world, "ACME", report_week(world, "ACME"))
    assert sorted(methods) == ["apiinfo.version", "host.get", "service.get", "sla.get", "sla.getsli", "sla.getsli"]


# ---- auth, retries -------------------------------------------------------------------------------
def test_wrong_password_is_an_auth_error_without_the_password(sim, world, creds, use_connection):
    hook = make_hook(use_connection, sim, creds, login=True, password="not-the-password")
    with pytest.raises(SourceAuthError) as caught:
        zabbix.extract(hook, {"service_tag": "ACME"}, report_week(world, "ACME"))
    message = str(caught.value)
    assert "refused the login" in message and "login and password" in message
    assert "Incorrect user name or password" in message
    assert "not-the-password" not in message and creds.zabbix_password not in message


def test_rate_limited_once_then_succeeds(sim, world, creds, use_connection):
    sleeps = Sleeps()
    requests.post(f"{sim.base_url}/_sim/faults/zabbix", json={"mode": "429", "times": 1, "retry_after": 1}, timeout=5)
    hook = make_hook(use_connection, sim, creds, sleeps=sleeps)
    result = zabbix.extract(hook, {"service_tag": "ACME"}, report_week(world, "ACME"))
    assert sleeps == [1.0]  # Retry-After honoured
    assert as_tuples(result.data) == expected_rows(world, "ACME", report_week(world, "ACME"))


def test_server_error_once_then_succeeds(sim, world, creds, use_connection):
    sleeps = Sleeps()
    requests.post(f"{sim.base_url}/_sim/faults/zabbix", json={"mode": "500", "times": 1}, timeout=5)
    hook = make_hook(use_connection, sim, creds, sleeps=sleeps)
    result = zabbix.extract(hook, {"service_tag": "DLTA"}, report_week(world, "DLTA"))
    assert len(sleeps) == 1
    assert as_tuples(result.data) == expected_rows(world, "DLTA", report_week(world, "DLTA"))


# ---- the simulator speaks Zabbix 7.0 -----------------------------------------------------------
def test_simulator_wire_format(sim, world, creds):
    assert rpc(sim, "apiinfo.version", {})["result"] == "7.0.5"
    bad = rpc(sim, "user.login", {"username": creds.zabbix_user, "password": "x"})
    assert bad["error"]["code"] == -32500 and "Incorrect user name" in bad["error"]["data"]
    old_style = rpc(sim, "user.login", {"user": creds.zabbix_user, "password": creds.zabbix_password})
    assert old_style["error"]["code"] == -32602

    token = rpc(sim, "user.login", {"username": creds.zabbix_user, "password": creds.zabbix_password})["result"]
    assert rpc(sim, "service.get", {})["error"]["data"] == "Not authorized."
    assert rpc(sim, "service.get", {}, token="feedface")["error"]["data"] == "Session terminated, re-login, please."
    assert rpc(sim, "service.get", {}, auth=token)["error"]["code"] == -32600  # body auth refused on 7.x
    assert rpc(sim, "service.get", {"bogus": 1}, token=token)["error"]["code"] == -32602

    services = rpc(sim, "service.get", {"tags": [{"tag": "customer", "value": "ACME", "operator": 1}],
                                        "selectTags": "extend"}, token=token)["result"]
    assert len(services) == len(world.customers["ACME"].services) + 1  # the rows and "ACME (all sites)"
    assert all(isinstance(s["serviceid"], str) for s in services)

    week = report_week(world, "ACME")
    ids = [int(s["serviceid"]) for s in services]
    slas = rpc(sim, "sla.get", {"serviceids": ids, "output": "extend", "selectServiceTags": "extend"},
               token=token)["result"]
    # OR semantics: the MSP-wide class=Servers SLA and the retired customer+class one hold ACME's servers too
    assert {s["name"] for s in slas} >= {"MSP all servers (internal)", "ACME retired (by customer and class)",
                                         "ACME daily uptime 99.9%", "ACME daily uptime 99.5%"}
    sla = next(s for s in slas if s["name"] == "ACME daily uptime 99.9%")
    assert sla["service_tags"] == [{"tag": "sla", "operator": "0", "value": "ACME:99.9"}]
    inclusive = rpc(sim, "sla.getsli", {"slaid": sla["slaid"], "period_from": int(week.start.timestamp()),
                                        "period_to": int(week.end.timestamp())}, token=token)["result"]
    assert len(inclusive["periods"]) == 8  # period_to is inclusive: Monday after is a slice too
    sli = rpc(sim, "sla.getsli", {"slaid": sla["slaid"], "period_from": int(week.start.timestamp()),
                                  "period_to": int(week.end.timestamp()) - 1}, token=token)["result"]
    assert len(sli["periods"]) == 7 and len(sli["sli"]) == 7
    assert all(isinstance(i, int) for i in sli["serviceids"]) and sli["serviceids"] != sorted(sli["serviceids"])
    assert all(len(row) == len(sli["serviceids"]) for row in sli["sli"])
    rpc(sim, "user.logout", [], token=token)
    assert rpc(sim, "service.get", {}, token=token)["error"]["data"] == "Session terminated, re-login, please."


# ---- pure parsing -------------------------------------------------------------------------------
def test_parse_sli_matches_services_by_position_and_skips_no_data():
    result = {
        "periods": [{"period_from": 1000, "period_to": 87400}, {"period_from": 87400, "period_to": 173800}],
        "serviceids": [15, "12"],
        "sli": [
            [{"uptime": 86400, "downtime": 0, "sli": 100, "error_budget": 86, "excluded_downtimes": []},
             # no data, whatever its counters say
             {"uptime": 86400, "downtime": 0, "sli": -1, "error_budget": 0, "excluded_downtimes": []}],
            [{"uptime": 85800, "downtime": 600, "sli": 99.3056, "error_budget": -514, "excluded_downtimes": []},
             {"uptime": 86000, "downtime": 400, "sli": 99.537, "error_budget": -314, "excluded_downtimes": []}],
        ],
    }
    totals, periods = zabbix.parse_sli(result)
    assert periods == [(1000, 87400), (87400, 173800)]
    assert totals[15] == zabbix.Sli(172200, 600)
    assert totals[12] == zabbix.Sli(86000, 400)  # the -1 slice adds nothing

    service = zabbix.ServiceInfo(12, "ACME Leeds Servers", "Leeds", "Servers", ("ACME:99.9",))
    row = zabbix.uptime_row(service, totals[12], 99.9, 4)
    assert row.uptime_pct == round(86000 / 86400 * 100, 3) and row.downtime_minutes == 6.67
    assert zabbix.uptime_row(service, zabbix.Sli(), 99.9, None).uptime_pct is None


def test_parse_sli_rejects_a_grid_that_does_not_fit():
    with pytest.raises(SourceResponseError, match="malformed"):
        zabbix.parse_sli({"periods": [{"period_from": 0, "period_to": 1}], "serviceids": [1, 2],
                          "sli": [[{"uptime": 1, "downtime": 0, "sli": 100}]]})


def _svc(serviceid, name, **tags):
    return {"serviceid": str(serviceid), "name": name, "tags": [{"tag": k, "value": v} for k, v in tags.items()]}


def test_parse_services_keeps_rows_and_leaves_out_aggregates():
    services = zabbix.parse_services([
        _svc(101, "ACME Leeds Servers", customer="ACME", site="Leeds", **{"class": "Servers"}, sla="ACME:99.9"),
        _svc(102, "ACME (all sites)", customer="ACME"),  # a parent: no site, class or sla tag
        _svc(103, "ACME Leeds Printers", customer="ACME", site="Leeds", **{"class": "Printers"}, sla="BRVO:99"),
    ], "ACME")
    assert services[101] == zabbix.ServiceInfo(101, "ACME Leeds Servers", "Leeds", "Servers", ("ACME:99.9",))
    assert 102 not in services
    assert services[103].sla_keys == ()  # another customer's sla value is not this customer's SLA
    with pytest.raises(SourceResponseError, match=r"customer ACME: Zabbix service 'ACME Leeds' \(serviceid 104\) "
                                                  r"has no class tag"):
        zabbix.parse_services([_svc(104, "ACME Leeds", customer="ACME", site="Leeds", sla="ACME:99.9")], "ACME")
    hosts = [{"hostid": "1", "tags": [{"tag": "site", "value": "Leeds"}, {"tag": "class", "value": "Servers"}]},
             {"hostid": "2", "tags": [{"tag": "site", "value": "Leeds"}, {"tag": "class", "value": "Servers"}]},
             {"hostid": "3", "tags": [{"tag": "site", "value": "Leeds"}]}]
    assert zabbix.count_devices(hosts) == {("Leeds", "Servers"): 2}


def _sla(slaid, name, *tags, slo="99.9", tz="Europe/London", period="0", status="1"):
    return {"slaid": str(slaid), "name": name, "slo": slo, "timezone": tz, "period": period, "status": status,
            "service_tags": [{"tag": t, "operator": op, "value": v} for t, v, op in tags]}


LONDON_WEEK = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")


def test_customer_slas_ignore_other_customers_msp_wide_and_disabled_ones():
    slas = zabbix.customer_slas([
        _sla(1, "MSP all servers", ("class", "Servers", "0"), slo="99.0", tz="UTC"),
        _sla(2, "BRVO core", ("sla", "BRVO:99.9", "0"), tz="America/New_York"),
        _sla(3, "ACME old", ("sla", "ACME:99.9", "0"), slo="50", status="0"),
        _sla(4, "ACME legacy", ("customer", "ACME", "0"), ("class", "Servers", "0"), tz="Asia/Singapore"),
        _sla(7, "ACME firewalls", ("sla", "ACME:99.5", "0"), slo="99.5"),
        _sla(5, "ACME core", ("sla", "ACME:99.9", "0")),
    ], "ACME", LONDON_WEEK)
    assert slas == {"ACME:99.9": zabbix.CustomerSla(5, "ACME core", "ACME:99.9", 99.9),
                    "ACME:99.5": zabbix.CustomerSla(7, "ACME firewalls", "ACME:99.5", 99.5)}


@pytest.mark.parametrize(("record", "fix"), [
    (_sla(5, "ACME core", ("sla", "ACME:99.9", "0"), ("class", "Servers", "0")),
     "ANY of an SLA's service tags, so it must select by exactly one tag, sla equals ACME:99.9: remove the others"),
    (_sla(5, "ACME core", ("sla", "ACME:99.9", "2")), "exactly one tag, sla equals ACME:99.9"),
    (_sla(5, "ACME core", ("sla", "ACME:99.9", "0"), period="1"), "set its reporting period to Daily"),
    (_sla(5, "ACME core", ("sla", "ACME:99.9", "0"), tz="UTC"), "set it to Europe/London"),
    (_sla(5, "ACME core", ("sla", "ACME:99.9", "0"), slo="150"), "a percentage must be from 0 to 100"),
])
def test_customer_sla_misconfiguration_names_customer_sla_and_fix(record, fix):
    with pytest.raises(SourceResponseError) as caught:
        zabbix.customer_slas([record], "ACME", LONDON_WEEK)
    assert str(caught.value).startswith("zabbix: customer ACME: Zabbix SLA 'ACME core' (slaid 5)")
    assert fix in str(caught.value)


def test_two_enabled_slas_on_one_tag_are_refused():
    with pytest.raises(SourceResponseError, match="both select sla=ACME:99.9; disable or delete one"):
        zabbix.customer_slas([_sla(5, "ACME core", ("sla", "ACME:99.9", "0")),
                              _sla(6, "ACME core copy", ("sla", "ACME:99.9", "0"))], "ACME", LONDON_WEEK)


def test_assign_slas_one_per_row():
    core = zabbix.CustomerSla(5, "ACME core", "ACME:99.9", 99.9)
    row = zabbix.ServiceInfo(101, "ACME Leeds Servers", "Leeds", "Servers", ("ACME:99.9",))
    assert zabbix.assign_slas({101: row}, {"ACME:99.9": core}, "ACME") == {101: core}
    orphan = zabbix.ServiceInfo(102, "ACME Leeds Printers", "Leeds", "Printers", ("ACME:gold",))
    with pytest.raises(SourceResponseError, match=r"customer ACME: Zabbix service 'ACME Leeds Printers' "
                                                  r"\(serviceid 102\) is in no enabled daily SLA"):
        zabbix.assign_slas({102: orphan}, {"ACME:99.9": core}, "ACME")
    fw = zabbix.CustomerSla(7, "ACME firewalls", "ACME:99.5", 99.5)
    both = zabbix.ServiceInfo(103, "ACME Leeds Mixed", "Leeds", "Mixed", ("ACME:99.9", "ACME:99.5"))
    with pytest.raises(SourceResponseError, match="is in 2 SLAs"):
        zabbix.assign_slas({103: both}, {"ACME:99.9": core, "ACME:99.5": fw}, "ACME")


@pytest.mark.parametrize(("cell", "why"), [
    ({"uptime": 86400, "downtime": -350, "sli": 100.4}, "negative"),
    ({"uptime": 86400, "downtime": 600, "sli": 99.3}, "exceed the slice"),
    ({"uptime": 86400.5, "downtime": 0, "sli": 100}, "whole number"),
    ({"uptime": True, "downtime": 0, "sli": 100}, "whole number"),
])
def test_parse_sli_refuses_impossible_slices(cell, why):
    with pytest.raises(SourceResponseError, match=why):
        zabbix.parse_sli({"periods": [{"period_from": 0, "period_to": 86400}], "serviceids": [1], "sli": [[cell]]})


def test_read_reply_sorts_errors():
    with pytest.raises(SourceAuthError):
        zabbix.read_reply({"jsonrpc": "2.0", "error": {"code": -32500, "message": "Application error.",
                                                       "data": "Session terminated, re-login, please."}, "id": 1},
                          "service.get", 1)
    with pytest.raises(SourceResponseError, match="-32602"):
        zabbix.read_reply({"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params.",
                                                       "data": "Invalid parameter"}, "id": 1}, "sla.get", 1)
    with pytest.raises(SourceResponseError, match="reply id"):
        zabbix.read_reply({"jsonrpc": "2.0", "result": [], "id": 2}, "sla.get", 1)
    assert zabbix.read_reply({"jsonrpc": "2.0", "result": "7.0.5", "id": 1}, "apiinfo.version", 1) == "7.0.5"
    assert zabbix.parse_version("6.0.14") == (6, 0) and zabbix.parse_version("7.0.5") >= zabbix.BEARER_FROM


def test_check_periods_refuses_slices_outside_the_week():
    week = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")
    start = int(week.start.timestamp())
    zabbix.check_periods([(start, start + 86400)], week, "ok")
    with pytest.raises(SourceResponseError, match="outside the week"):
        zabbix.check_periods([(start - 8 * 3600, start + 16 * 3600)], week, "LA SLA")


def test_hook_contract():
    assert zabbix.HOOK is zabbix.ZabbixHook
    assert (zabbix.HOOK.conn_type, zabbix.HOOK.default_conn_name, zabbix.HOOK.conn_name_attr) == (
        "zabbix", "zabbix_default", "conn_id")
    assert zabbix.ZabbixHook().conn_id == "zabbix_default"  # no connection read in __init__


def test_demo_connection_points_at_the_simulator():
    creds = SimCredentials.generate()
    conn = zabbix_sim.demo_connections("http://127.0.0.1:1", creds, {})["zabbix_default"]
    assert conn["host"] == "http://127.0.0.1:1/zabbix/api_jsonrpc.php"
    assert conn["extra"] == {"api_token": creds.zabbix_api_token} and "password" not in conn


def test_setup_command_says_which_connection_is_missing(monkeypatch, capsys):
    from msp_reports.sources import zabbix_setup

    monkeypatch.delenv("AIRFLOW_CONN_ZABBIX_DEFAULT", raising=False)
    assert zabbix_setup.main(["ACME", "Leeds/Servers/99.9"]) == 2
    assert "the Airflow connection 'zabbix_default' is not defined" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        zabbix_setup.main(["ACME", "Leeds/Servers"])  # not SITE/CLASS/SLO
    assert "is not SITE/CLASS/SLO" in capsys.readouterr().err

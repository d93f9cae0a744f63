"""UptimeRobot hook and simulator: the customer's monitors, their ratio and downtime over its week."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from devtools.simulators import uptimerobot as uptimerobot_sim
from devtools.simulators.server import SimServer
from devtools.simulators.world import PROFILES, Outage, World
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import uptimerobot
from msp_reports.week import ReportWeek
from tests.factories import report_week

CONN_ID = "uptimerobot_test"
WEEK_OF = dt.date(2026, 11, 16)
DST_WEEK_OF = dt.date(2026, 10, 19)  # London leaves summer time on Sunday 25 October: 169 hours
MINUTE = dt.timedelta(minutes=1)
UTC = dt.timezone.utc


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    def _connect(*, key: str | None = None, page_size: int | None = None,
                 server: SimServer | None = None) -> uptimerobot.UptimeRobotHook:
        conn = uptimerobot_sim.demo_connections((server or sim).base_url, creds, {})["uptimerobot_default"]
        if key is not None:
            conn["password"] = key
        use_connection(CONN_ID, conn)
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return uptimerobot.UptimeRobotHook(CONN_ID, page_size=page_size, policy=policy)

    return _connect


def ref(code: str) -> dict[str, str]:
    return {"monitor_prefix": f"{code}:"}


def down_seconds(outages, week: ReportWeek) -> float:
    return sum(max(0.0, (min(o.end or week.end, week.end) - max(o.start, week.start)).total_seconds())
               for o in outages)


def expected_checks(world: World, code: str, week: ReportWeek) -> dict[str, tuple]:
    """Straight from the world: each check's outages cut to the week, over the week's length."""
    out = {}
    for check in world.customers[code].checks:
        down = down_seconds(check.outages, week)
        out[check.name] = (check.address, round(100 * (1 - down / week.seconds), 3), round(down / 60, 2), "up")
    return out


def got_checks(data) -> dict[str, tuple]:
    return {c.name: (c.address, c.availability_pct, c.downtime_minutes, c.status_now) for c in data.checks}


# --- against the simulator ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["ACME", "DLTA", "CNDR", "KILO", "LIMA"])
def test_extract_matches_world(connect, world, code):
    """Ratio and downtime equal the world's in the customer's own week (LA and Singapore too)."""
    week = report_week(world, code)
    result = uptimerobot.extract(connect(), ref(code), week)

    assert got_checks(result.data) == expected_checks(world, code, week)
    assert {c.source for c in result.data.checks} == {"uptimerobot"} and result.as_of is None


def test_pages_through_monitors(connect, world, sim):
    """HTEL has three monitors; the hook asks for 50 a page (one request: the free plan allows 10 a
    minute), the simulator serves two a page when asked for 2, one when asked for 1."""
    before = sim.state.requests["uptimerobot"]
    result = uptimerobot.extract(connect(), ref("HTEL"), report_week(world, "HTEL"))
    assert len(result.data.checks) == 3
    assert sim.state.requests["uptimerobot"] - before == 1

    before = sim.state.requests["uptimerobot"]
    assert uptimerobot.extract(connect(page_size=2), ref("HTEL"), report_week(world, "HTEL")).data == result.data
    assert sim.state.requests["uptimerobot"] - before == 2

    before = sim.state.requests["uptimerobot"]
    one_by_one = uptimerobot.extract(connect(page_size=1), ref("HTEL"), report_week(world, "HTEL"))
    assert sim.state.requests["uptimerobot"] - before == 3
    assert one_by_one.data == result.data


@pytest.fixture(scope="module")
def edge_sim(creds):
    """DLTA and CNDR: ``www`` down across both ends of the local week, ``portal`` still down at its end.

    www: from 30 min before the start to 10 min after, and 15 min before the end to 20 min after
    (25 min in the week); portal: from 5 min before the end, never back up (5 min in the week).
    """
    world = World(WEEK_OF, profiles=tuple(p for p in PROFILES if p.code in ("DLTA", "CNDR")))
    for code, cw in world.customers.items():
        week = report_week(world, code)
        www, portal = cw.checks
        www.outages = [Outage(week.start - 30 * MINUTE, week.start + 10 * MINUTE),
                       Outage(week.end - 15 * MINUTE, week.end + 20 * MINUTE)]
        portal.outages = [Outage(week.end - 5 * MINUTE, None)]
    with SimServer(world, creds) as server:
        yield server


@pytest.mark.parametrize("code", ["DLTA", "CNDR"])
def test_week_is_clipped_at_both_ends(connect, edge_sim, code):
    world = edge_sim.world
    week = report_week(world, code)
    got = {c.name.split(".")[0]: c for c in uptimerobot.extract(connect(server=edge_sim), ref(code), week).data.checks}

    assert (got["www"].downtime_minutes, got["portal"].downtime_minutes) == (25.0, 5.0)
    assert got["www"].availability_pct == round(100 * (1 - 25 * 60 / week.seconds), 3)
    assert (got["www"].status_now, got["portal"].status_now) == ("up", "down")


@pytest.fixture(scope="module")
def dst_sim(creds):
    """The DST week, with ACME's www down for the week's last half hour (and 10 min more)."""
    world = World(DST_WEEK_OF)
    week = report_week(world, "ACME")
    world.customers["ACME"].checks[0].outages.append(Outage(week.end - 30 * MINUTE, week.end + 10 * MINUTE))
    with SimServer(world, creds) as server:
        yield server


def test_dst_week_is_169_hours(connect, dst_sim):
    world = dst_sim.world
    week = report_week(world, "ACME")
    assert week.hours == 169
    data = uptimerobot.extract(connect(server=dst_sim), ref("ACME"), week).data

    assert got_checks(data) == expected_checks(world, "ACME", week)
    www = next(c for c in data.checks if c.name.startswith("www."))
    assert www.downtime_minutes == 30.0 and www.availability_pct == round(100 * (1 - 1800 / (169 * 3600)), 3)


def test_wrong_key_is_an_auth_error_without_the_key(connect, world, creds):
    """The API echoes a wrong key back in ``passed_value``: it must not reach the message."""
    with pytest.raises(SourceAuthError) as caught:
        uptimerobot.extract(connect(key="ur0000-not-the-key"), ref("ACME"), report_week(world, "ACME"))
    message = str(caught.value)
    assert CONN_ID in message and "invalid_parameter (api_key)" in message
    assert "read-only API key" in message and "connection's password" in message
    assert "ur0000-not-the-key" not in message and creds.uptimerobot_api_key not in message


def test_unknown_prefix_points_at_the_registry(connect, world):
    with pytest.raises(SourceResponseError, match=r"ref\.monitor_prefix"):
        uptimerobot.extract(connect(), {"monitor_prefix": "NOPE:"}, report_week(world, "ACME"))


def test_429_then_success_honours_retry_after_and_logs_no_key(connect, world, sim, waits, creds, caplog):
    requests.post(f"{sim.base_url}/_sim/faults/uptimerobot", json={"mode": "429", "times": 1, "retry_after": 1},
                  timeout=5)
    with caplog.at_level(logging.DEBUG):
        result = uptimerobot.extract(connect(), ref("DLTA"), report_week(world, "DLTA"))

    assert waits == [1.0]
    assert got_checks(result.data) == expected_checks(world, "DLTA", report_week(world, "DLTA"))
    assert "429" in caplog.text and creds.uptimerobot_api_key not in caplog.text


def test_5xx_then_success(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/uptimerobot", json={"mode": "500", "times": 2}, timeout=5)
    result = uptimerobot.extract(connect(), ref("KILO"), report_week(world, "KILO"))

    assert len(waits) == 2
    assert got_checks(result.data) == expected_checks(world, "KILO", report_week(world, "KILO"))


def test_demo_connection_and_default_conn_id(sim, creds, world, use_connection):
    (conn_id, conn), = uptimerobot_sim.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    assert uptimerobot.HOOK.default_conn_name == conn_id == "uptimerobot_default"
    result = uptimerobot.extract(uptimerobot.HOOK(), ref("INDG"), report_week(world, "INDG"))
    assert got_checks(result.data) == expected_checks(world, "INDG", report_week(world, "INDG"))


def test_simulator_wire_format(sim, creds, world):
    url = f"{sim.base_url}/uptimerobot/v2/getMonitors"
    bad = requests.post(url, data={"api_key": "wrong", "format": "json"}, timeout=5)
    assert bad.status_code == 200 and bad.json() == {"stat": "fail", "error": {
        "type": "invalid_parameter", "parameter_name": "api_key", "passed_value": "wrong",
        "message": "api_key is invalid."}}
    too_many = requests.post(url, data={"api_key": creds.uptimerobot_api_key, "limit": 51}, timeout=5).json()
    assert too_many["stat"] == "fail" and too_many["error"]["parameter_name"] == "limit"

    week = report_week(world, "KILO")
    lo, hi = int(week.start.timestamp()), int(week.end.timestamp())
    body = requests.post(url, timeout=5, data={
        "api_key": creds.uptimerobot_api_key, "format": "json", "search": "kilo", "limit": 50,
        "custom_uptime_ranges": f"{lo}_{hi}-{lo}_{lo + 3600}", "logs": 1}).json()
    assert body["stat"] == "ok" and body["pagination"] == {"offset": 0, "limit": 50, "total": 2}
    www = next(m for m in body["monitors"] if m["friendly_name"] == "KILO: www.kilo.example")
    assert isinstance(www["custom_uptime_ranges"], str) and www["custom_uptime_ranges"].count("-") == 1
    assert [log["type"] for log in www["logs"]][-1] == 98  # newest first, "started" last
    datetimes = [log["datetime"] for log in www["logs"]]
    assert datetimes == sorted(datetimes, reverse=True) and {1, 2} <= {log["type"] for log in www["logs"]}


# --- pure parsing ---------------------------------------------------------------------------
WEEK = ReportWeek.starting(WEEK_OF, "Europe/London")  # 2026-11-16T00:00Z .. 2026-11-23T00:00Z


def _ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def _log(kind: int, at: str, minutes: float) -> dict:
    return {"type": kind, "datetime": _ts(at), "duration": int(minutes * 60), "reason": {"code": "522"}}


def test_down_minutes_counts_down_logs_inside_the_week():
    logs = [
        _log(1, "2026-11-22T23:50:00", 30),   # 10 minutes before the end count
        _log(2, "2026-11-20T10:20:00", 3000),  # up: not downtime
        _log(1, "2026-11-20T10:05:00", 15),   # 15
        _log(1, "2026-11-20T10:00:00", 10),   # overlaps the one above: 5 more
        _log(1, "2026-11-15T23:45:00", 20),   # 5 after the start
        _log(98, "2026-01-01T00:00:00", 99999),
        _log(1, "2026-11-10T08:00:00", 60),   # before the week
    ]
    assert uptimerobot.down_minutes(logs, WEEK) == 35.0
    with pytest.raises(SourceResponseError):
        uptimerobot.down_minutes([{"type": 1, "duration": 60}], WEEK)


def test_parse_site_checks_on_wire_records():
    monitors = [
        {"id": 1, "friendly_name": "ACME: www.acme.example", "url": "https://www.acme.example/", "status": 2,
         "custom_uptime_ranges": "99.982", "logs": [_log(1, "2026-11-18T09:00:00", 2)]},
        {"id": 2, "friendly_name": "acme: shop", "url": "https://shop.acme.example/", "status": 9,
         "custom_uptime_ranges": "98.500-100.000", "logs": []},
        {"id": 3, "friendly_name": "ACME: vpn", "url": "vpn.acme.example", "status": 0},
        {"id": 4, "friendly_name": "ACMEX: www.acmex.example", "url": "https://www.acmex.example/", "status": 2},
        {"id": 5, "friendly_name": "Old ACME: site", "url": "https://acme.example/", "status": 8},
    ]
    got = {c.name: c for c in uptimerobot.parse_site_checks(monitors, "ACME:", WEEK).checks}
    assert sorted(got) == ["shop", "vpn", "www.acme.example"]
    assert (got["www.acme.example"].availability_pct, got["www.acme.example"].downtime_minutes) == (99.982, 2.0)
    assert (got["shop"].availability_pct, got["shop"].status_now) == (98.5, "down")
    assert (got["vpn"].availability_pct, got["vpn"].status_now) == (None, "paused")

    assert uptimerobot.belongs_to("ACME: www", "ACME") and uptimerobot.belongs_to("acme : www", "ACME:")
    assert not uptimerobot.belongs_to("ACMEX: www", "ACME")  # another customer's monitors
    # the label is the text before the first ':', whole: no other separator, no longer label
    assert not uptimerobot.belongs_to("ACME-EU: www", "ACME") and not uptimerobot.belongs_to("acme - www", "ACME")
    assert [uptimerobot.status_text(s) for s in (0, 1, 2, 8, 9, "x")] == [
        "paused", "not checked yet", "up", "seems down", "down", "unknown"]


def test_envelopes_and_pages():
    with pytest.raises(SourceAuthError) as caught:
        uptimerobot.read_envelope({"stat": "fail", "error": {"type": "invalid_parameter", "parameter_name": "api_key",
                                                             "passed_value": "u123-secret", "message": "bad"}})
    assert "u123-secret" not in str(caught.value)
    with pytest.raises(SourceResponseError, match="limit"):
        uptimerobot.read_envelope({"stat": "fail", "error": {"type": "invalid_parameter", "parameter_name": "limit"}})
    with pytest.raises(SourceResponseError):
        uptimerobot.read_envelope({"monitors": []})
    assert uptimerobot.read_page({"stat": "ok", "pagination": {"offset": 2, "limit": 2, "total": 5},
                                  "monitors": [{}, {}]}) == ([{}, {}], 5)
    assert uptimerobot.read_page({"stat": "ok", "monitors": [{}]}) == ([{}], 1)
    assert uptimerobot.uptime_ratio("99.982-100.000") == 99.982 and uptimerobot.uptime_ratio(None) is None
    with pytest.raises(SourceResponseError):
        uptimerobot.uptime_ratio("n/a")


def test_hook_contract():
    assert uptimerobot.HOOK is uptimerobot.UptimeRobotHook
    assert (uptimerobot.HOOK.conn_type, uptimerobot.HOOK.default_conn_name, uptimerobot.HOOK.conn_name_attr) == (
        "uptimerobot", "uptimerobot_default", "conn_id")
    assert uptimerobot.UptimeRobotHook().conn_id == "uptimerobot_default"  # no connection read in __init__


# --- the plan's rate limit -------------------------------------------------------------------
def _post(sim, **form) -> requests.Response:
    return requests.post(f"{sim.base_url}/uptimerobot/v2/getMonitors", data={"format": "json", **form})


def test_missing_key_has_the_documented_message(sim):
    body = _post(sim).json()
    assert body == {"stat": "fail", "error": {"type": "missing_parameter", "parameter_name": "api_key",
                                              "message": "api_key parameter is missing."}}


def test_free_plan_allows_ten_requests_a_minute(sim, creds):
    """Rate headers on every answer; the eleventh request of a minute is a 429 with Retry-After."""
    answers = [_post(sim, api_key=creds.uptimerobot_api_key, limit=1) for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:10]] == [str(9 - n) for n in range(10)]
    assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"10"}
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert int(answers[-1].headers["X-RateLimit-Reset"]) >= int(dt.datetime.now(UTC).timestamp())


def test_demo_customers_run_within_the_free_plan(sim, world, creds, use_connection):
    """The demo's UptimeRobot customers in one run: one request each, none refused."""
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    customers = [(c, s) for c in load_registry(Settings.load().registry_path).customers
                 for s in c.sources["sites"] if s.system == "uptimerobot"]
    (conn_id, conn), = uptimerobot_sim.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    refused = sim.state.extra.get("uptimerobot_refused", 0)
    before = sim.state.requests["uptimerobot"]
    hook = uptimerobot.UptimeRobotHook(policy=RetryPolicy(attempts=1))
    for customer, source in customers:
        uptimerobot.extract(hook, dict(source.ref), report_week(world, customer.code))
    assert len(customers) == 6
    assert sim.state.requests["uptimerobot"] - before == len(customers)
    assert sim.state.extra.get("uptimerobot_refused", 0) == refused


def test_hook_paces_itself_by_the_rate_headers(connect, sim, world):
    """Three requests per two seconds: a paged run waits for the window instead of being refused."""
    with sim.state.lock:
        sim.state.extra.update(uptimerobot_rate_limit=3, uptimerobot_rate_window=2)
    try:
        refused = sim.state.extra.get("uptimerobot_refused", 0)
        hook = uptimerobot.UptimeRobotHook(CONN_ID, page_size=1, policy=RetryPolicy(attempts=2))
        connect()  # defines the connection
        for code in ("HTEL", "KILO"):  # 3 + 2 requests
            week = report_week(world, code)
            assert got_checks(uptimerobot.extract(hook, ref(code), week).data) == expected_checks(world, code, week)
        assert sim.state.extra.get("uptimerobot_refused", 0) == refused
    finally:
        with sim.state.lock:
            sim.state.extra.pop("uptimerobot_rate_limit", None)
            sim.state.extra.pop("uptimerobot_rate_window", None)

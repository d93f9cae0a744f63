"""LibreNMS hook and simulator: device-time weighted uptime per site and class from device outages."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from devtools.simulators import librenms as librenms_sim
from devtools.simulators.server import SimServer
from devtools.simulators.world import PROFILES, Outage, World
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import librenms
from msp_reports.week import ReportWeek
from tests.factories import report_week

CONN_ID = "librenms_test"
WEEK_OF = dt.date(2026, 11, 16)
DST_WEEK_OF = dt.date(2026, 10, 19)  # London leaves summer time on Sunday 25 October: 169 hours
MINUTE = dt.timedelta(minutes=1)
UTC = dt.timezone.utc


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    def _connect(*, token: str | None = None, server: SimServer | None = None) -> librenms.LibreNMSHook:
        conn = librenms_sim.demo_connections((server or sim).base_url, creds, {})["librenms_default"]
        if token is not None:
            conn["password"] = token
        use_connection(CONN_ID, conn)
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return librenms.LibreNMSHook(CONN_ID, policy=policy)

    return _connect


def down_seconds(outages, week: ReportWeek) -> float:
    """Outages clipped to the week (an open one to its end) and merged where they overlap."""
    spans = sorted((max(o.start, week.start), min(o.end or week.end, week.end)) for o in outages)
    total, reach = 0.0, week.start
    for start, end in spans:
        start = max(start, reach)
        if end > start:
            total += (end - start).total_seconds()
            reach = end
    return total


def expected_rows(world: World, code: str, week: ReportWeek, slo: float = 99.9) -> list[tuple]:
    """Straight from the world: a service's downtime over its devices x the week's seconds."""
    rows = []
    for svc in world.customers[code].services:
        down = down_seconds(svc.outages, week)
        rows.append((svc.site, svc.device_class, round(100 * (1 - down / (svc.devices * week.seconds)), 3),
                     round(down / svc.devices / 60, 2), slo, svc.devices))
    return sorted(rows)


def as_tuples(data) -> list[tuple]:
    return [(r.site, r.device_class, r.uptime_pct, r.downtime_minutes, r.slo_pct, r.devices) for r in data.rows]


# --- against the simulator ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["ACME", "DLTA", "CNDR"])  # London, Los Angeles, Singapore
def test_extract_equals_world(connect, world, code):
    """Each customer's own week: the world's boundary outage at local Monday 00:00 is cut there."""
    week = report_week(world, code)
    result = librenms.extract(connect(), {"device_group": code}, week)

    assert as_tuples(result.data) == expected_rows(world, code, week)
    assert {r.source for r in result.data.rows} == {"librenms"}
    assert result.as_of == week.end  # polled after the week: data is complete for it


def test_sla_drop_story_misses_the_slo(connect, world):
    data = librenms.extract(connect(), {"device_group": "ACME"}, report_week(world, "ACME")).data
    leeds_network = next(r for r in data.rows if (r.site, r.device_class) == ("Leeds", "Network"))
    # one device of the row down for 7 h: row-minutes (the Zabbix unit) times devices is device-minutes
    assert leeds_network.downtime_minutes * leeds_network.devices >= 7 * 60 + 5
    assert leeds_network.slo_met is False


def test_slo_comes_from_the_ref(connect, world):
    ref = {"device_group": "ECHO", "slo_pct": "99.5", "slo_pct.Firewalls": "99.0"}
    data = librenms.extract(connect(), ref, report_week(world, "ECHO")).data
    assert {r.device_class: r.slo_pct for r in data.rows} == {"Servers": 99.5, "Network": 99.5, "Firewalls": 99.0}


def test_one_outages_call_per_device_and_no_rolling_availability(connect, world, sim):
    """LibreNMS does not page: one group call, one locations call, then one call per device."""
    before = sim.state.requests["librenms"]
    data = librenms.extract(connect(), {"device_group": "DLTA"}, report_week(world, "DLTA")).data
    devices = sum(s.devices for s in world.customers["DLTA"].services)

    assert sum(r.devices for r in data.rows) == devices
    assert sim.state.requests["librenms"] - before == 2 + devices


@pytest.fixture(scope="module")
def edge_sim(creds):
    """DLTA and CNDR with outages across both ends of their week and one still running at its end.

    At the first site: Servers down from 30 min before the start to 10 min after, and from 15 min
    before the end to 20 min after (25 min in the week); Network down from 45 min before the end,
    never back up (45 min); Firewalls down only before and after the week (0). Elsewhere nothing.
    """
    world = World(WEEK_OF, profiles=tuple(p for p in PROFILES if p.code in ("DLTA", "CNDR")))
    for code, cw in world.customers.items():
        week = report_week(world, code)
        for svc in cw.services:
            svc.outages = []
            if svc.site != cw.profile.sites[0]:
                continue
            if svc.device_class == "Servers":
                svc.outages = [Outage(week.start - 30 * MINUTE, week.start + 10 * MINUTE),
                               Outage(week.end - 15 * MINUTE, week.end + 20 * MINUTE)]
            elif svc.device_class == "Network":
                svc.outages = [Outage(week.end - 45 * MINUTE, None)]
            else:
                svc.outages = [Outage(week.start - 180 * MINUTE, week.start - 60 * MINUTE),
                               Outage(week.end + 60 * MINUTE, week.end + 120 * MINUTE)]
    with SimServer(world, creds) as server:
        yield server


@pytest.mark.parametrize("code", ["DLTA", "CNDR"])
def test_outages_are_clipped_at_both_ends_of_the_local_week(connect, edge_sim, code):
    world = edge_sim.world
    week = report_week(world, code)
    data = librenms.extract(connect(server=edge_sim), {"device_group": code}, week).data
    first_site = world.customers[code].profile.sites[0]
    minutes = {r.device_class: round(r.downtime_minutes * r.devices, 1) for r in data.rows if r.site == first_site}

    assert minutes == {"Servers": 25.0, "Network": 45.0, "Firewalls": 0.0}
    assert all(r.downtime_minutes == 0 and r.uptime_pct == 100.0 for r in data.rows if r.site != first_site)
    assert as_tuples(data) == expected_rows(world, code, week)


@pytest.fixture(scope="module")
def dst_sim(creds):
    """The DST week, with ACME's Leeds servers down for the week's last half hour (and 10 min more)."""
    world = World(DST_WEEK_OF)
    week = report_week(world, "ACME")
    leeds_servers = next(s for s in world.customers["ACME"].services
                         if (s.site, s.device_class) == ("Leeds", "Servers"))
    leeds_servers.outages.append(Outage(week.end - 30 * MINUTE, week.end + 10 * MINUTE))
    with SimServer(world, creds) as server:
        yield server


def test_dst_week_is_169_hours(connect, dst_sim):
    world = dst_sim.world
    week = report_week(world, "ACME")
    assert week.hours == 169
    data = librenms.extract(connect(server=dst_sim), {"device_group": "ACME"}, week).data

    assert as_tuples(data) == expected_rows(world, "ACME", week)
    leeds_servers = next(r for r in data.rows if (r.site, r.device_class) == ("Leeds", "Servers"))
    # the last half hour is inside the 169-hour week (in device-minutes: row-minutes times devices)
    assert leeds_servers.downtime_minutes * leeds_servers.devices >= 30


def test_wrong_token_is_an_auth_error_that_says_what_to_fix(connect, world, creds):
    with pytest.raises(SourceAuthError) as caught:
        librenms.extract(connect(token="not-the-token-42"), {"device_group": "ACME"}, report_week(world, "ACME"))
    message = str(caught.value)
    assert CONN_ID in message and "Unauthenticated." in message and "valid API token" in message
    assert "connection's password" in message
    assert "not-the-token-42" not in message and creds.librenms_token not in message
    assert caught.value.status == 401


def test_unknown_group_points_at_the_registry(connect, world):
    with pytest.raises(SourceResponseError, match=r"ref\.device_group") as caught:
        librenms.extract(connect(), {"device_group": "NOPE"}, report_week(world, "ACME"))
    assert "Device group not found" in str(caught.value)


def test_429_then_success_honours_retry_after(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/librenms", json={"mode": "429", "times": 1, "retry_after": 1},
                  timeout=5)
    result = librenms.extract(connect(), {"device_group": "CNDR"}, report_week(world, "CNDR"))

    assert waits == [1.0]
    assert as_tuples(result.data) == expected_rows(world, "CNDR", report_week(world, "CNDR"))


def test_5xx_then_success(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/librenms", json={"mode": "500", "times": 2}, timeout=5)
    result = librenms.extract(connect(), {"device_group": "DLTA"}, report_week(world, "DLTA"))

    assert len(waits) == 2
    assert as_tuples(result.data) == expected_rows(world, "DLTA", report_week(world, "DLTA"))


def test_demo_connection_and_default_conn_id(sim, creds, world, use_connection):
    (conn_id, conn), = librenms_sim.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    assert librenms.HOOK.default_conn_name == conn_id == "librenms_default"
    result = librenms.extract(librenms.HOOK(), {"device_group": "KILO"}, report_week(world, "KILO"))
    assert as_tuples(result.data) == expected_rows(world, "KILO", report_week(world, "KILO"))


def test_simulator_wire_format(sim, creds, world):
    api = f"{sim.base_url}/librenms/api/v0"
    token = {"X-Auth-Token": creds.librenms_token}

    refused = requests.get(f"{api}/devicegroups/ACME", timeout=5)
    assert refused.status_code == 401 and refused.json() == {"message": "Unauthenticated."}

    ids_only = requests.get(f"{api}/devicegroups/ACME", headers=token, timeout=5).json()
    assert ids_only["status"] == "ok" and ids_only["count"] == len(ids_only["devices"])
    assert all(set(d) == {"device_id"} for d in ids_only["devices"])

    full = requests.get(f"{api}/devicegroups/ACME", params={"full": 1}, headers=token, timeout=5)
    assert "\n    " in full.text  # pretty-printed, as LibreNMS answers
    row = full.json()["devices"][0]
    assert "location_id" in row and "location" not in row and row["hostname"] == "acme-leeds-servers-1"

    outages = requests.get(f"{api}/devices/acme-leeds-network-1/outages", headers=token, timeout=5).json()
    starts = [o["going_down"] for o in outages["outages"]]
    assert starts == sorted(starts, reverse=True) and len(starts) > 0 and "count" not in outages
    assert requests.get(f"{api}/devices/acme-leeds-network-2/outages", headers=token, timeout=5).json() == {
        "status": "ok", "outages": []}

    missing = requests.get(f"{api}/devicegroups/NOPE", headers=token, timeout=5)
    assert missing.status_code == 404 and missing.json() == {"status": "error", "message": "Device group not found"}
    rolling = requests.get(f"{api}/devices/acme-leeds-network-1/availability", headers=token, timeout=5)
    assert rolling.status_code == 404 and rolling.json()["message"] == "This API route doesn't exist."


# --- pure parsing ---------------------------------------------------------------------------
WEEK = ReportWeek.starting(WEEK_OF, "Europe/London")  # 2026-11-16T00:00Z .. 2026-11-23T00:00Z


def _ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_parse_devices_reads_strings_and_ints_and_skips_disabled():
    records = [
        {"device_id": "7", "hostname": "core-sw1", "type": "network", "location_id": "3", "disabled": "0",
         "last_polled": "2026-11-23T06:05:00.000000Z"},
        {"device_id": 8, "hostname": "fw1", "type": "firewall", "location": "Leeds", "disabled": 0},
        {"device_id": 9, "hostname": "ups1", "type": "power", "location_id": None},
        {"device_id": 10, "hostname": "old", "type": "server", "location_id": 3, "disabled": 1},
        {"device_id": 11, "hostname": "nas1", "type": "", "location_id": 3, "disabled": None,
         "last_polled": "2026-11-23 06:10:00"},
    ]
    devices = librenms.parse_devices(records, {3: "Sheffield"})

    assert [(d.device_id, d.site, d.device_class) for d in devices] == [
        (7, "Sheffield", "Network"), (8, "Leeds", "Firewalls"), (9, "No location", "Power"),
        (11, "Sheffield", "Unclassified")]
    assert devices[0].last_polled == dt.datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
    assert devices[3].last_polled == dt.datetime(2026, 11, 23, 6, 10, tzinfo=UTC)
    assert librenms.device_class("server") == "Servers" and librenms.device_class("wireless") == "Wireless"
    assert librenms.parse_locations([{"id": "3", "location": "Sheffield"}]) == {3: "Sheffield"}


def test_parse_outages_accepts_strings_and_null():
    outages = librenms.parse_outages([
        {"going_down": str(_ts("2026-11-20T10:00:00")), "up_again": None},
        {"going_down": _ts("2026-11-18T10:00:00"), "up_again": str(_ts("2026-11-18T10:30:00"))},
    ])
    assert outages == [(dt.datetime(2026, 11, 20, 10, tzinfo=UTC), None),
                       (dt.datetime(2026, 11, 18, 10, tzinfo=UTC), dt.datetime(2026, 11, 18, 10, 30, tzinfo=UTC))]
    with pytest.raises(SourceResponseError, match="going_down"):
        librenms.parse_outages([{"up_again": 1}])


def test_downtime_is_clipped_merged_and_ongoing_runs_to_now_or_week_end():
    records = [  # newest first, as LibreNMS orders them
        {"going_down": _ts("2026-11-22T23:50:00"), "up_again": _ts("2026-11-23T00:20:00")},  # 10 min in
        {"going_down": _ts("2026-11-18T10:10:00"), "up_again": _ts("2026-11-18T10:40:00")},  # overlaps next
        {"going_down": _ts("2026-11-18T10:00:00"), "up_again": _ts("2026-11-18T10:30:00")},  # -> 40 min
        {"going_down": _ts("2026-11-15T23:30:00"), "up_again": _ts("2026-11-16T00:05:00")},  # 5 min in
        {"going_down": _ts("2026-11-10T08:00:00"), "up_again": _ts("2026-11-10T09:00:00")},  # before
    ]
    after_week = dt.datetime(2026, 11, 24, tzinfo=UTC)
    assert librenms.downtime_seconds(librenms.parse_outages(records), WEEK, after_week) == 55 * 60

    ongoing = librenms.parse_outages([{"going_down": _ts("2026-11-20T12:00:00"), "up_again": None}])
    assert librenms.downtime_seconds(ongoing, WEEK, after_week) == (2 * 24 + 12) * 3600  # to week end
    mid_week = dt.datetime(2026, 11, 20, 12, 45, tzinfo=UTC)
    assert librenms.downtime_seconds(ongoing, WEEK, mid_week) == 45 * 60  # to now


def test_uptime_rows_are_device_time_weighted_over_the_weeks_own_length():
    dst_week = ReportWeek.starting(DST_WEEK_OF, "Europe/London")
    devices = [librenms.Device(n, f"srv{n}", "Leeds", "Servers") for n in range(1, 5)]
    devices.append(librenms.Device(9, "fw1", "Leeds", "Firewalls"))
    rows = librenms.uptime_rows(devices, {1: 3600.0, 2: 1800.0}, dst_week, {"": 99.9, "Firewalls": 99.5})

    servers, firewalls = rows[1], rows[0]
    # 90 device-minutes over 4 servers: 22.5 minutes of the row, the unit Zabbix reports in
    assert (servers.device_class, servers.devices, servers.downtime_minutes) == ("Servers", 4, 22.5)
    assert servers.uptime_pct == round(100 * (1 - 5400 / (4 * 169 * 3600)), 3) == 99.778
    assert (firewalls.uptime_pct, firewalls.slo_pct, firewalls.downtime_minutes) == (100.0, 99.5, 0.0)


def test_envelopes_and_ref_errors():
    with pytest.raises(SourceResponseError, match="Device group not found"):
        librenms.read_envelope({"status": "error", "message": "Device group not found"}, "devices")
    with pytest.raises(SourceResponseError, match="'devices'"):
        librenms.read_envelope({"status": "ok", "count": 0}, "devices")
    assert librenms.read_envelope({"status": "ok", "outages": [], "count": 0}, "outages") == []
    assert librenms.slo_targets({"device_group": "ACME"}) == {"": 99.9}
    with pytest.raises(SourceError, match=r"ref\.slo_pct"):
        librenms.slo_targets({"slo_pct": "high"})


def test_hook_contract():
    assert librenms.HOOK is librenms.LibreNMSHook
    assert (librenms.HOOK.conn_type, librenms.HOOK.default_conn_name, librenms.HOOK.conn_name_attr) == (
        "librenms", "librenms_default", "conn_id")
    assert librenms.LibreNMSHook().conn_id == "librenms_default"  # no connection read in __init__

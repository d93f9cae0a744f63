"""Cloudflare hook and simulator: health-check availability over the customer's week."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from devtools.simulators.server import SimServer
from devtools.simulators.world import Outage, Profile, World
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import cloudflare
from msp_reports.week import ReportWeek
from tests.factories import report_week

CONN_ID = "cloudflare_test"
WEEK_OF = dt.date(2026, 11, 16)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    def _connect(*, token: str | None = None, page_size: int | None = None,
                 server: SimServer | None = None) -> cloudflare.CloudflareHook:
        use_connection(CONN_ID, {
            "conn_type": "cloudflare",
            "host": f"{(server or sim).base_url}/cloudflare/client/v4",
            "password": token or creds.cloudflare_token,
        })
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return cloudflare.CloudflareHook(CONN_ID, page_size=page_size, policy=policy)

    return _connect


def expected_checks(world: World, code: str, week: ReportWeek) -> dict[str, tuple]:
    """Straight from the world: one sample a minute over the week, down if an outage covers it."""
    out = {}
    for check in world.customers[code].checks:
        samples = down = 0
        at = week.start
        while at < week.end:
            samples += 1
            down += any(o.start <= at and (o.end is None or at < o.end) for o in check.outages)
            at += MINUTE
        out[check.short_name] = (check.address, round((samples - down) / samples * 100, 3), float(down), "healthy")
    return out


def got_checks(data) -> dict[str, tuple]:
    return {c.name: (c.address, c.availability_pct, c.downtime_minutes, c.status_now) for c in data.checks}


# --- against the simulator ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["CNDR", "DLTA", "HTEL", "KILO"])
def test_extract_matches_world(connect, world, code):
    """Availability and downtime equal the world's, in the customer's own week (LA, Singapore too)."""
    week = report_week(world, code)
    result = cloudflare.extract(connect(), {"zone_id": world.customers[code].zone_id}, week)

    assert got_checks(result.data) == expected_checks(world, code, week)
    # and within a minute of the outages' exact overlap with the week
    for check in world.customers[code].checks:
        exact = sum(week.clip(o.start, o.end) for o in check.outages) / 60
        assert abs(got_checks(result.data)[check.short_name][2] - exact) <= 1
    assert {c.source for c in result.data.checks} == {"cloudflare"}


def test_pages_through_health_checks(connect, world, sim):
    """HTEL has three checks; the simulator serves one a page by default. A page size is sent as a
    multiple of 5 (1 becomes 5, one page)."""
    before = sim.state.requests["cloudflare"]
    week = report_week(world, "HTEL")
    result = cloudflare.extract(connect(), {"zone_id": world.customers["HTEL"].zone_id}, week)

    assert len(result.data.checks) == 3
    days = -(-week.seconds // 86_400)
    assert sim.state.requests["cloudflare"] - before == 3 + days  # three REST pages, a GraphQL query a day
    one_by_one = cloudflare.extract(connect(page_size=1), {"zone_id": world.customers["HTEL"].zone_id},
                                    report_week(world, "HTEL"))
    assert one_by_one.data == result.data


@pytest.fixture(scope="module")
def boundary_sim(creds):
    """A one-check world whose only outages straddle the start and the end of the week."""
    world = World(WEEK_OF, profiles=(Profile("ZULU", "Zulu Ltd", "Asia/Singapore", ("SG",), web_checks=("www",)),))
    week = report_week(world, "ZULU")
    world.customers["ZULU"].checks[0].outages = [
        Outage(week.start - dt.timedelta(minutes=30), week.start + dt.timedelta(minutes=10)),
        Outage(week.end - dt.timedelta(minutes=15), week.end + dt.timedelta(minutes=20)),
    ]
    with SimServer(world, creds) as server:
        yield server


def test_week_is_clipped_at_both_ends(connect, boundary_sim):
    world = boundary_sim.world
    week = report_week(world, "ZULU")
    result = cloudflare.extract(connect(server=boundary_sim), {"zone_id": world.customers["ZULU"].zone_id}, week)
    (check,) = result.data.checks
    minutes = week.seconds / 60

    assert check.downtime_minutes == 25.0  # 10 after the start + 15 before the end
    assert check.availability_pct == round((minutes - 25) / minutes * 100, 3)
    assert got_checks(result.data) == expected_checks(world, "ZULU", week)


def test_wrong_token_raises_auth_error(connect, world):
    with pytest.raises(SourceAuthError) as info:
        cloudflare.extract(connect(token="bad-token-123"), {"zone_id": world.customers["ACME"].zone_id},
                           report_week(world, "ACME"))
    message = str(info.value)
    assert "cloudflare_test" in message and "10000" in message
    assert "bad-token-123" not in message and info.value.status == 403


def test_unknown_zone_points_at_the_registry(connect, world):
    with pytest.raises(SourceResponseError, match=r"ref\.zone_id"):
        cloudflare.extract(connect(), {"zone_id": "0" * 32}, report_week(world, "ACME"))


def test_429_then_success_honours_retry_after(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/cloudflare", json={"mode": "429", "times": 1, "retry_after": 1})
    result = cloudflare.extract(connect(), {"zone_id": world.customers["DLTA"].zone_id}, report_week(world, "DLTA"))

    assert waits == [1.0]
    assert got_checks(result.data) == expected_checks(world, "DLTA", report_week(world, "DLTA"))


def test_5xx_then_success(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/cloudflare", json={"mode": "500", "times": 2})
    result = cloudflare.extract(connect(), {"zone_id": world.customers["DLTA"].zone_id}, report_week(world, "DLTA"))

    assert len(waits) == 2
    assert got_checks(result.data) == expected_checks(world, "DLTA", report_week(world, "DLTA"))


def test_graphql_errors_arrive_with_http_200(sim, creds, world):
    response = requests.post(
        f"{sim.base_url}/cloudflare/client/v4/graphql",
        headers={"Authorization": f"Bearer {creds.cloudflare_token}"},
        json={"query": cloudflare.AVAILABILITY_QUERY.replace("fqdn", "colo"),
              "variables": {"zoneTag": world.customers["ACME"].zone_id, "start": "2026-11-16T00:00:00Z",
                            "end": "2026-11-23T00:00:00Z", "limit": 100}},
    )
    assert response.status_code == 200
    with pytest.raises(SourceResponseError, match="colo"):
        cloudflare.graphql_rows(response.json(), cloudflare.DATASET)


def test_simulator_honours_query_variables(sim, creds, world):
    """The window and zone come from the variables: one hour of one zone is 60 events a check from
    each of the region's three data centres."""
    response = requests.post(
        f"{sim.base_url}/cloudflare/client/v4/graphql",
        headers={"Authorization": f"Bearer {creds.cloudflare_token}"},
        json={"query": cloudflare.AVAILABILITY_QUERY,
              "variables": {"zoneTag": world.customers["HTEL"].zone_id, "start": "2026-11-17T10:00:00Z",
                            "end": "2026-11-17T11:00:00Z", "limit": 1000}},
    )
    rows = cloudflare.graphql_rows(response.json(), cloudflare.DATASET)
    assert sum(r["count"] for r in rows) == 60 * 3 * len(world.customers["HTEL"].checks)
    assert {r["dimensions"]["fqdn"] for r in rows} == {"www.htel.example", "booking.htel.example",
                                                       "portal.htel.example"}


def test_demo_connection_and_default_conn_id(sim, creds, world, use_connection):
    """The demo's connection works with a hook built with no arguments (``cloudflare_default``)."""
    from devtools.simulators import cloudflare as sim_cloudflare

    (conn_id, conn), = sim_cloudflare.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    result = cloudflare.extract(cloudflare.HOOK(), {"zone_id": world.customers["KILO"].zone_id}, report_week(world, "KILO"))
    assert got_checks(result.data) == expected_checks(world, "KILO", report_week(world, "KILO"))


# --- pure parsing ---------------------------------------------------------------------------
def _check(name: str, address: str, **fields) -> dict:
    return {"id": name, "name": name, "address": address, "type": "HTTPS", "status": "healthy",
            "interval": 60, "http_config": {"path": "/health"}} | fields


MINUTE0 = dt.datetime(2026, 11, 17, 10, 0, tzinfo=dt.timezone.utc)


def _group(count: int, status: str, fqdn: str, region: str = "WEU", minute: int = 0) -> dict:
    at = (MINUTE0 + dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:00Z")
    return {"count": count, "dimensions": {"healthStatus": status, "fqdn": fqdn, "region": region,
                                           "datetimeMinute": at}}


def _minutes(fqdn: str, n: int, down: set[int] = frozenset(), region: str = "WEU", blips: set[int] = frozenset(),
             step: int = 1) -> list[dict]:
    """``n`` buckets of three data centres' events: all fail in ``down``, one fails in ``blips``."""
    out = []
    for m in range(0, n * step, step):
        failing = 3 if m in down else 1 if m in blips else 0
        if failing < 3:
            out.append(_group(3 - failing, "healthy", fqdn, region, m))
        if failing:
            out.append(_group(failing, "unhealthy", fqdn, region, m))
    return out


def test_parse_site_checks_on_wire_records():
    checks = [
        _check("www", "www.acme.example"),
        _check("api", "api.acme.example", interval=300, status="unhealthy"),
        _check("a", "shared.acme.example"),
        _check("b", "shared.acme.example"),
        _check("new", "new.acme.example", suspended=True),
    ]
    groups = [
        *_minutes("www.acme.example", 990), *_minutes("WWW.acme.example", 10, down=set(range(10))),
        # two regions, 5-minute interval: down only where both regions are down (majority of 2 is 2)
        *_minutes("api.acme.example", 1000, down={0, 5}, region="WEU", step=5),
        *_minutes("api.acme.example", 1000, down={0, 5, 10}, region="ENAM", step=5),
        *_minutes("shared.acme.example", 50),
    ]
    groups[990:1000] = [dict(g, dimensions=dict(g["dimensions"], datetimeMinute=(
        MINUTE0 + dt.timedelta(minutes=990 + i)).strftime("%Y-%m-%dT%H:%M:00Z"))) for i, g in enumerate(groups[990:1000])]
    got = {c.name: c for c in cloudflare.parse_site_checks(checks, groups).checks}

    assert (got["www"].availability_pct, got["www"].downtime_minutes) == (99.0, 10.0)
    assert got["www"].address == "https://www.acme.example/health"
    assert (got["api"].availability_pct, got["api"].downtime_minutes) == (99.8, 10.0)
    assert got["api"].status_now == "unhealthy"
    assert got["a"].availability_pct is None and got["b"].availability_pct is None  # cannot be told apart
    assert got["new"].availability_pct is None and got["new"].status_now == "suspended"


def test_three_data_centres_are_one_sample_and_a_lone_blip_is_no_downtime():
    """Three events a minute are one sample; one data centre failing alone is not the site down
    (counting unhealthy events made 10 minutes down 30 and the blips downtime)."""
    checks = [_check("www", "www.acme.example")]
    groups = _minutes("www.acme.example", 600, down=set(range(100, 110)), blips={5, 200, 300})
    (check,) = cloudflare.parse_site_checks(checks, groups).checks

    assert check.downtime_minutes == 10.0
    assert check.availability_pct == round(590 / 600 * 100, 3)


def test_windows_cover_the_week_within_the_limit():
    week = report_week(World(WEEK_OF), "ACME")
    parts = cloudflare.windows(week.start, week.end, dt.timedelta(hours=24))
    assert parts[0][0] == week.start and parts[-1][1] == week.end
    assert all(b == c for (_, b), (c, _) in zip(parts, parts[1:]))
    assert all(b - a <= dt.timedelta(hours=24) for a, b in parts)
    many = [{"check_regions": ["WEU", "ENAM"]}] * 20  # 80 groups a minute: 124 minutes a window
    assert cloudflare.window_length(many, dt.timedelta(hours=24)) == dt.timedelta(minutes=124)
    assert [cloudflare.per_page(n) for n in (1, 5, 6, 25)] == [5, 5, 10, 25]


def test_envelope_errors_with_http_200_are_errors():
    with pytest.raises(SourceResponseError, match="1003"):
        cloudflare.read_page({"success": False, "errors": [{"code": 1003, "message": "Invalid zone"}],
                              "result": None})
    items, pages = cloudflare.read_page({"success": True, "errors": [], "result": [{}],
                                         "result_info": {"page": 1, "per_page": 5, "total_count": 11}})
    assert (len(items), pages) == (1, 3)
    with pytest.raises(SourceResponseError):
        cloudflare.graphql_rows({"data": {"viewer": {"zones": []}}, "errors": None}, cloudflare.DATASET)


# --- the dataset's limits, paging and naming rules -------------------------------------------
def _graphql(sim, creds, zone: str, start: str, end: str) -> dict:
    return requests.post(
        f"{sim.base_url}/cloudflare/client/v4/graphql",
        headers={"Authorization": f"Bearer {creds.cloudflare_token}"},
        json={"query": cloudflare.AVAILABILITY_QUERY,
              "variables": {"zoneTag": zone, "start": start, "end": end, "limit": 100}},
    ).json()


def test_simulator_refuses_a_window_beyond_the_datasets_limits(sim, creds, world):
    """A week in one query is wider than maxDuration; a window months back is older than notOlderThan."""
    zone = world.customers["ACME"].zone_id
    wide = _graphql(sim, creds, zone, "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z")
    assert wide["data"] is None
    assert "Time range can't be wider than 86400s, but it's 604800s" in wide["errors"][0]["message"]
    assert wide["errors"][0]["path"] == ["viewer", "zones", "0", cloudflare.DATASET]
    old = _graphql(sim, creds, zone, "2025-01-06T00:00:00Z", "2025-01-07T00:00:00Z")
    assert "older than" in old["errors"][0]["message"]
    with pytest.raises(SourceResponseError, match="wider than"):
        cloudflare.graphql_rows(wide, cloudflare.DATASET)


def test_project_queries_within_a_narrower_plan_limit(connect, sim, world, use_connection, creds):
    """With a plan limit of six hours, the hook told so (max_window_hours) still gets the week right."""
    with sim.state.lock:
        sim.state.extra["cloudflare_limits"] = {"maxDuration": 6 * 3600, "notOlderThan": 31 * 86_400}
    try:
        use_connection(CONN_ID, {"conn_type": "cloudflare", "host": f"{sim.base_url}/cloudflare/client/v4",
                                 "password": creds.cloudflare_token, "extra": {"max_window_hours": 6}})
        week = report_week(world, "DLTA")
        result = cloudflare.extract(cloudflare.CloudflareHook(CONN_ID), {"zone_id": world.customers["DLTA"].zone_id},
                                    week)
        assert got_checks(result.data) == expected_checks(world, "DLTA", week)
    finally:
        with sim.state.lock:
            sim.state.extra.pop("cloudflare_limits", None)


def test_per_page_must_be_a_multiple_of_five(sim, creds, world, connect):
    url = f"{sim.base_url}/cloudflare/client/v4/zones/{world.customers['HTEL'].zone_id}/healthchecks"
    headers = {"Authorization": f"Bearer {creds.cloudflare_token}"}
    refused = requests.get(url, headers=headers, params={"per_page": 2})
    assert refused.status_code == 400 and refused.json()["success"] is False
    assert requests.get(url, headers=headers, params={"per_page": 5}).json()["result_info"]["count"] == 3
    # the hook asked for 1 a page sends 5
    result = cloudflare.extract(connect(page_size=1), {"zone_id": world.customers["HTEL"].zone_id},
                                report_week(world, "HTEL"))
    assert len(result.data.checks) == 3


def test_check_names_follow_cloudflares_rule(sim, creds, world):
    """Only alphanumerics, '-' and '_': the simulator refuses a dotted name, and the demo complies."""
    url = f"{sim.base_url}/cloudflare/client/v4/zones/{world.customers['ACME'].zone_id}/healthchecks"
    headers = {"Authorization": f"Bearer {creds.cloudflare_token}"}
    refused = requests.post(url, headers=headers, json={"name": "www.acme.example", "address": "www.acme.example"})
    assert refused.status_code == 400 and "alphanumeric" in refused.json()["errors"][0]["message"]
    assert requests.post(url, headers=headers, json={"name": "www_acme-2", "address": "www.acme.example"}).ok
    names = [r["name"] for r in requests.get(url, headers=headers, params={"per_page": 25}).json()["result"]]
    assert names and all(re.fullmatch(r"[A-Za-z0-9_-]+", n) for n in names)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", c.short_name) for cw in world.customers.values() for c in cw.checks)

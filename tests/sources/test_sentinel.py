"""Sentinel (ARM) hook and simulator: a workspace's incidents as of week end, and no Secure Score."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from devtools.simulators import sentinel as sentinel_sim
from devtools.simulators.server import SimServer
from devtools.simulators.world import Profile, SecurityIncident, World
from msp_reports.http.client import RetryPolicy
from msp_reports.http.oauth import TOKEN_MARGIN_SECONDS
from msp_reports.sources import sentinel
from msp_reports.week import ReportWeek
from tests.factories import report_week

UTC = dt.timezone.utc
CONN_ID = "sentinel_test"
WEEK_OF = dt.date(2026, 11, 16)
DST_WEEK_OF = dt.date(2026, 10, 19)  # London leaves summer time on Sunday 25 October: 169 hours


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    def _connect(*, server: SimServer | None = None, page_size: int | None = None, clock=None,
                 extra: dict | None = None, **changes) -> sentinel.SentinelHook:
        conn = sentinel_sim.demo_connections((server or sim).base_url, creds, {})["sentinel_default"]
        conn.update(changes)
        conn["extra"] = {**conn["extra"], **(extra or {})}
        use_connection(CONN_ID, conn)
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return sentinel.SentinelHook(CONN_ID, page_size=page_size, policy=policy,
                                     **({"clock": clock} if clock else {}))

    return _connect


def ref(world: World, code: str, **more: str) -> dict[str, str]:
    return {**sentinel_sim.workspace_ref(world.customers[code]), **more}


def expected_incidents(incidents: list[SecurityIncident], week: ReportWeek) -> list[tuple]:
    """Straight from the world: created in the week, or created before and open at week end."""
    out = []
    for i in incidents:
        open_at_end = i.resolved is None or i.resolved > week.end
        if week.start <= i.created < week.end or (i.created < week.start and open_at_end):
            out.append((i.created, i.title, i.severity.lower(), "open" if open_at_end else "resolved"))
    return sorted(out)


def got_incidents(data) -> list[tuple]:
    assert len({i.ref for i in data.incidents}) == len(data.incidents)
    assert all(i.source == "sentinel" and i.ref.startswith("#") for i in data.incidents)
    return sorted((i.created_at, i.title, i.severity, i.status) for i in data.incidents)


def arm_token(server: SimServer, creds, tenant: str = sentinel_sim.MSP_TENANT_ID,
              scope: str = sentinel_sim.ARM_SCOPE) -> str:
    response = requests.post(f"{server.base_url}/sentinel/login/{tenant}/oauth2/v2.0/token", timeout=5, data={
        "grant_type": "client_credentials", "client_id": creds.sentinel_client_id,
        "client_secret": creds.sentinel_client_secret, "scope": scope})
    return response.json()["access_token"]


def incidents_url(server: SimServer, world: World, code: str) -> str:
    return f"{server.base_url}/sentinel" + sentinel.Workspace.from_ref(ref(world, code)).incidents_path


# --- against the simulator ----------------------------------------------------------------
@pytest.mark.parametrize(("code", "offset"), [("CNDR", 0), ("DLTA", 0), ("DLTA", 1), ("ACME", 4), ("LIMA", 5)])
def test_extract_matches_world(connect, world, code, offset):
    """Incidents equal the world's, in the customer's own week (Los Angeles, Singapore, London)."""
    week = report_week(world, code, offset)
    cw = world.customers[code]
    result = sentinel.extract(connect(), ref(world, code), week)

    assert result.data.incidents and got_incidents(result.data) == expected_incidents(cw.incidents, week)
    assert result.data.secure_score_pct is None and result.data.secure_score_prev_pct is None
    assert result.as_of is not None and result.as_of <= week.end


def test_cndr_has_an_open_high_severity_incident(connect, world):
    result = sentinel.extract(connect(), ref(world, "CNDR"), report_week(world, "CNDR"))
    open_high = [i for i in result.data.incidents if i.status == "open" and i.severity == "high"]
    assert [i.title for i in open_high] == ["Ransomware behaviour detected on file server"]


def test_week_is_clipped_at_both_ends(connect, world):
    """DLTA (Los Angeles): week 6 ago has an incident closed only after it ended (open at its end);
    week 5 ago must not show it, since it was created before and closed inside that week."""
    cw = world.customers["DLTA"]
    straddling = next(i for i in cw.incidents if i.id == "77bde378")
    late, early = report_week(world, "DLTA", offset=6), report_week(world, "DLTA", offset=5)
    assert late.start <= straddling.created < late.end < straddling.resolved < early.end
    key = (straddling.created, straddling.title)

    late_got = got_incidents(sentinel.extract(connect(), ref(world, "DLTA"), late).data)
    early_got = got_incidents(sentinel.extract(connect(), ref(world, "DLTA"), early).data)

    assert [i[3] for i in late_got if i[:2] == key] == ["open"]
    assert not [i for i in early_got if i[:2] == key]
    assert late_got == expected_incidents(cw.incidents, late)
    assert early_got == expected_incidents(cw.incidents, early)


def test_customer_timezone_decides_the_week(world):
    """Precondition for the London and Singapore cases above: a UTC week would list other incidents."""
    for code, offset in (("ACME", 4), ("LIMA", 5)):
        local = report_week(world, code, offset)
        utc = ReportWeek.starting(local.week_of, "UTC")
        assert expected_incidents(world.customers[code].incidents, local) != \
            expected_incidents(world.customers[code].incidents, utc)


AGED_OFFSET = 2


@pytest.fixture(scope="module")
def aged_sim(creds):
    """A one-customer world with incidents that only the older-incident queries can find.

    The week is two weeks back, so that "closed after the week" is already in the past."""
    world = World(WEEK_OF, profiles=(Profile("ZULU", "Zulu Ltd", "America/Los_Angeles", ("LA",)),))
    cw = world.customers["ZULU"]
    week = report_week(world, "ZULU", offset=AGED_OFFSET)
    cw.incidents = [
        SecurityIncident("still-open", "Old and never closed", "medium", week.start - dt.timedelta(days=10), None),
        SecurityIncident("closed-later", "Closed after the week", "low", week.start - dt.timedelta(days=3),
                         week.end + dt.timedelta(hours=20)),
        SecurityIncident("closed-in-week", "Closed during the week", "high", week.start - dt.timedelta(days=2),
                         week.start + dt.timedelta(hours=5)),
        SecurityIncident("at-the-start", "Created at the first instant", "low", week.start,
                         week.start + dt.timedelta(hours=1)),
        SecurityIncident("next-week", "Created at the week's end", "high", week.end, None),
    ]
    with SimServer(world, creds) as server:
        yield server


def test_older_incidents_open_at_week_end_are_included(connect, aged_sim):
    world = aged_sim.world
    week = report_week(world, "ZULU", offset=AGED_OFFSET)
    result = sentinel.extract(connect(server=aged_sim), ref(world, "ZULU"), week)

    assert {i.title: i.status for i in result.data.incidents} == {
        "Old and never closed": "open", "Closed after the week": "open", "Created at the first instant": "resolved"}
    assert got_incidents(result.data) == expected_incidents(world.customers["ZULU"].incidents, week)


def test_dst_week(connect, creds):
    world = World(DST_WEEK_OF)
    week = report_week(world, "ACME")
    assert week.hours == 169
    first_hour = [i for i in world.customers["ACME"].incidents if week.start <= i.created < week.start
                  + dt.timedelta(hours=1)]
    assert first_hour  # created on Monday 00:51 BST, i.e. on Sunday in UTC
    with SimServer(world, creds) as server:
        result = sentinel.extract(connect(server=server), ref(world, "ACME"), week)
    assert got_incidents(result.data) == expected_incidents(world.customers["ACME"].incidents, week)
    assert first_hour[0].title in {i.title for i in result.data.incidents}


def test_pages_follow_next_links(connect, world, sim):
    week = report_week(world, "CNDR")
    whole = sentinel.extract(connect(page_size=50), ref(world, "CNDR"), week)
    before = sim.state.requests["sentinel"]
    paged = sentinel.extract(connect(page_size=1), ref(world, "CNDR"), week)

    assert paged.data == whole.data
    assert len(whole.data.incidents) >= 2
    # one incident per page, for each of the three queries; plus an empty last page where none matched
    assert sim.state.requests["sentinel"] - before >= len(whole.data.incidents) + 2


def test_next_link_to_another_host_is_refused(connect):
    """The shared client's rule (tests/test_foreign_links.py runs it against a rewritten nextLink)."""
    hook = connect()
    assert hook.client.url(f"{hook.client.base_url}/subscriptions/x?$skipToken=abc")
    with pytest.raises(SourceResponseError, match="another host"):
        hook.client.url("https://attacker.example/subscriptions/x?$skipToken=abc")


def test_token_is_cached_renewed_on_401_and_before_expiry(connect, world, sim):
    clock = Clock()
    hook = connect(clock=clock)
    tokens = sim.state.extra[sentinel_sim.TOKENS_KEY]
    sentinel.extract(hook, ref(world, "ACME"), report_week(world, "ACME"))
    sentinel.extract(hook, ref(world, "ACME"), report_week(world, "ACME", offset=1))
    assert hook.tokens.issued == 1  # the cached token served six queries

    with sim.state.lock:
        tokens.clear()  # ARM now refuses the cached token with 401 InvalidAuthenticationToken
    result = sentinel.extract(hook, ref(world, "ACME"), report_week(world, "ACME"))
    assert hook.tokens.issued == 2
    assert got_incidents(result.data) == expected_incidents(world.customers["ACME"].incidents, report_week(world, "ACME"))

    clock.now += sentinel_sim.TOKEN_LIFETIME - TOKEN_MARGIN_SECONDS + 1  # still valid at ARM, but nearly expired
    sentinel.extract(hook, ref(world, "ACME"), report_week(world, "ACME"))
    assert hook.tokens.issued == 3


def test_wrong_secret_raises_auth_error(connect, world):
    with pytest.raises(SourceAuthError) as info:
        sentinel.extract(connect(password="wrong-secret-value"), ref(world, "ACME"), report_week(world, "ACME"))
    message = str(info.value)
    assert "AADSTS7000215" in message and "sentinel_test" in message and "client secret" in message
    assert "wrong-secret-value" not in message


def test_missing_tenant_fails_before_any_request(connect, world, sim):
    before = sim.state.requests["sentinel"]
    with pytest.raises(SourceAuthError, match="extra tenant_id"):
        sentinel.extract(connect(extra={"tenant_id": ""}), ref(world, "ACME"), report_week(world, "ACME"))
    assert sim.state.requests["sentinel"] == before


def test_customer_tenant_reaches_only_its_own_workspace(connect, world):
    """Without Lighthouse, ref.tenant_id names the customer's tenant: its token reads its own workspace only."""
    cndr, brvo = world.customers["CNDR"], world.customers["BRVO"]
    own = sentinel.extract(connect(), ref(world, "CNDR", tenant_id=cndr.tenant_id), report_week(world, "CNDR"))
    assert got_incidents(own.data) == expected_incidents(cndr.incidents, report_week(world, "CNDR"))
    with pytest.raises(SourceAuthError, match="AuthorizationFailed.*Microsoft Sentinel Reader") as info:
        sentinel.extract(connect(), ref(world, "CNDR", tenant_id=brvo.tenant_id), report_week(world, "CNDR"))
    assert info.value.status == 403


def test_unknown_workspace_points_at_the_registry(connect, world):
    with pytest.raises(SourceResponseError, match=r"ResourceNotFound.*ref\.workspace") as info:
        sentinel.extract(connect(), ref(world, "ACME", workspace="law-nosuch"), report_week(world, "ACME"))
    assert info.value.status == 404


def test_unknown_tenant_points_at_the_connection(connect, world):
    with pytest.raises(SourceAuthError, match=r"AADSTS90002.*extra tenant_id of connection 'sentinel_test'"):
        sentinel.extract(connect(extra={"tenant_id": "00000000-0000-0000-0000-000000000000"}), ref(world, "ACME"),
                         report_week(world, "ACME"))


def test_api_version_comes_from_the_connection(connect, world):
    week = report_week(world, "CNDR")
    newer = sentinel.extract(connect(extra={"api_version": "2025-06-01"}), ref(world, "CNDR"), week)
    assert got_incidents(newer.data) == expected_incidents(world.customers["CNDR"].incidents, week)
    with pytest.raises(SourceResponseError, match="NoRegisteredProviderFound"):
        sentinel.extract(connect(extra={"api_version": "2099-01-01"}), ref(world, "CNDR"), week)


def test_429_then_success_honours_retry_after(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/sentinel", json={"mode": "429", "times": 1, "retry_after": 1},
                  timeout=5)
    result = sentinel.extract(connect(), ref(world, "CNDR"), report_week(world, "CNDR"))
    assert waits == [1.0]
    assert got_incidents(result.data) == expected_incidents(world.customers["CNDR"].incidents, report_week(world, "CNDR"))


def test_5xx_then_success(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/sentinel", json={"mode": "500", "times": 1}, timeout=5)
    result = sentinel.extract(connect(), ref(world, "CNDR"), report_week(world, "CNDR"))
    assert len(waits) == 1
    assert got_incidents(result.data) == expected_incidents(world.customers["CNDR"].incidents, report_week(world, "CNDR"))


def test_demo_connection_and_default_conn_id(sim, creds, world, use_connection):
    (conn_id, conn), = sentinel_sim.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    result = sentinel.extract(sentinel.HOOK(), ref(world, "CNDR"), report_week(world, "CNDR"))
    assert got_incidents(result.data) == expected_incidents(world.customers["CNDR"].incidents, report_week(world, "CNDR"))


# --- the simulator speaks ARM ---------------------------------------------------------------
def test_simulator_bearer_and_request_errors(sim, world, creds):
    url = incidents_url(sim, world, "ACME")
    version = {"api-version": sentinel.API_VERSION}
    missing = requests.get(url, params=version, timeout=5)
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "AuthenticationFailed")
    forged = requests.get(url, params=version, headers={"Authorization": "Bearer forged"}, timeout=5)
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    graph = arm_token(sim, creds, scope=sentinel_sim.GRAPH_SCOPE)
    wrong_audience = requests.get(url, params=version, headers={"Authorization": f"Bearer {graph}"}, timeout=5)
    assert wrong_audience.status_code == 401 and "wrong audience" in wrong_audience.json()["error"]["message"]

    auth = {"Authorization": f"Bearer {arm_token(sim, creds)}"}
    no_version = requests.get(url, headers=auth, timeout=5)
    assert (no_version.status_code, no_version.json()["error"]["code"]) == (400, "MissingApiVersionParameter")
    bad_filter = requests.get(url, headers=auth, timeout=5,
                              params={**version, "$filter": "properties/title eq 'x'"})
    assert (bad_filter.status_code, bad_filter.json()["error"]["code"]) == (400, "BadRequest")
    other_rg = url.replace("rg-sentinel-acme", "rg-other")
    assert requests.get(other_rg, headers=auth, params=version, timeout=5).json()["error"]["code"] == \
        "ResourceGroupNotFound"

    page = requests.get(url, headers=auth, params={**version, "$top": 2}, timeout=5).json()
    assert len(page["value"]) == 2 and "$skipToken=" in page["nextLink"]
    record = page["value"][0]
    assert record["type"] == "Microsoft.SecurityInsights/Incidents" and record["id"].endswith(record["name"])
    assert record["properties"]["severity"] in {"High", "Medium", "Low", "Informational"}
    assert record["properties"]["createdTimeUtc"].endswith("Z") and len(record["properties"]["createdTimeUtc"]) == 28
    following = requests.get(page["nextLink"], headers=auth, timeout=5).json()
    assert {r["name"] for r in following["value"]}.isdisjoint(r["name"] for r in page["value"])


# --- pure parsing ---------------------------------------------------------------------------
WEEK = ReportWeek.starting(WEEK_OF, "Europe/London")  # 16 Nov 00:00Z to 23 Nov 00:00Z


def _incident(**properties) -> dict:
    props = {"title": "Multi-stage incident", "severity": "Medium", "status": "Active", "incidentNumber": 42,
             "createdTimeUtc": "2026-11-18T08:43:35.5533333Z", "lastModifiedTimeUtc": "2026-11-18T09:35:45.1133333Z"}
    return {"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.OperationalInsights/workspaces/w/"
                  "providers/Microsoft.SecurityInsights/Incidents/7c1a",
            "name": "7c1a", "type": "Microsoft.SecurityInsights/Incidents", "properties": props | properties}


def test_parse_incident_pascal_case_and_seven_digit_fractions():
    incident = sentinel.parse_incident(_incident(), WEEK)
    assert (incident.ref, incident.severity, incident.status) == ("#42", "medium", "open")
    assert incident.created_at == dt.datetime(2026, 11, 18, 8, 43, 35, 553333, tzinfo=UTC)
    assert sentinel.parse_incident(_incident(severity="Informational"), WEEK).severity == "informational"
    assert sentinel.parse_incident(_incident(severity="Critical"), WEEK).severity == "unknown"
    assert sentinel.parse_incident(_incident(status="New"), WEEK).status == "open"
    assert sentinel.parse_incident(_incident(incidentNumber=None), WEEK).ref == "7c1a"


def test_parse_incident_closure_is_judged_at_week_end():
    in_week = _incident(status="Closed", lastModifiedTimeUtc="2026-11-22T23:59:59.9999999Z")
    after = _incident(status="Closed", lastModifiedTimeUtc="2026-11-23T00:00:00.0000010Z")
    assert sentinel.parse_incident(in_week, WEEK).status == "resolved"
    assert sentinel.parse_incident(after, WEEK).status == "open"
    old_closed = _incident(createdTimeUtc="2026-11-10T00:00:00Z", status="Closed",
                           lastModifiedTimeUtc="2026-11-17T00:00:00Z")
    assert sentinel.parse_incident(old_closed, WEEK) is None
    old_open = _incident(createdTimeUtc="2026-11-10T00:00:00Z", status="Active")
    assert sentinel.parse_incident(old_open, WEEK).status == "open"
    assert sentinel.parse_incident(_incident(createdTimeUtc="2026-11-23T00:00:00Z"), WEEK) is None
    assert sentinel.parse_incident(_incident(createdTimeUtc="2026-11-16T00:00:00Z"), WEEK) is not None


def test_parse_security_has_no_secure_score_and_merges_queries():
    data = sentinel.parse_security([_incident(), _incident()], WEEK)
    assert len(data.incidents) == 1  # the same incident from two queries is one incident
    assert data.secure_score_pct is None and data.secure_score_prev_pct is None
    with pytest.raises(SourceResponseError, match="createdTimeUtc"):
        sentinel.parse_incident(_incident(createdTimeUtc="soon"), WEEK)
    with pytest.raises(SourceResponseError, match="no properties"):
        sentinel.parse_incident({"name": "x"}, WEEK)


def test_filters_and_workspace_ref():
    week = ReportWeek.starting(WEEK_OF, "Asia/Singapore")
    assert sentinel.incident_filters(week) == [
        "properties/createdTimeUtc ge 2026-11-15T16:00:00Z and properties/createdTimeUtc lt 2026-11-22T16:00:00Z",
        "properties/createdTimeUtc lt 2026-11-15T16:00:00Z and properties/status ne 'Closed'",
        "properties/createdTimeUtc lt 2026-11-15T16:00:00Z and properties/lastModifiedTimeUtc gt 2026-11-22T16:00:00Z",
    ]
    good = {"subscription_id": "5b2455e0-a600-3896-5e1a-39eab39c7bd0", "resource_group": "rg-x", "workspace": "law"}
    assert sentinel.Workspace.from_ref(good).incidents_path == (
        "/subscriptions/5b2455e0-a600-3896-5e1a-39eab39c7bd0/resourceGroups/rg-x/providers/"
        "Microsoft.OperationalInsights/workspaces/law/providers/Microsoft.SecurityInsights/incidents")
    sneaky = sentinel.Workspace.from_ref({**good, "resource_group": "../other"})
    assert "/resourceGroups/..%2Fother/providers/" in sneaky.incidents_path  # a name cannot climb the path
    with pytest.raises(SourceError, match=r"ref\.subscription_id 'CNDR' is not a subscription id"):
        sentinel.Workspace.from_ref({**good, "subscription_id": "CNDR"})
    with pytest.raises(SourceError, match=r"ref\.workspace is empty"):
        sentinel.Workspace.from_ref({**good, "workspace": " "})


def test_hook_contract(creds):
    assert sentinel.HOOK is sentinel.SentinelHook
    assert (sentinel.HOOK.conn_type, sentinel.HOOK.default_conn_name) == ("sentinel", "sentinel_default")
    assert sentinel.SentinelHook().conn_id == "sentinel_default"
    conn = sentinel_sim.demo_connections("http://127.0.0.1:1", creds, {})["sentinel_default"]
    assert conn["host"] == "http://127.0.0.1:1/sentinel"
    assert conn["extra"] == {"tenant_id": sentinel_sim.MSP_TENANT_ID, "login_url": "http://127.0.0.1:1/sentinel/login"}

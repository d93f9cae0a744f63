"""Defender (Graph security) hook and simulator: incidents and Secure Score as of week end."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from devtools.simulators import defender as sim_defender
from devtools.simulators.server import SimServer
from devtools.simulators.world import Profile, SecurityIncident, World
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import defender
from msp_reports.week import ReportWeek
from tests.factories import report_week

UTC = dt.timezone.utc
CONN_ID = "defender_test"
WEEK_OF = dt.date(2026, 11, 16)


@pytest.fixture
def waits() -> list[float]:
    return []


def _conn(server: SimServer, creds, secret: str | None = None) -> dict:
    return {
        "conn_type": "defender",
        "host": f"{server.base_url}/defender/graph/v1.0",
        "login": creds.graph_client_id,
        "password": secret or creds.graph_client_secret,
        "extra": {"login_url": f"{server.base_url}/defender/login"},
    }


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    def _connect(*, secret: str | None = None, page_size: int | None = None,
                 server: SimServer | None = None) -> defender.DefenderHook:
        use_connection(CONN_ID, _conn(server or sim, creds, secret))
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return defender.DefenderHook(CONN_ID, page_size=page_size, policy=policy)

    return _connect


def expected_incidents(incidents: list[SecurityIncident], week: ReportWeek) -> dict[str, tuple]:
    """Straight from the world: created in the week, or created before and open at week end."""
    out = {}
    for i in incidents:
        open_at_end = i.resolved is None or i.resolved > week.end
        if week.start <= i.created < week.end or (i.created < week.start and open_at_end):
            out[i.id] = (i.title, i.severity.lower(), "open" if open_at_end else "resolved", i.created)
    return out


def got_incidents(data) -> dict[str, tuple]:
    return {i.ref: (i.title, i.severity, i.status, i.created_at) for i in data.incidents}


def score_pct(world, code: str, day: dt.date) -> float:
    score = next(s for s in world.customers[code].secure_scores if s.day == day)
    return round(score.current / score.max * 100, 2)


# --- against the simulator ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["ACME", "CNDR", "DLTA", "INDG"])
def test_extract_matches_world(connect, world, code):
    """Incidents and scores equal the world's, in the customer's own week (LA, Singapore too)."""
    week = report_week(world, code)
    cw = world.customers[code]
    result = defender.extract(connect(), {"tenant_id": cw.tenant_id}, week)

    assert got_incidents(result.data) == expected_incidents(cw.incidents, week)
    # the newest daily snapshot at week end is the week's last day; at week start, the day before
    assert result.data.secure_score_pct == score_pct(world, code, week.week_of + dt.timedelta(days=6))
    assert result.data.secure_score_prev_pct == score_pct(world, code, week.week_of - dt.timedelta(days=1))
    assert result.as_of is not None and week.start < result.as_of <= week.end


def test_cndr_has_an_open_high_severity_incident(connect, world):
    cw = world.customers["CNDR"]
    result = defender.extract(connect(), {"tenant_id": cw.tenant_id}, report_week(world, "CNDR"))
    open_high = [i for i in result.data.incidents if i.status == "open" and i.severity == "high"]

    assert [i.title for i in open_high] == ["Ransomware behaviour detected on file server"]


def test_week_is_clipped_at_both_ends(connect, world):
    """DLTA (Los Angeles): week 6 ago has an incident resolved only after it ended (open at its end);
    week 5 ago must not show it, since it was created before and resolved inside that week."""
    cw = world.customers["DLTA"]
    straddling = next(i for i in cw.incidents if i.id == "77bde378")
    late, early = report_week(world, "DLTA", offset=6), report_week(world, "DLTA", offset=5)
    assert late.start <= straddling.created < late.end < straddling.resolved < early.end

    late_result = defender.extract(connect(), {"tenant_id": cw.tenant_id}, late)
    early_result = defender.extract(connect(), {"tenant_id": cw.tenant_id}, early)

    assert got_incidents(late_result.data)["77bde378"][2] == "open"
    assert "77bde378" not in got_incidents(early_result.data)
    assert got_incidents(late_result.data) == expected_incidents(cw.incidents, late)
    assert got_incidents(early_result.data) == expected_incidents(cw.incidents, early)


AGED_OFFSET = 2


@pytest.fixture(scope="module")
def aged_sim(creds):
    """A one-customer world with incidents that only the older-incident queries can find.

    The week is two weeks back, so that "resolved after the week" is already in the past."""
    world = World(WEEK_OF, profiles=(Profile("ZULU", "Zulu Ltd", "America/Los_Angeles", ("LA",)),))
    cw = world.customers["ZULU"]
    week = report_week(world, "ZULU", offset=AGED_OFFSET)
    cw.incidents = [
        SecurityIncident("still-open", "Old and never closed", "Medium", week.start - dt.timedelta(days=10), None),
        SecurityIncident("closed-later", "Closed after the week", "low", week.start - dt.timedelta(days=3),
                         week.end + dt.timedelta(hours=20)),
        SecurityIncident("closed-in-week", "Closed during the week", "high", week.start - dt.timedelta(days=2),
                         week.start + dt.timedelta(hours=5)),
        SecurityIncident("next-week", "Created after the week", "high", week.end + dt.timedelta(hours=1), None),
    ]
    with SimServer(world, creds) as server:
        yield server


def test_older_incidents_open_at_week_end_are_included(connect, aged_sim):
    cw = aged_sim.world.customers["ZULU"]
    week = report_week(aged_sim.world, "ZULU", offset=AGED_OFFSET)
    result = defender.extract(connect(server=aged_sim), {"tenant_id": cw.tenant_id}, week)

    assert {i.ref: i.status for i in result.data.incidents} == {"still-open": "open", "closed-later": "open"}
    assert got_incidents(result.data) == expected_incidents(cw.incidents, week)


def test_pages_follow_next_links(connect, world, sim):
    cw = world.customers["CNDR"]
    week = report_week(world, "CNDR", offset=1)
    whole = defender.extract(connect(page_size=50), {"tenant_id": cw.tenant_id}, week)
    before = sim.state.requests["defender"]
    paged = defender.extract(connect(page_size=1), {"tenant_id": cw.tenant_id}, week)

    assert paged.data == whole.data
    pages = len(whole.data.incidents) + 10  # one item per page: incidents, plus ~10 daily scores
    assert sim.state.requests["defender"] - before >= pages


def test_token_is_cached_and_renewed_once_when_rejected(connect, world, sim):
    cw = world.customers["ACME"]
    tokens = sim.state.extra[sim_defender.TOKENS_KEY]
    hook = connect()
    defender.extract(hook, {"tenant_id": cw.tenant_id}, report_week(world, "ACME"))
    issued = len(tokens)
    defender.extract(hook, {"tenant_id": cw.tenant_id}, report_week(world, "ACME", offset=1))
    assert len(tokens) == issued  # the cached token was reused

    with sim.state.lock:
        tokens.clear()  # Graph now rejects the cached token with 401 invalid_token
    result = defender.extract(hook, {"tenant_id": cw.tenant_id}, report_week(world, "ACME"))
    assert len(tokens) == 1
    assert got_incidents(result.data) == expected_incidents(cw.incidents, report_week(world, "ACME"))


def test_wrong_secret_raises_auth_error(connect, world):
    with pytest.raises(SourceAuthError) as info:
        defender.extract(connect(secret="wrong-secret-value"), {"tenant_id": world.customers["ACME"].tenant_id},
                         report_week(world, "ACME"))
    message = str(info.value)
    assert "AADSTS7000215" in message and "defender_test" in message
    assert "wrong-secret-value" not in message


def test_unknown_tenant_points_at_the_registry(connect, world):
    with pytest.raises(SourceAuthError, match=r"AADSTS90002.*ref\.tenant_id"):
        defender.extract(connect(), {"tenant_id": "00000000-0000-0000-0000-000000000000"}, report_week(world, "ACME"))


def test_429_then_success_honours_retry_after(connect, world, sim, waits):
    cw = world.customers["CNDR"]
    requests.post(f"{sim.base_url}/_sim/faults/defender", json={"mode": "429", "times": 1, "retry_after": 1})
    result = defender.extract(connect(), {"tenant_id": cw.tenant_id}, report_week(world, "CNDR"))

    assert waits == [1.0]
    assert got_incidents(result.data) == expected_incidents(cw.incidents, report_week(world, "CNDR"))


def test_5xx_then_success(connect, world, sim, waits):
    cw = world.customers["CNDR"]
    requests.post(f"{sim.base_url}/_sim/faults/defender", json={"mode": "500", "times": 2})
    result = defender.extract(connect(), {"tenant_id": cw.tenant_id}, report_week(world, "CNDR"))

    assert len(waits) == 2
    assert got_incidents(result.data) == expected_incidents(cw.incidents, report_week(world, "CNDR"))


def test_simulator_rejects_unsupported_filters_with_odata_error(connect, world, sim):
    hook = connect()
    tenant = world.customers["ACME"].tenant_id
    with pytest.raises(SourceResponseError, match="displayName"):
        hook.collection(tenant, "/security/incidents", "displayName eq 'x'")
    token, _ = hook.token(tenant)
    response = requests.get(f"{sim.base_url}/defender/graph/v1.0/security/incidents",
                            params={"$filter": "createdDateTime ge 2026-11-01T00:00:00Z and"},
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "BadRequest"


def test_simulator_filter_parser_handles_and_or_parentheses():
    keep = sim_defender.parse_filter(
        "severity eq 'High' and (createdDateTime lt 2026-11-16T00:00:00.0000000Z or status ne 'resolved')",
        sim_defender.INCIDENT_FIELDS,
    )
    old = dt.datetime(2026, 11, 1, tzinfo=UTC)
    new = dt.datetime(2026, 11, 20, tzinfo=UTC)
    assert keep({"severity": "high", "createdDateTime": old, "status": "resolved"})
    assert keep({"severity": "high", "createdDateTime": new, "status": "active"})
    assert not keep({"severity": "high", "createdDateTime": new, "status": "resolved"})
    assert not keep({"severity": "low", "createdDateTime": old, "status": "active"})


def test_demo_connection_and_default_conn_id(sim, creds, world, use_connection):
    """The demo's connection works with a hook built with no arguments (``defender_default``)."""
    (conn_id, conn), = sim_defender.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    cw = world.customers["CNDR"]
    result = defender.extract(defender.HOOK(), {"tenant_id": cw.tenant_id}, report_week(world, "CNDR"))
    assert got_incidents(result.data) == expected_incidents(cw.incidents, report_week(world, "CNDR"))


# --- pure parsing ---------------------------------------------------------------------------
WEEK = ReportWeek.starting(WEEK_OF, "Europe/London")


def _incident(**fields) -> dict:
    record = {"id": "2972395", "displayName": "Multi-stage incident", "severity": "Medium",
              "status": "Active", "createdDateTime": "2026-11-18T08:43:35.5533333Z",
              "lastUpdateDateTime": "2026-11-18T09:35:45.1133333Z"}
    return record | fields


def test_parse_incident_pascal_case_and_seven_digit_fractions():
    incident = defender.parse_incident(_incident(), WEEK)
    assert incident.severity == "medium" and incident.status == "open"
    assert incident.created_at == dt.datetime(2026, 11, 18, 8, 43, 35, 553333, tzinfo=UTC)
    assert defender.parse_incident(_incident(severity="SomethingNew"), WEEK).severity == "unknown"


def test_parse_incident_resolution_is_judged_at_week_end():
    in_week = _incident(status="Resolved", lastUpdateDateTime="2026-11-22T23:59:59.9999999Z")
    after = _incident(status="resolved", lastUpdateDateTime="2026-11-23T00:00:00.0000010Z")
    assert defender.parse_incident(in_week, WEEK).status == "resolved"
    assert defender.parse_incident(after, WEEK).status == "open"
    old_closed = _incident(createdDateTime="2026-11-10T00:00:00Z", status="resolved",
                           lastUpdateDateTime="2026-11-17T00:00:00Z")
    assert defender.parse_incident(old_closed, WEEK) is None
    assert defender.parse_incident(_incident(createdDateTime="2026-11-23T00:00:00Z"), WEEK) is None
    assert defender.parse_incident(_incident(status="Redirected"), WEEK) is None


def test_parse_security_secure_scores():
    scores = [
        {"createdDateTime": "2026-11-15T12:00:00.0000000Z", "currentScore": 60.0, "maxScore": 120.0},
        {"createdDateTime": "2026-11-22T12:00:00.0000000Z", "currentScore": 66.0, "maxScore": 120.0},
        {"createdDateTime": "2026-11-23T12:00:00.0000000Z", "currentScore": 99.0, "maxScore": 120.0},  # after
    ]
    data = defender.parse_security([_incident(), _incident()], scores, WEEK)
    assert (data.secure_score_pct, data.secure_score_prev_pct) == (55.0, 50.0)
    assert len(data.incidents) == 1  # the same id twice (two queries) is one incident
    assert defender.score_at(scores, WEEK.start - dt.timedelta(days=4)) is None

"""HaloPSA hook and simulator: the week's ticket numbers equal the world's tickets."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from devtools.simulators import halopsa as halo_sim
from devtools.simulators.server import SimServer
from devtools.simulators.world import CHANGE_BOARD, World
from msp_reports.http.client import RetryPolicy
from msp_reports.http.oauth import TOKEN_MARGIN_SECONDS
from msp_reports.snapshot import ChangeRecord
from msp_reports.sources import halopsa
from msp_reports.week import ReportWeek
from tests.factories import report_week

UTC = dt.timezone.utc
DST_WEEK_OF = dt.date(2026, 10, 19)  # London leaves summer time on Sunday 25 October: 169 hours


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hook(use_connection, server, creds, conn_id="halopsa_test", sleeps=None, extra=None, clock=None,
              **changes) -> halopsa.HaloPSAHook:
    conn = halo_sim.demo_connections(server.base_url, creds, {})["halopsa_default"]
    conn.update(changes)
    conn["extra"] = {**conn["extra"], **(extra or {})}
    use_connection(conn_id, conn)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, sleep=sleeps if sleeps is not None else Sleeps())
    return halopsa.HaloPSAHook(conn_id, policy=policy, **({"clock": clock} if clock else {}))


def ref(code: str, **more: str) -> dict[str, str]:
    return {"client_id": str(halo_sim.halo_client_id(code)), **more}


def in_week(when, week: ReportWeek) -> bool:
    return when is not None and week.start <= when < week.end


def expected(world: World, code: str, week: ReportWeek) -> dict:
    """The week's numbers straight from the world's tickets (all weeks here are in the past)."""
    service = [t for t in world.customers[code].tickets if t.board != CHANGE_BOARD]
    touched = [t for t in service if in_week(t.entered, week) or in_week(t.closed, week)]
    by_priority = {}
    for t in touched:
        row = by_priority.setdefault(t.priority, [0, 0, 0])
        row[0] += in_week(t.entered, week)
        row[1] += in_week(t.closed, week)
        row[2] += not t.in_sla
    changes = sorted((f"#{t.id}", t.summary, t.closed) for t in world.customers[code].tickets
                     if t.board == CHANGE_BOARD and in_week(t.closed, week))
    return {
        "opened": sum(in_week(t.entered, week) for t in service),
        "closed": sum(in_week(t.closed, week) for t in service),
        "sla_breaches": sum(not t.in_sla for t in touched),
        "backlog_end": sum(t.entered < week.end and (t.closed is None or t.closed >= week.end) for t in service),
        "by_priority": {p: tuple(v) for p, v in by_priority.items()},
        "changes": changes,
    }


def actual(data) -> dict:
    return {
        "opened": data.opened, "closed": data.closed, "sla_breaches": data.sla_breaches,
        "backlog_end": data.backlog_end,
        "by_priority": {p.priority: (p.opened, p.closed, p.sla_breaches) for p in data.by_priority},
        "changes": sorted((c.ref, c.summary, c.executed_at) for c in data.changes),
    }


def token_of(server, creds) -> str:
    response = requests.post(f"{server.base_url}/halopsa/auth/token", timeout=5, data={
        "grant_type": "client_credentials", "client_id": creds.halo_client_id,
        "client_secret": creds.halo_client_secret, "scope": "all"})
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def dst_world() -> World:
    return World(DST_WEEK_OF)


@pytest.fixture(scope="module")
def dst_sim(dst_world, creds):
    with SimServer(dst_world, creds) as server:
        yield server


# ---- extract against the simulator ----------------------------------------------------------
@pytest.mark.parametrize("code", ["ACME", "DLTA", "CNDR"])  # London, Los Angeles, Singapore
def test_extract_equals_world_tickets(sim, world, creds, use_connection, code):
    week = report_week(world, code)
    result = halopsa.extract(make_hook(use_connection, sim, creds), ref(code), week)
    want = expected(world, code, week)
    assert actual(result.data) == want
    assert want["changes"] and all(c.source == "halopsa" and c.status == "Closed" for c in result.data.changes)
    assert want["sla_breaches"] > 0
    assert result.as_of is not None and week.start < result.as_of <= week.end


@pytest.mark.parametrize("code", ["DLTA", "CNDR"])
def test_customer_timezone_decides_the_week(world, code):
    """Precondition for the test above: a UTC week would give different numbers for these customers."""
    local = report_week(world, code)
    utc = ReportWeek.starting(local.week_of, "UTC")
    assert expected(world, code, local)["opened"] != expected(world, code, utc)["opened"] or \
        expected(world, code, local)["closed"] != expected(world, code, utc)["closed"]


def test_week_ends_are_clipped(sim, world, creds, use_connection):
    """Tickets entered on the Monday after don't count; those entered before but closed inside count as closed."""
    code = "DLTA"
    week = report_week(world, code)
    tickets = [t for t in world.customers[code].tickets if t.board != CHANGE_BOARD]
    after = [t for t in tickets if week.end <= t.entered < week.end + dt.timedelta(days=1)]
    carried = [t for t in tickets if t.entered < week.start and in_week(t.closed, week)]
    assert after and carried  # the world has both cases
    hook = make_hook(use_connection, sim, creds)
    queries = halopsa.week_queries(halo_sim.halo_client_id(code), week)
    opened = {r["id"] for r in hook.tickets(queries["opened"])}
    closed = {r["id"] for r in hook.tickets(queries["closed"])}
    open_now = {r["id"] for r in hook.tickets(queries["open_now"])}
    # filtered by the server, not after the download
    assert (opened | closed | open_now).isdisjoint(t.id for t in after)
    assert {t.id for t in carried} <= closed - opened
    data = halopsa.extract(hook, ref(code), week).data
    assert data.opened == sum(in_week(t.entered, week) for t in tickets)
    assert data.closed == sum(in_week(t.closed, week) for t in tickets)
    assert data.backlog_end == sum(t.entered < week.end and (t.closed is None or t.closed >= week.end)
                                   for t in tickets)


def test_many_pages_give_the_same_numbers(sim, world, creds, use_connection):
    code, size = "DLTA", 7
    week = report_week(world, code)
    queries = halopsa.week_queries(halo_sim.halo_client_id(code), week)
    whole = make_hook(use_connection, sim, creds, conn_id="halopsa_whole")
    sizes = {name: len(whole.tickets(q)) for name, q in queries.items()}
    paged = make_hook(use_connection, sim, creds, extra={"page_size": size})
    before = sim.state.requests["halopsa"]
    result = halopsa.extract(paged, ref(code), week)
    sent = sim.state.requests["halopsa"] - before
    assert actual(result.data) == expected(world, code, week)
    assert sizes["opened"] > 3 * size
    pages = sum(max(1, math.ceil(n / size)) for n in sizes.values())
    assert sent == pages + 2 + full_reads(world, code, week)  # every page once, the token, the ticket types
    # and each of the week's service tickets whose breach needs its resolution state


def full_reads(world: World, code: str, week: ReportWeek) -> int:
    """The week's service tickets not already breached by their response: read in full for slastate."""
    now = dt.datetime.now(UTC)
    return sum(1 for t in world.customers[code].tickets
               if t.board != CHANGE_BOARD and (in_week(t.entered, week) or in_week(t.closed, week))
               and halo_sim._sla_states(t, t.closed if t.closed and t.closed <= now else None)[0] != "O")


def test_lists_are_trimmed_and_resolution_only_breaches_still_count(sim, world, creds, use_connection):
    """A listed ticket has no slastate (Halo's list model has none); the single read has it. Breaches of
    the resolution target alone are counted from the full record, not lost as "unknown"."""
    hook = make_hook(use_connection, sim, creds, conn_id="halopsa_trim")
    code = "DLTA"
    week = report_week(world, code)
    listed = hook.tickets(halopsa.week_queries(halo_sim.halo_client_id(code), week)["closed"])
    assert listed and all("slastate" not in r and "slaresponsestate" in r for r in listed)
    assert "slastate" in hook.full_ticket(int(listed[0]["id"]))
    resolution_only = [t for t in world.customers[code].tickets if t.board != CHANGE_BOARD and not t.in_sla
                       and t.id % 3 == 2 and (in_week(t.entered, week) or in_week(t.closed, week))]
    assert resolution_only  # the world has such breaches in this week
    data = halopsa.extract(hook, ref(code), week).data
    assert data.sla_breaches == expected(world, code, week)["sla_breaches"]


def test_unknown_resolution_state_is_not_met():
    """A closed ticket whose full record has no slastate makes the breaches unavailable."""
    record = {"id": 5, "dateoccurred": "2026-11-16T10:00:00", "dateclosed": "2026-11-16T12:00:00",
              "slaresponsestate": "I"}
    with pytest.raises(SourceResponseError, match="resolution SLA is unknown"):
        halopsa.check_resolution_known(record)
    halopsa.check_resolution_known({**record, "slastate": "I"})
    halopsa.check_resolution_known({**record, "dateclosed": "1900-01-01T00:00:00"})  # open: undecided is fine


def test_too_many_full_reads_make_the_figure_unavailable(sim, world, creds, use_connection):
    hook = make_hook(use_connection, sim, creds, conn_id="halopsa_bound", extra={"max_full_tickets": 2})
    with pytest.raises(SourceResponseError, match="max_full_tickets"):
        halopsa.extract(hook, ref("DLTA"), report_week(world, "DLTA"))


def test_dst_week(dst_sim, dst_world, creds, use_connection):
    week = report_week(dst_world, "ACME")
    assert week.hours == 169
    hook = make_hook(use_connection, dst_sim, creds, conn_id="halopsa_dst")
    data = halopsa.extract(hook, ref("ACME"), week).data
    assert actual(data) == expected(dst_world, "ACME", week)


def test_other_change_type_counts_change_board_tickets_as_service(sim, world, creds, use_connection):
    week = report_week(world, "ECHO")
    data = halopsa.extract(make_hook(use_connection, sim, creds), ref("ECHO", change_type="service request"),
                           week).data
    assert data.changes == []
    assert data.opened == sum(in_week(t.entered, week) for t in world.customers["ECHO"].tickets)


def test_unknown_change_type_names_the_ref_field(sim, world, creds, use_connection):
    with pytest.raises(SourceResponseError, match=r"ref\.change_type.*change request"):
        halopsa.extract(make_hook(use_connection, sim, creds), ref("ECHO", change_type="RFC"), report_week(world, "ECHO"))


def test_client_id_must_be_a_number(sim, world, creds, use_connection):
    with pytest.raises(SourceError, match=r"ref\.client_id 'ACME' is not a number"):
        halopsa.extract(make_hook(use_connection, sim, creds), {"client_id": "ACME"}, report_week(world, "ACME"))


# ---- auth, tokens, retries --------------------------------------------------------------------
def test_wrong_secret_is_an_auth_error_without_secrets(sim, world, creds, use_connection):
    hook = make_hook(use_connection, sim, creds, password="wrong-client-secret")
    with pytest.raises(SourceAuthError) as caught:
        halopsa.extract(hook, ref("ACME"), report_week(world, "ACME"))
    message = str(caught.value)
    assert "invalid_client" in message and "halopsa_test" in message and "client secret" in message
    for secret in ("wrong-client-secret", creds.halo_client_secret):
        assert secret not in message


def test_missing_secret_fails_before_any_request(sim, world, creds, use_connection):
    before = sim.state.requests["halopsa"]
    with pytest.raises(SourceAuthError, match="password"):
        halopsa.extract(make_hook(use_connection, sim, creds, password=None), ref("ACME"), report_week(world, "ACME"))
    assert sim.state.requests["halopsa"] == before


def test_token_is_cached_renewed_on_401_and_before_expiry(sim, world, creds, use_connection):
    clock = Clock()
    hook = make_hook(use_connection, sim, creds, clock=clock)
    tokens = sim.state.extra[halo_sim.TOKENS_KEY]
    halopsa.extract(hook, ref("ACME"), report_week(world, "ACME"))
    halopsa.extract(hook, ref("ACME"), report_week(world, "ACME", offset=1))
    assert hook.tokens.issued == 1  # one token for all requests of both weeks

    with sim.state.lock:
        tokens.clear()  # Halo forgets the token: the next request answers 401
    result = halopsa.extract(hook, ref("ACME"), report_week(world, "ACME"))
    assert hook.tokens.issued == 2
    assert actual(result.data) == expected(world, "ACME", report_week(world, "ACME"))

    clock.now += halo_sim.TOKEN_LIFETIME - TOKEN_MARGIN_SECONDS + 1  # still valid in Halo, but nearly expired
    halopsa.extract(hook, ref("ACME"), report_week(world, "ACME"))
    assert hook.tokens.issued == 3


def test_newly_issued_token_refused_is_not_retried(sim, dst_sim, world, creds, use_connection):
    """Tokens from one Halo instance, tickets from another: one token, one refusal, a clear message."""
    hook = make_hook(use_connection, dst_sim, creds, extra={"auth_url": f"{sim.base_url}/halopsa/auth"})
    with pytest.raises(SourceAuthError, match="newly issued token.*auth_url") as caught:
        halopsa.extract(hook, ref("ACME"), report_week(world, "ACME"))
    assert caught.value.status == 401
    assert hook.tokens.issued == 1


def test_rate_limited_once_then_succeeds(sim, world, creds, use_connection):
    sleeps = Sleeps()
    requests.post(f"{sim.base_url}/_sim/faults/halopsa", json={"mode": "429", "times": 1, "retry_after": 1},
                  timeout=5)
    result = halopsa.extract(make_hook(use_connection, sim, creds, sleeps=sleeps), ref("CNDR"), report_week(world, "CNDR"))
    assert sleeps == [1.0]
    assert actual(result.data) == expected(world, "CNDR", report_week(world, "CNDR"))


def test_server_error_once_then_succeeds(sim, world, creds, use_connection):
    sleeps = Sleeps()
    requests.post(f"{sim.base_url}/_sim/faults/halopsa", json={"mode": "500", "times": 1}, timeout=5)
    result = halopsa.extract(make_hook(use_connection, sim, creds, sleeps=sleeps), ref("CNDR"), report_week(world, "CNDR"))
    assert len(sleeps) == 1
    assert actual(result.data) == expected(world, "CNDR", report_week(world, "CNDR"))


# ---- the simulator speaks Halo ----------------------------------------------------------------
def test_simulator_token_endpoint_errors(sim, creds):
    url = f"{sim.base_url}/halopsa/auth/token"
    good = {"grant_type": "client_credentials", "client_id": creds.halo_client_id,
            "client_secret": creds.halo_client_secret, "scope": "all"}
    issued = requests.post(url, data=good, timeout=5)
    assert issued.status_code == 200 and issued.json()["token_type"] == "Bearer"
    assert issued.json()["expires_in"] == halo_sim.TOKEN_LIFETIME
    for change, error in (({"client_secret": "nope"}, "invalid_client"),
                          ({"client_id": "nope"}, "invalid_client"),
                          ({"grant_type": "password"}, "unsupported_grant_type"),
                          ({"scope": "admin"}, "invalid_scope")):
        refused = requests.post(url, data={**good, **change}, timeout=5)
        assert (refused.status_code, refused.json()) == (400, {"error": error})
        assert "nope" not in refused.text


def test_simulator_bearer_paging_and_filters(sim, world, creds):
    url = f"{sim.base_url}/halopsa/api/tickets"  # Halo's paths ignore case
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {token_of(sim, creds)}"}
    client = halo_sim.halo_client_id("ACME")
    everything = requests.get(url, headers=auth, params={"client_id": client}, timeout=5).json()
    assert everything["record_count"] == len(everything["tickets"]) > 50  # without pageinate: no paging
    assert {t["client_id"] for t in everything["tickets"]} == {client}

    paging = {"client_id": client, "pageinate": "true", "page_size": 20}
    first = requests.get(url, headers=auth, params={**paging, "page_no": 1}, timeout=5).json()
    second = requests.get(url, headers=auth, params={**paging, "page_no": 2}, timeout=5).json()
    assert (first["page_no"], first["page_size"], first["record_count"]) == (1, 20, everything["record_count"])
    assert len(first["tickets"]) == 20
    assert {t["id"] for t in first["tickets"]}.isdisjoint(t["id"] for t in second["tickets"])

    week = report_week(world, "ACME")
    closed = requests.get(url, headers=auth, timeout=5, params={
        "client_id": client, "datesearch": "dateclosed", "startdate": halopsa.halo_time(week.start),
        "enddate": halopsa.halo_time(week.end)}).json()["tickets"]
    assert closed and all(week.start <= halopsa.parse_date(t["dateclosed"], "") <= week.end for t in closed)
    still_open = requests.get(url, headers=auth, params={"client_id": client, "open_only": "true"}, timeout=5).json()
    assert all(t["dateclosed"] == halo_sim.NO_DATE for t in still_open["tickets"])
    bad = requests.get(url, headers=auth, params={"datesearch": "whenever", "startdate": "2026-11-16"}, timeout=5)
    assert bad.status_code == 400

    types = requests.get(f"{sim.base_url}/halopsa/api/TicketType", headers=auth, timeout=5).json()
    assert {"id": halo_sim.CHANGE_TYPE_ID, "name": "Change Request"}.items() <= \
        next(t for t in types if t["name"] == "Change Request").items()


# ---- pure parsing -------------------------------------------------------------------------------
WEEK = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")  # 16 Nov 00:00Z to 23 Nov 00:00Z
CHANGE = 4


def wire(id_: int, occurred: str, closed: str = "1900-01-01T00:00:00", *, response: str = "I",
         resolution: str | None = None, tickettype_id: int = 1, priority_id: int = 3, **more) -> dict:
    return {"id": id_, "summary": f"Ticket {id_}", "client_id": 482918, "tickettype_id": tickettype_id,
            "priority_id": priority_id, "status_id": 9 if closed[:4] != "1900" else 2,
            "dateoccurred": occurred, "dateclosed": closed, "slaresponsestate": response, "slastate": resolution,
            **more}


def test_parse_ticket_dates_priorities_and_sla_states():
    open_ticket = halopsa.parse_ticket(wire(1, "2026-11-16T09:00:00.637"))
    assert open_ticket.closed is None and open_ticket.in_sla is None  # resolution not decided yet
    assert open_ticket.entered == dt.datetime(2026, 11, 16, 9, 0, 0, 637000, tzinfo=UTC)
    assert open_ticket.priority == "Priority 3"
    named = halopsa.parse_ticket(wire(2, "2026-11-16T09:00:00", "2026-11-17T10:00:00", resolution="I"),
                                 {3: "P3 Medium"})
    assert (named.priority, named.in_sla, named.status) == ("P3 Medium", True, "Closed")
    embedded = halopsa.parse_ticket(wire(3, "2026-11-16T09:00:00", priority={"priorityid": 1, "name": "Critical"}),
                                    {3: "P3 Medium"})
    assert embedded.priority == "Critical"
    assert halopsa.parse_ticket(wire(4, "2026-11-16T09:00:00", response="O")).in_sla is False
    assert halopsa.parse_ticket(wire(5, "2026-11-16T09:00:00", resolution="o")).in_sla is False
    assert halopsa.parse_ticket(wire(5, "2026-11-16T09:00:00", response="O", excludefromsla=True)).in_sla is None
    assert halopsa.parse_ticket(wire(6, "2026-11-16T09:00:00", "1899-12-30T00:00:00")).closed is None
    assert halopsa.parse_ticket({"id": 7, "dateoccurred": "2026-11-16T09:00:00Z"}).priority == halopsa.NO_PRIORITY


def test_parse_ticket_rejects_malformed_records():
    with pytest.raises(SourceResponseError, match="no dateoccurred"):
        halopsa.parse_ticket({"id": 1, "summary": "x"})
    with pytest.raises(SourceResponseError, match="not an ISO-8601"):
        halopsa.parse_ticket({"id": 1, "dateoccurred": "yesterday"})
    with pytest.raises(SourceResponseError, match="numeric id"):
        halopsa.parse_ticket({"dateoccurred": "2026-11-16T09:00:00"})


def test_week_tickets_counts_hand_written_records():
    touched = [
        wire(10, "2026-11-16T00:00:00"),  # opened at the very start
        wire(11, "2026-11-12T08:00:00", "2026-11-18T12:30:00", response="O", resolution="O", priority_id=2),
        wire(12, "2026-11-16T15:00:00", "2026-11-17T10:00:00", resolution="O"),  # opened and closed in the week
        wire(13, "2026-11-23T00:00:00"),  # entered exactly at week end: not this week's (an inclusive enddate)
        wire(20, "2026-11-13T09:00:00", "2026-11-19T22:00:00", tickettype_id=CHANGE, status_name="Closed"),
        wire(21, "2026-11-20T09:00:00", "2026-11-24T22:00:00", tickettype_id=CHANGE),  # executed after the week
    ]
    touched.append(touched[2])  # in both the opened and the closed query: counted once
    candidates = [
        wire(10, "2026-11-16T00:00:00"),
        wire(13, "2026-11-23T00:00:00"),  # not open *at* week end: entered at it
        wire(14, "2026-11-01T00:00:00", "2026-11-23T00:00:00"),  # closed exactly at week end: still open at it
        wire(15, "2026-11-01T00:00:00", "2026-11-22T23:59:59"),  # closed before the end
        wire(22, "2026-11-01T00:00:00", tickettype_id=CHANGE),  # an open change is not backlog
    ]
    data = halopsa.week_tickets(touched, candidates, CHANGE, WEEK, {2: "P2 High", 3: "P3 Medium"})
    assert (data.opened, data.closed, data.sla_breaches, data.backlog_end) == (2, 2, 2, 2)
    assert {p.priority: (p.opened, p.closed, p.sla_breaches) for p in data.by_priority} == {
        "P2 High": (0, 1, 1), "P3 Medium": (2, 1, 1)}
    assert data.changes == [ChangeRecord(ref="#20", summary="Ticket 20",
                                         executed_at=dt.datetime(2026, 11, 19, 22, tzinfo=UTC),
                                         status="Closed", source="halopsa")]


def test_read_page_and_queries():
    assert halopsa.read_page({"page_no": 1, "page_size": 7, "record_count": 15, "tickets": [{}]}, 7) == ([{}], 3)
    assert halopsa.read_page({"record_count": 0, "tickets": []}, 7) == ([], 0)
    with pytest.raises(SourceResponseError, match="record_count"):
        halopsa.read_page({"tickets": []}, 7)
    week = ReportWeek.starting(dt.date(2026, 11, 16), "America/Los_Angeles")
    queries = halopsa.week_queries(7849, week)
    assert queries["opened"] == {"client_id": 7849, "datesearch": "dateoccurred",
                                 "startdate": "2026-11-16T08:00:00", "enddate": "2026-11-23T08:00:00"}
    assert queries["closed_since_end"]["startdate"] == "2026-11-23T08:00:00"
    assert queries["open_now"]["open_only"] == "true" and "startdate" not in queries["open_now"]


def test_hook_contract(creds):
    assert halopsa.HOOK is halopsa.HaloPSAHook
    assert (halopsa.HOOK.conn_type, halopsa.HOOK.default_conn_name) == ("halopsa", "halopsa_default")
    assert halopsa.HaloPSAHook().conn_id == "halopsa_default"
    conn = halo_sim.demo_connections("http://127.0.0.1:1", creds, {})["halopsa_default"]
    assert conn["host"] == "http://127.0.0.1:1/halopsa"
    assert (conn["login"], conn["password"]) == (creds.halo_client_id, creds.halo_client_secret)
    assert halo_sim.halo_client_id("ACME") == 482918


def test_demo_connection_works_with_the_default_conn_id(sim, world, creds, use_connection):
    (conn_id, conn), = halo_sim.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    week = report_week(world, "BRVO")
    assert actual(halopsa.extract(halopsa.HOOK(), ref("BRVO"), week).data) == expected(world, "BRVO", week)

"""ConnectWise PSA hook and simulator: the week's ticket numbers equal the world's tickets."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from devtools.simulators import connectwise as cw_sim
from devtools.simulators.connectwise import ConditionError, ConditionParser
from devtools.simulators.server import SimServer
from devtools.simulators.world import CHANGE_BOARD, World
from msp_reports.http.client import RetryPolicy
from msp_reports.snapshot import ChangeRecord
from msp_reports.sources import connectwise
from msp_reports.week import ReportWeek
from tests.factories import report_week

DST_WEEK_OF = dt.date(2026, 10, 19)  # London leaves summer time on Sunday 25 October: 169 hours


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_hook(use_connection, server, creds, conn_id="connectwise_test", sleeps=None, extra=None, **changes):
    conn = cw_sim.demo_connections(server.base_url, creds, {})["connectwise_default"]
    conn.update(changes)
    conn["extra"] = {**conn["extra"], **(extra or {})}
    use_connection(conn_id, conn)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, sleep=sleeps if sleeps is not None else Sleeps())
    return connectwise.ConnectWiseHook(conn_id, policy=policy)


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
        "touched": len(touched),
    }


def actual(data) -> dict:
    return {
        "opened": data.opened, "closed": data.closed, "sla_breaches": data.sla_breaches,
        "backlog_end": data.backlog_end,
        "by_priority": {p.priority: (p.opened, p.closed, p.sla_breaches) for p in data.by_priority},
        "changes": sorted((c.ref, c.summary, c.executed_at) for c in data.changes),
    }


def without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def tickets_url(server) -> str:
    return f"{server.base_url}/connectwise/v4_6_release/apis/3.0/service/tickets"


def headers(creds) -> dict:
    return {"clientId": creds.connectwise_client_id, "Accept": connectwise.ACCEPT}


def basic(creds) -> tuple[str, str]:
    return f"{creds.connectwise_company}+{creds.connectwise_public_key}", creds.connectwise_private_key


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
    result = connectwise.extract(make_hook(use_connection, sim, creds), {"company": code}, week)
    want = expected(world, code, week)
    assert actual(result.data) == without(want, "touched")
    assert want["changes"] and all(c.source == "connectwise" and c.status == "Closed" for c in result.data.changes)
    assert result.as_of is not None and result.as_of >= max(c for _, _, c in want["changes"])


@pytest.mark.parametrize("code", ["DLTA", "CNDR"])
def test_customer_timezone_decides_the_week(world, code):
    """Precondition for the test above: a UTC week would give different numbers for these customers."""
    local = report_week(world, code)
    utc = ReportWeek.starting(local.week_of, "UTC")
    assert without(expected(world, code, local), "touched", "by_priority") != \
        without(expected(world, code, utc), "touched", "by_priority")


def test_week_ends_are_clipped(sim, world, creds, use_connection):
    """Tickets entered on the Monday after don't count; those entered before but closed inside count as closed."""
    code = "DLTA"
    week = report_week(world, code)
    tickets = [t for t in world.customers[code].tickets if t.board != CHANGE_BOARD]
    after = [t for t in tickets if week.end <= t.entered < week.end + dt.timedelta(days=1)]
    carried = [t for t in tickets if t.entered < week.start and in_week(t.closed, week)]
    assert after and carried  # the world has both cases
    hook = make_hook(use_connection, sim, creds)
    conditions = connectwise.week_conditions(code, CHANGE_BOARD, week)
    fetched = {r["id"] for r in hook.records("service/tickets", conditions["tickets"], connectwise.TICKET_FIELDS)}
    assert fetched.isdisjoint(t.id for t in after)  # filtered by the server, not after the download
    assert {t.id for t in carried} <= fetched
    assert len(fetched) == expected(world, code, week)["touched"]
    data = connectwise.extract(hook, {"company": code}, week).data
    assert data.opened == sum(in_week(t.entered, week) for t in tickets)
    assert data.closed == sum(in_week(t.closed, week) for t in tickets)
    assert data.backlog_end == sum(t.entered < week.end and (t.closed is None or t.closed >= week.end)
                                   for t in tickets)


def test_many_pages_give_the_same_numbers(sim, world, creds, use_connection):
    code, size = "DLTA", 7
    week = report_week(world, code)
    want = expected(world, code, week)
    before = sim.state.requests["connectwise"]
    result = connectwise.extract(make_hook(use_connection, sim, creds, extra={"page_size": size}),
                                 {"company": code}, week)
    sent = sim.state.requests["connectwise"] - before
    assert actual(result.data) == without(want, "touched")
    pages = math.ceil(want["touched"] / size) + max(1, math.ceil(len(want["changes"]) / size))
    assert want["touched"] > 3 * size
    assert sent == pages + 1  # every page once, plus the backlog count


def test_dst_week(dst_sim, dst_world, creds, use_connection):
    week = report_week(dst_world, "ACME")
    assert week.hours == 169
    hook = make_hook(use_connection, dst_sim, creds, conn_id="connectwise_dst")
    data = connectwise.extract(hook, {"company": "ACME"}, week).data
    assert actual(data) == without(expected(dst_world, "ACME", week), "touched")


def test_custom_change_board_name(sim, world, creds, use_connection):
    """With another change board name, the Change Management tickets count as service tickets."""
    week = report_week(world, "ECHO")
    data = connectwise.extract(make_hook(use_connection, sim, creds),
                               {"company": "ECHO", "change_board": "RFC"}, week).data
    all_tickets = world.customers["ECHO"].tickets
    assert data.changes == []
    assert data.opened == sum(in_week(t.entered, week) for t in all_tickets)


# ---- auth, retries -------------------------------------------------------------------------------
def test_wrong_private_key_is_an_auth_error_without_secrets(sim, world, creds, use_connection):
    hook = make_hook(use_connection, sim, creds, password="wrong-private-key")
    with pytest.raises(SourceAuthError) as caught:
        connectwise.extract(hook, {"company": "ACME"}, report_week(world, "ACME"))
    message = str(caught.value)
    assert "HTTP 401" in message and "private key" in message and "connectwise_test" in message
    for secret in ("wrong-private-key", creds.connectwise_private_key, creds.connectwise_public_key):
        assert secret not in message


def test_wrong_client_id_is_an_auth_error(sim, world, creds, use_connection):
    hook = make_hook(use_connection, sim, creds, extra={"client_id": "00000000-0000-0000-0000-000000000000"})
    with pytest.raises(SourceAuthError, match="client_id"):
        connectwise.extract(hook, {"company": "ACME"}, report_week(world, "ACME"))


def test_missing_client_id_fails_before_any_request(sim, world, creds, use_connection):
    conn = cw_sim.demo_connections(sim.base_url, creds, {})["connectwise_default"]
    conn["extra"] = {}
    use_connection("connectwise_noclient", conn)
    before = sim.state.requests["connectwise"]
    with pytest.raises(SourceAuthError, match="extra client_id is missing"):
        connectwise.extract(connectwise.ConnectWiseHook("connectwise_noclient"), {"company": "ACME"},
                            report_week(world, "ACME"))
    assert sim.state.requests["connectwise"] == before


def test_rate_limited_once_then_succeeds(sim, world, creds, use_connection):
    sleeps = Sleeps()
    requests.post(f"{sim.base_url}/_sim/faults/connectwise", json={"mode": "429", "times": 1, "retry_after": 1},
                  timeout=5)
    result = connectwise.extract(make_hook(use_connection, sim, creds, sleeps=sleeps), {"company": "ACME"},
                                 report_week(world, "ACME"))
    assert sleeps == [1.0]
    assert actual(result.data) == without(expected(world, "ACME", report_week(world, "ACME")), "touched")


def test_server_error_once_then_succeeds(sim, world, creds, use_connection):
    sleeps = Sleeps()
    requests.post(f"{sim.base_url}/_sim/faults/connectwise", json={"mode": "500", "times": 1}, timeout=5)
    result = connectwise.extract(make_hook(use_connection, sim, creds, sleeps=sleeps), {"company": "CNDR"},
                                 report_week(world, "CNDR"))
    assert len(sleeps) == 1
    assert actual(result.data) == without(expected(world, "CNDR", report_week(world, "CNDR")), "touched")


def test_quote_in_company_is_refused_not_sent(sim, world, creds, use_connection):
    with pytest.raises(SourceResponseError, match="quote"):
        connectwise.extract(make_hook(use_connection, sim, creds), {"company": 'ACME" or id>0 or id="'},
                            report_week(world, "ACME"))


# ---- the simulator speaks ConnectWise --------------------------------------------------------
def test_simulator_auth_paging_fields_and_errors(sim, creds):
    url = tickets_url(sim)
    assert requests.get(url, headers=headers(creds), timeout=5).status_code == 401
    wrong = requests.get(url, headers=headers(creds), auth=(basic(creds)[0], "nope"), timeout=5)
    assert wrong.status_code == 401 and "nope" not in wrong.text
    no_client = requests.get(url, auth=basic(creds), timeout=5)
    assert no_client.status_code == 401

    first = requests.get(url, headers=headers(creds), auth=basic(creds), timeout=5,
                         params={"conditions": 'company/identifier="ACME"', "fields": "id,company/identifier,_info/dateEntered"})
    assert first.status_code == 200 and len(first.json()) == 25  # default page size
    assert "next" in first.links and "page=2" in first.links["next"]["url"]
    record = first.json()[0]
    assert set(record) == {"id", "company", "_info"} and record["company"] == {"identifier": "ACME"}
    assert record["_info"]["dateEntered"].endswith("Z")

    second = requests.get(first.links["next"]["url"], headers=headers(creds), auth=basic(creds), timeout=5)
    assert {r["id"] for r in second.json()}.isdisjoint(r["id"] for r in first.json())

    bad = requests.get(url, headers=headers(creds), auth=basic(creds), timeout=5,
                       params={"conditions": 'company/identifier="ACME" and (closedFlag = true'})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidObject"
    assert "')'" in bad.json()["errors"][0]["message"]
    unknown = requests.get(url, headers=headers(creds), auth=basic(creds), timeout=5,
                           params={"conditions": 'nosuchfield = 1'})
    assert unknown.status_code == 400

    count = requests.get(f"{url}/count", headers=headers(creds), auth=basic(creds), timeout=5,
                         params={"conditions": 'company/identifier="ACME" and board/name="Change Management"'})
    assert count.status_code == 200 and count.json()["count"] > 0


def test_condition_parser_grammar():
    rec = {"id": 7, "summary": "VPN drops at Leeds", "closedFlag": False, "isInSla": True,
           "board": {"name": "Service Desk"}, "company": {"identifier": "ACME"},
           "_info": {"dateEntered": "2026-11-17T10:00:00Z"}}

    def ok(text: str) -> bool:
        return ConditionParser.compile(text)(rec)

    assert ok('company/identifier="acme"')  # strings compare without case
    assert ok('dateEntered >= [2026-11-16T00:00:00Z] and dateEntered < [2026-11-23T00:00:00Z]')
    assert not ok('dateEntered < [2026-11-17T10:00:00Z]')
    assert ok('closedFlag = false and closedDate = null')
    assert not ok('closedDate >= [2020-01-01T00:00:00Z]')  # null never compares
    assert ok('id = 1 or id = 7 and isInSla = true')  # and binds tighter than or
    assert not ok('(id = 1 or id = 7) and isInSla = false')
    assert ok('not (board/name = "Change Management")')
    assert ok('summary contains "vpn" and summary like "VPN*Leeds" and summary not like "*Sheffield"')
    assert ok('id in (3, 7, 9) and board/name not in ("Change Management")')
    assert ok('summary = "VPN drops at Leeds"')  # spaces inside quotes
    for broken in ('id = ', 'id == 7', '(id = 7', 'id = 7)', 'closedFlag = "yes"', 'dateEntered > "2026-01-01"',
                   'summary = "open', 'id = 7 and', 'closedDate > null', 'nosuch = 1', 'id = 7 xor id = 8',
                   'dateEntered > [not a date]'):
        with pytest.raises(ConditionError):
            ConditionParser.compile(broken)


# ---- pure parsing -------------------------------------------------------------------------------
WIRE = [
    {"id": 501, "summary": "Printer offline", "board": {"id": 1, "name": "Service Desk"},
     "priority": {"id": 3, "name": "Priority 3 - Medium"}, "status": {"id": 2, "name": "In Progress"},
     "closedFlag": False, "isInSla": True, "_info": {"dateEntered": "2026-11-16T09:00:00Z"}},
    {"id": 502, "summary": "VPN drops", "board": {"id": 1, "name": "Service Desk"},
     "priority": {"id": 2, "name": "Priority 2 - High"}, "status": {"id": 5, "name": "Closed"},
     "closedFlag": True, "closedDate": "2026-11-18T12:30:00Z", "isInSla": False,
     "_info": {"dateEntered": "2026-11-12T08:00:00Z"}},
    {"id": 503, "summary": "New starter", "board": {"id": 1, "name": "Service Desk"},
     "priority": {"id": 3, "name": "Priority 3 - Medium"}, "status": {"id": 5, "name": "Closed"},
     "closedFlag": True, "closedDate": "2026-11-17T10:00:00Z", "isInSla": False,
     "_info": {"dateEntered": "2026-11-16T15:00:00Z"}},
]


def test_parse_and_count_hand_written_records():
    week = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")
    tickets = [connectwise.parse_ticket(r) for r in WIRE + WIRE[:1]]  # a repeat across pages counts once
    assert tickets[1].closed == dt.datetime(2026, 11, 18, 12, 30, tzinfo=dt.timezone.utc)
    assert tickets[0].closed is None and tickets[0].entered.tzinfo is not None
    change = connectwise.parse_change({"id": 900, "summary": "Firewall firmware", "status": {"name": "Closed"},
                                       "closedFlag": True, "closedDate": "2026-11-19T22:00:00Z",
                                       "_info": {"dateEntered": "2026-11-14T09:00:00Z"}})
    assert change == ChangeRecord(ref="#900", summary="Firewall firmware",
                                  executed_at=dt.datetime(2026, 11, 19, 22, tzinfo=dt.timezone.utc),
                                  status="Closed", source="connectwise")
    data = connectwise.ticket_data(tickets, week, backlog_end=4, changes=[change])
    assert (data.opened, data.closed, data.sla_breaches, data.backlog_end) == (2, 2, 2, 4)
    assert {p.priority: (p.opened, p.closed, p.sla_breaches) for p in data.by_priority} == {
        "Priority 2 - High": (0, 1, 1), "Priority 3 - Medium": (2, 1, 1)}
    assert data.changes == [change]


def test_parse_ticket_rejects_malformed_records():
    with pytest.raises(SourceResponseError, match="dateEntered"):
        connectwise.parse_ticket({"id": 1, "summary": "x"})
    with pytest.raises(SourceResponseError, match="not an ISO-8601"):
        connectwise.parse_ticket({"id": 1, "_info": {"dateEntered": "yesterday"}})
    assert connectwise.parse_ticket({"id": 2, "_info": {"dateEntered": "2026-11-16T09:00:00Z"}}).priority == \
        connectwise.NO_PRIORITY


def test_week_conditions_are_server_side_filters():
    week = ReportWeek.starting(dt.date(2026, 11, 16), "America/Los_Angeles")
    conds = connectwise.week_conditions("DLTA", "Change Management", week)
    assert 'company/identifier="DLTA"' in conds["tickets"] and 'board/name!="Change Management"' in conds["tickets"]
    assert "dateEntered>=[2026-11-16T08:00:00Z]" in conds["tickets"]
    assert "dateEntered<[2026-11-23T08:00:00Z]" in conds["tickets"]
    assert 'board/name="Change Management"' in conds["changes"]
    for text in conds.values():  # every filter is valid in the simulator's grammar
        ConditionParser.compile(text)


def test_hook_contract(creds):
    assert connectwise.HOOK is connectwise.ConnectWiseHook
    assert (connectwise.HOOK.conn_type, connectwise.HOOK.default_conn_name) == ("connectwise", "connectwise_default")
    assert connectwise.ConnectWiseHook().conn_id == "connectwise_default"
    conn = cw_sim.demo_connections("http://127.0.0.1:1", creds, {})["connectwise_default"]
    assert conn["host"] == "http://127.0.0.1:1/connectwise/v4_6_release/apis/3.0"
    assert conn["login"] == f"{creds.connectwise_company}+{creds.connectwise_public_key}"
    assert conn["extra"] == {"client_id": creds.connectwise_client_id}

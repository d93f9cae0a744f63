"""Datto BCDR hook and simulator: backup state per agent, as of the end of the customer's week."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import datto
from msp_reports.week import ReportWeek
from tests.factories import report_week

UTC = dt.timezone.utc
CONN_ID = "datto_test"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    """A hook on a connection to the simulator; ``password`` can be overridden."""

    def _connect(*, password: str | None = None, page_size: int | None = None) -> datto.DattoHook:
        use_connection(CONN_ID, {
            "conn_type": "datto",
            "host": f"{sim.base_url}/datto/v1",
            "login": creds.datto_public_key,
            "password": password or creds.datto_secret_key,
        })
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return datto.DattoHook(CONN_ID, page_size=page_size, policy=policy)

    return _connect


def expected_assets(world, code: str, week: ReportWeek) -> dict[str, dict]:
    """Straight from the world: what each agent looked like at week end."""
    out = {}
    for agent in world.customers[code].agents:
        before_end = [r for r in agent.runs if r.at < week.end]
        in_week = [r for r in before_end if r.at >= week.start]
        good = [r.at for r in before_end if r.ok]
        out[agent.name] = {
            "appliance": agent.appliance_name,
            "last_good_backup": max(good) if good else None,
            "last_status": ("success" if before_end[-1].ok else "failed") if before_end else "no backups",
            "backups_in_week": len(in_week),
            "failures_in_week": sum(1 for r in in_week if not r.ok),
        }
    return out


def as_dict(data) -> dict[str, dict]:
    return {
        a.name: {
            "appliance": a.appliance,
            "last_good_backup": a.last_good_backup,
            "last_status": a.last_status,
            "backups_in_week": a.backups_in_week,
            "failures_in_week": a.failures_in_week,
        }
        for a in data.assets
    }


# --- against the simulator ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["ACME", "BRVO", "CNDR", "DLTA"])
def test_extract_matches_world(connect, world, code):
    """Every agent's numbers equal the world's, in the customer's own week (LA, Singapore too)."""
    week = report_week(world, code)
    result = datto.extract(connect(), {"client_company": world.customers[code].profile.name}, week)

    assert as_dict(result.data) == expected_assets(world, code, week)
    assert {a.rpo_hours for a in result.data.assets} == {datto.DEFAULT_RPO_HOURS}
    assert {a.source for a in result.data.assets} == {"datto"}
    newest = max(r.at for a in world.customers[code].agents for r in a.runs if r.at < week.end)
    assert result.as_of == newest


def test_brvo_agent_silent_for_74_hours(connect, world):
    week = report_week(world, "BRVO")
    result = datto.extract(connect(), {"client_company": "Bravo Legal LLP"}, week)
    stale = [a for a in result.data.assets if a.hours_since_good(week.end) > 48]

    assert [a.name for a in stale] == ["BRVO-FS01"]
    assert stale[0].hours_since_good(week.end) >= 74
    assert not stale[0].rpo_met(week.end)
    assert all(a.rpo_met(week.end) for a in result.data.assets if a is not stale[0])


def test_rpo_comes_from_the_registry_ref(connect, world):
    result = datto.extract(connect(), {"client_company": "Acme Manufacturing Ltd", "rpo_hours": "12"},
                           report_week(world, "ACME"))
    assert {a.rpo_hours for a in result.data.assets} == {12.0}


def test_week_is_clipped_at_both_ends(connect, world):
    """CNDR's week before last has backups exactly at its start (counted) and end (not counted),
    and backups after it that must not make it look better."""
    week = report_week(world, "CNDR", offset=1)
    agents = world.customers["CNDR"].agents
    assert any(r.at == week.start for a in agents for r in a.runs)
    assert any(r.at == week.end for a in agents for r in a.runs)

    result = datto.extract(connect(), {"client_company": "Condor Logistics Pte Ltd"}, week)

    assert as_dict(result.data) == expected_assets(world, "CNDR", week)
    assert all(a.last_good_backup < week.end for a in result.data.assets)
    assert result.as_of < week.end


def test_pages_through_devices_and_agents(connect, world, sim):
    """The simulator serves 3 items a page: 12 appliances and 4 agents need 4 + 2 requests."""
    before = sim.state.requests["datto"]
    result = datto.extract(connect(), {"client_company": "Delta Dental Group"}, report_week(world, "DLTA"))

    assert len(result.data.assets) == 4
    assert sim.state.requests["datto"] - before == 6
    one_by_one = datto.extract(connect(page_size=1), {"client_company": "Delta Dental Group"}, report_week(world, "DLTA"))
    assert one_by_one.data == result.data


def test_wrong_keys_raise_auth_error(connect, world):
    with pytest.raises(SourceAuthError) as info:
        datto.extract(connect(password="not-the-secret"), {"client_company": "Bravo Legal LLP"}, report_week(world, "BRVO"))
    message = str(info.value)
    assert "datto_test" in message and "public key" in message
    assert "not-the-secret" not in message
    assert info.value.status == 401


def test_429_then_success_honours_retry_after(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/datto", json={"mode": "429", "times": 1, "retry_after": 1})
    result = datto.extract(connect(), {"client_company": "Bravo Legal LLP"}, report_week(world, "BRVO"))

    assert waits == [1.0]
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))


def test_5xx_then_success(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/datto", json={"mode": "500", "times": 2})
    result = datto.extract(connect(), {"client_company": "Bravo Legal LLP"}, report_week(world, "BRVO"))

    assert len(waits) == 2
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))


def test_unknown_company_says_what_to_fix(connect, world):
    with pytest.raises(SourceError, match="client_company"):
        datto.extract(connect(), {"client_company": "Nobody Ltd"}, report_week(world, "ACME"))


def test_unknown_serial_is_a_404(connect):
    with pytest.raises(SourceResponseError) as info:
        connect().agents("NO-SUCH-SERIAL")
    assert info.value.status == 404


def test_demo_connection_and_default_conn_id(sim, creds, world, use_connection):
    """The demo's connection works with a hook built with no arguments (``datto_default``)."""
    from devtools.simulators import datto as sim_datto

    (conn_id, conn), = sim_datto.demo_connections(sim.base_url, creds, {}).items()
    use_connection(conn_id, conn)
    result = datto.extract(datto.HOOK(), {"client_company": "Bravo Legal LLP"}, report_week(world, "BRVO"))
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))


# --- pure parsing ---------------------------------------------------------------------------
WEEK = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")


def _entry(ts: str, status: str) -> dict:
    return {"timestamp": ts, "backup": {"status": status, "errorMessage": None}}


def test_parse_agent_on_wire_record():
    record = {
        "name": "FS01",
        "lastSnapshot": 1795392000,  # 2026-11-23T00:00:00Z: week end, so not before it
        "backups": [  # newest first, as the API lists them
            _entry("2026-11-23T06:00:00+00:00", "success"),  # after the week: ignored
            _entry("2026-11-22T18:00:00+00:00", "Failed"),
            _entry("2026-11-20T06:00:00+00:00", "SUCCESS"),
            _entry("2026-11-16T00:00:00+00:00", "success"),  # exactly at week start: in the week
            _entry("2026-11-15T18:00:00+00:00", "success"),  # before the week
        ],
    }
    asset = datto.parse_agent(record, "SIRIS-1", WEEK, 24.0)

    assert asset.last_good_backup == dt.datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert asset.last_status == "Failed"
    assert (asset.backups_in_week, asset.failures_in_week) == (3, 1)
    assert asset.appliance == "SIRIS-1" and asset.rpo_hours == 24.0


def test_parse_agent_falls_back_to_last_snapshot_epoch():
    """History without a success before week end: ``lastSnapshot`` (epoch seconds) is used."""
    record = {"name": "DC01", "lastSnapshot": 1795305600, "backups": [_entry("2026-11-22T12:00:00Z", "error")]}
    asset = datto.parse_agent(record, "SIRIS-1", WEEK, 24.0)

    assert asset.last_good_backup == dt.datetime(2026, 11, 22, tzinfo=UTC)
    assert asset.last_status == "error" and asset.failures_in_week == 1


def test_parse_agent_without_history():
    asset = datto.parse_agent({"name": "APP01", "isPaused": True, "backups": []}, "SIRIS-1", WEEK, 24.0)
    assert asset.last_good_backup is None and asset.last_status == "paused"
    assert not asset.rpo_met(WEEK.end)


def test_read_page_and_company_match():
    assert datto.read_page({"pagination": {"page": 1, "totalPages": 0}, "items": []}) == ([], 0)
    assert datto.read_page([{"name": "x"}]) == ([{"name": "x"}], 1)
    with pytest.raises(SourceResponseError):
        datto.read_page({"error": "nope"})
    assert datto.same_company({"clientCompanyName": "  bravo  Legal LLP"}, "Bravo Legal LLP")
    assert not datto.same_company({"clientCompanyName": "Bravo Legal"}, "Bravo Legal LLP")


# --- recovery evidence (RTO) --------------------------------------------------------------
def test_screenshot_verification_is_each_agents_recovery_evidence(connect, world):
    """Every ACME agent had a passed screenshot the last day of the week, from its local
    recovery points: RTO met on the estimate, with the server default RTO."""
    week = report_week(world, "ACME")
    result = datto.extract(connect(), {"client_company": "Acme Manufacturing Ltd"}, week)
    for asset in result.data.assets:
        agent = next(a for a in world.customers["ACME"].agents if a.name == asset.name)
        shots = [x for x in agent.recoveries if x.kind == "screenshot" and x.ended < week.end]
        assert asset.last_recovery_test is not None and asset.last_recovery_test.passed
        assert asset.last_recovery_test.kind == "screenshot"
        assert asset.last_recovery_test.at == shots[-1].ended.replace(microsecond=0)
        assert asset.restore_site == "local" and asset.estimated_recovery_minutes == 60.0
        assert asset.measured_recovery is None  # a screenshot measures no recovery time
        assert asset.asset_class == "server" and asset.rto_hours == 8.0
        assert asset.rto_state(week.end) == "met"


def test_jult_never_tested_in_40_days_is_not_verified(connect, world):
    week = report_week(world, "JULT")
    result = datto.extract(connect(), {"client_company": "Juliet Insurance Brokers"}, week)
    for asset in result.data.assets:
        assert asset.last_recovery_test is not None
        assert (week.end - asset.last_recovery_test.at).days >= 40
        assert not asset.recovery_verified(week.end)
        assert asset.rto_state(week.end) == "not_verified"


def test_rto_targets_by_class_and_per_asset_from_the_ref(connect, world):
    ref = {"client_company": "Acme Manufacturing Ltd", "rto_hours": "0.5", "rto_hours.server": "6",
           "rto_hours.asset.ACME-FS01": "0.5", "recovery_days": "7"}
    result = datto.extract(connect(), ref, report_week(world, "ACME"))
    by_name = {a.name: a for a in result.data.assets}
    assert by_name["ACME-FS01"].rto_hours == 0.5 and by_name["ACME-DC01"].rto_hours == 6.0
    assert {a.verify_within_days for a in result.data.assets} == {7}
    week = report_week(world, "ACME")
    assert by_name["ACME-FS01"].rto_state(week.end) == "missed"  # est. 1 h > 0.5 h


def test_screenshot_fields_on_wire_record():
    week = ReportWeek.starting(dt.date(2026, 11, 16), "UTC")
    agent = {
        "name": "WS-7", "os": "Windows 11", "localSnapshots": 0, "latestOffsite": 1763700000,
        "lastScreenshotAttempt": 1763740000, "lastScreenshotAttemptStatus": False,
        "backups": [
            {"timestamp": "2026-11-20T10:00:00+00:00", "backup": {"status": "success"},
             "localVerification": {"status": "failed"},
             "advancedVerification": {"screenshotVerification": {"status": "success"}}},
            {"timestamp": "2026-11-19T10:00:00+00:00", "backup": {"status": "success"},
             "advancedVerification": {"screenshotVerification": {"status": "skipped"}}},
        ],
    }
    asset = datto.parse_agent(agent, "SIRIS", week, 24)
    assert asset.asset_class == "workstation" and asset.rto_hours == 24.0
    assert asset.restore_site == "offsite" and asset.estimated_recovery_minutes == 720.0
    assert not asset.last_recovery_test.passed  # the agent's last attempt (21 Nov) failed
    assert asset.rto_state(week.end) == "missed"
    tests = datto.screenshot_tests(agent)
    assert [t.passed for t in tests] == [False, False]  # local verification failed the 20 Nov one
    assert "local verification failed" in tests[0].status


def test_an_agent_without_screenshots_is_not_verified_never_met():
    week = ReportWeek.starting(dt.date(2026, 11, 16), "UTC")
    agent = {"name": "X", "localSnapshots": 5, "backups": [
        {"timestamp": "2026-11-20T10:00:00+00:00", "backup": {"status": "success"}}]}
    asset = datto.parse_agent(agent, "SIRIS", week, 24)
    assert asset.last_recovery_test is None and asset.rto_state(week.end) == "not_verified"


def test_a_non_boolean_screenshot_status_is_refused():
    week = ReportWeek.starting(dt.date(2026, 11, 16), "UTC")
    agent = {"name": "X", "lastScreenshotAttempt": 1763740000, "lastScreenshotAttemptStatus": "yes", "backups": []}
    with pytest.raises(SourceResponseError, match="lastScreenshotAttemptStatus"):
        datto.parse_agent(agent, "SIRIS", week, 24)

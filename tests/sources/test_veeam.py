"""Veeam hook and simulators: jobs from VSPC, sessions from VBR, as of the end of the customer's week."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from devtools.simulators import veeam as sim_veeam
from devtools.simulators.server import SimServer
from devtools.simulators.world import World
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import veeam
from msp_reports.sources.backup_rules import BackupAttempt
from msp_reports.week import ReportWeek
from tests.factories import report_week

UTC = dt.timezone.utc
CONN_ID, VBR_CONN_ID = "veeam_test", "veeam_vbr_test"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connect(sim, creds, use_connection, waits):
    """A hook on connections to a simulator; secrets and extras can be overridden."""

    def _connect(*, base_url: str | None = None, api_key: str | None = None, vbr_password: str | None = None,
                 extra: dict | None = None, **hook_kwargs) -> veeam.VeeamHook:
        base = base_url or sim.base_url
        use_connection(CONN_ID, {
            "conn_type": "veeam",
            "host": f"{base}/veeam/vspc/api/v3",
            "password": api_key or creds.veeam_vspc_api_key,
            "extra": extra if extra is not None else {"vbr_conn_id": VBR_CONN_ID},
        })
        use_connection(VBR_CONN_ID, {
            "conn_type": "veeam_vbr",
            "host": f"{base}/veeam/vbr",
            "login": creds.veeam_vbr_user,
            "password": vbr_password or creds.veeam_vbr_password,
        })
        policy = RetryPolicy(attempts=3, base_delay=0.01, sleep=waits.append)
        return veeam.VeeamHook(CONN_ID, policy=policy, **hook_kwargs)

    return _connect


def calls(server) -> dict[str, int]:
    return dict(server.state.extra[sim_veeam.CALLS_KEY])


def ref(world, code: str) -> dict[str, str]:
    return {"organization": world.customers[code].profile.name}


def expected_assets(world, code: str, week: ReportWeek) -> dict[str, dict]:
    """Straight from the world: each run is a session that ends ``session_end`` after it starts;
    what counts is what had ended before week end."""
    out = {}
    for agent in world.customers[code].agents:
        ended = [(run, sim_veeam.session_end(agent.name, run.at)) for run in agent.runs]
        done = [(run, end) for run, end in ended if end < week.end]
        in_week = [(run, end) for run, end in done if end >= week.start]
        good = [end for run, end in done if run.ok]
        out[agent.name] = {
            "appliance": sim_veeam.SERVER_NAME,
            "last_good_backup": max(good) if good else None,
            "last_status": ("Success" if done[-1][0].ok else "Failed") if done else "no sessions",
            "backups_in_week": len(in_week),
            "failures_in_week": sum(1 for run, _ in in_week if not run.ok),
        }
    return out


def newest_end(world, code: str, week: ReportWeek) -> dt.datetime:
    ends = [sim_veeam.session_end(a.name, r.at) for a in world.customers[code].agents for r in a.runs]
    return max(e for e in ends if e < week.end)


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
    """Every job's numbers equal the world's, in the customer's own week (LA, Singapore too)."""
    week = report_week(world, code)
    result = veeam.extract(connect(), ref(world, code), week)

    assert as_dict(result.data) == expected_assets(world, code, week)
    assert {a.rpo_hours for a in result.data.assets} == {24.0}
    assert {a.source for a in result.data.assets} == {"veeam"}
    assert result.as_of == newest_end(world, code, week)


def test_brvo_fs01_silent_for_74_hours(connect, world):
    week = report_week(world, "BRVO")
    result = veeam.extract(connect(), ref(world, "BRVO"), week)
    stale = [a for a in result.data.assets if a.hours_since_good(week.end) > 48]

    assert [a.name for a in stale] == ["BRVO-FS01"]
    assert stale[0].hours_since_good(week.end) > 73  # stopped 74 h before week end; runs last minutes
    assert not stale[0].rpo_met(week.end)
    assert all(a.rpo_met(week.end) for a in result.data.assets if a is not stale[0])


def test_rpo_comes_from_the_registry_ref(connect, world):
    result = veeam.extract(connect(), {**ref(world, "ACME"), "rpo_hours": "12"}, report_week(world, "ACME"))
    assert {a.rpo_hours for a in result.data.assets} == {12.0}


def test_week_is_clipped_at_both_ends(connect, world):
    """CNDR's week before last has sessions starting exactly at its start (counted: they end in
    it) and at its end (served by VBR, but not over by week end), sessions before it (history
    only), and a VSPC latest state from after it, which must not make it look better."""
    week = report_week(world, "CNDR", offset=1)
    agents = world.customers["CNDR"].agents
    assert any(r.at == week.start for a in agents for r in a.runs)
    assert any(r.at == week.end for a in agents for r in a.runs)

    result = veeam.extract(connect(), ref(world, "CNDR"), week)

    assert as_dict(result.data) == expected_assets(world, "CNDR", week)
    assert all(a.last_good_backup < week.end for a in result.data.assets)
    assert result.as_of == newest_end(world, "CNDR", week)


def test_pages_through_both_apis(connect, world, sim):
    """Two jobs a VSPC page, 100 sessions a VBR page: several pages of each, same result. The
    VSPC jobs are filtered server-side: 4 mapped jobs take 2 pages, the owner query 1."""
    week = report_week(world, "DLTA")
    whole = veeam.extract(connect(), ref(world, "DLTA"), week)
    before = calls(sim)
    paged = veeam.extract(connect(page_size=2, session_page_size=100), ref(world, "DLTA"), week)
    after = calls(sim)

    assert paged.data == whole.data and paged.as_of == whole.as_of
    assert after["vspc.jobs"] - before.get("vspc.jobs", 0) == 3
    assert after["vbr.sessions"] - before["vbr.sessions"] >= 5


def test_wrong_vspc_api_key_raises_auth_error(connect, world):
    with pytest.raises(SourceAuthError) as info:
        veeam.extract(connect(api_key="not-the-api-key"), ref(world, "BRVO"), report_week(world, "BRVO"))
    message = str(info.value)
    assert CONN_ID in message and "VSPC API key" in message
    assert "not-the-api-key" not in message
    assert info.value.status == 401


def test_wrong_vbr_password_raises_auth_error(connect, world):
    with pytest.raises(SourceAuthError) as info:
        veeam.extract(connect(vbr_password="not-the-password"), ref(world, "BRVO"), report_week(world, "BRVO"))
    message = str(info.value)
    assert f"'{VBR_CONN_ID}'" in message and "login and password" in message
    assert "not-the-password" not in message
    assert info.value.status == 401


def test_429_then_success_honours_retry_after(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/veeam", json={"mode": "429", "times": 1, "retry_after": 1})
    result = veeam.extract(connect(), ref(world, "BRVO"), report_week(world, "BRVO"))

    assert waits == [1.0]
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))


def test_5xx_then_success(connect, world, sim, waits):
    requests.post(f"{sim.base_url}/_sim/faults/veeam", json={"mode": "500", "times": 2})
    result = veeam.extract(connect(), ref(world, "BRVO"), report_week(world, "BRVO"))

    assert len(waits) == 2
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))


def test_vbr_token_is_cached_and_renewed_once_when_rejected(connect, world, sim):
    hook = connect()
    veeam.extract(hook, ref(world, "ACME"), report_week(world, "ACME"))
    issued = calls(sim)["vbr.token"]
    veeam.extract(hook, ref(world, "ACME"), report_week(world, "ACME", offset=1))
    assert calls(sim)["vbr.token"] == issued  # the cached token was reused

    with sim.state.lock:
        sim.state.extra[sim_veeam.TOKENS_KEY].clear()  # the server restarted: the token is unknown
    result = veeam.extract(hook, ref(world, "ACME"), report_week(world, "ACME"))
    assert calls(sim)["vbr.token"] == issued + 1
    assert as_dict(result.data) == expected_assets(world, "ACME", report_week(world, "ACME"))


def test_vbr_token_renewed_before_it_expires(connect, world, sim):
    now = [0.0]
    hook = connect(clock=lambda: now[0])
    veeam.extract(hook, ref(world, "ECHO"), report_week(world, "ECHO"))
    issued = calls(sim)["vbr.token"]
    now[0] += sim_veeam.TOKEN_LIFETIME - veeam.TOKEN_MARGIN_SECONDS + 1
    veeam.extract(hook, ref(world, "ECHO"), report_week(world, "ECHO"))
    assert calls(sim)["vbr.token"] == issued + 1


def test_a_new_token_rejected_is_not_renewed_again(connect, world, sim, monkeypatch):
    hook = connect()
    veeam.extract(hook, ref(world, "ECHO"), report_week(world, "ECHO"))
    issued = calls(sim)["vbr.token"]
    monkeypatch.setattr(sim_veeam, "TOKEN_LIFETIME", -1)  # the server now issues dead tokens
    with sim.state.lock:
        sim.state.extra[sim_veeam.TOKENS_KEY].clear()

    with pytest.raises(SourceAuthError, match="newly issued token"):
        veeam.extract(hook, ref(world, "ECHO"), report_week(world, "ECHO"))  # cached: rejected, renewed once
    assert calls(sim)["vbr.token"] == issued + 1
    with pytest.raises(SourceAuthError, match="newly issued token"):
        veeam.extract(connect(), ref(world, "ECHO"), report_week(world, "ECHO"))  # fresh: rejected, not renewed
    assert calls(sim)["vbr.token"] == issued + 2


def test_vbr_connection_per_server(connect, world):
    """``vbr_conn_ids`` names a server's own connection; an undefined one says which to define."""
    extra = {"vbr_conn_id": "veeam_vbr_nowhere", "vbr_conn_ids": {sim_veeam.SERVER_NAME: VBR_CONN_ID}}
    result = veeam.extract(connect(extra=extra), ref(world, "BRVO"), report_week(world, "BRVO"))
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))

    with pytest.raises(SourceError, match="'veeam_vbr_nowhere'.*is not defined"):
        veeam.extract(connect(extra={"vbr_conn_id": "veeam_vbr_nowhere"}), ref(world, "BRVO"), report_week(world, "BRVO"))


def test_organization_by_name_or_uid(connect, world):
    cw = world.customers["ECHO"]
    by_uid = veeam.extract(connect(), {"organization": sim_veeam.company_uid(cw)}, report_week(world, "ECHO"))
    assert as_dict(by_uid.data) == expected_assets(world, "ECHO", report_week(world, "ECHO"))

    with pytest.raises(SourceError, match="no company named 'Nobody Ltd'; check ref.organization"):
        veeam.extract(connect(), {"organization": "Nobody Ltd"}, report_week(world, "ECHO"))


def test_demo_connections_and_default_conn_ids(sim, creds, world, use_connection):
    """The demo's two connections work with a hook built with no arguments (``veeam_default``)."""
    conns = sim_veeam.demo_connections(sim.base_url, creds, {})
    assert set(conns) == {"veeam_default", "veeam_vbr_default"}
    extras = str([c["extra"] for c in conns.values()])
    assert creds.veeam_vspc_api_key not in extras and creds.veeam_vbr_password not in extras  # secrets: passwords
    for conn_id, conn in conns.items():
        use_connection(conn_id, conn)
    result = veeam.extract(veeam.HOOK(), ref(world, "BRVO"), report_week(world, "BRVO"))
    assert as_dict(result.data) == expected_assets(world, "BRVO", report_week(world, "BRVO"))


def test_dst_week_in_london(connect, creds):
    """The week UK clocks go back (25 Oct 2026) is 169 h; the servers write +01:00, then +00:00."""
    dst_world = World(dt.date(2026, 10, 19))
    week = report_week(dst_world, "ACME")
    assert week.hours == 169
    with SimServer(dst_world, creds) as server:
        result = veeam.extract(connect(base_url=server.base_url), ref(dst_world, "ACME"), week)

    assert as_dict(result.data) == expected_assets(dst_world, "ACME", week)
    assert result.as_of == newest_end(dst_world, "ACME", week)


# --- pure parsing ---------------------------------------------------------------------------
WEEK = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")  # 16 Nov 00:00Z - 23 Nov 00:00Z
JOB_ID = "EDEB5975-1C2D-4E5F-8A9B-0C1D2E3F4A5B"


def _session(sid: str, created: str, ended: str | None, result: str, state: str = "Stopped", **extra) -> dict:
    return {"id": sid, "name": "FS01 Backup", "jobId": JOB_ID.lower(), "sessionType": "BackupJob",
            "creationTime": created, "endTime": ended, "state": state,
            "result": {"result": result, "message": "", "isCanceled": False}, **extra}


def _job(**fields) -> dict:
    return {"instanceUid": JOB_ID, "name": "FS01 Backup", "backupServerUid": "B1", "status": "Success",
            "lastEndTime": None, **fields}


def test_parse_job_on_wire_records():
    sessions = [
        _session("a", "2026-11-15T23:50:00.000+00:00", "2026-11-16T00:12:31.117+00:00", "Success"),  # ends in week
        _session("b", "2026-11-15T11:00:00+00:00", "2026-11-15T11:20:00+00:00", "Success"),  # before the week
        _session("c", "2026-11-19T22:00:00-05:00", "2026-11-19T22:30:00-05:00", "Warning"),  # 20 Nov 03:30Z
        _session("d", "2026-11-21T01:00:00Z", "2026-11-21T01:40:00Z", "Failed"),
        _session("e", "2026-11-22T23:55:00Z", "2026-11-23T00:20:00Z", "Success"),  # over after week end
        _session("f", "2026-11-22T23:58:00Z", None, "None", state="Working"),  # still running
        _session("a", "2026-11-15T23:50:00.000+00:00", "2026-11-16T00:12:31.117+00:00", "Success"),  # repeated
    ]
    attempts = veeam.sessions_by_job(sessions)[JOB_ID.lower()]
    asset = veeam.parse_job(_job(), attempts, "VBR-1", WEEK, 24.0)

    assert asset.last_good_backup == dt.datetime(2026, 11, 20, 3, 30, tzinfo=UTC)  # Warning is good
    assert asset.last_status == "Failed"
    assert (asset.backups_in_week, asset.failures_in_week) == (3, 1)
    assert asset.appliance == "VBR-1" and asset.name == "FS01 Backup" and asset.source == "veeam"


def test_warning_is_a_good_backup_and_no_failure():
    sessions = [_session("w", "2026-11-22T06:00:00Z", "2026-11-22T06:15:00.5533333+00:00", "Warning")]
    asset = veeam.parse_job(_job(), veeam.sessions_by_job(sessions)[JOB_ID.lower()], "VBR-1", WEEK, 24.0)
    assert asset.last_status == "Warning" and asset.failures_in_week == 0
    assert asset.last_good_backup == dt.datetime(2026, 11, 22, 6, 15, 0, 553333, tzinfo=UTC)


def test_session_attempt_states_and_results():
    assert veeam.session_attempt(_session("x", "2026-11-20T06:00:00Z", None, "None", state="Working")) is None
    assert veeam.session_attempt(_session("x", "2026-11-20T06:00:00Z", "0001-01-01T00:00:00", "None")) is None
    finishing = _session("x", "2026-11-20T06:00:00Z", "2026-11-20T06:10:00Z", "Success", state="Postprocessing")
    assert veeam.session_attempt(finishing) is None
    cancelled = veeam.session_attempt(_session("x", "2026-11-20T06:00:00Z", "2026-11-20T06:01:00Z", "None"))
    assert cancelled == BackupAttempt(dt.datetime(2026, 11, 20, 6, 1, tzinfo=UTC), "None", False)
    with pytest.raises(SourceResponseError, match="'x' endTime"):
        veeam.session_attempt(_session("x", "2026-11-20T06:00:00Z", "yesterday", "Success"))


def test_sessions_match_jobs_by_id_case_insensitively_or_by_resource():
    by_resource = {**_session("r", "2026-11-20T06:00:00Z", "2026-11-20T06:10:00Z", "Success"), "jobId": None,
                   "resourceId": "ABC"}
    grouped = veeam.sessions_by_job([_session("s", "2026-11-20T06:00:00Z", "2026-11-20T06:10:00Z", "Success"),
                                     by_resource])
    assert set(grouped) == {JOB_ID.lower(), "abc"}


def test_vspc_latest_state_is_used_only_as_of_week_end():
    """No session in the history window: VSPC's latest finished state counts if before week end."""
    before = _job(status="Success", lastEndTime="2026-11-02T22:14:07.0000000-08:00")
    asset = veeam.parse_job(before, [], "VBR-1", WEEK, 24.0)
    assert asset.last_good_backup == dt.datetime(2026, 11, 3, 6, 14, 7, tzinfo=UTC)
    assert asset.last_status == "Success" and asset.backups_in_week == 0

    after = _job(status="Success", lastEndTime="2026-11-23T06:00:00.0000000+00:00")
    asset = veeam.parse_job(after, [], "VBR-1", WEEK, 24.0)
    assert asset.last_good_backup is None and asset.last_status == "no sessions"
    assert not asset.rpo_met(WEEK.end)

    running = _job(status="Running", lastEndTime="2026-11-20T06:00:00.0000000+00:00")
    assert veeam.parse_job(running, [], "VBR-1", WEEK, 24.0).last_good_backup is None


def test_jobs_of_other_companies_are_dropped():
    mine, other = "11111111-2222-3333-4444-555555555555", "99999999-2222-3333-4444-555555555555"
    assert veeam.belongs_to({"mappedOrganizationUid": mine.upper(), "organizationUid": other}, mine)
    assert not veeam.belongs_to({"mappedOrganizationUid": other, "organizationUid": mine}, mine)
    assert veeam.belongs_to({"mappedOrganizationUid": None, "organizationUid": mine}, mine)
    assert not veeam.belongs_to({"mappedOrganizationUid": "", "organizationUid": other}, mine)


def test_paging_envelopes():  # the offset loop itself: tests/http_layer/test_paging.py
    assert veeam.read_vspc_page({"meta": {"pagingInfo": {"total": 0, "count": 0, "offset": 0}}, "data": []}) == ([], 0)
    assert veeam.read_vbr_page({"data": [{"id": "s"}], "pagination": {"total": 7}}) == ([{"id": "s"}], 7)
    with pytest.raises(SourceResponseError):
        veeam.read_vspc_page({"errors": [{"message": "denied", "type": "security", "code": 401}]})


# --- recovery evidence (RTO) --------------------------------------------------------------
def test_surebackup_is_each_jobs_measured_recovery(connect, world):
    week = report_week(world, "CNDR")
    result = veeam.extract(connect(), ref(world, "CNDR"), week)
    for asset in result.data.assets:
        agent = next(a for a in world.customers["CNDR"].agents if a.name == asset.name)
        runs = [x for x in agent.recoveries if x.kind == "surebackup" and x.ended < week.end]
        test = asset.last_recovery_test
        assert test is not None and test.kind == "surebackup" and test.passed
        assert test.at == runs[-1].ended.replace(microsecond=0)
        assert asset.measured_recovery == test
        assert test.minutes == pytest.approx((runs[-1].ended - runs[-1].started).total_seconds() / 60)
        assert asset.rto_state(week.end) == "met"


def test_echo_surebackup_failed_this_week(connect, world):
    week = report_week(world, "ECHO")
    result = veeam.extract(connect(), ref(world, "ECHO"), week)
    states = {a.name: a.rto_state(week.end) for a in result.data.assets}
    assert states == {"ECHO-DC01": "missed", **{n: "met" for n in states if n != "ECHO-DC01"}}
    failed = next(a for a in result.data.assets if a.name == "ECHO-DC01").last_recovery_test
    assert not failed.passed and failed.status == "SureBackup Failed" and week.start <= failed.at < week.end


def test_kilo_restore_took_longer_than_its_rto(connect, world):
    week = report_week(world, "KILO")
    result = veeam.extract(connect(), ref(world, "KILO"), week)
    slow = next(a for a in result.data.assets if a.name == "KILO-DC01")
    assert slow.last_recovery_test.kind == "restore" and slow.last_recovery_test.passed
    minutes, measured = slow.recovery_minutes(week.end)
    assert measured and minutes == pytest.approx(11 * 60 + 5)
    assert slow.rto_state(week.end) == "missed"
    assert all(a.rto_state(week.end) == "met" for a in result.data.assets if a is not slow)
    # a longer RTO for that one asset meets it
    relaxed = veeam.extract(connect(), {**ref(world, "KILO"), "rto_hours.asset.KILO-DC01": "12"}, week)
    assert next(a for a in relaxed.data.assets if a.name == "KILO-DC01").rto_state(week.end) == "met"


def test_recovery_sessions_are_read_per_type_and_task_sessions_per_session(connect, world, sim):
    before = dict(sim.state.extra.get(sim_veeam.CALLS_KEY, {}))
    veeam.extract(connect(), ref(world, "CNDR"), report_week(world, "CNDR"))
    after = dict(sim.state.extra[sim_veeam.CALLS_KEY])
    assert after.get("vbr.taskSessions", 0) > before.get("vbr.taskSessions", 0)


@pytest.mark.parametrize("mode", ["503", "malformed", "truncated"])
def test_a_failing_task_sessions_endpoint_fails_the_extract(connect, world, sim, mode):
    """Recovery evidence that cannot be read is no "not verified": the section is unavailable."""
    requests.post(f"{sim.base_url}/_sim/faults/veeam", json={"mode": mode, "path": "/taskSessions", "times": 1000},
                  timeout=5).raise_for_status()
    try:
        with pytest.raises(SourceResponseError if mode != "503" else SourceError):
            veeam.extract(connect(), ref(world, "ECHO"), report_week(world, "ECHO"))
    finally:
        requests.delete(f"{sim.base_url}/_sim/faults", timeout=5).raise_for_status()


def test_recovery_test_on_wire_records():
    session = {"id": "s1", "sessionType": "RestoreVm", "state": "Stopped"}
    task = {"id": "t1", "name": "VM-1", "state": "Stopped", "creationTime": "2026-11-18T09:00:00+00:00",
            "endTime": "2026-11-18T10:30:00+00:00", "result": {"result": "Warning"}}
    test = veeam.recovery_test(session, task)
    assert test.kind == "restore" and test.passed and test.minutes == 90 and test.status == "RestoreVm Warning"
    assert veeam.recovery_test(session, {**task, "state": "Working"}) is None
    with pytest.raises(SourceResponseError, match="ended before it started"):
        veeam.recovery_test(session, {**task, "endTime": "2026-11-18T08:00:00+00:00"})
    assert veeam.recovery_by_machine([(session, [task])]) == {"vm-1": [test]}

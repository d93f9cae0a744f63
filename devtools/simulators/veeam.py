"""Veeam Service Provider Console (``/vspc/api/v3``) and Backup & Replication (``/vbr/api``),
served from the demo world.

The MSP runs one hosted VBR server, ``NW-VBR-01``, managed by its VSPC. Every customer is a
VSPC company; every protected machine in the world is one backup job on that server, named
after the machine and mapped to the customer's company (``mappedOrganizationUid``); every
backup run is one job session that ends :func:`session_end` after it started, with result
``Success`` or ``Failed``. A daily configuration-backup session belongs to no customer.

Like the real APIs: VSPC takes an API key as ``Authorization: Bearer``, pages with
``limit``/``offset`` (``limit`` 1-500) under ``meta.pagingInfo``, filters with a JSON list of
``{"property", "operation", "collation", "value"}`` expressions, and answers errors as
``{"errors": [{"message", "type", "code"}]}``; a company carries the ``ownerCredentials`` the
VSPC spec marks required (the owner's user name, never the password). VBR wants one of the
``x-api-version`` revisions its build publishes on every request (others get 400
``NotImplemented`` "Unsupported RESTAPI version" naming the supported ones), issues 15-minute
OAuth2 password-grant tokens (``grant_type`` ``password`` as the docs write it or ``Password`` as
the spec's enum does), pages with ``skip``/``limit`` plus a ``pagination`` block, and answers
errors as ``{"errorCode", "message"}`` with codes from the spec's enum. A session leaves out the
fields that do not apply (``endTime`` while it runs, ``parentSessionId`` always) rather than
writing ``null`` where the spec's type is not nullable.
Timestamps are the servers' local time (Europe/London) with an offset; VSPC writes seven
fraction digits. Unlike them: only ``equals`` filters and the session filters the project
uses are implemented, and nothing after the real current time is served. SureBackup and restore
sessions (``ESessionType`` ``SureBackup``, ``RestoreVm``; one SureBackup session per customer
and week testing every machine, one restore session per restore) are listed only under their
``typeFilter``, not in the unfiltered listing as on a real server; their machines are served at
``/sessions/{id}/taskSessions`` as ``RestoreTaskSessionModel`` records named after the machine.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import BackupAgent, BackupRun, CustomerWorld, RecoveryRun
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
SERVER_TZ = ZoneInfo("Europe/London")
SERVER_NAME = "NW-VBR-01"
TOKEN_LIFETIME = 900
VSPC_DEFAULT_LIMIT, VSPC_MAX_LIMIT = 100, 500
VBR_DEFAULT_LIMIT, VBR_MAX_LIMIT = 200, 1000
TOKENS_KEY = "veeam_vbr_tokens"  # state.extra[...]: access token -> expires at (UTC)
CALLS_KEY = "veeam_calls"  # state.extra[...]: Counter of "vspc.jobs", "vbr.sessions", "vbr.token"...
_INDEX_KEY = "veeam_session_index"
# The revisions VBR 12.3.1 (SERVER_VERSION) accepts, from Veeam's versioning table: every
# revision up to its own; 1.3-* arrived with VBR 13.
SERVER_VERSION = "12.3.1.1139"
API_VERSIONS = ("1.0-rev1", "1.0-rev2", "1.1-rev0", "1.1-rev1", "1.1-rev2", "1.2-rev0", "1.2-rev1")


def _uid(*parts: object) -> str:
    h = hashlib.sha256(":".join(map(str, ("veeam", *parts))).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


PROVIDER_UID = _uid("provider")
SERVER_UID = _uid("server", SERVER_NAME)
CONFIG_JOB_UID = _uid("job", "configuration backup")


def company_uid(cw: CustomerWorld) -> str:
    return _uid("company", cw.code)


def job_uid(agent: BackupAgent) -> str:
    """The job's id: VSPC's ``instanceUid`` (written in upper case) is VBR's ``jobId``."""
    return _uid("job", agent.name)


def session_end(agent_name: str, started: dt.datetime) -> dt.datetime:
    """When a run's session ended: 3-27 minutes after it started, to the millisecond."""
    h = int(hashlib.sha256(f"{agent_name}:{started.isoformat()}".encode()).hexdigest()[:8], 16)
    return started + dt.timedelta(minutes=3 + h % 25, milliseconds=h % 60_000)


def _vspc_time(value: dt.datetime) -> str:
    """``2026-11-20T06:17:42.5230000+00:00``: local time, seven fraction digits, offset."""
    text = value.astimezone(SERVER_TZ).isoformat(timespec="microseconds")
    return text[:26] + "0" + text[26:]


def _vbr_time(value: dt.datetime) -> str:
    """``2026-11-20T06:17:42.523+00:00``: local time, milliseconds, offset."""
    return value.astimezone(SERVER_TZ).isoformat(timespec="milliseconds")


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


RECOVERY_KEY = "veeam_recovery_index"
RECOVERY_TYPES = {"surebackup": "SureBackup", "restore": "RestoreVm"}


@dataclass(frozen=True)
class _Recovery:
    """One SureBackup session (every agent of a customer tested together) or one restore session."""

    sid: str
    kind: str  # RECOVERY_TYPES key
    name: str
    created: dt.datetime
    tasks: tuple[tuple[BackupAgent, RecoveryRun], ...]

    @property
    def ended(self) -> dt.datetime:
        return max(run.ended for _, run in self.tasks) + dt.timedelta(seconds=12)


def _recovery_index(state: SimState) -> list[_Recovery]:
    """Every SureBackup and restore session of the server, by creation time; built once per world."""
    with state.lock:
        index = state.extra.get(RECOVERY_KEY)
        if index is None:
            index = []
            for cw in state.world.customers.values():
                grouped: dict[tuple[str, dt.datetime], list[tuple[BackupAgent, RecoveryRun]]] = {}
                for agent in cw.agents:
                    for run in agent.recoveries:
                        if run.kind == "surebackup":
                            grouped.setdefault(("surebackup", run.started), []).append((agent, run))
                        elif run.kind == "restore":
                            grouped.setdefault(("restore", run.started, agent.name), []).append((agent, run))
                for key, tasks in grouped.items():
                    kind, started = key[0], key[1]
                    name = f"{cw.code} SureBackup" if kind == "surebackup" else f"Restore {tasks[0][0].name}"
                    index.append(_Recovery(_uid("recovery", cw.code, *key), kind, name, started, tuple(tasks)))
            index.sort(key=lambda x: (x.created, x.sid))
            state.extra[RECOVERY_KEY] = index
        return index


def _recovery_record(r: _Recovery, usn: int, now: dt.datetime) -> dict[str, Any]:
    """A ``SessionModel`` of type SureBackup or RestoreVm (the spec's ``ESessionType``)."""
    done = r.ended <= now
    ok = all(run.ok for _, run in r.tasks)
    job_id = _uid("surebackup-job", r.name) if r.kind == "surebackup" else _uid("restore", r.sid)
    record: dict[str, Any] = {
        "id": r.sid, "name": r.name, "jobId": job_id, "sessionType": RECOVERY_TYPES[r.kind],
        "creationTime": _vbr_time(r.created), "state": "Stopped" if done else "Working",
        "progressPercent": 100 if done else 50,
        "result": {"result": ("Success" if ok else "Failed") if done else "None",
                   "message": "" if ok or not done else "Verification tests failed for 1 VM", "isCanceled": False},
        "usn": usn, "platformName": "VMware", "initiatedBy": "Scheduler" if r.kind == "surebackup" else "Operator",
    }
    if done:
        record["endTime"] = _vbr_time(r.ended)
    return record


def _task_record(r: _Recovery, agent: BackupAgent, run: RecoveryRun, usn: int, now: dt.datetime) -> dict[str, Any]:
    """A ``RestoreTaskSessionModel``: one machine of the session, named after it."""
    done = run.ended <= now
    record: dict[str, Any] = {
        "id": _uid("task", r.sid, agent.name), "type": "Restore", "sessionId": r.sid,
        "sessionType": RECOVERY_TYPES[r.kind], "creationTime": _vbr_time(run.started), "name": agent.name,
        "usn": usn, "state": "Stopped" if done else "Working",
        "result": {"result": ("Success" if run.ok else "Failed") if done else "None",
                   "message": "" if run.ok or not done else "Heartbeat test failed: the VM did not boot",
                   "isCanceled": False},
    }
    if done:
        record["endTime"] = _vbr_time(run.ended)
    return record


# --- the world as Veeam sees it --------------------------------------------------------------
@dataclass(frozen=True)
class _Session:
    created: dt.datetime
    ended: dt.datetime
    usn: int
    agent: BackupAgent | None  # None: the configuration backup
    run: BackupRun | None


def _session_index(state: SimState) -> tuple[list[dt.datetime], list[_Session]]:
    """Every session of the server, by creation time; built once per world."""
    with state.lock:
        index = state.extra.get(_INDEX_KEY)
        if index is None:
            items: list[tuple[dt.datetime, str, BackupAgent | None, BackupRun | None]] = []
            for cw in state.world.customers.values():
                for agent in cw.agents:
                    items.extend((run.at, agent.name, agent, run) for run in agent.runs)
            first, last = min(i[0] for i in items), max(i[0] for i in items)
            day = dt.datetime.combine(first.date(), dt.time(2, 30), tzinfo=UTC)
            while day <= last:
                items.append((day, "", None, None))
                day += dt.timedelta(days=1)
            items.sort(key=lambda i: (i[0], i[1]))
            sessions = [
                _Session(at, session_end(name, at) if agent else at + dt.timedelta(seconds=41), usn, agent, run)
                for usn, (at, name, agent, run) in enumerate(items, start=1)
            ]
            index = ([s.created for s in sessions], sessions)
            state.extra[_INDEX_KEY] = index
        return index


def _session_record(s: _Session, now: dt.datetime) -> dict[str, Any]:
    done = s.ended <= now
    if s.agent is None:
        job_id, name, kind, ok, message = CONFIG_JOB_UID, "Backup Configuration Job", "ConfigurationBackup", True, ""
        sid = _uid("session", "config", s.created.isoformat())
    else:
        assert s.run is not None
        job_id, name, kind, ok, message = job_uid(s.agent), s.agent.name, "BackupJob", s.run.ok, s.run.error
        sid = _uid("session", s.agent.name, s.created.isoformat())
    record: dict[str, Any] = {
        "id": sid,
        "name": name,
        "jobId": job_id,
        "sessionType": kind,
        "creationTime": _vbr_time(s.created),
        "state": "Stopped" if done else "Working",
        "progressPercent": 100 if done else 42,
        "result": {
            "result": ("Success" if ok else "Failed") if done else "None",
            "message": message if done else "",
            "isCanceled": False,
        },
        "resourceId": job_id,
        "resourceReference": f"/api/v1/jobs/{job_id}",
        "usn": s.usn,
        "platformName": "VMware",
        "initiatedBy": "Scheduler",
    }
    if done:
        record["endTime"] = _vbr_time(s.ended)
    return record


def _company(cw: CustomerWorld) -> dict[str, Any]:
    return {
        "instanceUid": company_uid(cw),
        "name": cw.profile.name,
        "status": "Active",
        "ownerCredentials": {"userName": f"{cw.code.lower()}-admin"},
        "resellerUid": None,
        "subscriptionPlanUid": None,
        "isAlarmDetectEnabled": True,
    }


def _backup_server() -> dict[str, Any]:
    return {
        "instanceUid": SERVER_UID,
        "name": SERVER_NAME,
        "organizationUid": PROVIDER_UID,
        "locationUid": _uid("location", "provider"),
        "managementAgentUid": _uid("agent", SERVER_NAME),
        "version": SERVER_VERSION,
        "displayVersion": SERVER_VERSION,
        "installationUid": _uid("installation", SERVER_NAME),
        "backupServerRoleType": "Hosted",
        "status": "Healthy",
    }


def _job(cw: CustomerWorld, agent: BackupAgent, now: dt.datetime) -> dict[str, Any]:
    started = [r for r in agent.runs if r.at <= now]
    tail = [(r, session_end(agent.name, r.at)) for r in started[-2:]]  # the latest can still run
    finished = [(r, end) for r, end in tail if end <= now]
    running = len(finished) < len(tail)
    last = finished[-1] if finished else None
    if running:
        status = "Running"
    elif last:
        status = "Success" if last[0].ok else "Failed"
    else:
        status = "None"
    return {
        "instanceUid": job_uid(agent).upper(),
        "uniqueUid": _uid("vspc-job", agent.name),
        "name": agent.name,
        "description": f"Image-level backup of {agent.name}",
        "createdBy": "NORTHWIND\\svc-veeam",
        "creationTime": _vspc_time(agent.runs[0].at - dt.timedelta(days=90)) if agent.runs else None,
        "backupServerUid": SERVER_UID,
        "locationUid": _uid("location", "provider"),
        "siteUid": None,
        "organizationUid": PROVIDER_UID,
        "mappedOrganizationUid": company_uid(cw),
        "type": "BackupVm",
        "status": status,
        "isEnabled": True,
        "lastRun": _vspc_time(started[-1].at) if started else None,
        "lastEndTime": _vspc_time(last[1]) if last else None,
        "lastDuration": int((last[1] - last[0].at).total_seconds()) if last else None,
        "avgDuration": 780,
        "processingRate": 187_000_000,
        "transferredData": 4_200_000_000,
        "backupChainSize": 310_000_000_000,
        "bottleneck": "Source",
        "scheduleType": "Periodically",
        "failureMessage": (last[0].error if last and not last[0].ok else ""),
        "targetType": "Local",
        "destination": "Hosted SOBR",
        "retentionLimit": 14,
        "retentionLimitType": "RestorePoints",
        "isGfsOptionEnabled": False,
    }


# --- VSPC wire helpers ------------------------------------------------------------------------
def _vspc_error(status: int, message: str, kind: str, parameter: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": kind, "code": status}
    if parameter:
        error["parameterName"] = parameter
    return JSONResponse({"errors": [error]}, status_code=status)


def _matches(record: dict[str, Any], expression: dict[str, Any]) -> bool:
    value, wanted = record.get(expression["property"]), expression.get("value")
    if str(expression.get("collation", "ordinal")).lower() == "ignorecase":
        return str(value or "").casefold() == str(wanted or "").casefold()
    return value == wanted


def _vspc_page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
    try:
        limit = int(request.query_params.get("limit", VSPC_DEFAULT_LIMIT))
        offset = int(request.query_params.get("offset", 0))
    except ValueError:
        return _vspc_error(400, "limit and offset must be integers.", "logical", "limit")
    if not 1 <= limit <= VSPC_MAX_LIMIT:
        return _vspc_error(400, f"Property value must be between 1 and {VSPC_MAX_LIMIT}.", "logical", "limit")
    if offset < 0:
        return _vspc_error(400, "Property value must be larger or equal to 0.", "logical", "offset")
    raw = request.query_params.get("filter")
    if raw:
        try:
            expressions = json.loads(raw)
        except ValueError:
            return _vspc_error(400, "Filter is not a valid JSON expression.", "logical", "filter")
        if isinstance(expressions, dict):
            expressions = [expressions]
        properties = set(items[0]) if items else set()
        for expression in expressions:
            if not isinstance(expression, dict) or expression.get("operation") != "equals":
                return _vspc_error(400, "Only 'equals' filter expressions are supported here.", "logical", "filter")
            if items and expression.get("property") not in properties:
                return _vspc_error(400, f"Unknown property '{expression.get('property')}'.", "logical", "filter")
            items = [i for i in items if _matches(i, expression)]
    chunk = cut_short(items[offset : offset + limit], offset > 0)
    return JSONResponse({"meta": {"pagingInfo": {"total": len(items), "count": len(chunk), "offset": offset}},
                         "data": chunk})


# --- VBR wire helpers -------------------------------------------------------------------------
def _vbr_error(status: int, code: str, message: str) -> JSONResponse:
    """VBR's error body; ``code`` is one of the spec's ``Error.errorCode`` values."""
    return JSONResponse({"errorCode": code, "message": message}, status_code=status)


def _vbr_instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    world = state.world_view()
    calls: Counter = state.extra.setdefault(CALLS_KEY, Counter())
    tokens: dict[str, dt.datetime] = state.extra.setdefault(TOKENS_KEY, {})

    def count(name: str) -> None:
        with state.lock:
            calls[name] += 1

    # --- VSPC
    def vspc_denied(request: Request) -> JSONResponse | None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(key.strip(), state.creds.veeam_vspc_api_key):
            return None
        return _vspc_error(401, "Authorization has been denied for this request.", "security")

    @api.get("/vspc/api/v3/organizations/companies")
    async def companies(request: Request):
        count("vspc.companies")
        if (denied := vspc_denied(request)) is not None:
            return denied
        return _vspc_page(request, [_company(cw) for cw in world.customers.values()])

    @api.get("/vspc/api/v3/infrastructure/backupServers")
    async def backup_servers(request: Request):
        count("vspc.backupServers")
        if (denied := vspc_denied(request)) is not None:
            return denied
        return _vspc_page(request, [_backup_server()])

    @api.get("/vspc/api/v3/infrastructure/backupServers/jobs")
    async def jobs(request: Request):
        count("vspc.jobs")
        if (denied := vspc_denied(request)) is not None:
            return denied
        now = _now()
        return _vspc_page(request, [_job(cw, a, now) for cw in world.customers.values() for a in cw.agents])

    # --- VBR
    def vbr_version_missing(request: Request) -> JSONResponse | None:
        if request.headers.get("x-api-version", "").strip() in API_VERSIONS:
            return None
        supported = ", ".join(f"v{v}" for v in API_VERSIONS)
        return _vbr_error(400, "NotImplemented",
                          f"Unsupported RESTAPI version. The following versions are supported: {supported}.")

    @api.post("/vbr/api/oauth2/token")
    async def token(request: Request):
        count("vbr.token")
        if (bad := vbr_version_missing(request)) is not None:
            return bad
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type", "").lower() != "password":  # the docs' case and the spec enum's
            return _vbr_error(400, "UnexpectedContent", "Unsupported grant_type.")
        user_ok = secrets.compare_digest(form.get("username", ""), state.creds.veeam_vbr_user)
        password_ok = secrets.compare_digest(form.get("password", ""), state.creds.veeam_vbr_password)
        if not (user_ok and password_ok):
            return _vbr_error(401, "AccessDenied", "Authentication failed.")
        access, now = secrets.token_urlsafe(32), _now()
        expires = now + dt.timedelta(seconds=TOKEN_LIFETIME)
        with state.lock:
            tokens[access] = expires
        return {"access_token": access, "token_type": "bearer", "refresh_token": secrets.token_urlsafe(32),
                "expires_in": TOKEN_LIFETIME, ".issued": _vbr_time(now), ".expires": _vbr_time(expires),
                "username": state.creds.veeam_vbr_user}

    @api.get("/vbr/api/v1/sessions")
    async def sessions(request: Request):
        count("vbr.sessions")
        if (bad := vbr_version_missing(request)) is not None:
            return bad
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        with state.lock:
            expires = tokens.get(access.strip()) if scheme.lower() == "bearer" else None
        if expires is None:
            return _vbr_error(401, "AccessDenied" if not access.strip() else "InvalidToken",
                              "The access token is missing or invalid.")
        if expires <= _now():
            return _vbr_error(401, "ExpiredToken", "The access token has expired.")
        q = request.query_params
        try:
            skip, limit = int(q.get("skip", 0)), int(q.get("limit", VBR_DEFAULT_LIMIT))
            after, before = _vbr_instant(q.get("createdAfterFilter")), _vbr_instant(q.get("createdBeforeFilter"))
        except ValueError:
            return _vbr_error(400, "UnexpectedContent", "Invalid skip, limit or date filter value.")
        if skip < 0 or not 1 <= limit <= VBR_MAX_LIMIT:
            return _vbr_error(400, "UnexpectedContent", f"skip must be >= 0 and limit between 1 and {VBR_MAX_LIMIT}.")
        now = _now()
        if (kind := q.get("typeFilter")) is not None:
            return _recovery_page(kind, after, before, skip, limit, now)
        times, all_sessions = _session_index(state)
        lo = bisect.bisect_left(times, after) if after else 0
        hi = bisect.bisect_right(times, min(before, now) if before else now)
        window = all_sessions[lo:hi]
        newest_first = cut_short(window[::-1][skip : skip + limit], skip > 0)
        return JSONResponse({"data": [_session_record(s, now) for s in newest_first],
                             "pagination": {"total": len(window), "count": len(newest_first), "skip": skip,
                                            "limit": limit}})

    def _recovery_page(kind: str, after, before, skip: int, limit: int, now: dt.datetime) -> JSONResponse:
        # Only the recovery types are served filtered; any other type has no sessions here.
        wanted = {v: k for k, v in RECOVERY_TYPES.items()}.get(kind)
        upto = min(before, now) if before else now
        rows = [(usn, r) for usn, r in enumerate(_recovery_index(state), start=1)
                if r.kind == wanted and (after is None or r.created >= after) and r.created <= upto]
        newest_first = cut_short(rows[::-1][skip: skip + limit], skip > 0)
        return JSONResponse({"data": [_recovery_record(r, usn, now) for usn, r in newest_first],
                             "pagination": {"total": len(rows), "count": len(newest_first), "skip": skip,
                                            "limit": limit}})

    @api.get("/vbr/api/v1/sessions/{session_id}/taskSessions")
    async def task_sessions(session_id: str, request: Request):
        count("vbr.taskSessions")
        if (bad := vbr_version_missing(request)) is not None:
            return bad
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        with state.lock:
            expires = tokens.get(access.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= _now():
            return _vbr_error(401, "InvalidToken" if expires is None else "ExpiredToken",
                              "The access token is missing, invalid or expired.")
        q = request.query_params
        try:
            skip, limit = int(q.get("skip", 0)), int(q.get("limit", VBR_DEFAULT_LIMIT))
        except ValueError:
            return _vbr_error(400, "UnexpectedContent", "Invalid skip or limit value.")
        if skip < 0 or not 1 <= limit <= VBR_MAX_LIMIT:
            return _vbr_error(400, "UnexpectedContent", f"skip must be >= 0 and limit between 1 and {VBR_MAX_LIMIT}.")
        now = _now()
        found = next((r for r in _recovery_index(state) if r.sid == session_id and r.created <= now), None)
        if found is None:
            return _vbr_error(404, "NotFound", f"Session {session_id} was not found.")
        tasks = [t for t in found.tasks if t[1].started <= now]
        page = cut_short(tasks[skip: skip + limit], True)  # one page: a truncated answer is short of its total
        return JSONResponse({"data": [_task_record(found, a, run, n, now) for n, (a, run) in enumerate(page, 1 + skip)],
                             "pagination": {"total": len(tasks), "count": len(page), "skip": skip, "limit": limit}})

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    """VSPC with its API key; the VBR server in a second connection, so both secrets are passwords."""
    return {
        "veeam_default": {
            "conn_type": "veeam",
            "host": f"{base_url}/veeam/vspc/api/v3",
            "password": creds.veeam_vspc_api_key,
            "extra": {"vbr_conn_id": "veeam_vbr_default"},
        },
        "veeam_vbr_default": {
            "conn_type": "veeam_vbr",
            "host": f"{base_url}/veeam/vbr",
            "login": creds.veeam_vbr_user,
            "password": creds.veeam_vbr_password,
            "extra": {"api_version": "1.1-rev1"},
        },
    }

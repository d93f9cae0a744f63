"""Veeam: the customer's backup jobs from the Service Provider Console, their sessions from
Backup & Replication, evaluated as of the end of the customer's week.

VSPC (the MSP's console over all its VBR servers) knows which jobs belong to which customer
and each job's *latest* state, but no history; a VBR server knows every job session but not
the customers. So one extract makes these calls:

1. VSPC ``GET /organizations/companies``: the company's ``instanceUid``. ``ref.organization``
   is the company name as shown in VSPC (readable in the registry, and the name the other
   systems use too); an ``instanceUid`` is accepted as well, for a company that gets renamed.
2. VSPC ``GET /infrastructure/backupServers/jobs``, filtered server-side on
   ``mappedOrganizationUid`` (the company a job on a hosted server is assigned to) and on
   ``organizationUid`` (the owner of a company's own VBR server). The answer is checked again
   here: a server that ignored the filter would hand over other customers' jobs.
3. VSPC ``GET /infrastructure/backupServers``: the VBR server names, shown as the appliance.
4. VBR ``GET /api/v1/sessions`` on each server the jobs run on, for sessions created from
   ``HISTORY`` before week start to week end. That window is closed, so ``skip`` paging is
   stable. Sessions are matched to jobs by ``jobId`` (VSPC's job ``instanceUid`` is the job
   id in VBR), case-insensitively: VSPC writes GUIDs in upper case.

Each job is one asset: its name (the protected machine's job), its VBR server, and the rules
of :mod:`msp_reports.sources.backup_rules` applied to its sessions:

- **attempt**: a session that had finished (state ``Stopped``, with an ``endTime``); it counts
  at its ``endTime``, when its outcome was known. A session still running at week end is not
  counted in that week, whatever its outcome later.
- **ok**: result ``Success`` or ``Warning``: a session with warnings (e.g. a VSS or CBT
  notice) still created a restore point. The report shows ``Warning`` as the last status and
  does not count it as a failure. ``Failed``, and a finished session with any other result
  (``None`` when it was cancelled), are failures.
- **last good backup**: newest ok session end before week end within the history window; also
  the VSPC job's ``lastEndTime`` when that is before week end with status Success/Warning, which
  covers a machine silent for longer than the window (the Datto ``lastSnapshot`` fallback).
  With neither, it is ``None``, which the report shows as an RPO breach.
- **RPO**: VSPC job objects carry a schedule but no RPO (RPO fields UNCONFIRMED), so it is the
  registry's ``ref.rpo_hours``, default 24 h.
- Disabled jobs are kept: a machine whose job was switched off is a machine not backed up.

Recovery evidence (RTO), from the same VBR servers:

5. VBR ``GET /api/v1/sessions`` once per recovery session type (``typeFilter`` = ``SureBackup``,
   ``RestoreVm``, ``InstantRecovery``, values of the spec's ``ESessionType``), created in the
   customer's verification window (``ref.recovery_days``, default 30) before week end.
6. VBR ``GET /api/v1/sessions/{id}/taskSessions`` for each finished one (no paging parameters
   in the spec: one answer, checked against its ``pagination.total``): one task per machine
   verified or restored, named after it (``RestoreTaskSessionModel.name``).

A task whose name is a job's name (the jobs here are named after the machine they protect) is a
**recovery test** of that job's asset at the task's ``endTime``: ``surebackup`` for a SureBackup
session (the machine was booted from its backup in a virtual lab and its tests ran), ``restore``
for a real restore. It passed with result ``Success`` or ``Warning``. Its **measured recovery
time** is the task's ``endTime`` minus its ``creationTime``. Veeam says nothing of where a restore
would run, so there is no estimate: an asset without a test is "not verified". Every asset is
class ``server`` (VSPC's job ``type`` is not mapped to a class).

UNCONFIRMED: that a task's ``name`` is the machine's name as the backup job is named (a job that
protects several machines matches none of them, and its asset stays "not verified"); that
``typeFilter`` takes one type per request; whether VSPC's SureBackup job objects
(``BackupServerJobType.SureBackup``) could serve a company without VBR REST access (not read:
they carry no per-machine result).

Connections, with every secret in a password field:

- ``veeam_default`` (VSPC): ``host`` = VSPC URL (``https://vspc:1280``; ``/api/v3`` is added if
  missing), ``password`` = a VSPC API key (sent as ``Authorization: Bearer``). Extra
  ``vbr_conn_id`` (default ``veeam_vbr_default``) names the VBR connection; optional
  ``vbr_conn_ids`` maps a VBR server's name (or VSPC ``instanceUid``) to its own connection,
  for an MSP with several servers.
- ``veeam_vbr_default`` (VBR, read by :class:`VeeamVbrHook`): ``host`` = VBR REST URL
  (``https://vbr:9419``), ``login`` / ``password`` = a VBR account; extra ``api_version``
  (default ``1.1-rev1``).

UNCONFIRMED, kept in the constants and parse functions below: the VSPC filter expression
accepting these properties (syntax from Veeam's docs: a JSON list of ``{property, operation,
collation, value}``); VBR session fields ``jobId`` (``resourceId`` used when absent),
``result.result``, ``state``; the ``pagination.total`` field; whether ``created*Filter`` bounds
are inclusive (the window is re-checked here); the default ``x-api-version``. VSPC documents
server errors as HTTP 520, which the shared HTTP client does not retry.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from urllib.parse import quote
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowNotFoundException

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient, RetryPolicy
from msp_reports.http.paging import offset_pages
from msp_reports.http.timestamps import iso_z, parse_instant
from msp_reports.identity import identity_key
from msp_reports.snapshot import BackupAsset, BackupData, RecoveryTest
from msp_reports.sources import Extracted
from msp_reports.sources.backup_rules import (
    MAX_RECOVERY_DAYS, BackupAttempt, backup_asset, newest_before, recovery_days, rpo_hours, with_recovery,
)
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "veeam"
DEFAULT_VBR_CONN_ID = "veeam_vbr_default"
DEFAULT_VBR_API_VERSION = "1.1-rev1"  # VBR 12.0 P1 and later accept it
VSPC_PORT, VBR_PORT = 1280, 9419
VSPC_PAGE_SIZE = 100  # documented default; the maximum is 500
VBR_PAGE_SIZE = 500  # what real clients ask for
HISTORY = dt.timedelta(days=14)  # sessions before week start read for the last good backup
TOKEN_MARGIN_SECONDS = 60
GOOD_RESULTS = frozenset({"success", "warning"})
RECOVERY_SESSION_TYPES = ("SureBackup", "RestoreVm", "InstantRecovery")
RECOVERY_HISTORY = dt.timedelta(days=MAX_RECOVERY_DAYS)
FINISHED_JOB_STATUSES = frozenset({"success", "warning", "failed"})
_UID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MIN_REAL_TIME = dt.datetime(1971, 1, 1, tzinfo=dt.timezone.utc)  # .NET writes 0001-01-01 for "none"


# --- paging envelopes (VSPC limit/offset, VBR skip/limit; the loop is paging.offset_pages) -------
def read_vspc_page(body: Any) -> tuple[list[Any], int | None]:
    """``{"meta": {"pagingInfo": {"total", "count", "offset"}}, "data": [...]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise SourceResponseError(SYSTEM, "VSPC answered without a 'data' list")
    return body["data"], _int_or_none(((body.get("meta") or {}).get("pagingInfo") or {}).get("total"))


def read_vbr_page(body: Any) -> tuple[list[Any], int | None]:
    """``{"data": [...], "pagination": {"total", "count", "skip", "limit"}}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise SourceResponseError(SYSTEM, "VBR answered without a 'data' list")
    return body["data"], _int_or_none((body.get("pagination") or {}).get("total"))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _root(conn: Connection, default_port: int, conn_id: str) -> str:
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        raise SourceError(SYSTEM, f"connection '{conn_id}' has no host (the server's URL)")
    if not host.startswith(("http://", "https://")):
        host = f"{conn.schema or 'https'}://{host}:{conn.port or default_port}"
    return host


# --- VBR server -------------------------------------------------------------------------------
class VeeamVbrHook(SourceHook):
    """One VBR server's REST API: OAuth2 password grant, the token kept until shortly before it
    expires; a cached token the server rejects with 401 (restart, revocation) is replaced once.

    Connection: ``host`` = VBR REST URL (``https://vbr:9419``), ``login``/``password`` = a VBR
    account; extra ``api_version`` = the ``x-api-version`` to send (default ``1.1-rev1``).

    :param conn_id: the Airflow connection id (default ``veeam_vbr_default``).
    :param page_size: ``limit`` per page of sessions (default 500).
    :param policy: retry policy for every request, token requests included.
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    conn_name_attr = "conn_id"
    default_conn_name = DEFAULT_VBR_CONN_ID
    conn_type = "veeam_vbr"
    hook_name = "Veeam Backup & Replication"
    system = SYSTEM

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self.tokens_issued = 0
        self._token: tuple[str, float] | None = None

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        if not conn.login or not conn.password:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}' needs login and password of a VBR account")
        version = str(extra.get("api_version") or DEFAULT_VBR_API_VERSION)
        root = re.sub(r"/api(/v1)?$", "", _root(conn, VBR_PORT, self.conn_id))
        return ApiClient(SYSTEM, root, headers={"Accept": "application/json", "x-api-version": version},
                         timeout=float(extra.get("timeout") or 30.0), policy=self.policy)

    def token(self) -> tuple[str, bool]:
        """An access token and whether it was just issued (not from the cache)."""
        if self._token and self._token[1] > self.clock():
            return self._token[0], False
        login, password = self.connection.login, self.connection.password
        form = {"grant_type": "password", "username": login, "password": password}
        try:
            body = self.client.json("POST", "/api/oauth2/token", data=form)
        except (SourceAuthError, SourceResponseError) as exc:
            if exc.status not in (400, 401, 403):
                raise
            hint = "check its login and password" if exc.status != 400 else (
                "check its login and password, and that the server supports extra api_version "
                f"{self.client.session.headers.get('x-api-version')!r}")
            raise SourceAuthError(
                SYSTEM,
                f"VBR server {self.client.base_url} refused a token to login '{login}' of connection "
                f"'{self.conn_id}' (HTTP {exc.status}); {hint}",
                status=exc.status,
            ) from exc
        try:
            token, lifetime = str(body["access_token"]), float(body.get("expires_in") or 900)
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceResponseError(SYSTEM, f"VBR token response from '{self.conn_id}' has no access_token") from exc
        self.tokens_issued += 1
        self._token = (token, self.clock() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS))
        return token, True

    def probe(self) -> str:
        self.token()
        return f"VBR server {self.client.base_url} issued a token to login '{self.connection.login}'"

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """GET with the cached token; one that the server rejects is replaced once."""
        token, fresh = self.token()
        try:
            return self._get(token, path, params)
        except SourceAuthError as exc:
            if exc.status != 401 or fresh:
                raise self._rejected(exc) from exc
        self._token = None
        token, _ = self.token()
        try:
            return self._get(token, path, params)
        except SourceAuthError as exc:
            raise self._rejected(exc) from exc

    def _get(self, token: str, path: str, params: dict[str, Any]) -> Any:
        return self.client.json("GET", path, params=params, headers={"Authorization": f"Bearer {token}"})

    def _rejected(self, exc: SourceAuthError) -> SourceAuthError:
        return SourceAuthError(
            SYSTEM,
            f"VBR server {self.client.base_url} rejected a newly issued token of connection '{self.conn_id}' "
            f"(HTTP {exc.status}); check that login '{self.connection.login}' may read sessions",
            status=exc.status,
        )

    def sessions(self, created_after: dt.datetime, created_before: dt.datetime) -> list[dict[str, Any]]:
        """Every session the server created in the window (``skip``/``limit`` paging)."""
        limit = self.page_size or VBR_PAGE_SIZE
        window = {"createdAfterFilter": iso_z(created_after), "createdBeforeFilter": iso_z(created_before)}

        def fetch(skip: int) -> tuple[list[Any], int | None]:
            return read_vbr_page(self.get("/api/v1/sessions", {**window, "skip": skip, "limit": limit}))

        return offset_pages(SYSTEM, fetch, limit)

    def recovery_sessions(self, created_after: dt.datetime, created_before: dt.datetime) -> list[dict[str, Any]]:
        """SureBackup and restore sessions the server created in the window, one type per listing."""
        limit = self.page_size or VBR_PAGE_SIZE
        window = {"createdAfterFilter": iso_z(created_after), "createdBeforeFilter": iso_z(created_before)}
        found: list[dict[str, Any]] = []
        for kind in RECOVERY_SESSION_TYPES:
            def fetch(skip: int, kind: str = kind) -> tuple[list[Any], int | None]:
                params = {**window, "typeFilter": kind, "skip": skip, "limit": limit}
                return read_vbr_page(self.get("/api/v1/sessions", params))

            found.extend(offset_pages(SYSTEM, fetch, limit))
        return found

    def task_sessions(self, session_id: str) -> list[dict[str, Any]]:
        """The machines one session verified or restored. The spec gives this operation no paging
        parameters, so one answer must hold them all: fewer than its ``pagination.total`` is a
        truncated answer, never a shorter list of machines."""
        path = f"/api/v1/sessions/{quote(session_id, safe='')}/taskSessions"
        items, total = read_vbr_page(self.get(path, {}))
        if total is not None and total != len(items):
            raise SourceResponseError(SYSTEM, f"VBR listed {len(items)} of the {total} task sessions of "
                                              f"session {session_id}")
        return items


# --- the hook ---------------------------------------------------------------------------------
class VeeamHook(SourceHook):
    """Veeam Service Provider Console (jobs, per customer), reading sessions from its VBR
    servers through :class:`VeeamVbrHook`. See the module docstring for both connections.

    :param conn_id: the VSPC connection id (default ``veeam_default``).
    :param page_size: VSPC ``limit`` per page (default 100, at most 500).
    :param session_page_size: VBR ``limit`` per page of sessions (default 500).
    :param policy: retry policy for every request, token requests included.
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "veeam_default"
    conn_type = "veeam"
    hook_name = "Veeam Service Provider Console"
    system = SYSTEM

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        page_size: int | None = None,
        session_page_size: int | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(conn_id, page_size=page_size, policy=policy, clock=clock)
        self.session_page_size = session_page_size
        self._servers: dict[str, VeeamVbrHook] = {}

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        if not conn.password:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}' needs password (a VSPC API key)")
        root = _root(conn, VSPC_PORT, self.conn_id)
        if not root.endswith("/api/v3"):
            root += "/api/v3"
        headers = {"Accept": "application/json", "Authorization": f"Bearer {conn.password}"}
        return ApiClient(SYSTEM, root, headers=headers, timeout=float(extra.get("timeout") or 30.0), policy=self.policy)

    # --- VSPC
    def vspc_list(self, path: str, filters: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
        """Every item of a VSPC collection (``limit``/``offset`` until ``pagingInfo.total``)."""
        limit = self.page_size or VSPC_PAGE_SIZE

        def fetch(offset: int) -> tuple[list[Any], int | None]:
            params: dict[str, Any] = {"limit": limit, "offset": offset}
            if filters:
                params["filter"] = json.dumps(filters, separators=(",", ":"))
            try:
                return read_vspc_page(self.client.json("GET", path, params=params))
            except SourceAuthError as exc:
                what = ("rejected the API key" if exc.status == 401
                        else f"does not let the API key read {path}")
                raise SourceAuthError(
                    SYSTEM,
                    f"VSPC {what} of connection '{self.conn_id}' (HTTP {exc.status}); "
                    "check that its password holds a valid VSPC API key with access to the company",
                    status=exc.status,
                ) from exc

        return offset_pages(SYSTEM, fetch, limit)

    def probe(self) -> str:
        servers = self.server_names()
        return f"VSPC accepted the API key of connection '{self.conn_id}'; {len(servers)} backup servers visible"

    def company_uid(self, organization: str) -> str:
        """The VSPC company's ``instanceUid`` for a company name (or that uid itself)."""
        if _UID.match(organization):
            return organization
        name_filter = [{"property": "name", "operation": "equals", "collation": "ignorecase", "value": organization}]
        matches = [c for c in self.vspc_list("/organizations/companies", name_filter) if names_company(c, organization)]
        if not matches:
            raise SourceError(SYSTEM, f"VSPC has no company named {organization!r}; check ref.organization "
                                      "against the company name in VSPC (or use its instanceUid)")
        if len(matches) > 1:
            raise SourceError(SYSTEM, f"VSPC has {len(matches)} companies named {organization!r}; "
                                      "put the company's instanceUid in ref.organization")
        return str(matches[0]["instanceUid"])

    def jobs(self, company: str) -> list[dict[str, Any]]:
        """The company's backup jobs: mapped to it, or on its own server and mapped to no one."""
        found: dict[str, dict[str, Any]] = {}
        for owner_field in ("mappedOrganizationUid", "organizationUid"):
            owner_filter = [{"property": owner_field, "operation": "equals", "collation": "ignorecase",
                             "value": company}]
            for job in self.vspc_list("/infrastructure/backupServers/jobs", owner_filter):
                if belongs_to(job, company):
                    found.setdefault(_lower(job.get("instanceUid")), job)
        return list(found.values())

    def server_names(self) -> dict[str, str]:
        """VBR server ``instanceUid`` (lower case) -> name."""
        return {_lower(s.get("instanceUid")): str(s.get("name") or s.get("instanceUid"))
                for s in self.vspc_list("/infrastructure/backupServers")}

    def vbr_conn_id(self, server_uid: str, server_name: str) -> str:
        extra = self.connection.extra_dejson
        per_server = extra.get("vbr_conn_ids") or {}
        if not isinstance(per_server, dict):
            raise SourceError(SYSTEM, f"connection '{self.conn_id}': extra vbr_conn_ids must map server names "
                                      "to connection ids")
        lowered = {_lower(k): v for k, v in per_server.items()}
        return str(per_server.get(server_name) or lowered.get(server_uid)
                   or extra.get("vbr_conn_id") or DEFAULT_VBR_CONN_ID)

    # --- VBR
    def vbr(self, conn_id: str) -> VeeamVbrHook:
        """The hook of a VBR server's connection, kept for the token it caches."""
        if conn_id not in self._servers:
            server = VeeamVbrHook(conn_id, page_size=self.session_page_size, policy=self.policy, clock=self.clock)
            try:
                server.client  # noqa: B018 - reads and checks the connection now, to name it if missing
            except AirflowNotFoundException as exc:
                raise SourceError(
                    SYSTEM, f"connection '{conn_id}' (the VBR server named by connection '{self.conn_id}') "
                            "is not defined"
                ) from exc
            self._servers[conn_id] = server
        return self._servers[conn_id]


HOOK = VeeamHook


# --- wire -> model (pure) ---------------------------------------------------------------------
def names_company(company: dict[str, Any], organization: str) -> bool:
    """The VSPC company is the registry's ``ref.organization``: compared whole, by the registry's identity rule."""
    return identity_key(str(company.get("name") or "")) == identity_key(organization)


def _lower(value: Any) -> str:
    return str(value or "").strip().lower()


def belongs_to(job: dict[str, Any], company: str) -> bool:
    """Mapped to the company, or on a server the company owns and mapped to no other company."""
    mapped = _lower(job.get("mappedOrganizationUid"))
    if mapped:
        return mapped == _lower(company)
    return _lower(job.get("organizationUid")) == _lower(company)


def _instant(value: Any, what: str) -> dt.datetime | None:
    """A wire timestamp, or ``None`` for a missing one or .NET's ``0001-01-01`` placeholder."""
    if value in (None, ""):
        return None
    try:
        parsed = parse_instant(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SourceResponseError(SYSTEM, f"{what}: {value!r} is not a timestamp") from exc
    return parsed if parsed >= _MIN_REAL_TIME else None


def shared_window(week: ReportWeek) -> tuple[dt.datetime, dt.datetime]:
    """UTC days covering ``[week.start - HISTORY, week.end)`` in any timezone (UTC-12 to UTC+14)."""
    monday = dt.datetime.combine(week.week_of, dt.time(), dt.timezone.utc)
    return monday - HISTORY - dt.timedelta(days=1), monday + dt.timedelta(days=8)


def created_at(session: dict[str, Any]) -> dt.datetime:
    """``creationTime``, the field the server's created-after/before filters apply to."""
    created = _instant(session.get("creationTime"), f"session {session.get('id')!r} creationTime")
    if created is None:
        raise SourceResponseError(SYSTEM, f"session {session.get('id')!r} has no creationTime")
    return created


def session_job_id(session: dict[str, Any]) -> str:
    return _lower(session.get("jobId") or session.get("resourceId"))


def session_attempt(session: dict[str, Any]) -> BackupAttempt | None:
    """A finished session as an attempt at its ``endTime``; ``None`` while it runs."""
    state = str(session.get("state") or "Stopped")
    ended = _instant(session.get("endTime"), f"session {session.get('id')!r} endTime")
    if ended is None or state.lower() != "stopped":
        return None
    result = session.get("result")
    status = str((result.get("result") if isinstance(result, dict) else result) or "None")
    return BackupAttempt(ended, status, status.lower() in GOOD_RESULTS)


def sessions_by_job(sessions: list[dict[str, Any]]) -> dict[str, list[BackupAttempt]]:
    """Finished sessions per job id (lower case); a session listed twice counts once."""
    unique = {str(s.get("id") or id(s)): s for s in sessions}
    attempts: dict[str, list[BackupAttempt]] = {}
    for session in unique.values():
        attempt = session_attempt(session)
        job = session_job_id(session)
        if attempt is not None and job:
            attempts.setdefault(job, []).append(attempt)
    return attempts


def latest_job_state(job: dict[str, Any]) -> BackupAttempt | None:
    """VSPC's latest finished session of the job (``status`` at ``lastEndTime``), if any."""
    status = str(job.get("status") or "")
    if status.lower() not in FINISHED_JOB_STATUSES:
        return None  # running, idle, none: lastEndTime belongs to a session whose result is not given
    ended = _instant(job.get("lastEndTime"), f"job {job.get('name')!r} lastEndTime")
    return BackupAttempt(ended, status, status.lower() in GOOD_RESULTS) if ended else None


def recovery_test(session: dict[str, Any], task: dict[str, Any]) -> RecoveryTest | None:
    """One machine's task of a finished SureBackup or restore session; ``None`` while it runs."""
    state = str(task.get("state") or session.get("state") or "Stopped")
    ended = _instant(task.get("endTime"), f"task session {task.get('id')!r} endTime")
    if ended is None or state.lower() != "stopped":
        return None
    started = _instant(task.get("creationTime"), f"task session {task.get('id')!r} creationTime")
    result = task.get("result")
    status = str((result.get("result") if isinstance(result, dict) else result) or "None")
    minutes = None
    if started is not None:
        if ended < started:
            raise SourceResponseError(SYSTEM, f"task session {task.get('id')!r} ended before it started")
        minutes = (ended - started).total_seconds() / 60
    kind = "surebackup" if str(session.get("sessionType")) == "SureBackup" else "restore"
    label = "SureBackup" if kind == "surebackup" else str(session.get("sessionType") or "restore")
    return RecoveryTest(kind=kind, at=ended, passed=status.lower() in GOOD_RESULTS,
                        status=f"{label} {status}", minutes=minutes)


def recovery_by_machine(sessions: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, list[RecoveryTest]]:
    """Recovery tests per machine name (lower case) from ``(session, its task sessions)`` pairs."""
    tests: dict[str, list[RecoveryTest]] = {}
    for session, tasks in sessions:
        for task in tasks:
            test = recovery_test(session, task)
            if test is not None and (name := _lower(task.get("name"))):
                tests.setdefault(name, []).append(test)
    return tests


def parse_job(
    job: dict[str, Any], attempts: list[BackupAttempt], appliance: str, week: ReportWeek, rpo: float,
    ref: dict[str, str] | None = None, tests: list[RecoveryTest] | None = None,
) -> BackupAsset:
    """One job's state at ``week.end`` (see the module docstring for each definition)."""
    latest = latest_job_state(job)
    asset = backup_asset(
        name=str(job.get("name") or job.get("instanceUid") or "unnamed job"),
        appliance=appliance,
        attempts=attempts,
        week=week,
        rpo_hours=rpo,
        source=SYSTEM,
        also_good=[latest.at] if latest is not None and latest.ok else [],
        status_without_attempts=latest.status if latest and latest.at < week.end else "no sessions",
    )
    return with_recovery(asset, ref=ref or {}, tests=tests or [], week=week)


def parse_backups(
    jobs: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    server_names: dict[str, str],
    week: ReportWeek,
    rpo: float,
    ref: dict[str, str] | None = None,
    recovery: dict[str, list[RecoveryTest]] | None = None,
) -> Extracted:
    """The customer's jobs with their sessions, as of week end; as-of = newest outcome before it."""
    by_job = sessions_by_job(sessions)
    recovery = recovery or {}
    assets: list[BackupAsset] = []
    outcomes: list[dt.datetime] = []
    for job in jobs:
        attempts = by_job.get(_lower(job.get("instanceUid")), [])
        server_uid = _lower(job.get("backupServerUid"))
        appliance = server_names.get(server_uid) or str(job.get("backupServerUid") or "unknown VBR server")
        tests = recovery.get(_lower(job.get("name")), [])
        assets.append(parse_job(job, attempts, appliance, week, rpo, ref, tests))
        latest = latest_job_state(job)
        outcomes.extend(a.at for a in attempts)
        outcomes.extend([latest.at] if latest else [])
    assets.sort(key=lambda a: (a.appliance, a.name))
    return Extracted(BackupData(assets=assets), as_of=newest_before(outcomes, week.end))


# --- extract ----------------------------------------------------------------------------------
def extract(hook: VeeamHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """The customer's Veeam jobs and their sessions up to ``week.end``.

    ``ref["organization"]``: the customer's company name in VSPC, or its ``instanceUid``.
    """
    organization = ref.get("organization", "").strip()
    if not organization:
        raise SourceError(SYSTEM, "ref.organization is empty")
    rpo = rpo_hours(ref, SYSTEM)
    company = hook.company_uid(organization)
    jobs = hook.jobs(company)
    if not jobs:
        raise SourceError(SYSTEM, f"VSPC lists no backup jobs for company {organization!r}; check "
                                  "ref.organization and that the jobs are mapped to the company in VSPC")
    names = hook.server_names()
    uids = {_lower(job.get("backupServerUid")) for job in jobs}
    conn_ids = sorted({hook.vbr_conn_id(uid, names.get(uid, "")) for uid in uids})
    job_ids = [_lower(job.get("instanceUid")) for job in jobs]
    start, end = week.start - HISTORY, week.end
    sessions: list[dict[str, Any]] = []
    for conn_id in conn_ids:
        server = hook.vbr(conn_id)
        if hook.shared is None:
            sessions.extend(server.sessions(start, end))
            continue
        # A shared VB&R server lists every tenant's sessions: list them once per run, over a
        # window that covers every timezone's week, and keep this customer's jobs and window.
        server.shared = hook.shared
        wide_start, wide_end = shared_window(week)
        rows = server.select_listing(f"sessions.{iso_z(wide_start)}.{iso_z(wide_end)}",
                                     lambda s=server: s.sessions(wide_start, wide_end), session_job_id, job_ids)
        sessions.extend(r for r in rows if start <= created_at(r) < end)
    machines = [_lower(job.get("name")) for job in jobs]
    recovery = recovery_by_machine([pair for conn_id in conn_ids
                                    for pair in recovery_sessions(hook, hook.vbr(conn_id), week, machines,
                                                                 recovery_days(ref, SYSTEM))])
    return parse_backups(jobs, sessions, names, week, rpo, ref, recovery)


def recovery_window(week: ReportWeek) -> tuple[dt.datetime, dt.datetime]:
    """UTC days covering ``[week.end - RECOVERY_HISTORY, week.end)`` in any timezone."""
    monday = dt.datetime.combine(week.week_of, dt.time(), dt.timezone.utc)
    return monday + dt.timedelta(days=7) - RECOVERY_HISTORY - dt.timedelta(days=1), monday + dt.timedelta(days=8)


def recovery_sessions(hook: VeeamHook, server: VeeamVbrHook, week: ReportWeek, machines: list[str],
                      days: int) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The finished recovery sessions of the ``days`` before week end (the customer's verification
    window: an older test is no evidence), with this customer's machines' tasks.

    On a shared server the listings are read once per run for every customer (their window
    covers every timezone's week) and each customer keeps the tasks of its own machines.
    """
    start, end = week.end - dt.timedelta(days=days), week.end
    if hook.shared is None:
        rows = server.recovery_sessions(start, end)
    else:
        server.shared = hook.shared
        wide_start, wide_end = recovery_window(week)
        rows = server.select_listing(f"recovery.{iso_z(wide_start)}.{iso_z(wide_end)}",
                                     lambda: server.recovery_sessions(wide_start, wide_end),
                                     lambda _row: "all", ["all"])
    pairs = []
    for row in rows:
        if not (start <= created_at(row) < end) or session_attempt(row) is None:
            continue  # outside the window, or still running: its tasks say nothing yet
        sid = str(row.get("id") or "")
        if not sid:
            raise SourceResponseError(SYSTEM, f"recovery session {row.get('name')!r} has no id")
        tasks = server.select_listing(f"tasks.{sid}", lambda sid=sid: server.task_sessions(sid),
                                      lambda t: _lower(t.get("name")), machines)
        pairs.append((row, tasks))
    return pairs

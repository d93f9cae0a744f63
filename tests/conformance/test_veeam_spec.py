"""Veeam: the simulator read by clients generated from Veeam's published OpenAPI specs.

``veeam-spc`` (VSPC REST API v3, generated per console version) and ``veeam-br`` (VB&R REST
API, generated per ``x-api-version`` revision) are openapi-python-client packages; their models'
``from_dict`` are the spec's parsers: a missing required field is a ``KeyError``, a value outside
an enum a ``ValueError``, a ``null`` where the type is a non-nullable uuid a ``TypeError``. Each
endpoint the project calls is called here through the generated client (its own paths, query
parameters, headers and form bodies) and every reply, errors included, must parse. The
project's own requests, recorded while it extracts a customer, are checked against the
generated operations: same method, same path, only query parameters the spec declares (VSPC's
``filter``, documented by Veeam as a general query parameter but absent from the per-operation
spec, is the one exception, and is named).
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devtools.simulators import veeam as sim_veeam
from msp_reports.http.client import RetryPolicy
from msp_reports.sources import veeam
from tests.factories import report_week

from veeam_br.v1_2_rev1 import AuthenticatedClient as VbrClient
from veeam_br.v1_2_rev1 import Client as VbrAnonymous
from veeam_br.v1_2_rev1.api.login import create_token
from veeam_br.v1_2_rev1.api.sessions import get_all_sessions, get_session_task_sessions
from veeam_br.v1_2_rev1.models import (
    Error,
    ELoginGrantType,
    ErrorErrorCode,
    ESessionState,
    ESessionType,
    RestoreTaskSessionModel,
    SessionsResult,
    TaskSessionsResult,
    TokenLoginSpec,
    TokenModel,
)
from veeam_br.v1_2_rev1.types import Unset
from veeam_spc.v3_6_2 import AuthenticatedClient as VspcClient
from veeam_spc.v3_6_2.api.backup_server_jobs import get_backup_server_jobs
from veeam_spc.v3_6_2.api.backup_servers import get_backup_servers
from veeam_spc.v3_6_2.api.companies import get_companies
from veeam_spc.v3_6_2.models import (
    ErrorResponse,
    GetBackupServerJobsResponse200,
    GetBackupServersResponse200,
    GetCompaniesResponse200,
)

UTC = dt.timezone.utc
VBR_REVISION = "1.2-rev1"  # the newest revision VBR 12.3.1 (the simulated build) publishes
# Veeam's REST API "Versioning" table for VBR 12.3.1: every revision up to the build's own.
PUBLISHED_REVISIONS = ("1.0-rev1", "1.0-rev2", "1.1-rev0", "1.1-rev1", "1.1-rev2", "1.2-rev0", "1.2-rev1")


def vspc(sim, key: str | None = None) -> VspcClient:
    return VspcClient(base_url=f"{sim.base_url}/veeam/vspc/api/v3", token=key or sim.creds.veeam_vspc_api_key,
                      raise_on_unexpected_status=True)


def vbr_token(sim, grant: ELoginGrantType = ELoginGrantType.PASSWORD, version: str = VBR_REVISION):
    spec = TokenLoginSpec(grant_type=grant, username=sim.creds.veeam_vbr_user, password=sim.creds.veeam_vbr_password)
    return create_token.sync_detailed(client=VbrAnonymous(base_url=f"{sim.base_url}/veeam/vbr"), body=spec,
                                      x_api_version=version)


def vbr(sim) -> VbrClient:
    token = vbr_token(sim).parsed
    assert isinstance(token, TokenModel)
    return VbrClient(base_url=f"{sim.base_url}/veeam/vbr", token=token.access_token, raise_on_unexpected_status=True)


# --- VSPC -----------------------------------------------------------------------------------
def test_companies_parse_with_the_required_owner_credentials(sim, world):
    """The spec's ``Company`` requires ``ownerCredentials`` (with ``userName``)."""
    reply = get_companies.sync_detailed(client=vspc(sim), limit=500)

    assert reply.status_code == 200 and isinstance(reply.parsed, GetCompaniesResponse200)
    names = {c.name for c in reply.parsed.data}
    assert names == {cw.profile.name for cw in world.customers.values()}
    assert all(c.owner_credentials.user_name for c in reply.parsed.data)
    assert reply.parsed.meta.paging_info.total == len(world.customers)


def test_jobs_and_backup_servers_parse(sim, world):
    jobs = get_backup_server_jobs.sync_detailed(client=vspc(sim), limit=500)
    servers = get_backup_servers.sync_detailed(client=vspc(sim))

    assert isinstance(jobs.parsed, GetBackupServerJobsResponse200)
    assert len(jobs.parsed.data) == sum(len(cw.agents) for cw in world.customers.values())
    assert isinstance(servers.parsed, GetBackupServersResponse200)
    assert [s.name for s in servers.parsed.data] == [sim_veeam.SERVER_NAME]


def test_vspc_errors_parse_as_the_spec_error_response(sim):
    denied = get_companies.sync_detailed(client=vspc(sim, key="not-the-key"))
    too_many = get_companies.sync_detailed(client=vspc(sim), limit=501)

    for reply, status in ((denied, 401), (too_many, 400)):
        assert reply.status_code == status and isinstance(reply.parsed, ErrorResponse)
        assert reply.parsed.errors and reply.parsed.errors[0].message


# --- VBR ------------------------------------------------------------------------------------
@pytest.mark.parametrize("grant", ["password", "Password"])
def test_token_endpoint_accepts_the_documented_and_the_spec_grant_type(sim, grant):
    """Veeam's docs write ``grant_type=password``; the spec's enum ``ELoginGrantType`` says
    ``Password`` (what the generated client sends). Both are accepted (server case-insensitivity
    UNCONFIRMED: see docs/fidelity.md)."""
    form = {"grant_type": grant, "username": sim.creds.veeam_vbr_user, "password": sim.creds.veeam_vbr_password}
    reply = requests.post(f"{sim.base_url}/veeam/vbr/api/oauth2/token", data=form,
                          headers={"x-api-version": VBR_REVISION}, timeout=10)

    assert reply.status_code == 200, reply.text
    assert TokenModel.from_dict(reply.json()).expires_in == sim_veeam.TOKEN_LIFETIME


def test_generated_client_logs_in_with_the_spec_enum(sim):
    reply = vbr_token(sim)
    assert reply.status_code == 200 and isinstance(reply.parsed, TokenModel)


def test_every_session_parses_as_the_spec_session_model(sim, world):
    """``parentSessionId`` and a running session's ``endTime`` are non-nullable in the spec: the
    simulator leaves them out. A ``null`` made every session fail to parse."""
    week = report_week(world, "ACME")
    reply = get_all_sessions.sync_detailed(
        client=vbr(sim), skip=0, limit=1000, x_api_version=VBR_REVISION,
        created_after_filter=week.start - dt.timedelta(days=14), created_before_filter=dt.datetime.now(UTC),
    )

    assert reply.status_code == 200 and isinstance(reply.parsed, SessionsResult), reply.content[:300]
    sessions = reply.parsed.data
    assert sessions and reply.parsed.pagination.total >= len(sessions)
    for session in sessions:
        finished = session.state == ESessionState.STOPPED
        assert finished == (not isinstance(session.end_time, Unset))


@pytest.mark.parametrize("kind", [ESessionType.SUREBACKUP, ESessionType.RESTOREVM])
def test_recovery_sessions_and_their_tasks_parse_as_the_spec_models(sim, world, kind):
    """SureBackup and restore sessions under the spec's ``typeFilter``, and each one's
    ``taskSessions`` (one ``RestoreTaskSessionModel`` per machine, named after it)."""
    client = vbr(sim)
    reply = get_all_sessions.sync_detailed(
        client=client, skip=0, limit=1000, x_api_version=VBR_REVISION, type_filter=kind,
        created_after_filter=dt.datetime.now(UTC) - dt.timedelta(days=90), created_before_filter=dt.datetime.now(UTC),
    )
    assert reply.status_code == 200 and isinstance(reply.parsed, SessionsResult), reply.content[:300]
    sessions = reply.parsed.data
    assert sessions and {s.session_type for s in sessions} == {kind}
    machines = {a.name for cw in world.customers.values() for a in cw.agents}
    token = vbr_token(sim).parsed.access_token
    for session in sessions[:5]:
        tasks = get_session_task_sessions.sync_detailed(id=session.id, client=client, x_api_version=VBR_REVISION)
        assert tasks.status_code == 200 and isinstance(tasks.parsed, TaskSessionsResult), tasks.content[:300]
        raw = requests.get(f"{sim.base_url}/veeam/vbr/api/v1/sessions/{session.id}/taskSessions", timeout=10,
                           headers={"x-api-version": VBR_REVISION, "Authorization": f"Bearer {token}"}).json()
        parsed = [RestoreTaskSessionModel.from_dict(t) for t in raw["data"]]
        assert parsed and {t.name for t in parsed} <= machines
        assert all(t.session_id == session.id and t.session_type == kind for t in parsed)


def test_task_sessions_of_an_unknown_session_are_a_spec_error(sim):
    token = vbr_token(sim).parsed.access_token
    reply = requests.get(f"{sim.base_url}/veeam/vbr/api/v1/sessions/{'0' * 8}-0000-0000-0000-{'0' * 12}/taskSessions",
                         headers={"x-api-version": VBR_REVISION, "Authorization": f"Bearer {token}"}, timeout=10)
    assert reply.status_code == 404
    assert Error.from_dict(reply.json()).error_code == ErrorErrorCode.NOTFOUND


def test_raw_session_records_hold_no_null_for_non_nullable_fields(sim):
    token = vbr_token(sim).parsed
    reply = requests.get(f"{sim.base_url}/veeam/vbr/api/v1/sessions", params={"limit": 1000}, timeout=10,
                         headers={"x-api-version": VBR_REVISION, "Authorization": f"Bearer {token.access_token}"})
    nullable = {"progress"}  # the only nullable field of SessionModel
    for record in reply.json()["data"]:
        assert not [k for k, v in record.items() if v is None and k not in nullable], record


@pytest.mark.parametrize("case", ["wrong password", "no token", "bad token", "bad version", "bad grant"])
def test_vbr_errors_parse_with_codes_from_the_spec_enum(sim, case):
    base, version = f"{sim.base_url}/veeam/vbr", {"x-api-version": VBR_REVISION}
    form = {"grant_type": "password", "username": sim.creds.veeam_vbr_user, "password": sim.creds.veeam_vbr_password}
    if case == "wrong password":
        reply = requests.post(f"{base}/api/oauth2/token", data={**form, "password": "nope"}, headers=version)
    elif case == "bad grant":
        reply = requests.post(f"{base}/api/oauth2/token", data={**form, "grant_type": "client_credentials"},
                              headers=version)
    elif case == "bad version":
        reply = requests.post(f"{base}/api/oauth2/token", data=form, headers={"x-api-version": "1.9-rev9"})
    else:
        auth = {} if case == "no token" else {"Authorization": "Bearer forged"}
        reply = requests.get(f"{base}/api/v1/sessions", headers={**version, **auth})

    assert reply.status_code in (400, 401)
    error = Error.from_dict(reply.json())  # raises on a code outside ErrorErrorCode
    assert isinstance(error.error_code, ErrorErrorCode) and error.message


@pytest.mark.parametrize("version", PUBLISHED_REVISIONS)
def test_every_published_revision_up_to_the_servers_own_is_accepted(sim, version):
    assert vbr_token(sim, version=version).status_code == 200


@pytest.mark.parametrize("version", ["1.3-rev0", "1.3-rev2", "1.1-rev7", "1.9-rev9", "2.0-rev0", "", "v1.2-rev1"])
def test_revisions_the_build_does_not_publish_are_refused_naming_the_supported_ones(sim, version):
    """VBR 12.3.1 knows no 1.3-* (VBR 13) and no invented revision; it answers 400 with the list."""
    reply = requests.post(f"{sim.base_url}/veeam/vbr/api/oauth2/token", headers={"x-api-version": version},
                          data={"grant_type": "password", "username": "u", "password": "p"}, timeout=10)

    assert reply.status_code == 400
    error = Error.from_dict(reply.json())
    assert error.error_code == ErrorErrorCode.NOTIMPLEMENTED
    assert "Unsupported RESTAPI version" in error.message and "v1.2-rev1" in error.message


def test_the_projects_default_revision_is_a_published_one():
    assert veeam.DEFAULT_VBR_API_VERSION in PUBLISHED_REVISIONS


# --- the project's own requests against the spec ----------------------------------------------
def _operation(module: ModuleType) -> tuple[str, str, set[str]]:
    """(method, path, query parameters) of a generated operation, read from its ``_get_kwargs``."""
    source = inspect.getsource(module._get_kwargs)
    method = re.search(r'"method": "(\w+)"', source).group(1).upper()
    path = re.search(r'"url": "([^"]+)"', source).group(1)
    return method, path, set(re.findall(r'params\["(\w+)"\]', source))


OPERATIONS = {  # the project's (method, path under the API root) -> the spec's operation
    ("GET", "/organizations/companies"): get_companies,
    ("GET", "/infrastructure/backupServers/jobs"): get_backup_server_jobs,
    ("GET", "/infrastructure/backupServers"): get_backup_servers,
    ("POST", "/api/oauth2/token"): create_token,
    ("GET", "/api/v1/sessions"): get_all_sessions,
    ("GET", "/api/v1/sessions/{id}/taskSessions"): get_session_task_sessions,
}
_SESSION_ID = re.compile(r"(?<=^/api/v1/sessions/)[0-9a-fA-F-]{36}(?=/)")
DOCUMENTED_OUTSIDE_THE_SPEC = {"filter"}  # VSPC: "Query Parameters > Filter" in the REST API reference


def test_the_projects_requests_match_the_spec_operations(sim, world, use_connection, monkeypatch):
    sent: list[requests.PreparedRequest] = []
    real_send = requests.Session.send

    def record(self, request, **kwargs):
        sent.append(request)
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", record)
    use_connection("veeam_spec", {"conn_type": "veeam", "host": f"{sim.base_url}/veeam/vspc/api/v3",
                                  "password": sim.creds.veeam_vspc_api_key, "extra": {"vbr_conn_id": "veeam_vbr_spec"}})
    use_connection("veeam_vbr_spec", {"conn_type": "veeam_vbr", "host": f"{sim.base_url}/veeam/vbr",
                                      "login": sim.creds.veeam_vbr_user, "password": sim.creds.veeam_vbr_password})
    hook = veeam.VeeamHook("veeam_spec", policy=RetryPolicy(attempts=1))
    veeam.extract(hook, {"organization": world.customers["ACME"].profile.name}, report_week(world, "ACME"))

    seen = set()
    for request in sent:
        url = urlsplit(request.url)
        path = _SESSION_ID.sub("{id}", re.sub(r"^/veeam(/vspc/api/v3|/vbr)", "", url.path))
        operation = OPERATIONS.get((request.method, path))
        assert operation is not None, f"the project calls {request.method} {path}, which the spec lacks"
        method, spec_path, spec_params = _operation(operation)
        assert (method, spec_path) == (request.method, path)
        assert set(parse_qs(url.query)) - spec_params <= DOCUMENTED_OUTSIDE_THE_SPEC
        if path.startswith("/api/"):
            assert request.headers["x-api-version"] in PUBLISHED_REVISIONS
        if path == "/api/oauth2/token":
            form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
            assert form["grant_type"][0].lower() == ELoginGrantType.PASSWORD.value.lower()
        seen.add((request.method, path))
    assert seen == set(OPERATIONS)

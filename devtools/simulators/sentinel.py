"""Azure AD token endpoint and ARM's Microsoft Sentinel incidents, from the demo world.

``/sentinel/login/{tenant}/oauth2/v2.0/token`` issues app-only tokens to the MSP's Sentinel
app; ``/sentinel/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/
workspaces/{ws}/providers/Microsoft.SecurityInsights/incidents`` serves a workspace's incidents.

Where each customer's workspace is (deterministic, so the registry can name it):
:func:`subscription_id` is derived from the customer's tenant id, the resource group is
``rg-sentinel-<code>`` and the workspace ``law-<code>`` (code in lower case);
:func:`workspace_ref` gives the three as a registry ``ref``.

Access follows Azure Lighthouse: a token of the MSP's managing tenant (:data:`MSP_TENANT_ID`)
reaches every customer's workspace; a token of a customer's own tenant only that customer's
(others answer 403 ``AuthorizationFailed``). The token's audience must be ARM: a Graph token is
refused with 401 ``InvalidAuthenticationToken``, as ARM does.

Wire details follow ARM: ``api-version`` is required; ``$filter`` (comparisons on
``properties/createdTimeUtc``, ``properties/lastModifiedTimeUtc``, ``properties/status``,
``properties/severity`` joined by ``and``/``or``, parsed by the Defender simulator's OData
parser), ``$orderby`` on the two times, ``$top`` (default :data:`DEFAULT_TOP`, at most
:data:`MAX_TOP` - both UNCONFIRMED), ``nextLink`` with an opaque ``$skipToken``; errors are
``{"error": {"code", "message"}}``, an unknown path or method included (UNCONFIRMED wording).
Every stable ``api-version`` of the provider that lists incidents (:data:`API_VERSIONS`) is
accepted; any other gets ARM's ``NoRegisteredProviderFound``. Incidents stand as they are at the real current time: one
closed after the report week is ``Closed`` now, with ``lastModifiedTimeUtc`` at its closing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.defender import (
    ODataError, _aad_error, _Field, aad_client_credentials_error, graph_time, parse_filter,
)
from devtools.simulators.world import CustomerWorld, SecurityIncident, World
from devtools.simulators.app import paging_truncated

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
ARM_SCOPE = "https://management.azure.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MSP_TENANT_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "northwind-msp.example"))
TOKEN_LIFETIME = 3599
TOKENS_KEY = "sentinel_tokens"  # state.extra[...]: access token -> (tenant id, scope, expires at)
#: every stable api-version of Microsoft.SecurityInsights whose spec has incidents - list
#: (azure-rest-api-specs, specification/securityinsights/.../stable/*); previews are refused
#: here (UNCONFIRMED: ARM accepts the preview versions it has not retired)
API_VERSIONS = ("2020-01-01", "2021-04-01", "2021-10-01", "2022-08-01", "2022-11-01", "2023-02-01",
                "2023-11-01", "2024-03-01", "2024-09-01", "2025-03-01", "2025-06-01", "2025-09-01")
DEFAULT_TOP = 50
MAX_TOP = 1000
INCIDENT_FIELDS = {"properties/createdTimeUtc": _Field("datetime"),
                   "properties/lastModifiedTimeUtc": _Field("datetime"),
                   "properties/status": _Field("enum"), "properties/severity": _Field("enum")}
ORDERABLE = ("properties/createdTimeUtc", "properties/lastModifiedTimeUtc")


def subscription_id(cw: CustomerWorld) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"azure-subscription:{cw.tenant_id}"))


def resource_group(cw: CustomerWorld) -> str:
    return f"rg-sentinel-{cw.code.lower()}"


def workspace_name(cw: CustomerWorld) -> str:
    return f"law-{cw.code.lower()}"


def workspace_ref(cw: CustomerWorld) -> dict[str, str]:
    """The registry ``ref`` of the customer's Sentinel workspace."""
    return {"subscription_id": subscription_id(cw), "resource_group": resource_group(cw),
            "workspace": workspace_name(cw)}


def _arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _incident_rows(cw: CustomerWorld, now: dt.datetime) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The customer's incidents as ARM shows them ``now`` (wire record) and the values $filter compares."""
    numbered = sorted(cw.incidents, key=lambda i: (i.created, i.id))
    rows = []
    for number, inc in enumerate(numbered, start=1):
        if inc.created <= now:
            rows.append(_incident_row(cw, inc, number, now))
    return rows


def _incident_row(cw: CustomerWorld, inc: SecurityIncident, number: int,
                  now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    closed = inc.resolved is not None and inc.resolved <= now
    status = "Closed" if closed else ("New" if sum(map(ord, inc.id)) % 3 == 0 else "Active")
    modified = inc.resolved if closed else inc.created + dt.timedelta(minutes=2)
    name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sentinel-incident:{inc.id}"))
    scope = (f"/subscriptions/{subscription_id(cw)}/resourceGroups/{resource_group(cw)}/providers/"
             f"Microsoft.OperationalInsights/workspaces/{workspace_name(cw)}")
    properties: dict[str, Any] = {
        "title": inc.title,
        "description": "",
        "severity": inc.severity.capitalize(),
        "status": status,
        "owner": {"objectId": None, "email": None, "assignedTo": None, "userPrincipalName": None},
        "labels": [],
        "createdTimeUtc": graph_time(inc.created),
        "lastModifiedTimeUtc": graph_time(modified),
        "firstActivityTimeUtc": graph_time(inc.created - dt.timedelta(minutes=7)),
        "lastActivityTimeUtc": graph_time(inc.created - dt.timedelta(minutes=1)),
        "incidentNumber": number,
        "incidentUrl": f"https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{scope}"
                       f"/providers/Microsoft.SecurityInsights/Incidents/{name}",
        "providerName": "Azure Sentinel",
        "providerIncidentId": str(number),
        "relatedAnalyticRuleIds": [],
        "additionalData": {"alertsCount": 1 + number % 3, "bookmarksCount": 0, "commentsCount": 0,
                           "alertProductNames": ["Azure Sentinel"], "tactics": [], "techniques": []},
    }
    if closed:
        properties.update(classification="TruePositive", classificationReason="SuspiciousActivity",
                          classificationComment="Contained by the SOC.",
                          owner={"objectId": str(uuid.uuid5(uuid.NAMESPACE_DNS, "soc")),
                                 "email": "soc@northwind-msp.example", "assignedTo": "SOC",
                                 "userPrincipalName": "soc@northwind-msp.example"})
    record = {"id": f"{scope}/providers/Microsoft.SecurityInsights/Incidents/{name}", "name": name,
              "etag": f'"{uuid.uuid5(uuid.NAMESPACE_URL, name + status)}"',
              "type": "Microsoft.SecurityInsights/Incidents", "properties": properties}
    values = {"properties/createdTimeUtc": inc.created, "properties/lastModifiedTimeUtc": modified,
              "properties/status": status, "properties/severity": inc.severity}
    return record, values


def _skip_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return int(json.loads(raw)["offset"])


def _next_link(request: Request, skip_token: str) -> str:
    """The same query with ``$skipToken``, ``$`` written as is (ARM does)."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "$skipToken"]
    query = urlencode([*pairs, ("$skipToken", skip_token)], quote_via=quote, safe="$/:'")
    return f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{query}"


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    world: World = state.world_view()
    with state.lock:
        tokens: dict[str, tuple[str, str, dt.datetime]] = state.extra.setdefault(TOKENS_KEY, {})

    @api.post("/login/{tenant_id}/oauth2/v2.0/token")
    async def token(tenant_id: str, request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        known = tenant_id == MSP_TENANT_ID or world.by_tenant(tenant_id) is not None
        refused = aad_client_credentials_error(form, tenant_id, tenant_known=known,
                                               client_id=state.creds.sentinel_client_id,
                                               client_secret=state.creds.sentinel_client_secret)
        if refused is not None:
            return refused
        scope = form.get("scope", "")
        if scope not in (ARM_SCOPE, GRAPH_SCOPE):
            return _aad_error(400, "invalid_scope",
                              f"AADSTS1002012: The provided value for scope {scope} is not valid.")
        access = secrets.token_urlsafe(32)
        with state.lock:
            tokens[access] = (tenant_id, scope, dt.datetime.now(UTC) + dt.timedelta(seconds=TOKEN_LIFETIME))
        return {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME,
                "access_token": access}

    def caller_tenant(request: Request) -> str | JSONResponse:
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                                         'error="invalid_token"'}
        if header is None:
            return _arm_error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is missing.", challenge)
        scheme, _, access = header.partition(" ")
        if scheme.lower() != "bearer" or not access:
            return _arm_error(401, "AuthenticationFailed",
                              "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                              challenge)
        with state.lock:
            issued = tokens.get(access)
        if issued is None:
            return _arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.", challenge)
        tenant_id, scope, expires = issued
        now = dt.datetime.now(UTC)
        if expires <= now:
            return _arm_error(401, "ExpiredAuthenticationToken",
                              f"The access token expiry UTC time '{expires:%m/%d/%Y %I:%M:%S %p}' is earlier than "
                              f"current UTC time '{now:%m/%d/%Y %I:%M:%S %p}'.", challenge)
        if scope != ARM_SCOPE:
            return _arm_error(401, "InvalidAuthenticationToken",
                              "The access token has been obtained for wrong audience or resource "
                              "'https://graph.microsoft.com'. It should exactly match with one of the allowed "
                              "audiences 'https://management.core.windows.net/','https://management.core.windows.net',"
                              "'https://management.azure.com/','https://management.azure.com'.", challenge)
        return tenant_id

    def find_workspace(tenant_id: str, sub: str, rg: str, ws: str) -> CustomerWorld | JSONResponse:
        by_sub = next((c for c in world.customers.values() if subscription_id(c).lower() == sub.lower()), None)
        if tenant_id != MSP_TENANT_ID and (by_sub is None or by_sub.tenant_id != tenant_id):
            scope = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}"
            return _arm_error(403, "AuthorizationFailed",
                              f"The client '{state.creds.sentinel_client_id}' with object id "
                              f"'{uuid.uuid5(uuid.NAMESPACE_DNS, 'sentinel-sp')}' does not have authorization to "
                              "perform action 'Microsoft.SecurityInsights/incidents/read' over scope "
                              f"'{scope}/providers/Microsoft.SecurityInsights' or the scope is invalid. If access "
                              "was recently granted, please refresh your credentials.")
        if by_sub is None:
            return _arm_error(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
        if resource_group(by_sub).lower() != rg.lower():
            return _arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        if workspace_name(by_sub).lower() != ws.lower():
            return _arm_error(404, "ResourceNotFound",
                              f"The Resource 'Microsoft.OperationalInsights/workspaces/{ws}' under resource group "
                              f"'{rg}' was not found. For more details please go to "
                              "https://aka.ms/ARMResourceNotFoundFix")
        return by_sub

    @api.get("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{ws}"
             "/providers/Microsoft.SecurityInsights/incidents")
    async def incidents(sub: str, rg: str, ws: str, request: Request):
        tenant_id = caller_tenant(request)
        if isinstance(tenant_id, JSONResponse):
            return tenant_id
        params = request.query_params
        version = params.get("api-version")
        if not version:
            return _arm_error(400, "MissingApiVersionParameter",
                              "The api-version query parameter (?api-version=) is required for all requests.")
        if version not in API_VERSIONS:
            return _arm_error(400, "NoRegisteredProviderFound",
                              f"No registered resource provider found for location 'westeurope' and API version "
                              f"'{version}' for type 'incidents'. The supported api-versions are "
                              f"'{', '.join(API_VERSIONS)}'.")
        cw = find_workspace(tenant_id, sub, rg, ws)
        if isinstance(cw, JSONResponse):
            return cw
        rows = _incident_rows(cw, dt.datetime.now(UTC))
        try:
            if "$filter" in params:
                keep = parse_filter(params["$filter"], INCIDENT_FIELDS)
                rows = [r for r in rows if keep(r[1])]
            top = int(params.get("$top", DEFAULT_TOP))
            offset = _offset(params["$skipToken"]) if params.get("$skipToken") else 0
        except ODataError as exc:
            return _arm_error(400, "BadRequest", str(exc))
        except (ValueError, KeyError, TypeError):
            return _arm_error(400, "BadRequest", "Invalid value for $top or $skipToken.")
        if top < 1:
            return _arm_error(400, "BadRequest", "$top must be a positive number.")
        if offset and paging_truncated():
            return _arm_error(400, "BadRequest", "The $skipToken is invalid or has expired.")
        order = (params.get("$orderby") or "").split()
        if order:
            if order[0] not in ORDERABLE or len(order) > 2 or (len(order) == 2 and order[1] not in ("asc", "desc")):
                return _arm_error(400, "BadRequest", f"$orderby '{params['$orderby']}' is not supported.")
            rows.sort(key=lambda r: r[1][order[0]], reverse=len(order) == 2 and order[1] == "desc")
        top = min(top, MAX_TOP)
        body: dict[str, Any] = {"value": [r[0] for r in rows[offset:offset + top]]}
        if offset + top < len(rows):
            body["nextLink"] = _next_link(request, _skip_token(offset + top))
        return JSONResponse(body)

    @api.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def fallback(rest: str, request: Request):
        """ARM's envelope for what this simulator does not serve, never the web framework's."""
        if rest.rstrip("/").lower().endswith("/providers/microsoft.securityinsights/incidents"):
            return _arm_error(405, "HttpMethodNotAllowed",
                              f"The HTTP method '{request.method}' is not supported at scope '/{rest}'.")
        return _arm_error(404, "InvalidResourceType", f"The resource type could not be found for '/{rest}'.")

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "sentinel_default": {
            "conn_type": "sentinel",
            "host": f"{base_url}/sentinel",
            "login": creds.sentinel_client_id,
            "password": creds.sentinel_client_secret,
            "extra": {"tenant_id": MSP_TENANT_ID, "login_url": f"{base_url}/sentinel/login"},
        }
    }

"""Azure AD token endpoint and Graph security API (incidents, Secure Score), from the demo world.

``/defender/login/{tenant}/oauth2/v2.0/token`` issues app-only tokens to the MSP app for a
customer tenant; ``/defender/graph/v1.0/security/...`` serves that tenant's data to a token
issued by it. Wire details follow Graph: OData collections with ``@odata.nextLink``
(``$skiptoken``), ``$filter`` with comparisons joined by ``and``/``or`` (parsed, not matched
by pattern), seven-digit fractions in timestamps, AAD and OData error bodies. Incidents are
shown as they stand at the real current time: one resolved after the report week is
``resolved`` now, with ``lastUpdateDateTime`` at its resolution. Default page size is 3
without ``$top``, so every client pages.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import CustomerWorld, SecureScore, SecurityIncident
from devtools.simulators.app import paging_truncated

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TOKEN_LIFETIME = 3599
DEFAULT_PAGE_SIZE = 3
MAX_TOP = 50
TOKENS_KEY = "defender_tokens"  # state.extra[...]: access token -> (tenant id, expires at)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def graph_time(value: dt.datetime) -> str:
    """Graph's format: ``2026-11-16T08:43:35.5533333Z`` (seven fraction digits)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0" + "Z"


# --- OData $filter ------------------------------------------------------------------------
class ODataError(ValueError):
    """The $filter cannot be served: the message becomes the OData error message."""


_TOKEN = re.compile(r"\s*(?:(\()|(\))|('(?:[^']|'')*')|([^\s()']+))")
_OPERATORS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}
Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class _Field:
    kind: str  # "datetime" or "enum"


INCIDENT_FIELDS = {"createdDateTime": _Field("datetime"), "lastUpdateDateTime": _Field("datetime"),
                   "status": _Field("enum"), "severity": _Field("enum")}
SCORE_FIELDS = {"createdDateTime": _Field("datetime")}


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ODataError(f"Syntax error at position {pos} in '{text}'.")
        tokens.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
    return tokens


def parse_filter(text: str, fields: dict[str, _Field]) -> Predicate:
    """Parse ``a ge X and (b eq 'y' or c lt Z)`` into a predicate over a row of Python values.

    Grammar: ``or_expr := and_expr ('or' and_expr)*``, ``and_expr := term ('and' term)*``,
    ``term := '(' or_expr ')' | field op literal``. Enum comparisons ignore case, as Graph does.
    """
    tokens = _tokenize(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ODataError(f"Syntax error: unexpected end of '$filter' expression '{text}'.")
        pos += 1
        return tokens[pos - 1]

    def or_expr() -> Predicate:
        parts = [and_expr()]
        while (peek() or "").lower() == "or":
            take()
            parts.append(and_expr())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def and_expr() -> Predicate:
        parts = [term()]
        while (peek() or "").lower() == "and":
            take()
            parts.append(term())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def term() -> Predicate:
        token = take()
        if token == "(":
            inner = or_expr()
            if take() != ")":
                raise ODataError(f"Syntax error: ')' expected in '{text}'.")
            return inner
        name = token
        if name not in fields:
            raise ODataError(f"Invalid filter clause: property '{name}' is not supported in $filter.")
        op = take().lower()
        if op not in _OPERATORS:
            raise ODataError(f"Invalid filter clause: operator '{op}' is not supported.")
        value = _literal(take(), fields[name], name)
        compare = _OPERATORS[op]
        if fields[name].kind == "enum":
            return lambda row: compare(str(row[name]).lower(), value)
        return lambda row: compare(row[name], value)

    predicate = or_expr()
    if peek() is not None:
        raise ODataError(f"Syntax error: unexpected '{peek()}' in '{text}'.")
    return predicate


def _literal(token: str, field: _Field, name: str) -> Any:
    if field.kind == "enum":
        if not (token.startswith("'") and token.endswith("'") and len(token) >= 2):
            raise ODataError(f"Invalid filter clause: '{name}' must be compared with a quoted string.")
        return token[1:-1].replace("''", "'").lower()
    try:
        value = dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", token))
    except ValueError:
        raise ODataError(f"Invalid filter clause: '{token}' is not a valid DateTimeOffset for '{name}'.") from None
    if value.tzinfo is None:
        raise ODataError(f"Invalid filter clause: '{token}' has no time zone offset.")
    return value


# --- wire records -------------------------------------------------------------------------
def _incident_row(inc: SecurityIncident, tenant_id: str, now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The incident as Graph shows it ``now`` (wire record) and the values $filter compares."""
    resolved = inc.resolved is not None and inc.resolved <= now
    status = "resolved" if resolved else "active"
    updated = inc.resolved if resolved else inc.created
    record = {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": inc.id,
        "tenantId": tenant_id,
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{inc.id}?tid={tenant_id}",
        "redirectIncidentId": None,
        "displayName": inc.title,
        "description": None,
        "createdDateTime": graph_time(inc.created),
        "lastUpdateDateTime": graph_time(updated),
        "assignedTo": "soc@northwind-msp.example" if resolved else None,
        "classification": "truePositive" if resolved else "unknown",
        "determination": "malware" if resolved else "unknown",
        "status": status,
        "severity": inc.severity,
        "customTags": [],
        "systemTags": [],
        "comments": [],
    }
    row = {"createdDateTime": inc.created, "lastUpdateDateTime": updated, "status": status,
           "severity": inc.severity}
    return record, row


def _score_time(score: SecureScore) -> dt.datetime:
    """Graph computes one snapshot a day; the world's day is stamped at 12:00 UTC."""
    return dt.datetime.combine(score.day, dt.time(12, 0), tzinfo=UTC)


def _score_row(score: SecureScore, tenant_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    created = _score_time(score)
    record = {
        "id": f"{tenant_id}_{score.day.isoformat()}",
        "azureTenantId": tenant_id,
        "activeUserCount": 48,
        "createdDateTime": graph_time(created),
        "currentScore": score.current,
        "maxScore": score.max,
        "enabledServices": ["HasExchange", "HasSharePoint", "HasOD4B"],
        "licensedUserCount": 52,
        "averageComparativeScores": [{"basis": "AllTenants", "averageScore": 41.2}],
        "controlScores": [],
        "vendorInformation": {"provider": "SecureScore", "providerVersion": None, "subProvider": None,
                              "vendor": "Microsoft"},
    }
    return record, {"createdDateTime": created}


# --- errors -------------------------------------------------------------------------------
def _odata_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message,
                   "innerError": {"date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                                  "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}}},
        status_code=status, headers=headers,
    )


ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def add_graph_fallback(api: APIRouter) -> None:
    """Answer what no route of ``api`` serves as Graph does, with a Graph error body: a known path
    with another method is 405, an unknown segment 400 ``BadRequest`` (Graph's answer to a URL
    outside its schema). Must be added after every other route of ``api``, which is mounted under
    one ``/<system>`` segment (see :func:`devtools.simulators.app.create_app`).
    """
    from starlette.routing import Match

    known = list(api.routes)

    @api.api_route("/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
    async def fallback(rest: str, request: Request):
        inner = "/" + request.url.path.lstrip("/").partition("/")[2]  # the router's own path: no /<system>
        for route in known:
            match, _ = route.matches({**request.scope, "type": "http", "path": inner, "method": ""})
            if match is not Match.NONE and getattr(route, "methods", None):
                return _odata_error(405, "Request_BadRequest",
                                    f"Specified HTTP method is not allowed for the request uri {request.url.path}.")
        segment = next((s for s in reversed(rest.split("/")) if s), rest)
        return _odata_error(400, "BadRequest", f"Resource not found for the segment '{unquote(segment)}'.")


def aad_client_credentials_error(form: dict[str, str], tenant_id: str, *, tenant_known: bool,
                                 client_id: str, client_secret: str) -> JSONResponse | None:
    """Azure AD's answer to a client-credentials request it refuses, in its order of checks;
    ``None`` when tenant, grant type, client id and secret are all good (scope is the caller's)."""
    if not tenant_known:
        return _aad_error(400, "invalid_request",
                          f"AADSTS90002: Tenant '{tenant_id}' not found. Check to make sure you have the "
                          "correct tenant ID and are signing into the correct cloud.")
    if form.get("grant_type") != "client_credentials":
        return _aad_error(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
    if not secrets.compare_digest(form.get("client_id", ""), client_id):
        return _aad_error(400, "unauthorized_client",
                          f"AADSTS700016: Application with identifier '{form.get('client_id', '')}' was not "
                          f"found in the directory '{tenant_id}'.")
    if not secrets.compare_digest(form.get("client_secret", ""), client_secret):
        return _aad_error(401, "invalid_client",
                          "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in "
                          "the request is the client secret value, not the client secret ID, for a secret "
                          f"added to app '{client_id}'.")
    return None


def _aad_error(status: int, error: str, description: str) -> JSONResponse:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    return JSONResponse(
        {"error": error,
         "error_description": f"{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\n"
                              f"Timestamp: {_now():%Y-%m-%d %H:%M:%SZ}",
         "error_codes": [int(re.match(r"AADSTS(\d+)", description).group(1))],
         "timestamp": f"{_now():%Y-%m-%d %H:%M:%SZ}", "trace_id": trace, "correlation_id": correlation},
        status_code=status,
    )


def router(state: SimState) -> APIRouter:
    msp_tenant_id = _msp_tenant_id()
    api = APIRouter()
    world = state.world_view()
    with state.lock:
        tokens: dict[str, tuple[str, dt.datetime]] = state.extra.setdefault(TOKENS_KEY, {})

    @api.post("/login/{tenant_id}/oauth2/v2.0/token")
    async def token(tenant_id: str, request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        refused = aad_client_credentials_error(form, tenant_id, tenant_known=tenant_id == msp_tenant_id
                                               or world.by_tenant(tenant_id) is not None,
                                               client_id=state.creds.graph_client_id,
                                               client_secret=state.creds.graph_client_secret)
        if refused is not None:
            return refused
        if form.get("scope") != GRAPH_SCOPE:
            return _aad_error(400, "invalid_scope",
                              f"AADSTS1002012: The provided value for scope {form.get('scope')} is not valid.")
        access = secrets.token_urlsafe(32)
        with state.lock:
            tokens[access] = (tenant_id, _now() + dt.timedelta(seconds=TOKEN_LIFETIME))
        return {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME,
                "access_token": access}

    def tenant_of(request: Request) -> CustomerWorld | JSONResponse:
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if scheme.lower() != "bearer" or not access:
            return _odata_error(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        with state.lock:
            issued = tokens.get(access)
        if issued is None:
            return _odata_error(401, "InvalidAuthenticationToken",
                                "IDX14100: JWT is not well formed, there are no dots (.).", challenge)
        tenant_id, expires = issued
        if expires <= _now():
            return _odata_error(401, "InvalidAuthenticationToken",
                                "Lifetime validation failed, the token is expired.", challenge)
        customer = world.by_tenant(tenant_id)
        if customer is None:  # the MSP's own tenant: no customer's security data
            return _odata_error(403, "Forbidden", "Insufficient privileges to complete the operation.")
        return customer

    def collection(request: Request, rows: list[tuple[dict, dict]], fields: dict[str, _Field],
                   context: str) -> JSONResponse:
        params = request.query_params
        try:
            if "$filter" in params:
                keep = parse_filter(params["$filter"], fields)
                rows = [r for r in rows if keep(r[1])]
            top = int(params.get("$top", DEFAULT_PAGE_SIZE))
            offset = int(params.get("$skiptoken", "0") or 0)
        except ODataError as exc:
            return _odata_error(400, "BadRequest", str(exc))
        except ValueError:
            return _odata_error(400, "BadRequest", "Invalid value for $top or $skiptoken.")
        if top < 1:
            return _odata_error(400, "BadRequest", "Invalid value for $top.")
        if offset and paging_truncated():
            return _odata_error(400, "BadRequest", "The $skiptoken is invalid or has expired.")
        top = min(top, MAX_TOP)
        body: dict[str, Any] = {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{context}",
                                "value": [r[0] for r in rows[offset:offset + top]]}
        if offset + top < len(rows):
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skiptoken": offset + top}))
        return JSONResponse(body)

    @api.get("/graph/v1.0/security/incidents")
    async def incidents(request: Request):
        cw = tenant_of(request)
        if isinstance(cw, JSONResponse):
            return cw
        now = _now()
        rows = [_incident_row(i, cw.tenant_id, now) for i in cw.incidents if i.created <= now]
        rows.sort(key=lambda r: r[1]["createdDateTime"], reverse=True)  # most recent first
        return collection(request, rows, INCIDENT_FIELDS, "security/incidents")

    @api.get("/graph/v1.0/security/secureScores")
    async def secure_scores(request: Request):
        cw = tenant_of(request)
        if isinstance(cw, JSONResponse):
            return cw
        now = _now()
        rows = [_score_row(s, cw.tenant_id) for s in cw.secure_scores if _score_time(s) <= now]
        rows.sort(key=lambda r: r[1]["createdDateTime"], reverse=True)
        return collection(request, rows, SCORE_FIELDS, "security/secureScores")

    add_graph_fallback(api)
    return api


def _msp_tenant_id() -> str:
    """The MSP app's home tenant, where the Test button signs in (graph imports this module)."""
    from devtools.simulators.graph import MSP_TENANT_ID

    return MSP_TENANT_ID


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "defender_default": {
            "conn_type": "defender",
            "host": f"{base_url}/defender/graph/v1.0",
            "login": creds.graph_client_id,
            "password": creds.graph_client_secret,
            "extra": {"login_url": f"{base_url}/defender/login", "tenant_id": _msp_tenant_id()},
        }
    }

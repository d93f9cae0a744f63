"""Cloudflare API v4: zone health checks (REST) and their event history (GraphQL Analytics).

REST: ``GET /client/v4/zones/{zone}/healthchecks`` in the usual envelope (``success``,
``errors``, ``messages``, ``result``, ``result_info``), page/per_page paging (default page size
2 here instead of 25, so clients page), 403 code 10000 for a bad token, 404 code 7003 for an
unknown zone.

GraphQL: ``POST /client/v4/graphql``. The query is read, not pattern-matched as a whole: the
dataset under ``zones``, the ``zoneTag`` and ``datetime_*`` filter arguments (literal or
``$variable``), ``limit`` and the requested dimensions are taken from it. Only
``healthCheckEventsAdaptiveGroups`` is served. Each check emits one event per minute (at whole
UTC minutes) from one region; events are clipped to the requested window and to now. Errors
come back as HTTP 200 with ``{"data": null, "errors": [...]}``, as Cloudflare does.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import CustomerWorld, HealthCheck, Outage
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
DEFAULT_PER_PAGE = 2
DATASET = "healthCheckEventsAdaptiveGroups"
DIMENSIONS = ("healthStatus", "fqdn", "region", "originIP", "failureReason")
MAX_LIMIT = 10_000
REGION = "WEU"
INTERVAL = dt.timedelta(seconds=60)


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _host(check: HealthCheck) -> str:
    return urlsplit(check.address).hostname or check.address


def _down_at(outages: list[Outage], at: dt.datetime) -> bool:
    return any(o.start <= at and (o.end is None or at < o.end) for o in outages)


def _envelope(result: Any, *, info: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if info is not None:
        body["result_info"] = info
    return body


def _failure(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "errors": [{"code": code, "message": message}], "messages": [],
                         "result": None}, status_code=status)


def _graphql_error(message: str, path: list[str] | None = None) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"message": message, "path": path,
                                                   "extensions": {"timestamp": _now().isoformat(),
                                                                  "ray_id": secrets.token_hex(8)}}]})


def _check_record(check: HealthCheck, now: dt.datetime) -> dict[str, Any]:
    down = _down_at(check.outages, now)
    return {
        "id": check.id,
        "name": check.name,
        "description": f"Public site {check.name}",
        "address": _host(check),
        "type": "HTTPS",
        "status": "unhealthy" if down else "healthy",
        "failure_reason": "Response timeout" if down else "",
        "suspended": False,
        "check_regions": [REGION],
        "interval": int(INTERVAL.total_seconds()),
        "retries": 2,
        "timeout": 5,
        "consecutive_fails": 1,
        "consecutive_successes": 1,
        "http_config": {"method": "GET", "path": urlsplit(check.address).path or "/", "port": 443,
                        "expected_codes": ["200"], "expected_body": "", "follow_redirects": True,
                        "allow_insecure": False, "header": {}},
        "tcp_config": None,
        "created_on": "2024-03-01T09:00:00.000000Z",
        "modified_on": "2025-06-12T14:30:00.000000Z",
    }


# --- the GraphQL query, read as far as this dataset needs --------------------------------
class QueryError(ValueError):
    pass


def _value(token: str, variables: dict[str, Any]) -> Any:
    token = token.strip()
    if token.startswith("$"):
        if token[1:] not in variables:
            raise QueryError(f'variable "{token}" is used but not defined in variables')
        return variables[token[1:]]
    if token.startswith('"') and token.endswith('"'):
        return token[1:-1]
    if token.isdigit():
        return int(token)
    raise QueryError(f"cannot read value {token!r}")


def _time(value: Any, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise QueryError(f"{name}: {value!r} is not a valid Time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _block(text: str, start: int) -> tuple[str, int]:
    """The text between the brace or parenthesis at ``start`` and its match."""
    opener = text[start]
    closer = {"{": "}", "(": ")"}[opener]
    depth = 0
    for pos in range(start, len(text)):
        if text[pos] == opener:
            depth += 1
        elif text[pos] == closer:
            depth -= 1
            if depth == 0:
                return text[start + 1:pos], pos + 1
    raise QueryError(f"unbalanced '{opener}' in query")


def read_query(query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The zone, dataset, window, limit and dimensions a health-check query asks for."""
    query = re.sub(r"#[^\n]*", "", query)
    zones = re.search(r"\bzones\s*\(", query)
    if not zones:
        raise QueryError("query must select viewer.zones(filter: {zoneTag: ...})")
    zone_args, after = _block(query, zones.end() - 1)
    tag = re.search(r"\bzoneTag\s*:\s*(\$\w+|\"[^\"]*\")", zone_args)
    if not tag:
        raise QueryError("zones filter needs zoneTag")
    brace = query.index("{", after)
    selection, _ = _block(query, brace)
    dataset = re.match(r"\s*(\w+)\s*(\(|\{)", selection)
    if not dataset:
        raise QueryError("no dataset selected under zones")
    if dataset.group(1) != DATASET:
        raise QueryError(f'unknown field "{dataset.group(1)}" on type "zone"')
    args, rest = _block(selection, dataset.end() - 1) if dataset.group(2) == "(" else ("", dataset.end() - 1)
    bounds = dict(re.findall(r"\b(datetime_(?:geq|gt|lt|leq))\s*:\s*(\$\w+|\"[^\"]*\")", args))
    lower = next((k for k in ("datetime_geq", "datetime_gt") if k in bounds), None)
    upper = next((k for k in ("datetime_lt", "datetime_leq") if k in bounds), None)
    if not lower or not upper:
        raise QueryError("filter must bound datetime from below (datetime_geq/gt) and above (datetime_lt/leq)")
    limit_arg = re.search(r"\blimit\s*:\s*(\$\w+|\d+)", args)
    limit = int(_value(limit_arg.group(1), variables)) if limit_arg else 100
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
    dims_match = re.search(r"\bdimensions\s*\{([^}]*)\}", selection[rest:])
    dims = dims_match.group(1).split() if dims_match else []
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f'unknown field "{unknown[0]}" on type "ZoneHealthCheckEventsAdaptiveGroupsDimensions"')
    return {
        "zone": _value(tag.group(1), variables),
        "start": _time(_value(bounds[lower], variables), lower),
        "start_inclusive": lower == "datetime_geq",
        "end": _time(_value(bounds[upper], variables), upper),
        "end_inclusive": upper == "datetime_leq",
        "limit": limit,
        "dimensions": dims,
    }


def event_groups(cw: CustomerWorld, q: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """One event per check per whole minute inside the window (and not after now), grouped."""
    counts: Counter[tuple] = Counter()
    first = q["start"].replace(second=0, microsecond=0)
    if first < q["start"] or (first == q["start"] and not q["start_inclusive"]):
        first += dt.timedelta(minutes=1)
    for check in cw.checks:
        host = _host(check)
        at = first
        while at < q["end"] or (at == q["end"] and q["end_inclusive"]):
            if at > now:
                break
            down = _down_at(check.outages, at)
            values = {"healthStatus": "unhealthy" if down else "healthy", "fqdn": host, "region": REGION,
                      "originIP": "203.0.113.10", "failureReason": "Response timeout" if down else ""}
            counts[tuple(values[d] for d in q["dimensions"])] += 1
            at += INTERVAL
    groups = [{"count": n, "dimensions": dict(zip(q["dimensions"], key))} for key, n in counts.items()]
    return sorted(groups, key=lambda g: -g["count"])[: q["limit"]]


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    world = state.world_view()

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(token, state.creds.cloudflare_token)

    def auth_error() -> JSONResponse:
        return _failure(403, 10000, "Authentication error")

    @api.get("/client/v4/user/tokens/verify")
    async def verify_token(request: Request):
        if not authorized(request):
            return _failure(401, 1000, "Invalid API Token")
        return _envelope({"id": "sim-token", "status": "active"})

    @api.get("/client/v4/zones/{zone_id}/healthchecks")
    async def healthchecks(zone_id: str, request: Request):
        if not authorized(request):
            return auth_error()
        cw = world.by_zone(zone_id)
        if cw is None:
            return _failure(404, 7003, f"Could not route to /zones/{zone_id}/healthchecks, perhaps your "
                                       "object identifier is invalid?")
        try:
            page = int(request.query_params.get("page", 1))
            per_page = int(request.query_params.get("per_page", DEFAULT_PER_PAGE))
        except ValueError:
            return _failure(400, 1001, "page and per_page must be integers")
        if page < 1 or not 1 <= per_page <= 1000:
            return _failure(400, 1001, "page must be >= 1 and per_page between 1 and 1000")
        now = _now()
        checks = [_check_record(c, now) for c in cw.checks]
        chunk = cut_short(checks[(page - 1) * per_page: page * per_page], page > 1)
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(checks),
                "total_pages": math.ceil(len(checks) / per_page)}
        return _envelope(chunk, info=info)

    @api.post("/client/v4/graphql")
    async def graphql(request: Request):
        if not authorized(request):
            return auth_error()
        try:
            payload = await request.json()
        except ValueError:
            return _graphql_error("request body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return _graphql_error("request body needs a 'query' string")
        try:
            q = read_query(payload["query"], payload.get("variables") or {})
        except QueryError as exc:
            return _graphql_error(str(exc))
        cw = world.by_zone(str(q["zone"]))
        if cw is None:
            return _graphql_error("zone does not exist or the token is not authorized for it",
                                  ["viewer", "zones", "0"])
        if q["end"] <= q["start"]:
            return _graphql_error("time range is empty: the lower datetime bound must be before the upper one")
        groups = event_groups(cw, q, _now())
        return {"data": {"viewer": {"zones": [{DATASET: groups}]}}, "errors": None}

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "cloudflare_default": {
            "conn_type": "cloudflare",
            "host": f"{base_url}/cloudflare/client/v4",
            "password": creds.cloudflare_token,
            "extra": {},
        }
    }

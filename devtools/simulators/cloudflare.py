"""Cloudflare API v4: zone health checks (REST) and their event history (GraphQL Analytics).

REST: ``GET /client/v4/zones/{zone}/healthchecks`` in the usual envelope (``success``,
``errors``, ``messages``, ``result``, ``result_info``), page/per_page paging (default page size
1 here instead of 25, so clients page through every demo zone; an explicit ``per_page`` must be
a multiple of 5, as the API documents, so it cannot ask for pages that small), 403 code 10000 for a bad token, 404 code 7003 for an unknown zone.
``POST .../healthchecks`` and ``GET .../healthchecks/{id}`` exist for conformance clients: a
check name may hold only alphanumerics, ``-`` and ``_`` (the API's rule), so a name with a dot
is refused. The demo's checks are named by the site's first label (``www``); a test that
rewrites a world's names (hostile text) gets them served as they are.

GraphQL: ``POST /client/v4/graphql``. The query is read, not pattern-matched as a whole: the
dataset under ``zones``, the ``zoneTag`` and ``datetime_*`` filter arguments (literal or
``$variable``), ``limit`` and the requested dimensions are taken from it. Only
``healthCheckEventsAdaptiveGroups`` is served. Each check runs in one region from three data
centres (Cloudflare runs a check from three data centres in every region selected), each
emitting one event per minute (at whole UTC minutes); an outage in the world fails all three,
and now and then a single data centre fails on its own (a local blip that a majority rule must
not count as downtime). Events are clipped to the requested window and to now. The dataset's
limits are enforced (``maxDuration``: the widest window; ``notOlderThan``: how far back a query
may read), configurable in ``state.extra["cloudflare_limits"]``; the age is measured from the
world's present (its latest week's end plus a few days, or now if that is earlier), so that
an old test world is not aged out by the calendar. Errors come back as HTTP 200 with
``{"data": null, "errors": [...]}``, as Cloudflare does.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
import zlib
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import CustomerWorld, HealthCheck, Outage, World
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
DEFAULT_PER_PAGE = 1
DATASET = "healthCheckEventsAdaptiveGroups"
DIMENSIONS = ("healthStatus", "fqdn", "region", "originIP", "failureReason", "datetimeMinute")
MAX_LIMIT = 10_000
REGION = "WEU"
DATA_CENTRES = ("AMS", "FRA", "LHR")  # three per region; which ones is Cloudflare's choice
INTERVAL = dt.timedelta(seconds=60)
BLIP_ONE_IN = 1500  # a single data centre's own failure, about once a day per data centre
NAME_RULE = re.compile(r"^[A-Za-z0-9_-]+$")
PER_PAGE_STEP = 5
# healthCheckEventsAdaptiveGroups' settings node (maxDuration, notOlderThan, in seconds); the
# real values depend on the plan and are UNCONFIRMED: one day wide, 31 days back
DEFAULT_LIMITS = {"maxDuration": 86_400, "notOlderThan": 31 * 86_400}
PRESENT_AFTER_LATEST_WEEK = dt.timedelta(days=10)  # the latest week's Monday + 10 days


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
        "name": check.short_name,
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


def blip(check: HealthCheck, centre: str, at: dt.datetime) -> bool:
    """A data centre's own failure at ``at``: deterministic, rare, never in all three at once."""
    return zlib.crc32(f"{check.id}:{centre}:{int(at.timestamp())}".encode()) % BLIP_ONE_IN == 0 \
        and centre == DATA_CENTRES[int(at.timestamp()) // 60 % len(DATA_CENTRES)]


def event_groups(cw: CustomerWorld, q: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """One event per check per data centre per whole minute inside the window (not after now),
    grouped by the requested dimensions."""
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
            outage = _down_at(check.outages, at)
            minute = at.strftime("%Y-%m-%dT%H:%M:00Z")
            for centre in DATA_CENTRES:
                down = outage or blip(check, centre, at)
                values = {"healthStatus": "unhealthy" if down else "healthy", "fqdn": host, "region": REGION,
                          "originIP": "203.0.113.10", "failureReason": "Response timeout" if down else "",
                          "datetimeMinute": minute}
                counts[tuple(values[d] for d in q["dimensions"])] += 1
            at += INTERVAL
    groups = [{"count": n, "dimensions": dict(zip(q["dimensions"], key))} for key, n in counts.items()]
    return sorted(groups, key=lambda g: -g["count"])[: q["limit"]]


def present(world: World, now: dt.datetime) -> dt.datetime:
    """The instant a query's age is measured from (see the module docstring)."""
    latest = dt.datetime.combine(world.latest_week_of, dt.time(0), tzinfo=UTC) + PRESENT_AFTER_LATEST_WEEK
    return min(now, latest)


def window_refusal(zone: str, q: dict[str, Any], limits: dict[str, int], since: dt.datetime) -> str | None:
    """Cloudflare's message for a window wider than ``maxDuration`` or older than
    ``notOlderThan`` (the first wording is Cloudflare's own; the second is UNCONFIRMED)."""
    wide = int((q["end"] - q["start"]).total_seconds())
    if wide > limits["maxDuration"]:
        return (f'query time range is too large for zone "{zone}". Time range can\'t be wider than '
                f'{limits["maxDuration"]}s, but it\'s {wide}s')
    age = int((since - q["start"]).total_seconds())
    if age > limits["notOlderThan"]:
        return (f'cannot request data older than {limits["notOlderThan"]}s for zone "{zone}", '
                f'but the requested start is {age}s old')
    return None


def _refused_name(name: Any) -> JSONResponse | None:
    if isinstance(name, str) and NAME_RULE.match(name):
        return None
    return _failure(400, 1002, "name: Only alphanumeric characters, hyphens and underscores are allowed.")


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
        if "per_page" in request.query_params and (per_page % PER_PAGE_STEP or not 5 <= per_page <= 1000):
            return _failure(400, 1001, "per_page must be a multiple of 5 between 5 and 1000")
        if page < 1:
            return _failure(400, 1001, "page must be >= 1")
        now = _now()
        checks = [_check_record(c, now) for c in cw.checks]
        chunk = cut_short(checks[(page - 1) * per_page: page * per_page], page > 1)
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(checks),
                "total_pages": math.ceil(len(checks) / per_page)}
        return _envelope(chunk, info=info)

    @api.post("/client/v4/zones/{zone_id}/healthchecks")
    async def create_healthcheck(zone_id: str, request: Request):
        if not authorized(request):
            return auth_error()
        if world.by_zone(zone_id) is None:
            return _failure(404, 7003, f"Could not route to /zones/{zone_id}/healthchecks, perhaps your "
                                       "object identifier is invalid?")
        body = await request.json()
        refused = _refused_name(body.get("name") if isinstance(body, dict) else None)
        if refused is not None:
            return refused
        if not body.get("address"):
            return _failure(400, 1002, "address: required")
        record = {**_check_record(HealthCheck(secrets.token_hex(16), body["name"], f"https://{body['address']}/"),
                                  _now()), "name": body["name"], "address": body["address"],
                  "check_regions": body.get("check_regions") or [REGION], "status": "unknown"}
        with state.lock:
            state.extra.setdefault("cloudflare_created", {}).setdefault(zone_id, []).append(record)
        return _envelope(record)

    @api.get("/client/v4/zones/{zone_id}/healthchecks/{check_id}")
    async def healthcheck(zone_id: str, check_id: str, request: Request):
        if not authorized(request):
            return auth_error()
        cw = world.by_zone(zone_id)
        records = [_check_record(c, _now()) for c in (cw.checks if cw else [])]
        records += state.extra.get("cloudflare_created", {}).get(zone_id, [])
        found = next((r for r in records if r["id"] == check_id), None)
        if found is None:
            return _failure(404, 1003, "Health check not found")
        return _envelope(found)

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
        limits = state.extra.setdefault("cloudflare_limits", dict(DEFAULT_LIMITS))
        refusal = window_refusal(str(q["zone"]), q, limits, present(state.full_world, _now()))
        if refusal:
            return _graphql_error(refusal, ["viewer", "zones", "0", DATASET])
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

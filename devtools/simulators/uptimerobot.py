"""UptimeRobot API v2 simulator: ``POST /uptimerobot/v2/getMonitors``.

One UptimeRobot account for the whole MSP: every customer's web checks (the same world data the
Cloudflare simulator serves) are HTTP monitors named ``"<CODE>: <check name>"`` with the check's
URL.

Wire behaviour kept as the reference describes it: form-encoded POST with ``api_key`` and
``format=json``; answers ``{"stat": "ok", "pagination": {"offset", "limit", "total"},
"monitors": [...]}``; errors ``{"stat": "fail", "error": {"type", "parameter_name",
"passed_value", "message"}}`` with HTTP 200 (a wrong key is echoed back in ``passed_value``,
as the real API does); ``offset`` / ``limit`` paging with ``limit`` at most 50 (default 2 here
instead of 50, so clients page); ``search`` matches a substring of the URL or the name,
case-insensitively; ``custom_uptime_ranges=<start>_<end>[-<start>_<end>...]`` gives one ratio
per range as a string with three decimals, joined with ``-``, computed from the outages clipped
to the range and to now; ``logs=1`` adds the monitor's logs, newest first (98 started, 1 down,
2 up; each ``duration`` runs to the next event or to now), filtered by ``log_types`` and by a
log's start within ``logs_start_date`` .. ``logs_end_date``. Status now: 9 down, 2 up. A
request without a key fails with ``missing_parameter`` and the documented message
"api_key parameter is missing.".

Rate limit, as documented: per API key, the FREE plan's 10 requests a minute (configurable:
``state.extra["uptimerobot_rate_limit"]`` requests per ``state.extra["uptimerobot_rate_window"]``
seconds). Every answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (the Unix second the window ends); over the limit the answer is HTTP 429
with ``Retry-After`` (seconds). The window opens at a key's first request; clearing the faults
opens it afresh (see ``app.FaultTable``). Refusals are counted in
``state.extra["uptimerobot_refused"]``. UNCONFIRMED: the 429's body (a ``stat: fail`` envelope
here) and whether the window is fixed or sliding (fixed here).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import HealthCheck, World
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
DEFAULT_LIMIT = 2
MAX_LIMIT = 50
INTERVAL_SECONDS = 300
DOWN, UP, STARTED = 1, 2, 98
FREE_PLAN_PER_MINUTE = 10
RATE_WINDOW_SECONDS = 60


class Fail(Exception):
    def __init__(self, kind: str, parameter: str | None = None, passed: str | None = None,
                 message: str | None = None) -> None:
        super().__init__(message or kind)
        self.error: dict[str, Any] = {"type": kind}
        if parameter is not None:
            self.error["parameter_name"] = parameter
        if passed is not None:
            self.error["passed_value"] = passed
        if message is not None:
            self.error["message"] = message


def monitor_id(check: HealthCheck) -> int:
    return 780_000_000 + int(check.id[:7], 16) % 10_000_000


def created(world: World) -> dt.datetime:
    first = world.latest_week_of - dt.timedelta(weeks=world.weeks - 1)
    return dt.datetime.combine(first, dt.time(0), tzinfo=UTC) - dt.timedelta(days=2)


def down_spans(check: HealthCheck, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The check's outages that have begun, merged; an open one (or one still running) ends now."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    for o in sorted(check.outages, key=lambda o: o.start):
        if o.start > now:
            continue
        end = min(o.end or now, now)
        if spans and o.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((o.start, end))
    return spans


def ratio(check: HealthCheck, lo: dt.datetime, hi: dt.datetime, now: dt.datetime) -> str:
    hi = min(hi, now)
    if hi <= lo:
        return "100.000"
    down = sum(max(0.0, (min(b, hi) - max(a, lo)).total_seconds()) for a, b in down_spans(check, now))
    return f"{100 * (1 - down / (hi - lo).total_seconds()):.3f}"


def logs(check: HealthCheck, since: dt.datetime, now: dt.datetime) -> list[dict[str, Any]]:
    """98 started, then 1 down / 2 up per outage; each lasts until the next event (or now)."""
    events = [(since, STARTED)]
    for start, end in down_spans(check, now):
        events.append((start, DOWN))
        if end < now:  # otherwise still down
            events.append((end, UP))
    out = []
    for n, (at, kind) in enumerate(events):
        until = events[n + 1][0] if n + 1 < len(events) else now
        reason = {DOWN: {"code": "522", "detail": "Connection Timeout"}, UP: {"code": "200", "detail": "OK"},
                  STARTED: {"code": "", "detail": ""}}[kind]
        out.append({"id": monitor_id(check) * 100 + n, "type": kind, "datetime": int(at.timestamp()),
                    "duration": int((until - at).total_seconds()), "reason": reason})
    return list(reversed(out))


def _int(form: dict[str, str], name: str, default: int | None = None) -> int | None:
    value = form.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise Fail("invalid_parameter", name, value, f"{name} should be an integer.") from None


def _ranges(text: str) -> list[tuple[dt.datetime, dt.datetime]]:
    out = []
    for part in text.split("-"):
        lo, sep, hi = part.partition("_")
        if not sep or not lo.isdigit() or not hi.isdigit() or int(lo) >= int(hi):
            raise Fail("invalid_parameter", "custom_uptime_ranges", text,
                       "custom_uptime_ranges should be formatted as start_end[-start_end], Unix seconds.")
        out.append((dt.datetime.fromtimestamp(int(lo), UTC), dt.datetime.fromtimestamp(int(hi), UTC)))
    return out


def get_monitors(world: World, creds: SimCredentials, form: dict[str, str], now: dt.datetime) -> dict[str, Any]:
    key = form.get("api_key")
    if not key:
        raise Fail("missing_parameter", "api_key", message="api_key parameter is missing.")
    if not secrets.compare_digest(key, creds.uptimerobot_api_key):
        raise Fail("invalid_parameter", "api_key", key, "api_key is invalid.")
    offset = _int(form, "offset", 0)
    limit = _int(form, "limit", DEFAULT_LIMIT)
    if offset < 0:
        raise Fail("invalid_parameter", "offset", str(offset), "offset should be 0 or more.")
    if not 1 <= limit <= MAX_LIMIT:
        raise Fail("invalid_parameter", "limit", str(limit), f"limit should be between 1 and {MAX_LIMIT}.")
    ranges = _ranges(form["custom_uptime_ranges"]) if form.get("custom_uptime_ranges") else None
    with_logs = form.get("logs") == "1"
    log_lo, log_hi = _int(form, "logs_start_date"), _int(form, "logs_end_date")
    if (log_lo is None) != (log_hi is None):
        raise Fail("missing_parameter", "logs_end_date" if log_hi is None else "logs_start_date")
    log_types = {int(t) for t in form["log_types"].split("-") if t.isdigit()} if form.get("log_types") else None
    search = (form.get("search") or "").casefold()

    everything = [(cw.code, check) for cw in world.customers.values() for check in cw.checks]
    matching = [(code, check) for code, check in everything
                if search in f"{code}: {check.name}".casefold() or search in check.address.casefold()]
    since = created(world)
    monitors = []
    for code, check in cut_short(matching[offset: offset + limit], offset > 0):
        spans = down_spans(check, now)
        down_now = bool(spans) and spans[-1][1] >= now
        monitor: dict[str, Any] = {
            "id": monitor_id(check), "friendly_name": f"{code}: {check.name}", "url": check.address,
            "type": 1, "sub_type": "", "keyword_type": None, "keyword_case_type": None, "keyword_value": "",
            "http_username": "", "http_password": "", "port": "", "interval": INTERVAL_SECONDS, "timeout": 30,
            "status": 9 if down_now else 2, "create_datetime": int(since.timestamp()),
        }
        if ranges is not None:
            monitor["custom_uptime_ranges"] = "-".join(ratio(check, lo, hi, now) for lo, hi in ranges)
        if with_logs:
            records = logs(check, since, now)
            if log_types is not None:
                records = [r for r in records if r["type"] in log_types]
            if log_lo is not None:
                records = [r for r in records if log_lo <= r["datetime"] <= log_hi]
            monitor["logs"] = records
        monitors.append(monitor)
    return {"stat": "ok", "pagination": {"offset": offset, "limit": limit, "total": len(matching)},
            "monitors": monitors}


def take_budget(state: SimState, key: str, now: float) -> tuple[dict[str, str], bool]:
    """Spend one request of ``key``'s window: the rate-limit headers, and whether it is allowed."""
    limit = int(state.extra.get("uptimerobot_rate_limit", FREE_PLAN_PER_MINUTE))
    length = float(state.extra.get("uptimerobot_rate_window", RATE_WINDOW_SECONDS))
    with state.lock:
        start, used = state.rate_windows.get(("uptimerobot", key), (now, 0))
        if now >= start + length:
            start, used = now, 0
        allowed = used < limit
        used += allowed
        state.rate_windows[("uptimerobot", key)] = (start, used)
        if not allowed:
            state.extra["uptimerobot_refused"] = state.extra.get("uptimerobot_refused", 0) + 1
    reset = start + length
    headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
               "X-RateLimit-Reset": str(math.ceil(reset))}
    if not allowed:
        headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
    return headers, allowed


async def _form(request: Request) -> dict[str, str]:
    raw = (await request.body()).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    return {**{k: v[0] for k, v in parse_qs(request.url.query).items() if k == "api_key"}, **form}


def router(state: SimState) -> APIRouter:
    api = APIRouter()

    @api.post("/v2/{method}")
    async def call(method: str, request: Request) -> JSONResponse:
        form = await _form(request)
        headers: dict[str, str] = {}
        if form.get("api_key"):
            headers, allowed = take_budget(state, form["api_key"], time.time())
            if not allowed:
                return JSONResponse({"stat": "fail", "error": {"type": "rate_limit", "message": "Too Many Requests"}},
                                    status_code=429, headers=headers)
        try:
            if method != "getMonitors":
                raise Fail("not_found", message=f"{method} is not served.")
            if form.get("format", "json") != "json":
                raise Fail("invalid_parameter", "format", form["format"], "only format=json is served here.")
            return JSONResponse(get_monitors(state.world, state.creds, form, dt.datetime.now(UTC)), headers=headers)
        except Fail as fail:
            return JSONResponse({"stat": "fail", "error": fail.error}, headers=headers)

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "uptimerobot_default": {
            "conn_type": "uptimerobot",
            "host": f"{base_url}/uptimerobot/v2",
            "password": creds.uptimerobot_api_key,
            "extra": {},
        }
    }

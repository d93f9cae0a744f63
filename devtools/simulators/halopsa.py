"""HaloPSA simulator: ``/halopsa/auth/token`` and ``/halopsa/api/...``, from the demo world.

- ``POST /auth/token``: OAuth2 client credentials (form body, scope ``all``); a bad client or
  secret gets the authorisation server's ``400 {"error": "invalid_client"}``.
- ``GET /api/Tickets`` (``/api/tickets`` too: Halo's paths ignore case) with a bearer token:
  ``client_id``, ``datesearch`` (``dateoccurred``, ``datecreated``, ``dateclosed``,
  ``lastactiondate``) with ``startdate``/``enddate`` (inclusive, UTC without offset, as Halo
  writes dates), ``open_only``, ``closed_only``, ``requesttype_id``, ``order``/``orderdesc``,
  and paging only with ``pageinate=true``: ``page_no`` (1-based), ``page_size`` (default 50),
  envelope ``{"page_no", "page_size", "record_count", "tickets"}``.
- ``GET /api/Tickets/{id}``: one ticket in full (``includedetails`` accepted); 404 if unknown.
- ``GET /api/TicketType``: the instance's ticket types; change-board tickets are "Change Request".

List results are trimmed, as Halo's are: a listed ticket carries ``slaresponsestate`` but not
``slastate`` (the resolution state; the generated list model, ``TicketList``, has no such field,
and the community clients re-fetch tickets for it). Only the single-ticket read has it
(:data:`FULL_ONLY_FIELDS`). Which other fields a real list drops is UNCONFIRMED; only the
resolution state is held back here.

Each customer is a Halo client whose id is :func:`halo_client_id` of its code; priorities are
ids 1-4 (:data:`PRIORITIES` order) and the demo connection names them in extra
``priority_names``. A world ticket with ``in_sla`` false missed its response target, its
resolution target, or both (by id), so a breach shows in either field. The world is shown as
of now: tickets entered in the future do not exist yet, those closing later are still open.
An open ticket's ``dateclosed`` is Halo's ``1900-01-01T00:00:00`` placeholder. The body of a
401 on ``/api`` is UNCONFIRMED (empty here, with a ``WWW-Authenticate`` challenge).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from devtools.simulators.world import CHANGE_BOARD, PRIORITIES, CustomerWorld, Ticket
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
TOKEN_LIFETIME = 3600
TOKENS_KEY = "halopsa_tokens"  # state.extra[...]: access token -> expires at
DEFAULT_PAGE_SIZE = 50
NO_DATE = "1900-01-01T00:00:00"
TICKET_TYPES = ({"id": 1, "name": "Incident"}, {"id": 2, "name": "Problem"},
                {"id": 3, "name": "Service Request"}, {"id": 4, "name": "Change Request"})
INCIDENT_TYPE_ID, CHANGE_TYPE_ID = 1, 4
STATUSES = {"New": 1, "In Progress": 2, "Closed": 9}
DATE_COLUMNS = ("dateoccurred", "datecreated", "dateclosed", "lastactiondate")
FULL_ONLY_FIELDS = ("slastate",)  # absent from list results; GET /api/Tickets/{id} has them


def halo_client_id(code: str) -> int:
    """The customer's client id in the simulated Halo: its code read as a base-36 number
    (``ACME`` -> 482918), so distinct codes never share an id and the registry can be written
    by hand."""
    return int(code.replace("-", "").replace("_", ""), 36)


def halo_date(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _sla_states(t: Ticket, closed: dt.datetime | None) -> tuple[str, str | None]:
    """(slaresponsestate, slastate); a breach shows in the response, the resolution, or both."""
    if t.in_sla:
        return "I", "I" if closed else None
    return {0: ("O", "O"), 1: ("O", "I" if closed else None), 2: ("I", "O")}[t.id % 3]


def ticket_record(cw: CustomerWorld, t: Ticket, now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ticket as Halo lists it ``now``, and the dates the filters compare."""
    closed = t.closed if t.closed is not None and t.closed <= now else None
    status = "Closed" if closed else ("In Progress" if t.id % 4 else "New")
    priority_id = PRIORITIES.index(t.priority) + 1 if t.priority in PRIORITIES else 3
    response, resolution = _sla_states(t, closed)
    last_action = closed or t.entered + dt.timedelta(minutes=20)
    record = {
        "id": t.id,
        "summary": t.summary,
        "details": "",
        "client_id": halo_client_id(cw.code),
        "client_name": cw.profile.name,
        "site_id": halo_client_id(cw.code) * 10 + 1,
        "site_name": cw.profile.sites[0],
        "user_name": "helpdesk",
        "agent_id": 1 + t.id % 5,
        "team": "Change Advisory" if t.board == CHANGE_BOARD else "1st Line Support",
        "status_id": STATUSES[status],
        "status_name": status,
        "tickettype_id": CHANGE_TYPE_ID if t.board == CHANGE_BOARD else INCIDENT_TYPE_ID,
        "priority_id": priority_id,
        "sla_id": 1,
        "dateoccurred": halo_date(t.entered),
        "datecreated": halo_date(t.entered),
        "dateclosed": halo_date(closed) if closed else NO_DATE,
        "respondbydate": halo_date(t.entered + dt.timedelta(hours=4)),
        "slaresponsestate": response,
        "fixbydate": halo_date(t.entered + dt.timedelta(hours=24)),
        "slastate": resolution,
        "excludefromsla": False,
        "onhold": False,
        "hasbeenclosed": closed is not None,
        "lastactiondate": halo_date(last_action),
        "last_update": halo_date(last_action),
    }
    dates = {"dateoccurred": t.entered, "datecreated": t.entered, "dateclosed": closed,
             "lastactiondate": last_action}
    return record, dates


def _bad_request(message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=400)


def _oauth_error(error: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status, headers={"Cache-Control": "no-store"})


def _param_date(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip())  # ValueError -> 400 below
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _flag(params: Any, name: str) -> bool:
    return str(params.get(name, "")).lower() == "true"


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    world = state.world_view()
    with state.lock:
        tokens: dict[str, dt.datetime] = state.extra.setdefault(TOKENS_KEY, {})

    @api.post("/auth/token")
    async def token(request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type")
        if not (secrets.compare_digest(form.get("client_id", ""), state.creds.halo_client_id)
                and secrets.compare_digest(form.get("client_secret", ""), state.creds.halo_client_secret)):
            return _oauth_error("invalid_client")
        scope = form.get("scope", "")
        if not scope or any(s != "all" and not s.startswith(("read:", "edit:")) for s in scope.split()):
            return _oauth_error("invalid_scope")
        access = secrets.token_urlsafe(32)
        with state.lock:
            tokens[access] = dt.datetime.now(UTC) + dt.timedelta(seconds=TOKEN_LIFETIME)
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                             "scope": scope}, headers={"Cache-Control": "no-store"})

    def authorized(request: Request) -> Response | None:
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        with state.lock:
            expires = tokens.get(access) if scheme.lower() == "bearer" else None
        if expires is None or expires <= dt.datetime.now(UTC):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    async def tickets(request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        params = request.query_params
        now = dt.datetime.now(UTC)
        try:
            client = int(params["client_id"]) if params.get("client_id") else None
            type_id = int(params["requesttype_id"]) if params.get("requesttype_id") else None
            column = params.get("datesearch") or "dateoccurred"
            start = _param_date(params["startdate"]) if params.get("startdate") else None
            end = _param_date(params["enddate"]) if params.get("enddate") else None
            page_no = int(params.get("page_no", 1))
            page_size = int(params.get("page_size", DEFAULT_PAGE_SIZE))
        except ValueError as exc:
            return _bad_request(f"Invalid query parameter: {exc}")
        if column not in DATE_COLUMNS:
            return _bad_request(f"Invalid datesearch value '{column}'")
        if page_no < 1 or page_size < 1:
            return _bad_request("page_no and page_size must be positive")
        clients = {halo_client_id(code): cw for code, cw in world.customers.items()}  # this request's world
        customers = [clients[client]] if client in clients else [] if client is not None else clients.values()
        rows = [ticket_record(cw, t, now) for cw in customers for t in cw.tickets if t.entered <= now]
        if type_id is not None:
            rows = [r for r in rows if r[0]["tickettype_id"] == type_id]
        if _flag(params, "open_only"):
            rows = [r for r in rows if r[1]["dateclosed"] is None]
        if _flag(params, "closed_only"):
            rows = [r for r in rows if r[1]["dateclosed"] is not None]
        if start is not None or end is not None:
            rows = [r for r in rows if r[1][column] is not None
                    and (start is None or r[1][column] >= start) and (end is None or r[1][column] <= end)]
        order = params.get("order") or "id"
        key = (lambda r: r[1][order] or dt.datetime.min.replace(tzinfo=UTC)) if order in DATE_COLUMNS \
            else (lambda r: r[0]["id"])
        rows.sort(key=key, reverse=_flag(params, "orderdesc"))
        records = [{k: v for k, v in r[0].items() if k not in FULL_ONLY_FIELDS} for r in rows]
        if not _flag(params, "pageinate"):
            return JSONResponse({"record_count": len(records), "tickets": records})
        chunk = cut_short(records[(page_no - 1) * page_size: page_no * page_size], page_no > 1)
        return JSONResponse({"page_no": page_no, "page_size": page_size, "record_count": len(records),
                             "tickets": chunk})

    async def one_ticket(ticket_id: str, request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        now = dt.datetime.now(UTC)
        found = next(((cw, t) for cw in world.customers.values() for t in cw.tickets
                      if str(t.id) == ticket_id and t.entered <= now), None)
        if found is None:
            return JSONResponse({"ClassName": "HaloNotFoundException", "Message": f"Ticket {ticket_id} not found"},
                                status_code=404)
        record, _ = ticket_record(*found, now)
        return JSONResponse({**record, "sla_name": "Standard SLA", "slaexcuse": "", "slaresponseexcuse": ""})

    async def ticket_types(request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        return JSONResponse([{**t, "use": 1, "inactive": False} for t in TICKET_TYPES])

    for path in ("/api/Tickets", "/api/tickets"):
        api.add_api_route(path, tickets, methods=["GET"])
    for path in ("/api/Tickets/{ticket_id}", "/api/tickets/{ticket_id}"):
        api.add_api_route(path, one_ticket, methods=["GET"])
    for path in ("/api/TicketType", "/api/tickettype"):
        api.add_api_route(path, ticket_types, methods=["GET"])
    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "halopsa_default": {
            "conn_type": "halopsa",
            "host": f"{base_url}/halopsa",
            "login": creds.halo_client_id,
            "password": creds.halo_client_secret,
            "extra": {"priority_names": {str(n): name for n, name in enumerate(PRIORITIES, start=1)}},
        }
    }

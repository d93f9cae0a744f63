"""HaloPSA REST API: the week's tickets and executed changes of one client.

The hook signs in with OAuth2 client credentials (``POST {auth_url}/token``, scope ``all``),
keeps the token until shortly before it expires and renews it once if ``/api`` refuses it.
Every ticket list is filtered by the server on ``client_id`` and one date column
(``datesearch`` + ``startdate``/``enddate``) and paged with Halo's ``pageinate=true``,
``page_no``, ``page_size`` and ``record_count``. One customer's week costs:

- ``GET /api/TicketType`` once per hook, to find the id of the change ticket type (ref
  ``change_type``, default "Change Request");
- tickets with ``dateoccurred`` in the week (opened) and with ``dateclosed`` in the week
  (closed; the change tickets among them are the changes executed);
- for the backlog at week end: open tickets that occurred before the week's end, and tickets
  closed since the week's end (they were still open at it).

The server's date filter only narrows the download: the counting is
:mod:`msp_reports.sources.ticket_rules`' (shared with ConnectWise), on the parsed dates, so
whether Halo's ``enddate`` is inclusive does not change a number. A ticket breached its SLA
when ``slaresponsestate`` (response) or ``slastate`` (resolution) is ``"O"``; a ticket marked
``excludefromsla`` never counts as a breach.

List results are trimmed: a listed ticket carries ``slaresponsestate`` but not ``slastate``
(Halo's list model has no such field). Reading a missing resolution state as "met" would drop
every resolution-only breach, so each of the week's service tickets whose list record lacks
``slastate`` (and is not already a breach by its response, nor excluded) is read in full
(``GET /api/Tickets/{id}``), at most ``max_full_tickets`` (extra, default
:data:`DEFAULT_MAX_FULL_TICKETS`) per customer-week. More than that, or a closed ticket whose
full record still has no resolution state, makes the ticket figures unavailable (an error),
never a count that takes "unknown" for "met".

UNCONFIRMED against a live tenant, kept in the constants below: the ``datesearch`` column
names, the date format of ``startdate``/``enddate`` (UTC without offset, as Halo writes its own
dates), which fields besides ``slastate`` a list leaves out, ``1900-01-01`` standing for "no date",
and ``/api/TicketType`` answering a plain array of ``{"id", "name"}``.

Connection: ``host`` = the instance URL (``https://<tenant>.halopsa.com``; the API is under
``/api``), ``login`` = client id, ``password`` = client secret of the Halo API application;
extra ``auth_url`` (default ``{host}/auth``), ``tenant`` (hosted instances), ``scope``
(default ``all``), ``page_size``, ``priority_names`` (priority id -> name, used when a record
carries no priority name), ``max_full_tickets`` and ``timeout``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient
from msp_reports.http.oauth import ClientCredentialsTokens, with_token
from msp_reports.http.paging import numbered_pages
from msp_reports.http.timestamps import UTC, parse_instant
from msp_reports.snapshot import TicketData
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook
from msp_reports.sources.ticket_rules import NO_PRIORITY, Ticket, change_record, in_week, open_at, ticket_data

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "halopsa"
DEFAULT_SCOPE = "all"
DEFAULT_CHANGE_TYPE = "Change Request"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
OPENED_COLUMN = "dateoccurred"  # datesearch value for "opened"
CLOSED_COLUMN = "dateclosed"  # datesearch value for "closed"
NO_DATE_BEFORE = dt.datetime(1901, 1, 1, tzinfo=UTC)  # Halo writes 1900-01-01 / 1899-12-30 for "none"
BREACHED = "O"  # slaresponsestate / slastate: I = in SLA, O = out of SLA, empty = not decided
RESOLUTION_STATE = "slastate"  # only in a full ticket record, not in list results
DEFAULT_MAX_FULL_TICKETS = 300


class HaloPSAHook(SourceHook):
    """HaloPSA API as an API application with client credentials.

    :param conn_id: connection with ``host`` (instance URL), ``login`` (client id) and
        ``password`` (client secret); optional extra ``auth_url``, ``tenant``, ``scope``,
        ``page_size``, ``priority_names`` and ``timeout``.
    :param page_size: ``page_size`` to request; overrides extra ``page_size``.
    :param policy: retry policy for every request, token requests included.
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "halopsa_default"
    conn_type = "halopsa"
    hook_name = "HaloPSA"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        self._app_credentials(conn)
        return ApiClient(SYSTEM, self.base_url(conn, "/api"), headers={"Accept": "application/json"},
                         timeout=float(extra.get("timeout") or 30.0), policy=self.policy)

    def _app_credentials(self, conn: Connection) -> tuple[str, str]:
        if not conn.host or not conn.login or not conn.password:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}' needs host (the Halo instance URL), "
                                          "login (client id) and password (client secret)")
        return conn.login, conn.password

    @cached_property
    def tokens(self) -> ClientCredentialsTokens:
        conn = self.connection
        extra = conn.extra_dejson
        client_id, client_secret = self._app_credentials(conn)
        auth_url = extra.get("auth_url") or self.base_url(conn, "/auth")
        login = ApiClient(SYSTEM, auth_url, headers={"Accept": "application/json"},
                          timeout=float(extra.get("timeout") or 30.0), policy=self.policy)
        path = "/token" + (f"?tenant={quote(str(extra['tenant']), safe='')}" if extra.get("tenant") else "")
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
                "scope": extra.get("scope") or DEFAULT_SCOPE}
        return ClientCredentialsTokens(SYSTEM, login, lambda _key: (path, form), self._token_refused,
                                       clock=self.clock)

    def _token_refused(self, _key: str, exc: SourceError) -> SourceAuthError:
        match = re.search(r'"error"\s*:\s*"([a-z_]+)"', str(exc))
        code = match.group(1) if match else ""
        hint = {
            "invalid_client": "the client id or client secret is wrong: check login (client id) and password "
                              "(client secret) of connection '{conn}' against the API application in Halo",
            "invalid_scope": "the API application may not use scope '{scope}': fix extra scope of connection "
                             "'{conn}' or the application's permissions",
            "unauthorized_client": "the API application is not allowed the client credentials grant: set its "
                                   "authentication method to client id and secret",
        }.get(code, "check login (client id), password (client secret) and extra auth_url of connection '{conn}'")
        label = f"HTTP {exc.status}" + (f", {code}" if code else "")
        scope = self.connection.extra_dejson.get("scope") or DEFAULT_SCOPE
        what = hint.format(conn=self.conn_id, scope=scope)
        return SourceAuthError(SYSTEM, f"HaloPSA refused a token ({label}): {what}", status=exc.status)

    def _api_refused(self, exc: SourceAuthError) -> SourceAuthError:
        if exc.status == 403:
            what = ("the API application's agent may not read these tickets: give that agent access to the "
                    "client's tickets (scope 'all' only grants what the agent can do)")
        else:
            what = (f"HaloPSA rejected a newly issued token: check that host and extra auth_url of connection "
                    f"'{self.conn_id}' point at the same Halo instance")
        return SourceAuthError(SYSTEM, f"HTTP {exc.status}: {what}", status=exc.status)

    @property
    def request_page_size(self) -> int:
        wanted = self.page_size or self.connection.extra_dejson.get("page_size") or DEFAULT_PAGE_SIZE
        return max(1, min(MAX_PAGE_SIZE, int(wanted)))

    @property
    def priority_names(self) -> dict[int, str]:
        names = self.connection.extra_dejson.get("priority_names") or {}
        return {int(k): str(v) for k, v in names.items()}

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/api/<path>`` with the app's token; a refused cached token is renewed once."""

        def call(token: str) -> Any:
            return self.client.json("GET", path, params=params, headers={"Authorization": f"Bearer {token}"})

        return with_token(self.tokens, "", call, self._api_refused)

    def probe(self) -> str:
        return (f"HaloPSA issued a token to connection '{self.conn_id}' and listed "
                f"{len(self.ticket_types)} ticket types")

    def tickets(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every ticket matching ``params``, page by page (``record_count`` gives the page count)."""
        size = self.request_page_size
        query = {**params, "pageinate": "true", "page_size": size, "order": "id"}

        def fetch_page(page: int) -> tuple[list[Any], int]:
            return read_page(self.get("Tickets", {**query, "page_no": page}), size)

        return numbered_pages(SYSTEM, fetch_page)

    def full_ticket(self, ticket_id: int) -> dict[str, Any]:
        """One ticket as ``GET /api/Tickets/{id}`` gives it (with the fields lists leave out)."""
        body = self.get(f"Tickets/{ticket_id}", {"includedetails": "true"})
        if not isinstance(body, dict) or str(body.get("id")) != str(ticket_id):
            raise SourceResponseError(SYSTEM, f"GET /api/Tickets/{ticket_id} did not return that ticket")
        return body

    @property
    def max_full_tickets(self) -> int:
        return int(self.connection.extra_dejson.get("max_full_tickets") or DEFAULT_MAX_FULL_TICKETS)

    @cached_property
    def ticket_types(self) -> dict[str, int]:
        """Ticket type name (case-folded) -> id."""
        body = self.get("TicketType")
        if not isinstance(body, list):
            raise SourceResponseError(SYSTEM, "GET /api/TicketType did not return a JSON array")
        try:
            return {str(t["name"]).casefold(): int(t["id"]) for t in body}
        except (KeyError, TypeError, ValueError):
            raise SourceResponseError(SYSTEM, "GET /api/TicketType returned a type without name or id") from None

    def ticket_type_id(self, name: str) -> int:
        try:
            return self.ticket_types[name.casefold()]
        except KeyError:
            known = ", ".join(sorted(self.ticket_types)) or "none"
            raise SourceResponseError(SYSTEM, f"ticket type {name!r} does not exist in HaloPSA: set ref.change_type "
                                              f"to the name of the change ticket type (types: {known})") from None


HOOK = HaloPSAHook


def read_page(body: Any, page_size: int) -> tuple[list[Any], int]:
    """A page's tickets and the page count, from ``{"record_count": n, "tickets": [...]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("tickets"), list):
        raise SourceResponseError(SYSTEM, "GET /api/Tickets did not return {\"tickets\": [...]}")
    if "record_count" not in body:
        raise SourceResponseError(SYSTEM, "GET /api/Tickets with pageinate=true has no record_count")
    record_count = figures.count(SYSTEM, "GET /api/Tickets record_count", body["record_count"])
    return body["tickets"], math.ceil(record_count / page_size)


# ---- server-side filters -----------------------------------------------------------------------
def halo_time(instant: dt.datetime) -> str:
    """Halo's own date format: UTC without an offset."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def week_queries(client_id: int, week: ReportWeek) -> dict[str, dict[str, Any]]:
    """The four server-side filters of one client's week (see the module docstring)."""
    start, end = halo_time(week.start), halo_time(week.end)
    return {
        "opened": {"client_id": client_id, "datesearch": OPENED_COLUMN, "startdate": start, "enddate": end},
        "closed": {"client_id": client_id, "datesearch": CLOSED_COLUMN, "startdate": start, "enddate": end},
        "open_now": {"client_id": client_id, "open_only": "true", "datesearch": OPENED_COLUMN, "enddate": end},
        "closed_since_end": {"client_id": client_id, "closed_only": "true", "datesearch": CLOSED_COLUMN,
                             "startdate": end},
    }


# ---- pure parsing ------------------------------------------------------------------------------
def parse_date(value: Any, what: str) -> dt.datetime | None:
    """A Halo date, or ``None`` for null, empty and Halo's ``1900-01-01`` placeholder."""
    if value in (None, ""):
        return None
    try:
        instant = parse_instant(str(value))
    except ValueError:
        raise SourceResponseError(SYSTEM, f"{what} {value!r} is not an ISO-8601 date") from None
    if instant < NO_DATE_BEFORE:
        return None
    return figures.past_instant(SYSTEM, what, instant, skew=figures.OFFSET_SKEW)  # no offset on the wire


def _priority(record: Mapping[str, Any], names: Mapping[int, str]) -> str:
    embedded = record.get("priority")
    if isinstance(embedded, Mapping) and embedded.get("name"):
        return str(embedded["name"])
    try:
        priority_id = int(record["priority_id"])
    except (KeyError, TypeError, ValueError):
        return NO_PRIORITY
    return names.get(priority_id, f"Priority {priority_id}")


def sla_met(record: Mapping[str, Any]) -> bool | None:
    """``False`` if the response or resolution target was missed, ``True`` if both were met;
    ``None`` while undecided or when the ticket is excluded from SLA (``excludefromsla``)."""
    if record.get("excludefromsla") is True:
        return None
    states = [str(record.get(k) or "").strip().upper() for k in ("slaresponsestate", "slastate")]
    if BREACHED in states:
        return False
    return True if all(s == "I" for s in states) else None


def parse_ticket(record: Mapping[str, Any], priority_names: Mapping[int, str] | None = None) -> Ticket:
    """One ``/api/Tickets`` record."""
    try:
        ticket_id = int(record["id"])
    except (KeyError, TypeError, ValueError):
        raise SourceResponseError(SYSTEM, "a ticket has no numeric id") from None
    entered = parse_date(record.get(OPENED_COLUMN), f"ticket {ticket_id} {OPENED_COLUMN}")
    if entered is None:
        raise SourceResponseError(SYSTEM, f"ticket {ticket_id} has no {OPENED_COLUMN}")
    closed = parse_date(record.get(CLOSED_COLUMN), f"ticket {ticket_id} {CLOSED_COLUMN}")
    status = str(record.get("status_name") or ("Closed" if closed else f"Status {record.get('status_id', '?')}"))
    return Ticket(ticket_id, str(record.get("summary") or ""), _priority(record, priority_names or {}), status,
                  entered, closed, sla_met(record))


def needs_full_record(record: Mapping[str, Any], change_type_id: int, week: ReportWeek) -> bool:
    """A service ticket counted in the week whose breach is undecided without ``slastate``."""
    if RESOLUTION_STATE in record or is_type(record, change_type_id) or record.get("excludefromsla") is True:
        return False
    if str(record.get("slaresponsestate") or "").strip().upper() == BREACHED:
        return False  # a breach already, whatever the resolution
    ticket = parse_ticket(record)
    return in_week(ticket.entered, week) or in_week(ticket.closed, week)


def check_resolution_known(record: Mapping[str, Any]) -> None:
    """A closed ticket must say whether its resolution met the SLA: unknown is not "met"."""
    ticket = parse_ticket(record)
    if ticket.closed is not None and record.get("excludefromsla") is not True \
            and not str(record.get(RESOLUTION_STATE) or "").strip():
        raise SourceResponseError(SYSTEM, f"ticket {ticket.id} is closed but its full record has no {RESOLUTION_STATE}: "
                                          "its resolution SLA is unknown, so the SLA breaches are unavailable")


def with_full_records(hook: HaloPSAHook, records: list[dict[str, Any]], change_type_id: int,
                      week: ReportWeek) -> list[dict[str, Any]]:
    """``records`` with each one :func:`needs_full_record` replaced by the ticket in full."""
    wanted = sorted({int(r["id"]) for r in records if needs_full_record(r, change_type_id, week)})
    if len(wanted) > hook.max_full_tickets:
        raise SourceResponseError(SYSTEM, f"{len(wanted)} tickets need their full record for the resolution SLA, "
                                          f"more than max_full_tickets ({hook.max_full_tickets}): the SLA breaches "
                                          "are unavailable; raise extra max_full_tickets of the connection")
    full: dict[int, dict[str, Any]] = {}
    for ticket_id in wanted:
        full[ticket_id] = hook.full_ticket(ticket_id)
        check_resolution_known(full[ticket_id])
    return [{**r, **full.get(int(r["id"]), {})} for r in records]


def is_type(record: Mapping[str, Any], ticket_type_id: int) -> bool:
    try:
        return int(record.get("tickettype_id")) == ticket_type_id
    except (TypeError, ValueError):
        return False


def week_tickets(
    touched: Iterable[Mapping[str, Any]],
    backlog_candidates: Iterable[Mapping[str, Any]],
    change_type_id: int,
    week: ReportWeek,
    priority_names: Mapping[int, str] | None = None,
) -> TicketData:
    """The week from Halo records.

    :param touched: tickets opened or closed in the week (change tickets included).
    :param backlog_candidates: tickets that may have been open at week end.
    :param change_type_id: the ticket type whose tickets are changes, not service tickets.
    """
    service: dict[int, Ticket] = {}
    changes: dict[int, Ticket] = {}
    for record in touched:
        ticket = parse_ticket(record, priority_names)
        (changes if is_type(record, change_type_id) else service)[ticket.id] = ticket
    backlog: set[int] = set()
    for record in backlog_candidates:
        ticket = parse_ticket(record, priority_names)
        if not is_type(record, change_type_id) and open_at(ticket, week.end):
            backlog.add(ticket.id)
    executed = [change_record(t, SYSTEM) for t in changes.values() if in_week(t.closed, week)]
    return ticket_data(service.values(), week, len(backlog), executed)


def newest_date(records: Iterable[Mapping[str, Any]], before: dt.datetime) -> dt.datetime | None:
    """The newest opened/closed date at or before ``before``: the data's as-of."""
    stamps = [parse_date(r.get(column), column) for r in records for column in (OPENED_COLUMN, CLOSED_COLUMN)]
    stamps = [s for s in stamps if s is not None and s <= before]
    return max(stamps, default=None)


# ---- extract -----------------------------------------------------------------------------------
def client_id_of(ref: Mapping[str, str]) -> int:
    try:
        return int(str(ref.get("client_id", "")).strip())
    except ValueError:
        raise SourceError(SYSTEM, f"ref.client_id {ref.get('client_id')!r} is not a number: set it to the "
                                  "client's numeric id in HaloPSA") from None


def extract(hook: HaloPSAHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """One client's ticket week: opened, closed, the backlog candidates, and the change type."""
    client_id = client_id_of(ref)
    change_type_id = hook.ticket_type_id(ref.get("change_type") or DEFAULT_CHANGE_TYPE)
    queries = week_queries(client_id, week)
    touched = hook.tickets(queries["opened"]) + hook.tickets(queries["closed"])
    touched = with_full_records(hook, touched, change_type_id, week)
    candidates = hook.tickets(queries["open_now"]) + hook.tickets(queries["closed_since_end"])
    data = week_tickets(touched, candidates, change_type_id, week, hook.priority_names)
    return Extracted(data, as_of=newest_date(touched, week.end))

"""ConnectWise PSA (Manage) REST API: the week's service tickets and executed changes.

Everything is filtered by the server through ``conditions`` (customer, board, dates), so one
customer's week costs three or four requests whatever the size of the PSA:

- one paged list of the customer's service tickets **entered or closed** in the week (every
  board except the change board), giving ``opened``, ``closed``, ``sla_breaches`` and the
  per-priority split;
- ``/service/tickets/count`` for ``backlog_end``: service tickets entered before the week's end
  and not closed by then (still open, or closed at or after the end);
- one paged list of change-board tickets closed in the week: the changes executed.

The definitions are :mod:`msp_reports.sources.ticket_rules`' (shared with HaloPSA): ``opened``
counts tickets entered in ``[start, end)``, ``closed`` those with ``closedDate`` in it; a breach
is a ticket entered or closed in the week with ``isInSla = false``, counted once. Changes are
tracked as tickets on a "Change Management" board (ref ``change_board`` overrides the name).

Connection: ``host`` is the API root up to ``/apis/3.0``; ``login`` is
``<companyId>+<publicKey>``, ``password`` the private key, extra ``client_id`` the registered
clientId; extra ``page_size`` (default and maximum 1000) exists so tests can force paging.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from requests.auth import HTTPBasicAuth

from msp_reports.exceptions import SourceAuthError, SourceResponseError
from msp_reports.http.client import ApiClient
from msp_reports.http.paging import numbered_pages
from msp_reports.http.timestamps import iso_z, parse_instant
from msp_reports.snapshot import ChangeRecord
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook
from msp_reports.sources.ticket_rules import NO_PRIORITY, Ticket, change_record, ticket_data

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

log = logging.getLogger(__name__)

SYSTEM = "connectwise"
ACCEPT = "application/vnd.connectwise.com+json; version=2022.1"
DEFAULT_CHANGE_BOARD = "Change Management"
MAX_PAGE_SIZE = 1000
TICKET_FIELDS = "id,summary,board/name,priority/name,status/name,closedFlag,closedDate,isInSla,_info/dateEntered"
CHANGE_FIELDS = "id,summary,board/name,status/name,closedFlag,closedDate,_info/dateEntered"


class ConnectWiseHook(SourceHook):
    """ConnectWise PSA REST API with API-member keys.

    :param conn_id: connection with ``host`` (API root up to ``/apis/3.0``), ``login``
        (``<companyId>+<publicKey>``), ``password`` (private key) and extra ``client_id``;
        optional extra ``page_size`` and ``timeout``.
    :param policy: retry policy for HTTP errors and 429s.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "connectwise_default"
    conn_type = "connectwise"
    hook_name = "ConnectWise PSA"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        client_id = extra.get("client_id")
        if not client_id:
            raise SourceAuthError(SYSTEM, f"connection {self.conn_id!r}: extra client_id is missing; "
                                          "set it to the clientId registered for this integration")
        if not conn.login or "+" not in conn.login or not conn.password:
            raise SourceAuthError(SYSTEM, f"connection {self.conn_id!r}: login must be "
                                          "'<companyId>+<publicKey>' and password the private key")
        return ApiClient(
            SYSTEM, self.base_url(conn),
            headers={"clientId": str(client_id), "Accept": ACCEPT},
            auth=HTTPBasicAuth(conn.login, conn.password),
            timeout=float(extra.get("timeout", 30.0)),
            policy=self.policy,
        )

    @property
    def request_page_size(self) -> int:
        wanted = self.page_size or self.connection.extra_dejson.get("page_size", MAX_PAGE_SIZE)
        return max(1, min(MAX_PAGE_SIZE, int(wanted)))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET with the shared retries; a 401/403 names what to check in the connection."""
        client = self.client
        try:
            return client.request("GET", path, params=params)
        except SourceAuthError as exc:
            raise SourceAuthError(
                SYSTEM, f"connection {self.conn_id!r} was refused (HTTP {exc.status}): check that login is "
                        "'<companyId>+<publicKey>', password is the private key, extra client_id is the "
                        "registered clientId, and the API member may read service tickets",
                status=exc.status,
            ) from None

    def probe(self) -> str:
        self.get("/service/tickets", {"fields": "id", "pageSize": 1})
        return f"ConnectWise accepted the API member keys of connection '{self.conn_id}' and listed service tickets"

    def records(self, path: str, conditions: str, fields: str) -> list[dict[str, Any]]:
        """Every record matching ``conditions``; another page exists while ``Link`` has ``rel="next"``."""
        params = {"conditions": conditions, "fields": fields, "orderBy": "id asc", "pageSize": self.request_page_size}

        def fetch_page(page: int) -> tuple[list[Any], int]:
            response = self.get(path, {**params, "page": page})
            items = _json(response)
            if not isinstance(items, list):
                raise SourceResponseError(SYSTEM, f"GET {path} did not return a JSON array")
            if page > 1 and not items:  # only a Link rel="next" leads here: that page had to hold records
                raise SourceResponseError(SYSTEM, f"GET {path} page {page}, announced by the previous page, "
                                                  "came back empty; the listing was cut short")
            return items, page + 1 if items and "next" in response.links else page

        return numbered_pages(SYSTEM, fetch_page)

    def count(self, path: str, conditions: str) -> int:
        body = _json(self.get(path, {"conditions": conditions}))
        if not isinstance(body, dict) or "count" not in body:
            raise SourceResponseError(SYSTEM, f"GET {path} did not return {{\"count\": n}}")
        return figures.count(SYSTEM, f"GET {path} count", body["count"])


HOOK = ConnectWiseHook


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SourceResponseError(SYSTEM, f"GET {response.url.split('?', 1)[0]} returned a body that is not JSON") from None


# ---- conditions --------------------------------------------------------------------------------
def quoted(value: str) -> str:
    """A string literal for ``conditions``; a quote in it could change the query, so refuse it."""
    if '"' in value or "\\" in value:
        raise SourceResponseError(SYSTEM, f"{value!r} contains a quote or backslash; fix the identifier in the registry")
    return f'"{value}"'


def when(instant: dt.datetime) -> str:
    return f"[{iso_z(instant)}]"


def week_conditions(company: str, change_board: str, week: ReportWeek) -> dict[str, str]:
    """The three server-side filters of one customer's week."""
    who = f"company/identifier={quoted(company)}"
    service = f"{who} and board/name!={quoted(change_board)}"
    start, end = when(week.start), when(week.end)
    return {
        "tickets": f"{service} and ((dateEntered>={start} and dateEntered<{end}) or "
                   f"(closedFlag=true and closedDate>={start} and closedDate<{end}))",
        "backlog": f"{service} and dateEntered<{end} and (closedFlag=false or closedDate>={end})",
        "changes": f"{who} and board/name={quoted(change_board)} and closedFlag=true and "
                   f"closedDate>={start} and closedDate<{end}",
    }


# ---- pure parsing ------------------------------------------------------------------------------
def parse_date(value: Any, what: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    try:
        instant = parse_instant(str(value))
    except ValueError:
        raise SourceResponseError(SYSTEM, f"{what} {value!r} is not an ISO-8601 date") from None
    return figures.past_instant(SYSTEM, what, instant)


def _name(record: Mapping[str, Any], key: str) -> str:
    ref = record.get(key)
    return str(ref.get("name", "")) if isinstance(ref, Mapping) else ""


def parse_ticket(record: Mapping[str, Any]) -> Ticket:
    """One ``/service/tickets`` record; ``dateEntered`` lives under ``_info``."""
    try:
        ticket_id = int(record["id"])
    except (KeyError, TypeError, ValueError):
        raise SourceResponseError(SYSTEM, "a ticket has no numeric id") from None
    entered = parse_date((record.get("_info") or {}).get("dateEntered"), f"ticket {ticket_id} dateEntered")
    if entered is None:
        raise SourceResponseError(SYSTEM, f"ticket {ticket_id} has no _info.dateEntered")
    closed = parse_date(record.get("closedDate"), f"ticket {ticket_id} closedDate") if record.get("closedFlag") else None
    in_sla = record.get("isInSla")
    return Ticket(ticket_id, str(record.get("summary", "")), _name(record, "priority") or NO_PRIORITY,
                  _name(record, "status"), entered, closed, in_sla if isinstance(in_sla, bool) else None)


def parse_change(record: Mapping[str, Any]) -> ChangeRecord:
    return change_record(parse_ticket(record), SYSTEM)


# ---- extract -----------------------------------------------------------------------------------
def extract(hook: ConnectWiseHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """One company's ticket week: a paged list, a count, and the change board."""
    conditions = week_conditions(ref["company"], ref.get("change_board") or DEFAULT_CHANGE_BOARD, week)
    tickets = [parse_ticket(r) for r in hook.records("service/tickets", conditions["tickets"], TICKET_FIELDS)]
    backlog = hook.count("service/tickets/count", conditions["backlog"])
    changes = [parse_change(r) for r in hook.records("service/tickets", conditions["changes"], CHANGE_FIELDS)]
    stamps = [d for t in tickets for d in (t.entered, t.closed) if d is not None]
    stamps += [c.executed_at for c in changes if c.executed_at is not None]
    return Extracted(ticket_data(tickets, week, backlog, changes), as_of=max(stamps, default=None))

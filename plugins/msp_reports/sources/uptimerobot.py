"""UptimeRobot (v2 API): availability of a customer's public sites over the week.

The model of a generic status-check source: one account of monitors, each with an uptime ratio
for any window and a log of down/up events.

Which monitors are the customer's. UptimeRobot has no customer concept, so two ways were open:

- one connection (one account, or one key) per customer, picked with the registry's
  ``conn_id``. An MSP normally runs one account for every customer, and a key per customer is
  one more secret per customer to create and rotate;
- a naming convention, chosen here: monitors are named ``"<LABEL>: <what>"`` (for example
  ``"ACME: www.acme.example"``) and ``ref.monitor_prefix`` is ``"ACME:"`` (or ``"ACME"``, the same
  label). getMonitors' ``search`` narrows the list on the server, but it matches anywhere in the
  URL or the name, so each monitor is checked again here: the text before its first ``:`` must be
  the whole label, compared by the registry's identity rule (:mod:`msp_reports.identity`), so
  ``ACME`` takes neither ``ACMEX: ...`` nor ``ACME-EU: ...`` nor ``ACME EU: ...``, and the registry
  gives a label to one customer only. The report shows the name without the label.

Figures, for ``[week.start, week.end)`` in Unix seconds:

- ``availability_pct`` = ``custom_uptime_ranges=<start>_<end>``: UptimeRobot's own ratio for
  exactly that window (a string, read as a float), not a rolling "last 7 days";
- ``downtime_minutes`` = down logs (type 1), each ``[datetime, datetime + duration)`` clipped to
  the week. The logs window (``logs_start_date`` / ``logs_end_date``) filters on a log's start,
  so it opens ``LOG_LOOKBACK`` before the week to catch an outage that began before Monday and
  ran into it; one longer than that is counted from the lookback's start;
- ``status_now`` from ``status``: 0 paused, 1 not checked yet, 2 up, 8 seems down, 9 down.

Wire: a form POST (``application/x-www-form-urlencoded``) with ``api_key`` in the body, never
in the URL, and never logged. An invalid-key error echoes the key back (``passed_value``), so
API error text is never copied into a message, and every error is scrubbed of the key.
Paging: ``offset`` / ``limit`` (at most 50, always sent: 50 unless a page size is given) with
``pagination.total``. Rate limit: the FREE plan allows 10 requests a minute per key; a customer
with up to 50 monitors costs one request, so the demo's six customers fit in one minute. The
answers' ``X-RateLimit-*`` headers (pacing) and a 429's ``Retry-After`` are honoured by the
shared :class:`~msp_reports.http.client.ApiClient`. getMonitors reports no poll time,
so ``as_of`` is ``None``.

UNCONFIRMED (not in the reference, or marked so there): errors arrive with HTTP 200
(``stat: "fail"``); ``log_types`` filters logs on the server; the logs window filters on a log's
start; log retention is plan dependent, so a re-run of an old week may find fewer logs (the
availability figure does not depend on them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient
from msp_reports.http.paging import offset_pages
from msp_reports.http.timestamps import parse_instant
from msp_reports.identity import LABEL_SEPARATOR, label_key, label_of, unlabelled
from msp_reports.snapshot import SiteCheck, SiteData
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "uptimerobot"
DEFAULT_BASE_URL = "https://api.uptimerobot.com/v2"
MAX_LIMIT = 50
LOG_LOOKBACK = dt.timedelta(days=7)
DOWN_LOG = 1
STATUS_TEXT = {0: "paused", 1: "not checked yet", 2: "up", 8: "seems down", 9: "down"}
KEY_PARAMETERS = ("api_key",)  # an error about these is a credentials problem
FIX_KEY = "put the account's read-only API key (UptimeRobot: Integrations & API) in the connection's password"


class UptimeRobotHook(SourceHook):
    """UptimeRobot API v2 with an account's read-only API key.

    Connection: ``host`` = API root (default ``https://api.uptimerobot.com/v2``), ``password`` =
    API key (the read-only key is enough: only getMonitors is called).

    :param conn_id: the Airflow connection id (default ``uptimerobot_default``).
    :param page_size: ``limit`` per page (at most 50); ``None`` asks for 50.
    :param policy: retry policy for every request.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "uptimerobot_default"
    conn_type = "uptimerobot"
    hook_name = "UptimeRobot"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        if not conn.password:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}' needs the UptimeRobot API key as password")
        base = self.base_url(conn) if conn.host else DEFAULT_BASE_URL
        return ApiClient(SYSTEM, base, headers={"Accept": "application/json", "Cache-Control": "no-cache"},
                         timeout=float(extra.get("timeout", 30.0)), policy=self.policy)

    def call(self, method: str, form: Mapping[str, Any]) -> dict[str, Any]:
        """POST one v2 method; errors carry neither the key nor the API's echo of it."""
        key = self.connection.password or ""
        try:
            body = self.client.json("POST", f"/{method}", data={"api_key": key, "format": "json", **form})
        except SourceError as exc:
            text = str(exc).split(": ", 1)[-1]
            text = text.replace(key, "***") if key else text
            if isinstance(exc, SourceAuthError):
                raise SourceAuthError(SYSTEM, f"UptimeRobot refused the API key of connection '{self.conn_id}' "
                                              f"(HTTP {exc.status}); {FIX_KEY}", status=exc.status) from None
            if isinstance(exc, SourceResponseError) and exc.status is not None:
                text = f"HTTP {exc.status} from POST /{method}"  # the body may echo the key back
            raise type(exc)(SYSTEM, text, status=exc.status) from None
        try:
            return read_envelope(body, method)
        except SourceAuthError as exc:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}': {str(exc).split(': ', 1)[-1]}; {FIX_KEY}",
                                  status=exc.status) from None

    def probe(self) -> str:
        total = read_page(self.call("getMonitors", {"limit": 1}))[1]
        return f"UptimeRobot accepted the API key of connection '{self.conn_id}'; {total} monitors visible"

    def monitors(self, prefix: str, week: ReportWeek) -> list[dict[str, Any]]:
        """Monitors matching ``search=prefix``, with the week's ratio and down logs, all pages."""
        start, end = int(week.start.timestamp()), int(week.end.timestamp())
        form = {
            "search": prefix,
            "custom_uptime_ranges": f"{start}_{end}",
            "logs": 1,
            "log_types": DOWN_LOG,
            "logs_start_date": int((week.start - LOG_LOOKBACK).timestamp()),
            "logs_end_date": end,
        }
        limit = min(self.page_size or MAX_LIMIT, MAX_LIMIT)
        form["limit"] = limit

        def fetch(offset: int) -> tuple[list[Any], int | None]:
            return read_page(self.call("getMonitors", {**form, "offset": offset}))

        return offset_pages(SYSTEM, fetch, limit)


HOOK = UptimeRobotHook


# --- wire -> model (pure) ------------------------------------------------------------------
def read_envelope(body: Any, method: str = "getMonitors") -> dict[str, Any]:
    """The body of a ``stat: ok`` answer; ``stat: fail`` is an error (without ``passed_value``)."""
    if not isinstance(body, dict) or "stat" not in body:
        raise SourceResponseError(SYSTEM, f"{method} did not answer with an UptimeRobot envelope")
    if body["stat"] == "ok":
        return body
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind, parameter = str(error.get("type") or "unknown"), str(error.get("parameter_name") or "")
    detail = f"{kind}" + (f" ({parameter})" if parameter else "")
    message = str(error.get("message") or "")
    if parameter in KEY_PARAMETERS:
        raise SourceAuthError(SYSTEM, f"{method} refused the API key: {detail}")
    raise SourceResponseError(SYSTEM, f"{method} failed: {detail}" + (f": {message}" if message else ""))


def read_page(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Monitors of one page and the total behind all pages, from ``pagination``."""
    monitors = body.get("monitors")
    if not isinstance(monitors, list):
        raise SourceResponseError(SYSTEM, "getMonitors answer has no monitors list")
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):  # an unpaged answer is all there is
        return monitors, len(monitors)
    try:
        return monitors, int(pagination["total"])
    except (KeyError, TypeError, ValueError):
        raise SourceResponseError(SYSTEM, "getMonitors pagination has no usable total") from None


def belongs_to(friendly_name: str, prefix: str) -> bool:
    """The monitor's label (the text before its first ``:``) is the customer's whole prefix."""
    return label_of(friendly_name) == label_key(prefix)


def uptime_ratio(value: Any) -> float | None:
    """The first of ``custom_uptime_ranges`` ("99.982", several joined by "-"); ``None`` if absent."""
    if value in (None, ""):
        return None
    first = value.split("-", 1)[0] if isinstance(value, str) else value
    what = "custom_uptime_ranges" if first == value else f"the first ratio of custom_uptime_ranges {value!r}"
    return figures.percentage(SYSTEM, what, first)


def down_minutes(logs: Iterable[Mapping[str, Any]], week: ReportWeek) -> float:
    """Minutes of down logs (type 1) inside the week; overlapping logs count once."""
    spans = []
    for log in logs:
        if str(log.get("type")) != str(DOWN_LOG):
            continue
        if "datetime" not in log:
            raise SourceResponseError(SYSTEM, "a down log has no datetime")
        start = parse_instant(figures.non_negative(SYSTEM, "down log datetime", log["datetime"]))
        duration = figures.non_negative(SYSTEM, "down log duration", log.get("duration") or 0)
        end = start + dt.timedelta(seconds=duration)
        lo, hi = max(start, week.start), min(end, week.end)
        if hi > lo:
            spans.append((lo, hi))
    total, reach = 0.0, week.start
    for lo, hi in sorted(spans):
        lo = max(lo, reach)
        if hi > lo:
            total += (hi - lo).total_seconds()
            reach = hi
    return round(total / 60, 2)


def status_text(code: Any) -> str:
    try:
        return STATUS_TEXT.get(int(code), f"status {code}")
    except (TypeError, ValueError):
        return "unknown"


def parse_site_checks(monitors: Iterable[Mapping[str, Any]], prefix: str, week: ReportWeek) -> SiteData:
    """The customer's monitors (labelled with its prefix) as :class:`SiteCheck`, sorted by name."""
    checks = []
    for monitor in monitors:
        name = str(monitor.get("friendly_name") or "")
        if not belongs_to(name, prefix):
            continue
        checks.append(SiteCheck(
            name=unlabelled(name),
            address=str(monitor.get("url") or ""),
            availability_pct=uptime_ratio(monitor.get("custom_uptime_ranges")),
            downtime_minutes=down_minutes(monitor.get("logs") or [], week),
            status_now=status_text(monitor.get("status")),
            source=SYSTEM,
        ))
    return SiteData(checks=sorted(checks, key=lambda c: c.name))


# --- extract ------------------------------------------------------------------------------
def extract(hook: UptimeRobotHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """The monitors named with ``ref.monitor_prefix``: the week's ratio and downtime."""
    prefix = (ref.get("monitor_prefix") or "").strip()
    try:
        label_key(prefix)
    except ValueError as exc:
        raise SourceError(SYSTEM, f"ref.monitor_prefix {prefix!r} {exc}") from None
    # getMonitors' search matches text anywhere: the label as written finds "golf: www" for "golf :"
    search = prefix.removesuffix(LABEL_SEPARATOR).strip()
    data = parse_site_checks(hook.monitors(search, week), prefix, week)
    if not data.checks:
        raise SourceResponseError(SYSTEM, f"no monitor is named '{prefix} ...'; name the customer's monitors "
                                          "with that prefix or fix ref.monitor_prefix in the registry")
    return Extracted(data, as_of=None)

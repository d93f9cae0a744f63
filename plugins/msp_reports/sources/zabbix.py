"""Zabbix: weekly uptime per site and device class, from business services and daily SLAs.

Deployment convention this module relies on (Zabbix has no native "uptime per site"):

- every business service of a customer carries the tags ``customer=<CODE>``, ``site=<site>`` and
  ``class=<device class>`` (one service per site x class, fed by the problems of its hosts);
- each customer has one **daily** SLA (``period=0``) per SLO value, in the customer's own
  timezone, that selects its services by service tags, e.g. ``customer=ACME`` and
  ``class=Servers`` / ``class=Network`` for the 99.9 % SLA and ``customer=ACME`` and
  ``class=Firewalls`` for the 99.5 % one. A Zabbix SLA has one SLO, so the per-class SLO comes
  from which SLA a service belongs to;
- monitored hosts carry the same three tags, so one ``host.get`` counts the devices behind each
  row (optional: rows without tagged hosts get ``devices=None``).

Why daily slices: a weekly SLA's periods run Sunday to Sunday, while a Monday-to-Monday week in
the customer's timezone is exactly seven daily slices of an SLA in that timezone (a DST week is
167 or 169 hours, and so are its slices). Slices that spill out of the week mean the SLA's
timezone is not the customer's; that is refused rather than reported. ``period_to`` is inclusive on real
servers, so the hook asks up to one second before the week's end. Uptime is re-aggregated as
``sum(uptime) / (sum(uptime) + sum(downtime))``; a slice with ``sli == -1`` (before the service
existed) carries no data and is left out, and a row with no data at all reports ``None``.

Auth follows ``zabbix_utils``: ``apiinfo.version`` without auth, then ``user.login`` with
``username``; from 6.4 the session goes in an ``Authorization: Bearer`` header, before 6.4 in
the body's ``auth`` member. An API token in the connection's extra (``api_token``) skips the
login. The connection's ``host`` is the ``api_jsonrpc.php`` URL or the frontend's base URL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.snapshot import UptimeData, UptimeRow
from msp_reports.sources import Extracted
from msp_reports.sources.base import SourceHook
from msp_reports.sources.http import ApiClient
from msp_reports.sources.timestamps import parse_instant

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

log = logging.getLogger(__name__)

SYSTEM = "zabbix"
UTC = dt.timezone.utc

CUSTOMER_TAG = "customer"
SITE_TAG = "site"
CLASS_TAG = "class"
DAILY = 0  # sla.period: 0 daily, 1 weekly, 2 monthly, ...
TAG_EQUALS = 1  # tag filter operator: 0 contains, 1 equals
BEARER_FROM = (6, 4)  # the version that moved the session from the body to the header
# Messages Zabbix puts in an error's ``data`` when the session or the login is refused.
AUTH_ERRORS = ("not authorized", "session terminated", "incorrect user name or password",
               "login name or password is incorrect", "api token expired", "account is blocked")
UNCLASSIFIED = "Unclassified"


@dataclass(frozen=True)
class ServiceInfo:
    """A customer's business service, as its tags describe it."""

    serviceid: int
    name: str
    site: str
    device_class: str


@dataclass(frozen=True)
class Sli:
    """One service's week, summed over the daily slices that had data."""

    uptime: int = 0
    downtime: int = 0

    @property
    def has_data(self) -> bool:
        return self.uptime + self.downtime > 0


class ZabbixHook(SourceHook):
    """Zabbix JSON-RPC API, logged in once per hook.

    :param conn_id: connection with ``host`` (URL of ``api_jsonrpc.php`` or of the frontend),
        ``login`` and ``password``; or extra ``api_token``. Extra ``timeout`` (seconds) optional.
    :param policy: retry policy for HTTP errors and 429s.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "zabbix_default"
    conn_type = "zabbix"
    hook_name = "Zabbix"
    system = SYSTEM

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(conn_id, **kwargs)
        self._ids = itertools.count(1)
        self._token: str | None = None
        self._logged_in = False
        self._version: tuple[int, int] | None = None

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        url = self.base_url(conn)
        if not url.endswith(".php"):
            url += "/api_jsonrpc.php"
        return ApiClient(
            SYSTEM, url,
            headers={"Content-Type": "application/json-rpc", "Accept": "application/json"},
            timeout=float(extra.get("timeout", 30.0)),
            policy=self.policy,
        )

    # ---- JSON-RPC
    def rpc(self, method: str, params: Mapping[str, Any] | list[Any], *, auth: bool = True) -> Any:
        """Call one method; return its ``result`` or raise on the JSON-RPC ``error`` member."""
        client = self.client
        if auth:
            self.login()
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": next(self._ids)}
        if auth and self._version is not None and self._version < BEARER_FROM:
            body["auth"] = self._token
        reply = client.json("POST", client.base_url, data=json.dumps(body))
        return read_reply(reply, method, body["id"])

    def version(self) -> tuple[int, int]:
        if self._version is None:
            text = self.rpc("apiinfo.version", {}, auth=False)
            self._version = parse_version(text)
        return self._version

    def login(self) -> None:
        """Get a session once: the extra's API token, or ``user.login`` with the connection."""
        if self._token is not None:
            return
        version = self.version()
        conn = self.connection
        token = conn.extra_dejson.get("api_token")
        if not token:
            if not conn.login or not conn.password:
                raise SourceAuthError(SYSTEM, f"connection {self.conn_id!r} has no login/password "
                                              "and no extra api_token")
            key = "username" if version >= (5, 4) else "user"
            try:
                token = self.rpc("user.login", {key: conn.login, "password": conn.password}, auth=False)
            except SourceAuthError as exc:
                raise SourceAuthError(
                    SYSTEM, f"connection {self.conn_id!r}: Zabbix refused the login ({_reason(exc)}); "
                            "check the connection's login and password", status=exc.status,
                ) from None
            if not isinstance(token, str):
                raise SourceResponseError(SYSTEM, "user.login did not return a session id")
            self._logged_in = True
        self._token = token
        if version >= BEARER_FROM:
            self.client.session.headers["Authorization"] = f"Bearer {token}"

    def logout(self) -> None:
        """End a session this hook opened, so weekly runs do not pile sessions up on the server."""
        if not self._logged_in:
            return
        try:
            self.rpc("user.logout", [])
        except SourceError as exc:  # the data is already in hand; a failed logout is not fatal
            log.warning("zabbix: user.logout failed: %s", exc)
        finally:
            self._logged_in = False
            self._token = None
            self.client.session.headers.pop("Authorization", None)


HOOK = ZabbixHook


# ---- pure parsing -----------------------------------------------------------------------------
def read_reply(reply: Any, method: str, request_id: int | str) -> Any:
    """The ``result`` of a JSON-RPC reply; errors arrive with HTTP 200, in the ``error`` member."""
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
        raise SourceResponseError(SYSTEM, f"{method}: reply is not a JSON-RPC 2.0 object")
    if "error" in reply:
        error = reply["error"] if isinstance(reply["error"], dict) else {}
        code, message, data = error.get("code"), error.get("message", ""), error.get("data", "")
        text = f"{method}: error {code} {message} {data}".strip()
        if any(marker in str(data).lower() for marker in AUTH_ERRORS):
            raise SourceAuthError(SYSTEM, text)
        raise SourceResponseError(SYSTEM, text)
    if "result" not in reply:
        raise SourceResponseError(SYSTEM, f"{method}: reply has neither result nor error")
    if reply.get("id") != request_id:
        raise SourceResponseError(SYSTEM, f"{method}: reply id {reply.get('id')!r} is not {request_id!r}")
    return reply["result"]


def parse_version(text: Any) -> tuple[int, int]:
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        raise SourceResponseError(SYSTEM, f"apiinfo.version returned {text!r}, not a version") from None


def _tags(record: Mapping[str, Any]) -> dict[str, str]:
    return {t["tag"]: t.get("value", "") for t in record.get("tags") or [] if "tag" in t}


def parse_services(records: Iterable[Mapping[str, Any]]) -> dict[int, ServiceInfo]:
    """``service.get`` records (with ``selectTags``) by service id.

    A service without a ``site`` tag is reported under its name and one without ``class`` as
    "Unclassified", so a tagging slip shows up in the report instead of dropping the row.
    """
    services: dict[int, ServiceInfo] = {}
    for record in records:
        try:
            serviceid = int(record["serviceid"])
        except (KeyError, TypeError, ValueError):
            raise SourceResponseError(SYSTEM, "service.get returned a service without a serviceid") from None
        tags = _tags(record)
        name = str(record.get("name", serviceid))
        services[serviceid] = ServiceInfo(serviceid, name, tags.get(SITE_TAG) or name,
                                          tags.get(CLASS_TAG) or UNCLASSIFIED)
    return services


def daily_slas(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The enabled daily SLAs among ``sla.get`` records, ordered by id (first one wins a service)."""
    slas = [r for r in records if str(r.get("period")) == str(DAILY) and str(r.get("status", "1")) == "1"]
    return sorted(slas, key=lambda r: int(r["slaid"]))


def parse_sli(result: Mapping[str, Any]) -> tuple[dict[int, Sli], list[tuple[int, int]]]:
    """Sum ``sla.getsli`` slices per service; also return the periods.

    ``serviceids`` come back in no particular order (as ints on real servers, strings accepted),
    and ``sli[period][i]`` belongs to ``serviceids[i]``, so services are matched by position.
    """
    try:
        ids = [int(s) for s in result["serviceids"]]
        periods = [(int(p["period_from"]), int(p["period_to"])) for p in result["periods"]]
        grid = result["sli"]
        if len(grid) != len(periods) or any(len(row) != len(ids) for row in grid):
            raise ValueError("sli is not periods x serviceids")
        totals = {sid: [0, 0] for sid in ids}
        for row in grid:
            for sid, cell in zip(ids, row):
                if float(cell["sli"]) < 0:  # no data: before the service existed
                    continue
                totals[sid][0] += int(cell["uptime"])
                totals[sid][1] += int(cell["downtime"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceResponseError(SYSTEM, f"sla.getsli result is malformed: {exc}") from None
    return {sid: Sli(up, down) for sid, (up, down) in totals.items()}, periods


def count_devices(hosts: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """Hosts per (site, class), from ``host.get`` records with ``selectTags``."""
    counts: Counter[tuple[str, str]] = Counter()
    for host in hosts:
        tags = _tags(host)
        if SITE_TAG in tags and CLASS_TAG in tags:
            counts[(tags[SITE_TAG], tags[CLASS_TAG])] += 1
    return counts


def uptime_row(service: ServiceInfo, sli: Sli, slo_pct: float, devices: int | None) -> UptimeRow:
    pct = round(sli.uptime / (sli.uptime + sli.downtime) * 100, 3) if sli.has_data else None
    return UptimeRow(site=service.site, device_class=service.device_class, uptime_pct=pct,
                     downtime_minutes=round(sli.downtime / 60, 2), slo_pct=slo_pct,
                     devices=devices, source=SYSTEM)


def check_periods(periods: Iterable[tuple[int, int]], week: ReportWeek, sla_name: str) -> None:
    """Refuse slices that spill out of the week: the SLA's timezone is not the customer's."""
    lo, hi = week.start.timestamp(), week.end.timestamp()
    for start, end in periods:
        if start < lo or end > hi:
            raise SourceResponseError(
                SYSTEM, f"SLA {sla_name!r} has a daily slice {_iso(start)}..{_iso(end)} outside the week "
                        f"{week.label()} ({week.timezone}); set the SLA's timezone to {week.timezone}")


def check_complete(periods: list[tuple[int, int]], week: ReportWeek, sla_name: str,
                   now: dt.datetime | None = None) -> None:
    """Refuse slices that stop before the end of a finished week: the answer was cut short.

    Missing slices at the start are normal (an SLA made during the week has none before it);
    missing ones at the end, once the week is over, would report a shorter week as the whole."""
    if not periods or week.end > (now or dt.datetime.now(UTC)):
        return
    last = max(end for _, end in periods)
    if last < week.end.timestamp() - 1:
        raise SourceResponseError(
            SYSTEM, f"SLA {sla_name!r}: sla.getsli slices stop at {_iso(last)}, before the end of the week "
                    f"{week.label()}; the answer was cut short")


def _iso(ts: int) -> str:
    return parse_instant(ts).isoformat()


def _reason(exc: SourceError) -> str:
    return str(exc).split(": ", 1)[-1]


# ---- extract -----------------------------------------------------------------------------------
def extract(hook: ZabbixHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """One customer's uptime rows for ``week``: services by tag, their daily SLAs, the SLI."""
    code = ref["service_tag"]
    customer = [{"tag": CUSTOMER_TAG, "value": code, "operator": TAG_EQUALS}]
    try:
        services = parse_services(hook.rpc("service.get", {
            "output": ["serviceid", "name"], "tags": customer, "selectTags": ["tag", "value"],
        }))
        if not services:
            raise SourceResponseError(SYSTEM, f"no business service is tagged {CUSTOMER_TAG}={code}; "
                                              "tag the customer's services or fix service_tag in the registry")
        slas = daily_slas(hook.rpc("sla.get", {"serviceids": sorted(services), "output": "extend"}))
        devices = count_devices(hook.rpc("host.get", {
            "output": ["hostid"], "tags": customer, "selectTags": ["tag", "value"], "filter": {"status": "0"},
        }))
        totals: dict[int, Sli] = {}
        slo: dict[int, float] = {}
        newest: int | None = None
        for sla in slas:
            result = hook.rpc("sla.getsli", {
                "slaid": sla["slaid"],
                "period_from": int(week.start.timestamp()),
                "period_to": int(week.end.timestamp()) - 1,  # inclusive on real servers
                "serviceids": sorted(services),
            })
            per_service, periods = parse_sli(result)
            check_periods(periods, week, str(sla.get("name", sla["slaid"])))
            check_complete(periods, week, str(sla.get("name", sla["slaid"])))
            for sid, sli in per_service.items():
                if sid in services and sid not in slo:
                    totals[sid], slo[sid] = sli, float(sla["slo"])
            if periods:
                newest = max(newest or 0, max(end for _, end in periods))
    finally:
        hook.logout()
    missing = [services[s].name for s in services if s not in slo]
    if missing:
        raise SourceResponseError(SYSTEM, f"services {', '.join(sorted(missing))} are in no enabled daily SLA "
                                          "(period=0); add them to the customer's SLA by service tags")
    rows = sorted(
        (uptime_row(s, totals[s.serviceid], slo[s.serviceid], devices.get((s.site, s.device_class)) or None)
         for s in services.values()),
        key=lambda r: (r.site, r.device_class),
    )
    as_of = None
    if newest is not None:  # the last slice ends at the week's end, or now if the day is running
        as_of = min(parse_instant(newest), dt.datetime.now(UTC))
    return Extracted(UptimeData(rows=rows), as_of=as_of)

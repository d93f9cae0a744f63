"""Zabbix: weekly uptime per site and device class, from business services and daily SLAs.

Zabbix has no native "uptime per site", so the report relies on a deployment convention (the
README's "Zabbix set-up" gives the recipe; ``zabbix_provision`` builds it through the API):

- every **row service** of a customer (one per site x device class, fed by its hosts' problems
  through problem tags) carries the service tags ``customer=<CODE>``, ``site=<site>``,
  ``class=<device class>`` and ``sla=<CODE>:<name>``;
- every **SLA** of a customer is daily (``period=0``), in the customer's timezone, and selects
  its services by exactly one service tag, ``sla`` *equals* ``<CODE>:<name>``. A Zabbix SLA has
  one SLO, so a customer with two SLO values has two SLAs (``ACME:99.9`` and ``ACME:99.5``) and
  each row service names the one it is measured against.

Why one dedicated tag: Zabbix adds a service to an SLA when **any one** of the SLA's service tags
matches (``CSla::getAccessibleSlaids`` and ``CService``'s ``slaids`` filter join the tags with
OR), so an SLA that selects ``customer=ACME`` *and* ``class=Servers`` takes every customer's
servers. A single ``sla=<CODE>:<name>`` tag selects exactly one customer's services for one SLO.

What the extract trusts, and what it ignores: it reads the services tagged ``customer=<CODE>``;
those with neither ``site``/``class`` nor an ``sla`` tag are aggregates (a parent "ACME (all
sites)") and are left out. It reads the SLAs that hold those services and keeps only this
customer's: enabled, with an ``sla`` tag whose value starts ``<CODE>:``. Other customers' SLAs,
MSP-wide SLAs and disabled SLAs change nothing. A misconfiguration of *this* customer (a row
service in no SLA or in two, an SLA selecting by more than its one tag, not daily, in another
timezone, holding a service of another customer) is refused with one error naming the customer,
the Zabbix object and what to change. Each row's SLO is its own SLA's.

Why daily slices: a weekly SLA's periods run Sunday to Sunday, while a Monday-to-Monday week in
the customer's timezone is exactly seven daily slices of an SLA in that timezone (a DST week is
167 or 169 hours, and so are its slices). ``period_to`` is inclusive on real servers, so the hook
asks up to one second before the week's end. Uptime is re-aggregated as
``sum(uptime) / (sum(uptime) + sum(downtime))``; a slice with ``sli == -1`` (before the service
existed: ``sla.getsli`` ignores time before ``services.created_at``) carries no data and is left
out, and a row with no data at all reports ``None``. Slice figures are checked: negative or
longer than their slice is refused, never reported.

Auth follows ``zabbix_utils``: ``apiinfo.version`` without auth, then ``user.login`` with
``username``; from 6.4 the session goes in an ``Authorization: Bearer`` header, before 6.4 in
the body's ``auth`` member. An API token in the connection's extra (``api_token``) skips the
login and the logout (the cheaper choice: 4 + one ``sla.getsli`` per SLA calls per customer). The
connection's ``host`` is the ``api_jsonrpc.php`` URL or the frontend's base URL.
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
from msp_reports.http.client import ApiClient
from msp_reports.http.timestamps import parse_instant
from msp_reports.snapshot import UptimeData, UptimeRow
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

log = logging.getLogger(__name__)

SYSTEM = "zabbix"
UTC = dt.timezone.utc

CUSTOMER_TAG = "customer"
SITE_TAG = "site"
CLASS_TAG = "class"
SLA_TAG = "sla"  # value <CODE>:<name>: the one service tag an SLA of the customer selects by
SLA_TAG_EQUALS = 0  # sla_service_tag.operator: 0 equals, 2 contains (service-tag filters differ)
SLA_ENABLED = 1
DAILY = 0  # sla.period: 0 daily, 1 weekly, 2 monthly, ...
TAG_EQUALS = 1  # tag filter operator: 0 contains, 1 equals
BEARER_FROM = (6, 4)  # the version that moved the session from the body to the header
# Messages Zabbix puts in an error's ``data`` when the session or the login is refused.
AUTH_ERRORS = ("not authorized", "session terminated", "incorrect user name or password",
               "login name or password is incorrect", "api token expired", "account is blocked")
SLICE_SLACK = 1  # seconds: ``period_to`` is inclusive, so a slice may hold one second more


@dataclass(frozen=True)
class ServiceInfo:
    """A customer's row service (one site x device class), as its tags describe it."""

    serviceid: int
    name: str
    site: str
    device_class: str
    sla_keys: tuple[str, ...]  # its ``sla`` tag values that belong to this customer


@dataclass(frozen=True)
class CustomerSla:
    """One of the customer's SLAs: the ``sla`` tag value it selects by, and its SLO."""

    slaid: int
    name: str
    key: str
    slo: float


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

    def probe(self) -> str:
        """Sign in as the connection says and read one host id; end the session it opened."""
        uses_token = bool(self.connection.extra_dejson.get("api_token"))
        how = "extra api_token" if uses_token else f"login '{self.connection.login}'"
        try:
            self.rpc("host.get", {"output": ["hostid"], "limit": 1})
        except SourceAuthError as exc:  # a refused API token is an application error, with HTTP 200
            if not uses_token:
                raise  # login() has said what to fix
            raise SourceAuthError(SYSTEM, f"connection {self.conn_id!r}: Zabbix refused the {how} ({_reason(exc)}); "
                                          f"check the connection's {how}", status=exc.status) from None
        finally:
            self.logout()
        major, minor = self.version()
        return f"Zabbix {major}.{minor} accepted the {how} of connection '{self.conn_id}'"

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


def _tag_values(record: Mapping[str, Any], name: str, key: str = "tags") -> list[str]:
    return [str(t.get("value", "")) for t in record.get(key) or [] if t.get("tag") == name]


def sla_prefix(code: str) -> str:
    return f"{code}:"


def _error(code: str, text: str) -> SourceResponseError:
    return SourceResponseError(SYSTEM, f"customer {code}: {text}")


def _id(record: Mapping[str, Any], field: str, method: str) -> int:
    try:
        return int(record[field])
    except (KeyError, TypeError, ValueError):
        raise SourceResponseError(SYSTEM, f"{method} returned a record without a valid {field}") from None


def parse_services(records: Iterable[Mapping[str, Any]], code: str) -> dict[int, ServiceInfo]:
    """The customer's row services among ``service.get`` records (with ``selectTags``).

    A service with an ``sla=<CODE>:…`` tag, or with both ``site`` and ``class``, is a row and must
    have all three; one with neither is an aggregate (a parent "ACME (all sites)") and is left out.
    """
    rows: dict[int, ServiceInfo] = {}
    for record in records:
        serviceid = _id(record, "serviceid", "service.get")
        name = str(record.get("name", serviceid))
        tags = _tags(record)
        keys = tuple(v for v in _tag_values(record, SLA_TAG) if v.startswith(sla_prefix(code)))
        site, device_class = tags.get(SITE_TAG, ""), tags.get(CLASS_TAG, "")
        if not keys and not (site and device_class):
            continue
        if not site or not device_class:
            missing = " and ".join(t for t, v in ((SITE_TAG, site), (CLASS_TAG, device_class)) if not v)
            raise _error(code, f"Zabbix service {name!r} (serviceid {serviceid}) has no {missing} tag; "
                               f"tag each row service {CUSTOMER_TAG}=, {SITE_TAG}=, {CLASS_TAG}= and {SLA_TAG}=")
        rows[serviceid] = ServiceInfo(serviceid, name, site, device_class, keys)
    return rows


def customer_slas(records: Iterable[Mapping[str, Any]], code: str, week: ReportWeek) -> dict[str, CustomerSla]:
    """The customer's enabled SLAs among ``sla.get`` records (with ``selectServiceTags``), by key.

    An SLA is the customer's when one of its service tags is ``sla=<CODE>:…``; every other SLA
    (another customer's, an MSP-wide one) is ignored, and so is a disabled one. The customer's
    own SLAs must select by that one tag, with *equals*, daily, in the customer's timezone.
    """
    slas: dict[str, CustomerSla] = {}
    for record in sorted(records, key=lambda r: _id(r, "slaid", "sla.get")):
        tags = record.get("service_tags") or []
        keys = [str(t.get("value", "")) for t in tags
                if t.get("tag") == SLA_TAG and str(t.get("value", "")).startswith(sla_prefix(code))]
        if not keys or str(record.get("status")) != str(SLA_ENABLED):
            continue
        slaid, name = _id(record, "slaid", "sla.get"), str(record.get("name", ""))
        label = f"Zabbix SLA {name!r} (slaid {slaid})"
        if len(tags) != 1 or str(tags[0].get("operator", SLA_TAG_EQUALS)) != str(SLA_TAG_EQUALS):
            shown = ", ".join(f"{t.get('tag')}{'=' if str(t.get('operator')) == '0' else '~'}{t.get('value', '')}"
                              for t in tags)
            raise _error(code, f"{label} selects services by {shown}; Zabbix adds every service matching ANY "
                               f"of an SLA's service tags, so it must select by exactly one tag, "
                               f"{SLA_TAG} equals {keys[0]}: remove the others")
        if str(record.get("period")) != str(DAILY):
            raise _error(code, f"{label} is not daily; set its reporting period to Daily")
        if record.get("timezone") != week.timezone:
            raise _error(code, f"{label} is in timezone {record.get('timezone')!r}; set it to {week.timezone}, "
                               "the customer's timezone")
        slo = figures.percentage(SYSTEM, f"customer {code}: {label} slo", record.get("slo"))
        key = keys[0]
        if key in slas:
            raise _error(code, f"{label} and Zabbix SLA {slas[key].name!r} (slaid {slas[key].slaid}) both select "
                               f"{SLA_TAG}={key}; disable or delete one")
        slas[key] = CustomerSla(slaid, name, key, slo)
    return slas


def assign_slas(services: Mapping[int, ServiceInfo], slas: Mapping[str, CustomerSla],
                code: str) -> dict[int, CustomerSla]:
    """Each row service's SLA: exactly one of the customer's enabled SLAs names it."""
    assigned: dict[int, CustomerSla] = {}
    for service in services.values():
        mine = [slas[k] for k in service.sla_keys if k in slas]
        label = f"Zabbix service {service.name!r} (serviceid {service.serviceid})"
        if not mine:
            known = ", ".join(sorted(slas)) or "none"
            raise _error(code, f"{label} is in no enabled daily SLA of the customer (its {SLA_TAG} tags: "
                               f"{', '.join(service.sla_keys) or 'none'}; the customer's SLAs select {known}); "
                               f"tag it {SLA_TAG}={sla_prefix(code)}<name> for one SLA that selects by that tag")
        if len(mine) > 1:
            raise _error(code, f"{label} is in {len(mine)} SLAs ({', '.join(s.name for s in mine)}); a row has one "
                               f"SLO: keep one {SLA_TAG} tag")
        assigned[service.serviceid] = mine[0]
    return assigned


def parse_sli(result: Mapping[str, Any]) -> tuple[dict[int, Sli], list[tuple[int, int]]]:
    """Sum ``sla.getsli`` slices per service; also return the periods.

    ``serviceids`` come back in no particular order (as ints on real servers, strings accepted),
    and ``sli[period][i]`` belongs to ``serviceids[i]``, so services are matched by position.
    A slice whose seconds are not whole, are negative or exceed the slice is impossible.
    """
    try:
        ids = [int(s) for s in result["serviceids"]]
        periods = [(int(p["period_from"]), int(p["period_to"])) for p in result["periods"]]
        grid = result["sli"]
        if len(grid) != len(periods) or any(len(row) != len(ids) for row in grid):
            raise ValueError("sli is not periods x serviceids")
        totals = {sid: [0, 0] for sid in ids}
        for (start, end), row in zip(periods, grid):
            for sid, cell in zip(ids, row):
                if float(cell["sli"]) < 0:  # no data: before the service existed
                    continue
                up = figures.count(SYSTEM, f"sla.getsli service {sid} uptime (s)", cell["uptime"])
                down = figures.count(SYSTEM, f"sla.getsli service {sid} downtime (s)", cell["downtime"])
                if up + down > end - start + SLICE_SLACK:
                    raise ValueError(f"service {sid}: uptime {up} + downtime {down} s exceed the slice "
                                     f"{_iso(start)}..{_iso(end)}")
                totals[sid][0] += up
                totals[sid][1] += down
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


def check_periods(periods: Iterable[tuple[int, int]], week: ReportWeek, sla_label: str) -> None:
    """Refuse slices that spill out of the week: the SLA's timezone is not the customer's."""
    lo, hi = week.start.timestamp(), week.end.timestamp()
    for start, end in periods:
        if start < lo or end > hi:
            raise SourceResponseError(
                SYSTEM, f"{sla_label} has a daily slice {_iso(start)}..{_iso(end)} outside the week "
                        f"{week.label()} ({week.timezone}); set the SLA's timezone to {week.timezone}")


def check_complete(periods: list[tuple[int, int]], week: ReportWeek, sla_label: str,
                   now: dt.datetime | None = None) -> None:
    """Refuse slices that stop before the end of a finished week: the answer was cut short.

    Missing slices at the start are normal (an SLA made during the week has none before it);
    missing ones at the end, once the week is over, would report a shorter week as the whole."""
    if not periods or week.end > (now or dt.datetime.now(UTC)):
        return
    last = max(end for _, end in periods)
    if last < week.end.timestamp() - 1:
        raise SourceResponseError(
            SYSTEM, f"{sla_label}: sla.getsli slices stop at {_iso(last)}, before the end of the week "
                    f"{week.label()}; the answer was cut short")


def _iso(ts: int) -> str:
    return parse_instant(ts).isoformat()


def _reason(exc: SourceError) -> str:
    return str(exc).split(": ", 1)[-1]


# ---- extract -----------------------------------------------------------------------------------
def extract(hook: ZabbixHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """One customer's uptime rows for ``week``: its row services, its SLAs, their daily SLI.

    Calls: ``service.get``, ``sla.get``, ``host.get`` and one ``sla.getsli`` per SLA of the
    customer (plus ``apiinfo.version``, and ``user.login``/``user.logout`` without an API token).
    """
    code = ref["service_tag"]
    customer = [{"tag": CUSTOMER_TAG, "value": code, "operator": TAG_EQUALS}]
    try:
        services = parse_services(hook.rpc("service.get", {
            "output": ["serviceid", "name"], "tags": customer, "selectTags": ["tag", "value"],
        }), code)
        if not services:
            raise _error(code, f"no Zabbix service is tagged {CUSTOMER_TAG}={code} with {SITE_TAG}, {CLASS_TAG} "
                               f"and {SLA_TAG} tags; tag the customer's services or fix service_tag in the registry")
        slas = customer_slas(hook.rpc("sla.get", {
            "serviceids": sorted(services), "output": ["slaid", "name", "period", "slo", "timezone", "status"],
            "selectServiceTags": ["tag", "operator", "value"],
        }), code, week)
        assigned = assign_slas(services, slas, code)
        devices = count_devices(hook.rpc("host.get", {
            "output": ["hostid"], "tags": customer, "selectTags": ["tag", "value"], "filter": {"status": "0"},
        }))
        totals: dict[int, Sli] = {}
        newest: int | None = None
        for sla in sorted(set(assigned.values()), key=lambda s: s.slaid):
            result = hook.rpc("sla.getsli", {
                "slaid": sla.slaid,
                "period_from": int(week.start.timestamp()),
                "period_to": int(week.end.timestamp()) - 1,  # inclusive on real servers
            })
            per_service, periods = parse_sli(result)
            label = f"customer {code}: Zabbix SLA {sla.name!r} (slaid {sla.slaid})"
            check_periods(periods, week, label)
            check_complete(periods, week, label)
            wanted = {sid for sid, s in assigned.items() if s == sla}
            foreign = sorted(set(per_service) - wanted)
            if foreign:  # tagged sla=<CODE>:… without being one of the customer's row services
                raise _error(code, f"Zabbix SLA {sla.name!r} (slaid {sla.slaid}) also holds serviceids "
                                   f"{', '.join(map(str, foreign))}, which are not row services tagged "
                                   f"{CUSTOMER_TAG}={code}; remove their {SLA_TAG}={sla.key} tag or tag them "
                                   f"{CUSTOMER_TAG}={code} with {SITE_TAG} and {CLASS_TAG}")
            absent = sorted(wanted - set(per_service))
            if absent and periods:
                raise _error(code, f"Zabbix SLA {sla.name!r} (slaid {sla.slaid}) returned no SLI for "
                                   f"{', '.join(services[s].name for s in absent)}")
            totals.update({sid: sli for sid, sli in per_service.items() if sid in wanted})
            if periods:
                newest = max(newest or 0, max(end for _, end in periods))
    finally:
        hook.logout()
    rows = sorted(
        (uptime_row(s, totals.get(s.serviceid, Sli()), assigned[s.serviceid].slo,
                    devices.get((s.site, s.device_class)) or None)
         for s in services.values()),
        key=lambda r: (r.site, r.device_class),
    )
    as_of = None
    if newest is not None:  # the last slice ends at the week's end, or now if the day is running
        as_of = min(parse_instant(newest), dt.datetime.now(UTC))
    return Extracted(UptimeData(rows=rows), as_of=as_of)

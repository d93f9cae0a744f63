"""Zabbix 7.0 JSON-RPC simulator: ``POST /zabbix/api_jsonrpc.php``.

Serves the world's services the way the deployment convention in
:mod:`msp_reports.sources.zabbix` lays them out: one row service per customer x site x class
tagged ``customer``/``site``/``class``/``sla=<CODE>:<SLO>``, tagged hosts behind each, and one
daily SLA per customer and SLO value, in the customer's timezone, selecting by that one ``sla``
tag. Around them, what a real MSP server also holds: a parent service per customer ("ACME (all
sites)", tagged ``customer`` only), an MSP-wide SLA in UTC selecting ``class=Servers``, a
customer's retired SLA in another timezone selecting by ``customer`` and ``class``, and a
disabled SLA. As on the real server (Zabbix 6.0.14, ``CSla::getAccessibleSlaids``), an SLA holds
every service matching ANY of its service tags (operator 0 equals, 2 contains).

Wire behaviour kept as the reference describes it: every reply is HTTP 200 and errors are the
JSON-RPC ``error`` member (-32700 parse, -32600 request, -32602 params, -32500 application);
ids and timestamps in ``*.get`` results are strings; ``apiinfo.version``, ``user.login`` and
``user.checkAuthentication`` take no auth; the parameters are 7.0's (``selectHostGroups``,
``selectStatusTimeline``, ``selectProblemEvents``... are served); sessions go in ``Authorization: Bearer`` and a body ``auth`` member is refused (7.x);
``sla.getsli`` returns ``periods`` ascending, ``serviceids`` as ints in shuffled order and a
``sli`` grid indexed [period][service], with daily slices in the SLA's timezone, ``period_to``
inclusive, no slice before the SLA's effective date or after the current day, and ``sli: -1``
for time before a service existed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import CustomerWorld, Outage, Service, World
from devtools.simulators.app import paging_truncated

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
VERSION = "7.0.5"
SESSIONS = "zabbix_sessions"
MAX_PERIODS = 100

# params each method accepts: the ones of Zabbix 7.0's API reference served here (anything else
# is "unexpected parameter", as the real API says). Where a parameter arrived after 6.0, SINCE
# names the release, so a simulated 6.0 (VERSION) refuses it as the real one does.
_COMMON_GET = {"output", "filter", "search", "searchByAny", "startSearch", "excludeSearch",
               "searchWildcardsEnabled", "limit", "sortfield", "sortorder", "countOutput",
               "preservekeys", "editable", "nopermissions"}
PARAMS = {
    "service.get": _COMMON_GET | {"serviceids", "parentids", "childids", "tags", "evaltype",
                                  "slaids", "selectTags", "selectParents",
                                  "selectChildren", "selectProblemTags", "selectProblemEvents",
                                  "selectStatusRules", "selectStatusTimeline"},
    "sla.get": _COMMON_GET | {"slaids", "serviceids", "selectSchedule", "selectExcludedDowntimes",
                              "selectServiceTags"},
    "sla.getsli": {"slaid", "period_from", "period_to", "periods", "serviceids"},
    "host.get": _COMMON_GET | {"hostids", "groupids", "tags", "evaltype", "selectTags", "monitored_hosts",
                               "with_monitored_items", "selectInterfaces", "selectInventory", "selectHostGroups"},
    "user.login": {"username", "password", "userData"},
    "user.checkAuthentication": {"sessionid", "token", "extend"},
}
SINCE = {("host.get", "selectHostGroups"): (6, 2)}  # 6.2 split host groups from template groups


def accepted_params(method: str, version: str = VERSION) -> set[str]:
    """The parameters ``method`` takes on Zabbix ``version`` (major.minor compared)."""
    have = tuple(int(p) for p in version.split(".")[:2])
    return {p for p in PARAMS[method] if SINCE.get((method, p), (0, 0)) <= have}


# ---- the world, as Zabbix objects ---------------------------------------------------------------
SLA_EQUALS, SLA_CONTAINS = 0, 2  # sla_service_tag.operator


@dataclass(frozen=True)
class SimService:
    """A business service: a row of the world (site x class) or a customer's parent."""

    serviceid: int
    name: str
    tags: tuple[tuple[str, str], ...]
    outages: tuple[Outage, ...]
    row: Service | None = None


@dataclass(frozen=True)
class Sla:
    slaid: int
    name: str
    slo: float
    timezone: str
    effective_date: dt.datetime
    service_tags: tuple[tuple[str, str, int], ...]  # (tag, value, operator); ANY one matching selects
    status: int = 1
    period: int = 0


def _epoch(when: dt.datetime) -> int:
    return int(when.timestamp())


def _world_start(world: World) -> dt.datetime:
    monday = world.latest_week_of - dt.timedelta(weeks=world.weeks - 1)
    return dt.datetime.combine(monday, dt.time(0), tzinfo=UTC)


def service_created(world: World) -> dt.datetime:
    """When every simulated service was created: two days before the world's first week."""
    return _world_start(world) - dt.timedelta(days=2)


def sla_key(cw: CustomerWorld, slo: float) -> str:
    return f"{cw.code}:{slo:g}"


def _service_tags(cw: CustomerWorld, svc: Service) -> list[dict[str, str]]:
    return [{"tag": "customer", "value": cw.code}, {"tag": "site", "value": svc.site},
            {"tag": "class", "value": svc.device_class}, {"tag": "sla", "value": sla_key(cw, svc.slo)}]


def _host_tags(cw: CustomerWorld, svc: Service) -> list[dict[str, str]]:
    return _service_tags(cw, svc)[:3]


def build_services(world: World) -> list[SimService]:
    """Every row service, then one parent per customer holding the union of its rows' outages."""
    out: list[SimService] = []
    for cw in world.customers.values():
        for svc in cw.services:
            out.append(SimService(svc.serviceid, f"{cw.code} {svc.site} {svc.device_class}",
                                  tuple((t["tag"], t["value"]) for t in _service_tags(cw, svc)),
                                  tuple(svc.outages), svc))
    parents = [SimService(900000 + n, f"{cw.code} (all sites)", (("customer", cw.code),),
                          tuple(o for svc in cw.services for o in svc.outages))
               for n, cw in enumerate(world.customers.values(), 1)]
    return out + parents


def build_slas(world: World) -> list[Sla]:
    """The customers' SLAs (one per SLO, by one ``sla`` tag) and the distractors around them."""
    slas: list[Sla] = []
    effective = _world_start(world) - dt.timedelta(days=30)

    def add(name: str, slo: float, tz: str, tags: tuple[tuple[str, str, int], ...], **kw: int) -> None:
        slas.append(Sla(len(slas) + 1, name, slo, tz, effective, tags, **kw))

    # lower ids than the customers' own, so "the lowest id wins" would be visibly wrong
    add("MSP all servers (internal)", 99.0, "UTC", (("class", "Servers", SLA_EQUALS),))
    customers = list(world.customers.values())
    if customers:
        first = customers[0]
        add(f"{first.code} retired (by customer and class)", 95.0, "America/Los_Angeles",
            (("customer", first.code, SLA_EQUALS), ("class", "Servers", SLA_EQUALS)), period=1)
    for cw in customers:
        for slo in sorted({svc.slo for svc in cw.services}, reverse=True):
            add(f"{cw.code} daily uptime {slo:g}%", slo, cw.profile.timezone,
                (("sla", sla_key(cw, slo), SLA_EQUALS),))
    if len(customers) > 1:
        second = customers[1]
        slo = max(svc.slo for svc in second.services)
        add(f"{second.code} old target (disabled)", 50.0, second.profile.timezone,
            (("sla", sla_key(second, slo), SLA_EQUALS),), status=0)
    return slas


def hosts(world: World) -> list[dict[str, Any]]:
    """Tagged hosts behind each service: ``devices`` of them, in their customer's host group."""
    out = []
    for number, cw in enumerate(world.customers.values(), start=1):
        group = {"groupid": str(100 + number), "name": f"Customers/{cw.code}"}
        for svc in cw.services:
            for n in range(1, svc.devices + 1):
                name = f"{cw.code}-{svc.site}-{svc.device_class}-{n:02d}".lower().replace(" ", "-")
                out.append({"hostid": str(10000 + svc.serviceid * 100 + n), "host": name, "name": name,
                            "status": "0", "tags": _host_tags(cw, svc), "hostgroups": [group]})
    return out


def sla_selects(sla: Sla, tags: Iterable[tuple[str, str]]) -> bool:
    """Zabbix's rule: a service is in the SLA when ANY one of the SLA's service tags matches."""
    tags = list(tags)
    for name, value, operator in sla.service_tags:
        for tag, have in tags:
            if tag == name and (have == value if operator == SLA_EQUALS else value.upper() in have.upper()):
                return True
    return False


def _tags_match(tags: Iterable[Mapping[str, str]], wanted: Iterable[Mapping[str, Any]], evaltype: int) -> bool:
    """Zabbix tag filters: operator 0 contains (default), 1 equals, 4 exists, 5 not exists.

    evaltype 0 (And/Or): filters on the same tag name are ORed, different names ANDed;
    evaltype 2 (Or): any filter matches.
    """
    tags = list(tags)

    def one(f: Mapping[str, Any]) -> bool:
        op = int(f.get("operator", 0))
        name, value = f.get("tag", ""), str(f.get("value", ""))
        values = [t["value"] for t in tags if t["tag"] == name]
        if op == 4:
            return bool(values)
        if op == 5:
            return not values
        if op == 1:
            return value in values
        return any(value.lower() in v.lower() for v in values)

    wanted = list(wanted)
    if not wanted:
        return True
    if evaltype == 2:
        return any(one(f) for f in wanted)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in wanted:
        groups.setdefault(f.get("tag", ""), []).append(f)
    return all(any(one(f) for f in group) for group in groups.values())


def merged(outages: Iterable[Outage], now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Outages as disjoint intervals; an open one runs to ``now``."""
    spans = sorted((o.start, o.end or now) for o in outages)
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def daily_periods(tz: str, first: dt.datetime, last: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Local days of ``tz`` from the one holding ``first`` to the one holding ``last`` (inclusive)."""
    zone = ZoneInfo(tz)
    day = first.astimezone(zone).date()
    end_day = last.astimezone(zone).date()
    periods = []
    while day <= end_day:
        lo = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)
        hi = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone).astimezone(UTC)
        periods.append((lo, hi))
        day += dt.timedelta(days=1)
    return periods


def slice_sli(svc: SimService, lo: dt.datetime, hi: dt.datetime, created: dt.datetime, slo: float,
              now: dt.datetime) -> dict[str, Any]:
    """One service in one slice: uptime/downtime seconds from the world's outages."""
    begin, finish = max(lo, created), min(hi, now)
    if finish <= begin:
        return {"uptime": 0, "downtime": 0, "sli": -1, "error_budget": 0, "excluded_downtimes": []}
    down = 0.0
    for start, end in merged(svc.outages, now):
        down += max(0.0, (min(end, finish) - max(start, begin)).total_seconds())
    total = int((finish - begin).total_seconds())
    downtime = int(round(down))
    uptime = total - downtime
    return {"uptime": uptime, "downtime": downtime, "sli": round(uptime / total * 100, 4),
            "error_budget": int(total * (100 - slo) / 100) - downtime, "excluded_downtimes": []}


# ---- JSON-RPC plumbing --------------------------------------------------------------------------
class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str) -> None:
        super().__init__(data)
        self.code, self.message, self.data = code, message, data


def _invalid(data: str) -> RpcError:
    return RpcError(-32602, "Invalid params.", data)


def _app_error(data: str) -> RpcError:
    return RpcError(-32500, "Application error.", data)


def _check_params(method: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise _invalid('Invalid parameter "/": an array is expected.' if method == "user.logout"
                       else 'Invalid parameter "/": an object is expected.')
    allowed = accepted_params(method)
    for key in params:
        if key not in allowed:
            raise _invalid(f'Invalid parameter "/": unexpected parameter "{key}".')
    return params


def _project(record: dict[str, Any], output: Any) -> dict[str, Any]:
    if output in (None, "extend"):
        return dict(record)
    if isinstance(output, list):
        return {k: record[k] for k in output if k in record}
    raise _invalid('Invalid parameter "/output": value must be one of "extend", an array.')


def _id_set(values: Any, name: str) -> set[str] | None:
    if values is None:
        return None
    values = values if isinstance(values, list) else [values]
    if not all(isinstance(v, (int, str)) and str(v).isdigit() for v in values):
        raise _invalid(f'Invalid parameter "/{name}/1": a number is expected.')
    return {str(v) for v in values}


def _matches(record: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """The common ``filter`` (exact, a value or a list of values) and ``search`` (substring)."""
    for key, want in (params.get("filter") or {}).items():
        wanted = [str(w) for w in want] if isinstance(want, list) else [str(want)]
        if str(record.get(key)) not in wanted:
            return False
    searches = [(str(record.get(k, "")).lower(), str(v).lower()) for k, v in (params.get("search") or {}).items()]
    hits = [needle in text for text, needle in searches]
    return (any(hits) if params.get("searchByAny") else all(hits)) if hits else True


def _with_tags(record: dict[str, Any], tags: list[dict[str, str]], select: Any) -> dict[str, Any]:
    if select is not None:
        fields = ["tag", "value"] if select == "extend" else list(select)
        record["tags"] = [{k: t[k] for k in fields if k in t} for t in tags]
    return record


class ZabbixSim:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.world = state.world_view()
        self.slas = build_slas(state.world)
        self.hosts = hosts(state.world)
        self.created = service_created(state.world)
        self.sessions: set[str] = state.extra.setdefault(SESSIONS, set())
        self.api_tokens = {state.creds.zabbix_api_token}  # Users -> API tokens: no login, never expire here
        self._built: tuple[object, list[SimService], dict[tuple[str, str], list[SimService]]] | None = None

    def _index(self) -> tuple[list[SimService], dict[tuple[str, str], list[SimService]]]:
        """The current world's services, and them by (tag, value); rebuilt when the world changes."""
        world = self.state.world
        if self._built is None or self._built[0] is not world:
            services = build_services(world)
            by_tag: dict[tuple[str, str], list[SimService]] = {}
            for svc in services:
                for tag in svc.tags:
                    by_tag.setdefault(tag, []).append(svc)
            self._built = (world, services, by_tag)
        return self._built[1], self._built[2]

    def services(self) -> list[SimService]:
        return self._index()[0]

    def sla_services(self, sla: Sla) -> list[SimService]:
        services, by_tag = self._index()
        if all(op == SLA_EQUALS for _, _, op in sla.service_tags):
            found = {s.serviceid: s for name, value, _ in sla.service_tags for s in by_tag.get((name, value), [])}
            return [found[k] for k in sorted(found)]
        return [s for s in services if sla_selects(sla, s.tags)]

    # ---- dispatch
    def handle(self, body: Any, bearer: str | None) -> Any:
        if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
            raise RpcError(-32600, "Invalid request.", 'Invalid parameter "/jsonrpc": value must be "2.0".'
                           if isinstance(body, dict) else "JSON-RPC request must be an object.")
        for key in body:
            if key not in ("jsonrpc", "method", "params", "id"):
                raise RpcError(-32600, "Invalid request.", f'Invalid parameter "/": unexpected parameter "{key}".')
        method, params = body["method"], body.get("params", {})
        if method == "apiinfo.version":
            return VERSION
        if method == "user.login":
            return self.user_login(_check_params(method, params))
        if method == "user.checkAuthentication":
            return self.check_authentication(_check_params(method, params))
        if bearer is None:
            raise _app_error("Not authorized.")
        if bearer not in self.sessions and bearer not in self.api_tokens:
            raise _app_error("Session terminated, re-login, please.")
        if method == "user.logout":
            if params not in ([], {}):
                raise _invalid('Invalid parameter "/": an array is expected.')
            self.sessions.discard(bearer)
            return True
        handler = {"service.get": self.service_get, "sla.get": self.sla_get,
                   "sla.getsli": self.sla_getsli, "host.get": self.host_get}.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found.", f'Incorrect API "{method.split(".")[0]}".')
        return handler(_check_params(method, params))

    def user_login(self, params: dict[str, Any]) -> str:
        if "username" not in params:
            raise _invalid('Invalid parameter "/": the parameter "username" is missing.')
        creds = self.state.creds
        if not (secrets.compare_digest(str(params["username"]), creds.zabbix_user)
                and secrets.compare_digest(str(params.get("password", "")), creds.zabbix_password)):
            raise _app_error("Incorrect user name or password or account is temporarily blocked.")
        token = secrets.token_hex(16)
        self.sessions.add(token)
        return token

    def check_authentication(self, params: dict[str, Any]) -> dict[str, Any]:
        """``user.checkAuthentication`` (no auth needed): the user of a session or an API token."""
        sessionid, token = params.get("sessionid"), params.get("token")
        if (sessionid is None) == (token is None):
            raise _invalid('Invalid parameter "/": either "sessionid" or "token" is expected.')
        known = sessionid in self.sessions if sessionid is not None else token in self.api_tokens
        if not known:
            raise _app_error("Session terminated, re-login, please.")
        user = {"userid": "3", "username": self.state.creds.zabbix_user, "type": "1", "roleid": "1"}
        return {**user, "sessionid": sessionid} if sessionid is not None else user

    def service_get(self, params: dict[str, Any]) -> Any:
        ids = _id_set(params.get("serviceids"), "serviceids")
        sla_ids = _id_set(params.get("slaids"), "slaids")
        in_slas = None
        if sla_ids is not None:
            in_slas = {s.serviceid for sla in self.slas if str(sla.slaid) in sla_ids for s in self.sla_services(sla)}
        out = []
        now = dt.datetime.now(UTC)
        for svc in self.services():
            tags = [{"tag": t, "value": v} for t, v in svc.tags]
            if ids is not None and str(svc.serviceid) not in ids:
                continue
            if in_slas is not None and svc.serviceid not in in_slas:
                continue
            if not _tags_match(tags, params.get("tags") or [], int(params.get("evaltype", 0))):
                continue
            down = any(o.start <= now and (o.end is None or o.end > now) for o in svc.outages)
            record = {"serviceid": str(svc.serviceid), "name": svc.name,
                      "status": "4" if down else "-1", "algorithm": "1", "sortorder": "0", "weight": "0",
                      "propagation_rule": "0", "propagation_value": "0", "description": "",
                      "uuid": f"{svc.serviceid:032x}", "created_at": str(_epoch(self.created)), "readonly": "0"}
            if not _matches(record, params):
                continue
            record = _project(record, params.get("output"))
            self._service_selects(record, svc, params, now)
            out.append(_with_tags(record, tags, params.get("selectTags")))
        return self._finish(out, params)

    @staticmethod
    def _service_selects(record: dict[str, Any], svc: SimService, params: Mapping[str, Any],
                         now: dt.datetime) -> None:
        """7.0's ``selectProblemEvents``, ``selectStatusRules`` and ``selectStatusTimeline``: the
        open outage as a problem event, no status rules, and per asked period the status at its
        start (``-1`` OK, ``4`` the severity an outage has here) with the changes inside it."""
        spans = merged(svc.outages, now)
        if params.get("selectProblemEvents") is not None:
            record["problem_events"] = [
                {"eventid": str(_epoch(o.start)), "severity": "4", "name": f"{svc.name} is down"}
                for o in svc.outages if o.start <= now and (o.end is None or o.end > now)]
        if params.get("selectStatusRules") is not None:
            record["status_rules"] = []
        periods = params.get("selectStatusTimeline")
        if periods is None:
            return
        if not isinstance(periods, list) or not all(isinstance(p, dict) for p in periods):
            raise _invalid('Invalid parameter "/selectStatusTimeline": an array is expected.')
        timeline = []
        for n, period in enumerate(periods, start=1):
            try:
                lo = dt.datetime.fromtimestamp(int(period["period_from"]), UTC)
                hi = dt.datetime.fromtimestamp(int(period["period_to"]), UTC)
            except (KeyError, TypeError, ValueError):
                raise _invalid(f'Invalid parameter "/selectStatusTimeline/{n}": period_from and period_to '
                               "are expected.") from None
            down_at_start = any(a <= lo < b for a, b in spans)
            alarms = [{"clock": str(_epoch(t)), "value": v} for a, b in spans
                      for t, v in ((a, "4"), (b, "-1")) if lo < t < hi and t <= now]
            timeline.append({"start_value": "4" if down_at_start else "-1",
                             "alarms": sorted(alarms, key=lambda x: int(x["clock"]))})
        record["status_timeline"] = timeline

    def sla_get(self, params: dict[str, Any]) -> Any:
        ids = _id_set(params.get("slaids"), "slaids")
        svc_ids = _id_set(params.get("serviceids"), "serviceids")
        out = []
        for sla in self.slas:
            if ids is not None and str(sla.slaid) not in ids:
                continue
            if svc_ids is not None and not any(str(s.serviceid) in svc_ids for s in self.sla_services(sla)):
                continue
            record = {"slaid": str(sla.slaid), "name": sla.name, "period": str(sla.period),
                      "slo": f"{sla.slo:.4f}", "effective_date": str(_epoch(sla.effective_date)),
                      "timezone": sla.timezone, "status": str(sla.status), "description": ""}
            if not _matches(record, params):
                continue
            record = _project(record, params.get("output"))
            if params.get("selectServiceTags") is not None:
                record["service_tags"] = [{"tag": t, "operator": str(op), "value": v} for t, v, op in sla.service_tags]
            if params.get("selectSchedule") is not None:
                record["schedule"] = []
            if params.get("selectExcludedDowntimes") is not None:
                record["excluded_downtimes"] = []
            out.append(record)
        return self._finish(out, params)

    def host_get(self, params: dict[str, Any]) -> Any:
        ids = _id_set(params.get("hostids"), "hostids")
        out = []
        for host in self.hosts:
            if ids is not None and host["hostid"] not in ids:
                continue
            if not _matches(host, params):
                continue
            if not _tags_match(host["tags"], params.get("tags") or [], int(params.get("evaltype", 0))):
                continue
            record = _project({k: v for k, v in host.items() if k not in ("tags", "hostgroups")},
                              params.get("output"))
            if params.get("selectHostGroups") is not None:
                record["hostgroups"] = [_project(g, params["selectHostGroups"]) for g in host["hostgroups"]]
            out.append(_with_tags(record, host["tags"], params.get("selectTags")))
        return self._finish(out, params)

    @staticmethod
    def _finish(out: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        if params.get("countOutput"):
            return str(len(out))
        if params.get("limit"):
            out = out[: int(params["limit"])]
        return out

    def sla_getsli(self, params: dict[str, Any]) -> dict[str, Any]:
        if "slaid" not in params:
            raise _invalid('Invalid parameter "/": the parameter "slaid" is missing.')
        sla = next((s for s in self.slas if str(s.slaid) == str(params["slaid"])), None)
        if sla is None:
            raise _app_error("No permissions to referred object or it does not exist!")
        for key in ("period_from", "period_to", "periods"):
            value = params.get(key)
            if value is not None and not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
                raise _invalid(f'Invalid parameter "/{key}": an integer is expected.')
        n = params.get("periods")
        if n is not None and not 1 <= int(n) <= MAX_PERIODS:
            raise _invalid(f'Invalid parameter "/periods": value must be one of 1-{MAX_PERIODS}.')
        now = dt.datetime.now(UTC)
        lo = params.get("period_from")
        hi = params.get("period_to")
        last = min(now, dt.datetime.fromtimestamp(int(hi), UTC)) if hi is not None else now
        if lo is not None:
            periods = daily_periods(sla.timezone, dt.datetime.fromtimestamp(int(lo), UTC), last)
            if hi is None:
                periods = periods[: int(n or 20)]
        else:
            periods = daily_periods(sla.timezone, last - dt.timedelta(days=int(n or 20) + 1), last)
            periods = periods[-int(n or 20):]
        periods = [p for p in periods if p[1] > sla.effective_date and p[0] <= now]
        if hi is not None and lo is not None:
            periods = periods[: int(n or MAX_PERIODS)]
        if paging_truncated():  # the answer stops days before the range asked for
            periods = periods[: max(1, len(periods) - 3)]
        services = self.sla_services(sla)
        wanted = _id_set(params.get("serviceids"), "serviceids")
        if wanted is not None:
            services = [s for s in services if str(s.serviceid) in wanted]
        random.Random(f"{sla.slaid}:{lo}:{hi}").shuffle(services)  # the order is undefined...
        if len(services) > 1 and services == sorted(services, key=lambda s: s.serviceid):
            services.reverse()  # ...and never happens to be sorted, so clients must match by position
        return {
            "periods": [{"period_from": _epoch(a), "period_to": _epoch(b)} for a, b in periods],
            "serviceids": [s.serviceid for s in services],
            "sli": [[slice_sli(s, a, b, self.created, sla.slo, now) for s in services] for a, b in periods],
        }


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    sim = ZabbixSim(state)

    @api.post("/api_jsonrpc.php")
    async def jsonrpc(request: Request) -> JSONResponse:
        raw = await request.body()
        request_id: Any = None
        try:
            try:
                body = json.loads(raw)
            except ValueError:
                raise RpcError(-32700, "Parse error.",
                               "Invalid JSON. An error occurred on the server while parsing the JSON text.") from None
            if isinstance(body, dict):
                request_id = body.get("id")
            header = request.headers.get("authorization", "")
            bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
            result = sim.handle(body, bearer)
            return JSONResponse({"jsonrpc": "2.0", "result": result, "id": request_id})
        except RpcError as err:
            return JSONResponse({"jsonrpc": "2.0", "error": {"code": err.code, "message": err.message,
                                                             "data": err.data}, "id": request_id})

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    """The recommended set-up: an API token (no login and logout per customer)."""
    return {
        "zabbix_default": {
            "conn_type": "zabbix",
            "host": f"{base_url}/zabbix/api_jsonrpc.php",
            "extra": {"api_token": creds.zabbix_api_token},
        }
    }


def login_connection(base_url: str, creds: SimCredentials) -> dict[str, Any]:
    """The other set-up: the API user's login and password."""
    return {"conn_type": "zabbix", "host": f"{base_url}/zabbix/api_jsonrpc.php", "login": creds.zabbix_user,
            "password": creds.zabbix_password, "extra": {}}

"""LibreNMS: weekly uptime per site and device class, computed from each device's outages.

Which devices: the customer's LibreNMS **device group** (``ref.device_group``, its name or id),
read with ``GET /api/v0/devicegroups/{group}?full=1``, so the server does the filtering. Full
group rows are the ``devices`` table's columns: they carry ``type`` and ``location_id`` but not
the location's name (that is a relation the handler does not load), so the names come from one
``GET /api/v0/resources/locations``. A row that does carry ``location`` (the shape of
``GET /devices``) is read as it is.

- site = the device's location; device class = its LibreNMS ``type`` (``server`` → "Servers",
  ``network`` → "Network", ``firewall`` → "Firewalls", anything else title-cased);
- disabled devices are left out: LibreNMS does not poll them, so they record no outages and
  would only pad the figure. Ignored devices are polled and count.

Why not ``GET /devices/{id}/availability``: that figure is rolling and relative to the moment
of the call (its 604800 row is "the last seven days ending now"), with no from/to parameter. A
run on Monday morning in London would cover the wrong seven days for a customer in Los Angeles
or Singapore, a DST week is 167 or 169 hours, and a re-run a day later would give another
number. The outages give the exact week instead.

How: ``GET /api/v0/devices/{device_id}/outages`` lists every recorded outage, newest first.
The server has no time filter for it, so the whole history comes back and is clipped here:
each ``[going_down, up_again)`` counts only its part inside the week, ``up_again: null`` (still
down) runs to min(week end, now), and overlapping outages of one device count once. One call
per device (N + 2 calls in all); LibreNMS does not page or rate-limit.

The figure is **device-time weighted**: per site and class,
``uptime = 1 - downtime / (devices × week seconds)`` with ``downtime`` summed over the devices
Ten servers with one down for an hour lose one device-hour out of 1,680. ``downtime_minutes``
is in the same unit as Zabbix's: minutes of the whole row down, i.e. the summed device downtime
divided by the devices (that hour is 6 minutes of the row), so that ``uptime`` and
``downtime_minutes`` always describe the same figure, whichever system measured it. The week's own length is used, so a DST week is 167 or
169 hours. A device counts for the whole week even if it was added during it.

SLO: ``ref.slo_pct`` (default 99.9), and ``ref["slo_pct.<Class>"]`` for one class, e.g.
``slo_pct.Firewalls: "99.5"``.

``as_of`` is the newest ``last_polled`` of the group's devices, capped at the week's end: a
stalled poller records no outages, and this shows it as stale data instead of a clean week.

UNCONFIRMED (the reference could not check these): ``up_again`` is null while an outage is
ongoing; Eloquent serialises ``last_polled`` as ISO-8601 UTC (a value without an offset is
read as UTC, so a server in another timezone skews ``as_of`` by its offset). The 401 body for a
bad token is Laravel's ``{"message": "Unauthenticated."}`` (seen in user reports, not in the
handlers the reference read).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient
from msp_reports.http.timestamps import parse_instant
from msp_reports.snapshot import UptimeData, UptimeRow
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "librenms"
UTC = dt.timezone.utc
API_PATH = "/api/v0"
DEFAULT_SLO_PCT = 99.9
CLASS_NAMES = {"server": "Servers", "network": "Network", "firewall": "Firewalls"}
UNCLASSIFIED = "Unclassified"
NO_LOCATION = "No location"

Outage = tuple[dt.datetime, dt.datetime | None]


@dataclass(frozen=True)
class Device:
    """A monitored device of the customer's group, as the report groups it."""

    device_id: int
    hostname: str
    site: str
    device_class: str
    last_polled: dt.datetime | None = None


class LibreNMSHook(SourceHook):
    """LibreNMS REST API (``/api/v0``) with an API token.

    Connection: ``host`` = the LibreNMS URL (``/api/v0`` is added unless given), ``password`` =
    API token (Settings > API > API Settings); the token's user needs read access to the
    customer's devices (global read, or the device group's devices).

    :param conn_id: the Airflow connection id (default ``librenms_default``).
    :param policy: retry policy for every request.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "librenms_default"
    conn_type = "librenms"
    hook_name = "LibreNMS"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        if not conn.password:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}' needs the LibreNMS API token as password")
        base = self.base_url(conn).rstrip("/")
        if not base.endswith(API_PATH):
            base += API_PATH
        return ApiClient(
            SYSTEM, base,
            headers={"X-Auth-Token": conn.password, "Accept": "application/json"},
            timeout=float(extra.get("timeout", 30.0)),
            policy=self.policy,
        )

    def call(self, path: str, result_name: str, *, params: Mapping[str, Any] | None = None) -> list[Any]:
        """GET one endpoint and return its result list; a refused token says what to fix."""
        try:
            body = self.client.json("GET", path, params=params)
        except SourceAuthError as exc:
            if exc.status == 403:
                raise SourceAuthError(
                    SYSTEM, f"the API token of connection '{self.conn_id}' may not read {path} "
                            f"({api_message(exc)}); give its LibreNMS user global read or access to "
                            "the customer's devices", status=403,
                ) from None
            raise SourceAuthError(
                SYSTEM, f"LibreNMS refused the API token of connection '{self.conn_id}' (HTTP {exc.status}: "
                        f"{api_message(exc)}); put a valid API token (LibreNMS: Settings > API > API Settings) "
                        "in the connection's password", status=exc.status,
            ) from None
        return read_envelope(body, result_name)

    def probe(self) -> str:
        groups = self.call("/devicegroups", "groups")
        return f"LibreNMS accepted the API token of connection '{self.conn_id}'; {len(groups)} device groups visible"

    def group_devices(self, group: str) -> list[dict[str, Any]]:
        try:
            return self.call(f"/devicegroups/{quote(group, safe='')}", "devices", params={"full": 1})
        except SourceResponseError as exc:
            if exc.status != 404:
                raise
            reason = api_message(exc)
            if reason.lower().startswith("no devices"):
                raise SourceResponseError(
                    SYSTEM, f"device group '{group}' has no devices; fix the group's rules in LibreNMS "
                            "or ref.device_group in the registry", status=404) from None
            raise SourceResponseError(
                SYSTEM, f"device group '{group}' not found ({reason}); check ref.device_group against "
                        "Devices > Device Groups in LibreNMS", status=404) from None

    def locations(self) -> dict[int, str]:
        try:
            return parse_locations(self.call("/resources/locations", "locations"))
        except SourceResponseError as exc:
            if exc.status == 404:  # "Locations do not exist": every device reports "No location"
                return {}
            raise

    def outages(self, device_id: int) -> list[Outage]:
        # No time filter on this endpoint: the device's whole history comes back, clipped later.
        return parse_outages(self.call(f"/devices/{device_id}/outages", "outages"))


HOOK = LibreNMSHook


# ---- pure parsing -----------------------------------------------------------------------------
def api_message(exc: SourceError) -> str:
    """The ``message`` of the error body inside a :class:`SourceError` (bodies hold no secrets)."""
    found = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', str(exc))
    return found.group(1) if found else str(exc).split(": ", 1)[-1]


def read_envelope(body: Any, result_name: str) -> list[Any]:
    """``body[result_name]`` of a ``status: ok`` envelope; ``status: error`` is an error."""
    if not isinstance(body, dict) or "status" not in body:
        raise SourceResponseError(SYSTEM, "response is not a LibreNMS API envelope")
    if body["status"] != "ok":
        raise SourceResponseError(SYSTEM, f"API error: {body.get('message') or 'status is not ok, no message'}")
    result = body.get(result_name)
    if not isinstance(result, list):
        raise SourceResponseError(SYSTEM, f"expected a list in '{result_name}'")
    if isinstance(body.get("count"), int) and body["count"] != len(result):
        raise SourceResponseError(SYSTEM, f"'{result_name}' holds {len(result)} rows but count says "
                                          f"{body['count']}; the answer was cut short")
    return result


def _int(value: Any, what: str) -> int:
    """Numeric columns arrive as ints or as strings (MySQL), so both are read."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SourceResponseError(SYSTEM, f"{what} is not a number: {value!r}") from None


def _flag(value: Any) -> bool:
    """A 0/1 column as ints, strings or booleans; missing is false."""
    return str(value).strip().lower() in ("1", "true")


def device_class(device_type: Any) -> str:
    text = str(device_type or "").strip()
    if not text:
        return UNCLASSIFIED
    return CLASS_NAMES.get(text.lower(), text.title())


def parse_locations(records: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """``list_locations`` rows as ``{location_id: name}``."""
    return {_int(r.get("id"), "location id"): str(r.get("location") or NO_LOCATION) for r in records}


def parse_devices(records: Iterable[Mapping[str, Any]], locations: Mapping[int, str]) -> list[Device]:
    """Group (or device-list) rows as :class:`Device`; disabled devices are left out."""
    devices = []
    for record in records:
        if "device_id" not in record:
            raise SourceResponseError(SYSTEM, "a device row has no device_id")
        if _flag(record.get("disabled")):
            continue
        site = record.get("location")
        if not site and record.get("location_id") not in (None, "", 0, "0"):
            site = locations.get(_int(record["location_id"], "location_id"))
        polled = record.get("last_polled")
        try:
            last_polled = parse_instant(str(polled).replace(" ", "T")) if polled else None
        except ValueError:
            last_polled = None  # an odd timestamp costs the freshness stamp, not the report
        if last_polled is not None:  # a poll in the future would hide a stalled poller
            last_polled = figures.past_instant(SYSTEM, f"device {record['device_id']} last_polled", last_polled,
                                               skew=figures.OFFSET_SKEW)
        devices.append(Device(
            device_id=_int(record["device_id"], "device_id"),
            hostname=str(record.get("hostname") or record["device_id"]),
            site=str(site or NO_LOCATION),
            device_class=device_class(record.get("type")),
            last_polled=last_polled,
        ))
    return devices


def parse_outages(records: Iterable[Mapping[str, Any]]) -> list[Outage]:
    """``[(going_down, up_again or None)]`` from epoch seconds (ints or strings)."""
    out: list[Outage] = []
    for record in records:
        try:
            down = parse_instant(_int(record["going_down"], "going_down"))
        except KeyError:
            raise SourceResponseError(SYSTEM, "an outage has no going_down") from None
        up = record.get("up_again")
        out.append((down, parse_instant(_int(up, "up_again")) if up not in (None, "", 0, "0") else None))
    return out


def downtime_seconds(outages: Iterable[Outage], week: ReportWeek, now: dt.datetime) -> float:
    """Seconds of the week one device was down: clipped, ongoing to min(week end, now), merged."""
    spans = []
    for going_down, up_again in outages:
        lo = max(going_down, week.start)
        hi = min(up_again or now, week.end)
        if hi > lo:
            spans.append((lo, hi))
    total, reach = 0.0, week.start
    for lo, hi in sorted(spans):
        lo = max(lo, reach)
        if hi > lo:
            total += (hi - lo).total_seconds()
            reach = hi
    return total


def uptime_rows(devices: Iterable[Device], downtime: Mapping[int, float], week: ReportWeek,
                slo: Mapping[str, float]) -> list[UptimeRow]:
    """One row per site and class: device-time weighted uptime over the week's own length, and
    the downtime that figure means in minutes of the whole row (device-minutes ÷ devices).

    ``slo`` maps a class to its SLO; ``""`` holds the default.
    """
    count: dict[tuple[str, str], int] = defaultdict(int)
    down: dict[tuple[str, str], float] = defaultdict(float)
    for device in devices:
        key = (device.site, device.device_class)
        count[key] += 1
        down[key] += downtime.get(device.device_id, 0.0)
    rows = []
    for (site, cls), n in sorted(count.items()):
        pct = round(100 * (1 - down[(site, cls)] / (n * week.seconds)), 3)
        rows.append(UptimeRow(site=site, device_class=cls, uptime_pct=pct,
                              downtime_minutes=round(down[(site, cls)] / n / 60, 2),  # row-minutes, as Zabbix
                              slo_pct=slo.get(cls, slo[""]), devices=n, source=SYSTEM))
    return rows


def slo_targets(ref: Mapping[str, str]) -> dict[str, float]:
    """``{"": default, "<Class>": override}`` from ``ref.slo_pct`` and ``ref["slo_pct.<Class>"]``."""
    targets = {"": DEFAULT_SLO_PCT}
    for key, value in ref.items():
        if key == "slo_pct" or key.startswith("slo_pct."):
            targets[key.partition(".")[2]] = figures.percentage(SYSTEM, f"ref.{key}", value)
    return targets


# ---- extract -----------------------------------------------------------------------------------
def extract(hook: LibreNMSHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """The customer's device group, each device's outages, clipped to ``week``, per site x class."""
    group = (ref.get("device_group") or "").strip()
    if not group:
        raise SourceError(SYSTEM, "ref.device_group is empty")
    slo = slo_targets(ref)
    records = hook.group_devices(group)
    needs_names = any(not r.get("location") and r.get("location_id") not in (None, "", 0, "0") for r in records)
    devices = parse_devices(records, hook.locations() if needs_names else {})
    if not devices:
        raise SourceResponseError(SYSTEM, f"every device in group '{group}' is disabled; nothing is monitored")
    now = dt.datetime.now(UTC)
    downtime = {d.device_id: downtime_seconds(hook.outages(d.device_id), week, now) for d in devices}
    polled = [d.last_polled for d in devices if d.last_polled is not None]
    as_of = min(max(polled), week.end) if polled else None
    return Extracted(UptimeData(rows=uptime_rows(devices, downtime, week, slo)), as_of=as_of)

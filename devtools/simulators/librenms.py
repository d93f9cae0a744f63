"""LibreNMS REST API simulator: ``/librenms/api/v0/...``.

Serves the world's services as LibreNMS devices. Each customer is one device group named by
its code; each service (site x class) is ``devices`` devices named
``<code>-<site>-<class>-<n>`` (lower case, spaces as ``-``), in the location named after the
site, with the LibreNMS ``type`` of the class. The service's outages (merged) belong to device 1
of its site and class, so a row's summed device downtime equals the service's downtime.

Wire behaviour kept as the reference and the PHP handlers describe it: ``X-Auth-Token`` on
every route, 401 ``{"message": "Unauthenticated."}`` without a valid one; success envelope
``{"status": "ok", <name>: [...], "count": N}`` (``message`` only when set; no ``count`` where
the handler hands ``api_success`` an Eloquent Collection rather than an array, which
``is_array`` does not count: ``device_outages``), errors
``{"status": "error", "message": ...}`` with the HTTP status; ``/devicegroups/{name}`` returns
only ``device_id`` unless ``full=1`` and then the ``devices`` columns (``location_id``, no
location name), 404 "Device group not found" / "No devices found in group X";
``/resources/locations`` names the locations; ``/devices/{host}/outages`` takes a hostname or an
id, newest first, no time filter, ``up_again: null`` while down, and (like the real handler for a
global-read token) answers an empty list for an unknown device; unknown routes get 404
"This API route doesn't exist.". No paging, no rate limits. Pretty-printed JSON, as LibreNMS.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from devtools.simulators.world import Outage, World
from devtools.simulators.app import paging_truncated

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
DEVICE_TYPES = {"Servers": "server", "Network": "network", "Firewalls": "firewall"}
DEVICE_OS = {"server": "linux", "network": "ios", "firewall": "fortigate"}


@dataclass
class SimDevice:
    device_id: int
    hostname: str
    customer: str
    site: str
    device_type: str
    location_id: int
    outages: list[tuple[dt.datetime, dt.datetime | None]] = field(default_factory=list)


@dataclass
class Inventory:
    devices: list[SimDevice]
    locations: dict[str, int]  # name -> id
    groups: list[dict[str, Any]]
    inserted: dt.datetime


def merged(outages: list[Outage]) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """Disjoint outages; an open one (``end=None``) swallows everything after its start."""
    out: list[tuple[dt.datetime, dt.datetime | None]] = []
    for o in sorted(outages, key=lambda o: o.start):
        if out and (out[-1][1] is None or o.start <= out[-1][1]):
            end = out[-1][1]
            out[-1] = (out[-1][0], None if end is None or o.end is None else max(end, o.end))
        else:
            out.append((o.start, o.end))
    return out


def inventory(world: World) -> Inventory:
    devices: list[SimDevice] = []
    locations: dict[str, int] = {}
    groups = []
    for cw in world.customers.values():
        groups.append({"id": len(groups) + 1, "name": cw.code, "desc": cw.profile.name, "type": "static",
                       "rules": None, "pattern": None})
        for svc in cw.services:
            location_id = locations.setdefault(svc.site, len(locations) + 1)
            kind = DEVICE_TYPES.get(svc.device_class, svc.device_class.lower())
            for n in range(1, svc.devices + 1):
                name = f"{cw.code}-{svc.site}-{svc.device_class}-{n}".lower().replace(" ", "-")
                devices.append(SimDevice(len(devices) + 1, name, cw.code, svc.site, kind, location_id,
                                         merged(svc.outages) if n == 1 else []))
    first = world.latest_week_of - dt.timedelta(weeks=world.weeks - 1)
    inserted = dt.datetime.combine(first, dt.time(0), tzinfo=UTC) - dt.timedelta(days=30)
    return Inventory(devices, locations, groups, inserted)


def _laravel_time(when: dt.datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _down_now(device: SimDevice, now: dt.datetime) -> bool:
    return any(start <= now and (end is None or end > now) for start, end in device.outages)


def device_row(device: SimDevice, inv: Inventory, now: dt.datetime) -> dict[str, Any]:
    """The ``devices`` table's columns, as Eloquent serialises them (``location_id``, no name)."""
    polled = now - dt.timedelta(minutes=now.minute % 5, seconds=now.second, microseconds=now.microsecond)
    down = _down_now(device, now)
    return {
        "device_id": device.device_id, "inserted": inv.inserted.strftime("%Y-%m-%d %H:%M:%S"),
        "hostname": device.hostname, "sysName": device.hostname, "display": None,
        "ip": f"10.{device.device_id // 65536 % 256}.{device.device_id // 256 % 256}.{device.device_id % 256}",
        "overwrite_ip": None, "sysDescr": f"{DEVICE_OS.get(device.device_type, 'generic')} appliance",
        "sysContact": "noc@northwind-msp.example", "version": "1.0", "hardware": "Generic",
        "features": None, "location_id": device.location_id, "os": DEVICE_OS.get(device.device_type, "generic"),
        "status": not down, "status_reason": "icmp" if down else "", "ignore": 0, "disabled": 0,
        "uptime": 0 if down else 86400 * 41, "agent_uptime": 0, "last_polled": _laravel_time(polled),
        "last_poll_attempted": None, "last_polled_timetaken": 2.31, "last_discovered_timetaken": 11.2,
        "last_discovered": _laravel_time(polled - dt.timedelta(hours=5)), "last_ping": _laravel_time(polled),
        "last_ping_timetaken": 1.2, "purpose": None, "type": device.device_type, "serial": None,
        "icon": f"images/os/{DEVICE_OS.get(device.device_type, 'generic')}.svg", "poller_group": 0,
        "override_sysLocation": 0, "notes": None, "port_association_mode": 1, "max_depth": 0,
        "disable_notify": 0,
    }


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, indent=4), status_code=status, media_type="application/json")


def _success(result: list[Any], name: str, message: str | None = None, *, counted: bool = True) -> Response:
    """``api_success``: ``count`` only for an array result (``counted``). A ``truncated`` fault
    shortens a counted list below its count; an uncounted one has nothing to fall short of."""
    cut = counted and paging_truncated()
    body: dict[str, Any] = {"status": "ok", name: result[: len(result) // 2] if cut else result}
    if message:
        body["message"] = message
    if counted:
        body["count"] = len(result)
    return _json(body)


def _error(status: int, message: str) -> Response:
    return _json({"status": "error", "message": message}, status)


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    built: dict[int, tuple] = {}

    def current() -> tuple:
        """The inventory of the world this request sees (an ``empty`` fault swaps the world)."""
        world = state.world
        if id(world) not in built:
            inv = inventory(world)
            built[id(world)] = (inv, {d.device_id: d for d in inv.devices}, {d.hostname: d for d in inv.devices},
                                {i: name for name, i in inv.locations.items()})
        return built[id(world)]

    def authorized(request: Request) -> bool:
        return secrets.compare_digest(request.headers.get("x-auth-token", ""), state.creds.librenms_token)

    def unauthenticated() -> Response:
        return _json({"message": "Unauthenticated."}, 401)

    def find(host: str) -> SimDevice | None:
        _, by_id, by_name, _ = current()
        return by_id.get(int(host)) if host.isdigit() else by_name.get(host)

    @api.get("/api/v0/devicegroups")
    async def list_groups(request: Request) -> Response:
        inv, by_id, by_name, location_names = current()
        if not authorized(request):
            return unauthenticated()
        groups = sorted(inv.groups, key=lambda g: g["name"])
        return _success(groups, "groups", f"Found {len(groups)} device groups")

    @api.get("/api/v0/devicegroups/{name}")
    async def group_devices(name: str, request: Request) -> Response:
        inv, by_id, by_name, location_names = current()
        if not authorized(request):
            return unauthenticated()
        group = next((g for g in inv.groups if (str(g["id"]) == name if name.isdigit() else g["name"] == name)), None)
        if group is None:
            return _error(404, "Device group not found")
        members = [d for d in inv.devices if d.customer == group["name"]]
        if not members:
            return _error(404, f"No devices found in group {name}")
        now = dt.datetime.now(UTC)
        if request.query_params.get("full") not in (None, "", "0"):
            return _success([device_row(d, inv, now) for d in members], "devices")
        return _success([{"device_id": d.device_id} for d in members], "devices")

    @api.get("/api/v0/resources/locations")
    async def list_locations(request: Request) -> Response:
        inv, by_id, by_name, location_names = current()
        if not authorized(request):
            return unauthenticated()
        if not inv.locations:
            return _error(404, "Locations do not exist")
        rows = [{"id": i, "location": name, "lat": None, "lng": None, "timestamp": "2025-01-06 09:00:00",
                 "fixed_coordinates": 0} for name, i in inv.locations.items()]
        return _success(rows, "locations")

    @api.get("/api/v0/devices/{hostname}")
    async def get_device(hostname: str, request: Request) -> Response:
        inv, by_id, by_name, location_names = current()
        if not authorized(request):
            return unauthenticated()
        device = find(hostname)
        if device is None:
            return _error(404, f"Device {hostname} does not exist")
        row = device_row(device, inv, dt.datetime.now(UTC)) | {"location": location_names[device.location_id]}
        return _success([row], "devices")

    @api.get("/api/v0/devices/{hostname}/outages")
    async def device_outages(hostname: str, request: Request) -> Response:
        inv, by_id, by_name, location_names = current()
        if not authorized(request):
            return unauthenticated()
        device = find(hostname)
        now = dt.datetime.now(UTC)
        rows = []
        for start, end in sorted(device.outages if device else [], key=lambda o: o[0], reverse=True):
            if start > now:
                continue  # not happened yet
            up = int(end.timestamp()) if end is not None and end <= now else None
            rows.append({"going_down": int(start.timestamp()), "up_again": up})
        return _success(rows, "outages", counted=False)  # DeviceOutage::...->get(): a Collection

    @api.api_route("/api/v0/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def not_found(rest: str, request: Request) -> Response:
        if not authorized(request):
            return unauthenticated()
        return _error(404, "This API route doesn't exist.")

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "librenms_default": {
            "conn_type": "librenms",
            "host": f"{base_url}/librenms",
            "password": creds.librenms_token,
            "extra": {},
        }
    }

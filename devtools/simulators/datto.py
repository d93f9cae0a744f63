"""Datto BCDR REST API (``/v1``), served from the demo world.

One SIRIS appliance per customer, its agents under ``/asset/agent`` with the full backup
history in ``backups[]`` (newest first). Like the real API: HTTP Basic with the partner's
public/secret key, ``_page``/``_perPage`` paging with a ``pagination`` block, 401 for bad keys,
404 for an unknown serial. Unlike it, the default page size is 3 instead of 100, so that every
client pages. Nothing after the real current time is served. Records carry every field of the
documented example bodies (tests/conformance/data/datto_*.json), with their JSON types.
Screenshot verification follows the world's recovery tests: each one marks the backup it booted
(``advancedVerification.screenshotVerification.status`` ``success`` or ``failed``; the other
backups ``skipped``) and the newest is the agent's ``lastScreenshotAttempt``; every agent has its
recovery points on the appliance (``localSnapshots``), so it can be virtualized locally.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import secrets
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.world import BackupAgent, CustomerWorld
from devtools.simulators.app import cut_short

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

UTC = dt.timezone.utc
DEFAULT_PER_PAGE = 3


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def _authorized(request: Request, creds: SimCredentials) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    public, _, secret = decoded.partition(":")
    return secrets.compare_digest(public, creds.datto_public_key) and secrets.compare_digest(
        secret, creds.datto_secret_key
    )


def _page(request: Request, items: list[dict[str, Any]]) -> JSONResponse:
    try:
        page = max(1, int(request.query_params.get("_page", 1)))
        per_page = max(1, min(1000, int(request.query_params.get("_perPage", DEFAULT_PER_PAGE))))
    except ValueError:
        return JSONResponse({"code": 400, "message": "_page and _perPage must be integers"}, status_code=400)
    total_pages = math.ceil(len(items) / per_page)
    chunk = cut_short(items[(page - 1) * per_page : page * per_page], page > 1)
    return JSONResponse({
        "pagination": {"page": page, "perPage": per_page, "totalPages": total_pages, "count": len(items)},
        "items": chunk,
    })


def _device(cw: CustomerWorld, now: dt.datetime) -> dict[str, Any]:
    first = cw.agents[0]
    return {
        "serialNumber": first.appliance_serial,
        "name": first.appliance_name,
        "model": "S4P2",
        "internalIP": "10.20.0.10",
        "clientCompanyName": cw.profile.name,
        "resellerCompanyName": "Northwind MSP",
        "registrationDate": "2023-02-14T10:00:00+00:00",
        "lastSeenDate": now.replace(microsecond=0).isoformat(),
        "hidden": False,
        "servicePlan": "Infinite Cloud Retention",
        "agentCount": len(cw.agents),
        "shareCount": 0,
        "alertCount": 0,
        "activeTickets": 0,
        "uptime": 1_209_600,
        "localStorageUsed": {"size": 4.2, "units": "TB"},
        "localStorageAvailable": {"size": 7.8, "units": "TB"},
        "offsiteStorageUsed": {"size": 3.9, "units": "TB"},
        "servicePeriod": "2027-02-14T00:00:00+00:00",
        "warrantyExpire": "2028-02-14T00:00:00+00:00",
        "remoteWebUrl": f"https://device.dattobackup.com/device/{first.appliance_serial}",
    }


def _screenshots(agent: BackupAgent, runs: list, now: dt.datetime) -> dict[int, bool]:
    """Which backup (index in ``runs``) each finished screenshot verification booted: the newest
    good backup before it started; -> whether the screenshot passed."""
    good = [i for i, r in enumerate(runs) if r.ok]
    verified: dict[int, bool] = {}
    for shot in (x for x in agent.recoveries if x.kind == "screenshot" and x.ended <= now):
        before = [i for i in good if runs[i].at <= shot.started]
        if before:
            verified[before[-1]] = shot.ok
    return verified


def _agent(agent: BackupAgent, now: dt.datetime) -> dict[str, Any]:
    runs = [r for r in agent.runs if r.at <= now]
    good = [r.at for r in runs if r.ok]
    last = _epoch(good[-1]) if good else None
    shots = _screenshots(agent, runs, now)
    attempts = [x for x in agent.recoveries if x.kind == "screenshot" and x.ended <= now]
    backups = [
        {
            "timestamp": r.at.astimezone(UTC).isoformat(),  # "+00:00", as the API writes it
            "backup": {"status": "success" if r.ok else "failed", "errorMessage": r.error or None},
            "localVerification": {"status": "success" if r.ok else "skipped", "errors": []},
            "advancedVerification": {"screenshotVerification": {
                "status": {True: "success", False: "failed"}.get(shots.get(i), "skipped"), "image": None}},
        }
        for i, r in reversed(list(enumerate(runs)))
    ]
    return {
        "name": agent.name,
        "volume": agent.name.lower().encode().hex()[:32],
        "localIp": "10.20.0.50",
        "os": "Windows Server 2022",
        "type": "agent",
        "fqdn": f"{agent.name.lower()}.corp.local",
        "protectedVolumesCount": 2,
        "unprotectedVolumesCount": 0,
        "protectedVolumeNames": ["C:", "D:"],
        "unprotectedVolumeNames": [],
        "agentVersion": "3.1.4.0",
        "isPaused": False,
        "isArchived": False,
        "latestOffsite": last,
        "localSnapshots": len(good),
        "lastSnapshot": last,
        "lastScreenshotAttempt": _epoch(attempts[-1].ended) if attempts else None,
        "lastScreenshotAttemptStatus": attempts[-1].ok if attempts else False,
        "lastScreenshotUrl": None,
        "backups": backups,
    }


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    world = state.world_view()

    def unauthorized() -> JSONResponse:
        return JSONResponse({"code": 401, "message": "Unauthorized: invalid API key pair"}, status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="Datto API"'})

    def customer_by_serial(serial: str) -> CustomerWorld | None:
        return next((c for c in world.customers.values() if c.agents and c.agents[0].appliance_serial == serial),
                    None)

    @api.get("/v1/bcdr/device")
    async def devices(request: Request):
        if not _authorized(request, state.creds):
            return unauthorized()
        now = _now()
        return _page(request, [_device(c, now) for c in world.customers.values() if c.agents])

    @api.get("/v1/bcdr/device/{serial}/asset/agent")
    async def agents(serial: str, request: Request):
        if not _authorized(request, state.creds):
            return unauthorized()
        cw = customer_by_serial(serial)
        if cw is None:
            return JSONResponse({"code": 404, "message": f"Device {serial} not found"}, status_code=404)
        now = _now()
        return _page(request, [_agent(a, now) for a in cw.agents])

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    return {
        "datto_default": {
            "conn_type": "datto",
            "host": f"{base_url}/datto/v1",
            "login": creds.datto_public_key,
            "password": creds.datto_secret_key,
            "extra": {},
        }
    }

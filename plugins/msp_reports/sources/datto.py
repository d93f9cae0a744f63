"""Datto BCDR: per-agent backup state of one customer's appliances, as of the end of the week.

The API lists the MSP's appliances (``/bcdr/device``) and each appliance's protected agents
(``/bcdr/device/{serial}/asset/agent``) with their recent backup history in ``backups[]``.
Everything is read as of ``week.end``: a backup that ran after the week (the report is built
on Monday, or re-run later) must not make a silent agent look healthy.

Definitions used by the report:

- **last good backup**: the newest ``backups[]`` entry before week end whose
  ``backup.status`` is success-like; if ``lastSnapshot`` (epoch seconds) is also before week
  end and newer, it wins, since a local snapshot only exists after a backup that worked. This
  covers a ``backups[]`` history shorter than the gap since the last good run.
- **last status**: the raw ``backup.status`` of the newest entry before week end.
- **backups / failures in week**: ``backups[]`` entries in ``[week.start, week.end)``.
- **RPO**: the API exposes no RPO or schedule per agent, so it comes from the registry
  (``ref.rpo_hours``, default 24 h) and applies to all the customer's agents.

Recovery evidence (RTO), read from the same agent records (no further request):

- **recovery tests**: each ``backups[]`` entry before week end whose
  ``advancedVerification.screenshotVerification.status`` is set is a screenshot verification at
  the entry's ``timestamp`` (the appliance booted the backup as a VM and captured its screen);
  it passed when that status is success-like *and* ``localVerification.status``, when given, is
  too. The agent's ``lastScreenshotAttempt`` (epoch seconds) with the boolean
  ``lastScreenshotAttemptStatus`` is one more test when it is before week end (it covers a
  ``backups[]`` history shorter than the gap since the last screenshot). A status meaning the
  check did not run (``skipped``, ``pending``...) is no test. A screenshot has no
  duration, so Datto never gives a *measured* recovery time.
- **where a restore could run**: ``localSnapshots`` > 0 means a recovery point is on the
  appliance, so the machine can be virtualized locally (``local``); none locally but a
  ``latestOffsite`` means the offsite (cloud) copy only (``offsite``). The estimate is then
  the planning figure of :data:`~msp_reports.sources.backup_rules.ESTIMATED_RECOVERY_MINUTES`.
- **asset class**: ``os`` naming a server edition ("Windows Server 2022") is ``server``; a
  desktop system (Windows 10/11, macOS) is ``workstation``; anything else counts as a server,
  the stricter target.

UNCONFIRMED (Datto documents these fields as "string" with no enum, and the public examples
only show placeholders): the values of ``screenshotVerification.status`` and
``localVerification.status`` (success-like values as for ``backup.status`` pass, anything else
fails); whether ``lastScreenshotAttempt`` is epoch seconds like ``lastSnapshot``; whether
``localSnapshots`` counts snapshots still on the appliance (rather than ever taken there); that
the API says nothing of a device's local virtualization capacity, so ``local`` is a capability,
not a guarantee.

These rules are shared with the other backup systems: :mod:`msp_reports.sources.backup_rules`.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from requests.auth import HTTPBasicAuth

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient
from msp_reports.http.paging import numbered_pages
from msp_reports.http.timestamps import parse_instant
from msp_reports.identity import identity_key
from msp_reports.snapshot import AssetClass, BackupAsset, BackupData, RecoveryTest, RestoreSite
from msp_reports.sources import Extracted
from msp_reports.sources.backup_rules import DEFAULT_RPO_HOURS  # noqa: F401 - the registry default
from msp_reports.sources.backup_rules import (
    BackupAttempt,
    backup_asset,
    newest_before,
    rpo_hours as rpo_hours_of,
    with_recovery,
)
from msp_reports.sources import figures
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

log = logging.getLogger(__name__)

SYSTEM = "datto"
DEFAULT_BASE_URL = "https://api.datto.com/v1"
# The API documents backup.status only as "string" (UNCONFIRMED enum): anything not in this
# set counts as a failure, and the raw value is kept for the report.
SUCCESS_STATUSES = frozenset({"success", "succeeded", "successful", "complete", "completed", "ok"})
# A verification status meaning the check did not run (UNCONFIRMED enum, like backup.status):
# no test at all, neither passed nor failed.
NOT_RUN_STATUSES = frozenset({"", "skipped", "pending", "queued", "not run", "notrun", "none", "disabled"})


class DattoHook(SourceHook):
    """Datto BCDR REST API with the MSP's partner-portal API keys (HTTP Basic).

    Connection: ``host`` is the API root (default ``https://api.datto.com/v1``), ``login`` the
    public key, ``password`` the secret key.

    :param conn_id: the Airflow connection id (default ``datto_default``).
    :param page_size: ``_perPage`` to request; ``None`` leaves the API default (100).
    :param policy: retry policy for every request.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "datto_default"
    conn_type = "datto"
    hook_name = "Datto BCDR"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        if not conn.login or not conn.password:
            raise SourceAuthError(
                self.system,
                f"connection '{self.conn_id}' needs login (Datto public key) and password (secret key)",
            )
        base = self.base_url(conn) if conn.host else DEFAULT_BASE_URL
        return ApiClient(
            self.system,
            base,
            headers={"Accept": "application/json"},
            auth=HTTPBasicAuth(conn.login, conn.password),
            timeout=float(extra.get("timeout") or 30.0),
            policy=self.policy,
        )

    def list_all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paged collection (``_page`` until ``pagination.totalPages``)."""

        def fetch(page: int) -> tuple[list[Any], int]:
            params: dict[str, Any] = {"_page": page}
            if self.page_size:
                params["_perPage"] = self.page_size
            return read_page(self.get(path, params))

        return numbered_pages(self.system, fetch)

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """GET with the shared retries; refused keys say what to check in the connection."""
        try:
            return self.client.json("GET", path, params=params)
        except SourceAuthError as exc:
            raise SourceAuthError(
                self.system,
                f"Datto rejected the API keys of connection '{self.conn_id}' (HTTP {exc.status}); "
                "check login = public key and password = secret key",
                status=exc.status,
            ) from exc

    def probe(self) -> str:
        read_page(self.get("/bcdr/device", {"_page": 1, "_perPage": 1}))
        return f"Datto accepted the API keys of connection '{self.conn_id}' and listed BCDR devices"

    def devices(self) -> list[dict[str, Any]]:
        return self.list_all("/bcdr/device")

    def agents(self, serial: str) -> list[dict[str, Any]]:
        return self.list_all(f"/bcdr/device/{quote(serial, safe='')}/asset/agent")


HOOK = DattoHook


# --- wire -> model (pure) ------------------------------------------------------------------
def read_page(body: Any) -> tuple[list[Any], int]:
    """Items and total page count from a Datto page; a bare list is a single page."""
    if isinstance(body, list):
        return body, 1
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        try:
            total = int((body.get("pagination") or {}).get("totalPages", 1))
        except (TypeError, ValueError) as exc:
            raise SourceResponseError(SYSTEM, "pagination.totalPages is not a number") from exc
        return body["items"], total
    raise SourceResponseError(SYSTEM, "expected a page with 'items' and 'pagination'")


def same_company(device: dict[str, Any], client_company: str) -> bool:
    """Datto spells the customer as free text: compared whole, by the registry's identity rule."""
    return company_key(device) == identity_key(client_company)


def company_key(device: dict[str, Any]) -> str:
    return identity_key(device.get("clientCompanyName") or "")


def status_ok(status: str) -> bool:
    return status.strip().lower() in SUCCESS_STATUSES


def backup_attempts(agent: dict[str, Any]) -> list[BackupAttempt]:
    """``backups[]`` as attempts, oldest first (the API lists newest first; do not rely on it)."""
    attempts = []
    for entry in agent.get("backups") or []:
        try:
            at = parse_instant(entry["timestamp"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceResponseError(
                SYSTEM, f"agent {agent.get('name')!r}: backup entry without a valid timestamp"
            ) from exc
        status = str(((entry.get("backup") or {}).get("status")) or "unknown")
        attempts.append(BackupAttempt(at, status, status_ok(status)))
    return sorted(attempts, key=lambda a: a.at)


def _verification_status(block: Any) -> str:
    return str((block or {}).get("status") or "").strip() if isinstance(block, dict) else ""


def screenshot_tests(agent: dict[str, Any]) -> list[RecoveryTest]:
    """The agent's screenshot verifications as recovery tests (see the module docstring)."""
    tests = []
    for entry in agent.get("backups") or []:
        shot = _verification_status(((entry.get("advancedVerification") or {}).get("screenshotVerification")))
        if shot.lower() in NOT_RUN_STATUSES:
            continue
        local = _verification_status(entry.get("localVerification"))
        local = "" if local.lower() in NOT_RUN_STATUSES else local
        passed = status_ok(shot) and (not local or status_ok(local))
        status = f"screenshot {shot}" + (f", local verification {local}" if local and not status_ok(local) else "")
        tests.append(RecoveryTest(kind="screenshot", at=parse_instant(entry["timestamp"]), passed=passed,
                                  status=status))
    attempt = agent.get("lastScreenshotAttempt")
    if attempt:
        result = agent.get("lastScreenshotAttemptStatus")
        if not isinstance(result, bool):
            raise SourceResponseError(SYSTEM, f"agent {agent.get('name')!r}: lastScreenshotAttemptStatus is "
                                              f"{result!r}, not true or false")
        tests.append(RecoveryTest(kind="screenshot", at=parse_instant(attempt), passed=result,
                                  status="screenshot passed" if result else "screenshot failed"))
    return tests


def restore_site(agent: dict[str, Any]) -> RestoreSite:
    """Local virtualization on the appliance, offsite only, or unknown (see the module docstring)."""
    local = agent.get("localSnapshots")
    if local is not None and figures.count(SYSTEM, f"agent {agent.get('name')!r} localSnapshots", local) > 0:
        return "local"
    return "offsite" if agent.get("latestOffsite") else "unknown"


def asset_class(agent: dict[str, Any]) -> AssetClass:
    os_name = str(agent.get("os") or "").lower()
    if "server" in os_name:
        return "server"
    return "workstation" if any(w in os_name for w in ("windows 10", "windows 11", "mac")) else "server"


def parse_agent(agent: dict[str, Any], appliance: str, week: ReportWeek, rpo_hours: float,
                ref: dict[str, str] | None = None) -> BackupAsset:
    """One agent's state at ``week.end`` (see the module docstring for each definition)."""
    snapshot = agent.get("lastSnapshot")
    asset = backup_asset(
        name=str(agent.get("name") or agent.get("fqdn") or "unnamed agent"),
        appliance=appliance,
        attempts=backup_attempts(agent),
        week=week,
        rpo_hours=rpo_hours,
        source=SYSTEM,
        also_good=[parse_instant(snapshot)] if snapshot else [],
        status_without_attempts="paused" if agent.get("isPaused") else "no backups",
    )
    return with_recovery(asset, ref=ref or {}, tests=screenshot_tests(agent), week=week,
                         asset_class=asset_class(agent), restore_site=restore_site(agent))


def newest_attempt(agents: list[dict[str, Any]], before: dt.datetime) -> dt.datetime | None:
    """The newest backup attempt before ``before`` over all agents: the data's as-of."""
    return newest_before((a.at for agent in agents for a in backup_attempts(agent)), before)


# --- extract ------------------------------------------------------------------------------
def extract(hook: DattoHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """The customer's agents on all its appliances, evaluated at ``week.end``.

    ``ref["client_company"]`` is the customer's name as written in Datto. The API has no
    server-side filter on ``clientCompanyName``, so every appliance of the MSP is listed (once
    per DAG run, shared by its customers: :meth:`SourceHook.select_listing`) and filtered. Archived agents are left out: they no longer back up by design.
    """
    company = ref.get("client_company", "").strip()
    if not company:
        raise SourceError(SYSTEM, "ref.client_company is empty")
    rpo_hours = rpo_hours_of(ref, SYSTEM)

    devices = hook.select_listing("devices", hook.devices, company_key, [identity_key(company)])
    if not devices:
        raise SourceError(
            SYSTEM,
            f"no appliance has clientCompanyName {company!r}; check ref.client_company "
            "against the customer name in the Datto partner portal",
        )
    assets: list[BackupAsset] = []
    raw_agents: list[dict[str, Any]] = []
    for device in devices:
        serial = str(device.get("serialNumber") or "")
        if not serial:
            raise SourceResponseError(SYSTEM, f"appliance {device.get('name')!r} has no serialNumber")
        appliance = str(device.get("name") or serial)
        for agent in hook.agents(serial):
            if agent.get("isArchived"):
                continue
            raw_agents.append(agent)
            assets.append(parse_agent(agent, appliance, week, rpo_hours, ref))
    assets.sort(key=lambda a: (a.appliance, a.name))
    return Extracted(BackupData(assets=assets), as_of=newest_attempt(raw_agents, week.end))

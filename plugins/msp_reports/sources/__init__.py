"""Source systems, one module each, all shaped alike.

Each module ``msp_reports.sources.<system>`` exposes:

- a hook class (Airflow connection, auth, paging) built on :class:`.base.SourceHook`;
- ``HOOK``: that hook class (its ``default_conn_name`` is the demo's connection id);
- ``extract(hook, ref, week) -> Extracted``: calls the API for one customer's week (``ref`` is
  the customer's identifiers from the registry) and returns the normalized model from
  :mod:`msp_reports.snapshot` plus the newest data point the system reported;
- pure parse functions that turn the system's records into that model.

``SYSTEMS`` says which domain each system serves and which registry ``ref`` fields it needs,
so the registry can be validated without importing any hook.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass
from types import ModuleType

from pydantic import BaseModel

from msp_reports.snapshot import Domain


@dataclass(frozen=True)
class Extracted:
    data: BaseModel  # UptimeData, TicketData, BackupData, SecurityData or SiteData
    as_of: dt.datetime | None = None


@dataclass(frozen=True)
class SystemSpec:
    domain: Domain
    ref_fields: tuple[str, ...]  # identifiers of the customer in that system
    label: str


SYSTEMS: dict[str, SystemSpec] = {
    "zabbix": SystemSpec("uptime", ("service_tag",), "Zabbix"),
    "connectwise": SystemSpec("tickets", ("company",), "ConnectWise PSA"),
    "halopsa": SystemSpec("tickets", ("client_id",), "HaloPSA"),
    "datto": SystemSpec("backups", ("client_company",), "Datto BCDR"),
    "veeam": SystemSpec("backups", ("organization",), "Veeam"),
    "defender": SystemSpec("security", ("tenant_id",), "Microsoft Defender"),
    "sentinel": SystemSpec("security", ("subscription_id", "resource_group", "workspace"), "Microsoft Sentinel"),
    "cloudflare": SystemSpec("sites", ("zone_id",), "Cloudflare health checks"),
    "librenms": SystemSpec("uptime", ("device_group",), "LibreNMS"),
    "uptimerobot": SystemSpec("sites", ("monitor_prefix",), "Status checks (UptimeRobot)"),
}


def module_for(system: str) -> ModuleType:
    return importlib.import_module(f"msp_reports.sources.{system}")

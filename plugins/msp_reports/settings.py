"""Where things live. Read at run time from Airflow Variables, with project defaults.

- ``msp_reports_registry``: the customer registry (default ``include/customers.yaml``);
- ``msp_reports_store``: the report store root, a folder or ObjectStoragePath URL
  (default ``$MSP_REPORTS_HOME/store``);
- ``msp_reports_archive``: the local archive root (default ``$MSP_REPORTS_HOME/archive``).

``MSP_REPORTS_HOME`` defaults to ``var/`` at the project root.

The DAG's schedule (Monday 06:00) is in the timezone of the environment variable
``MSP_REPORTS_TIMEZONE`` (:func:`schedule_timezone`): a schedule is fixed when the file is parsed,
and the registry is not read then. The registry's ``msp.timezone`` must name the same zone, which
plan_customers checks (:func:`msp_reports.pipeline.plan`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INCLUDE = PROJECT_ROOT / "include"
SCHEDULE_TIMEZONE_ENV = "MSP_REPORTS_TIMEZONE"
DEFAULT_SCHEDULE_TIMEZONE = "Europe/London"


def schedule_timezone() -> str:
    """The timezone of the DAG's Monday 06:00 schedule: ``$MSP_REPORTS_TIMEZONE``, default Europe/London."""
    return os.environ.get(SCHEDULE_TIMEZONE_ENV) or DEFAULT_SCHEDULE_TIMEZONE


@dataclass(frozen=True)
class Settings:
    registry_path: str
    store_root: str
    archive_root: str

    @classmethod
    def load(cls, get: Callable[[str, str], str] | None = None) -> Settings:
        home = Path(os.environ.get("MSP_REPORTS_HOME") or PROJECT_ROOT / "var")
        if get is None:
            def get(_key: str, default: str) -> str:
                return default
        return cls(
            registry_path=get("msp_reports_registry", str(INCLUDE / "customers.yaml")),
            store_root=get("msp_reports_store", str(home / "store")),
            archive_root=get("msp_reports_archive", str(home / "archive")),
        )

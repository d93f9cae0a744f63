"""Fixtures for the reliability and security tests: the demo registry against the simulators,
a fresh store per test, and hooks whose retries sleep no real time (the sleeps are recorded)."""

from __future__ import annotations

import functools
import io
import shutil
from pathlib import Path

import pytest
import requests
from pypdf import PdfReader


from msp_reports.http.client import RetryPolicy
from msp_reports.registry import load_registry
from msp_reports.settings import Settings
from msp_reports.sources import SYSTEMS

# few checks and incidents per demo customer; Cloudflare's per_page must be a multiple of 5, so its
# listings page by the simulator's default of one a page (None: no per_page sent)
PAGE_SIZES = {"cloudflare": None, "sentinel": 1, "uptimerobot": 1}
ATTEMPTS = RetryPolicy().attempts  # the production bound on tries per request
REGISTRY_PATH = Settings.load().registry_path
REGISTRY = load_registry(REGISTRY_PATH)


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def demo_connections_for(sim, registry=REGISTRY, *, teams_suffix: str = "") -> dict[str, dict]:
    from devtools.simulators.server import demo_connections

    channels = {c.delivery.teams.conn_id: f"{c.code.lower()}{teams_suffix}" for c in registry.customers}
    channels[registry.msp.internal_teams_conn_id] = f"weekly-reports{teams_suffix}"
    return demo_connections(sim.base_url, sim.creds, channels)


@pytest.fixture
def set_connections(monkeypatch):
    from devtools.simulators.server import connection_env

    def _set(conns: dict[str, dict]) -> None:
        for key, value in connection_env(conns).items():
            monkeypatch.setenv(key, value)

    return _set


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(registry_path=REGISTRY_PATH, store_root=str(tmp_path / "store"),
                    archive_root=str(tmp_path / "archive"))


class SleepLog(list):
    """Stands in for ``time.sleep`` in the retry policy: records each wait, waits for none."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps(monkeypatch) -> SleepLog:
    """Every hook the pipeline builds gets the production retry policy with a recording sleep,
    and a small page size (2; 1 for Cloudflare, Sentinel, UptimeRobot) so that every listing pages."""
    log = SleepLog()
    for system in SYSTEMS:
        module = __import__(f"msp_reports.sources.{system}", fromlist=["HOOK"])
        hook = module.HOOK
        extra = {"session_page_size": 2} if system == "veeam" else {}
        monkeypatch.setattr(module, "HOOK", functools.partial(
            hook, page_size=PAGE_SIZES.get(system, 2), policy=RetryPolicy(sleep=log), **extra))
    return log


def fault(sim, system: str, mode: str, **params) -> None:
    requests.post(f"{sim.base_url}/_sim/faults/{system}", json={"mode": mode, **params},
                  timeout=5).raise_for_status()


def clear_faults(sim) -> None:
    requests.delete(f"{sim.base_url}/_sim/faults", timeout=5).raise_for_status()


def received(sim, system: str) -> int:
    return requests.get(f"{sim.base_url}/_sim/requests", timeout=5).json().get(system, 0)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)

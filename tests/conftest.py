"""Shared fixtures: the demo world and the simulators, served on a free loopback port."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # devtools/: simulators, demo
sys.path.insert(0, str(ROOT / "plugins"))

# Airflow reads its home at import time: give the test session its own, before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="msp-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
})

from devtools.simulators.credentials import SimCredentials  # noqa: E402
from devtools.simulators.server import SimServer  # noqa: E402
from devtools.simulators.world import World  # noqa: E402

from tests.factories import WEEK_OF  # noqa: E402


@pytest.fixture(scope="session")
def world() -> World:
    return World(WEEK_OF)


@pytest.fixture(scope="session")
def creds() -> SimCredentials:
    return SimCredentials.generate()


@pytest.fixture(scope="session")
def sim(world, creds):
    with SimServer(world, creds) as server:
        yield server


@pytest.fixture(autouse=True)
def _clear_faults(request):
    yield
    if "sim" in request.fixturenames:
        server = request.getfixturevalue("sim")
        with server.state.lock:
            server.state.faults.clear()


@pytest.fixture
def use_connection(monkeypatch):
    """Define an Airflow connection through the environment, as a deployment would."""

    def _use(conn_id: str, conn: dict) -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return _use


@pytest.fixture
def sim_settings(sim, tmp_path, monkeypatch):
    """The demo registry's source connections pointed at the simulators; a fresh store and archive."""
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from devtools.simulators.server import connection_env, demo_connections

    registry = load_registry(Settings.load().registry_path)
    channels = {c.delivery.teams.conn_id: c.code.lower() for c in registry.customers}
    for key, value in connection_env(demo_connections(sim.base_url, sim.creds, channels)).items():
        monkeypatch.setenv(key, value)
    return Settings(registry_path=Settings.load().registry_path, store_root=str(tmp_path / "store"),
                    archive_root=str(tmp_path / "archive"))

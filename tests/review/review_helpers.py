"""Shared by the review tests: a real rendered week in a store, and the environment to build it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from tests.factories import ROOT

TEST_USERS = "reviewer:user,viewer:viewer,admin:admin"
# Teams channels of their own in the session's shared simulator, so other tests' counts are untouched
CHANNEL_TAG = "review-tests"
INTERNAL_CHANNEL = f"weekly-reports-{CHANNEL_TAG}"


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """Set environment variables for a block and put back exactly what was there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sim_env(sim, home: Path) -> dict[str, str]:
    """Connections pointing at the simulators (Teams channels named after customers) and the store."""
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from devtools.simulators.server import connection_env, demo_connections

    registry = load_registry(Settings.load().registry_path)
    channels = {c.delivery.teams.conn_id: f"{c.code.lower()}-{CHANNEL_TAG}" for c in registry.customers}
    channels[registry.msp.internal_teams_conn_id] = INTERNAL_CHANNEL
    return {**connection_env(demo_connections(sim.base_url, sim.creds, channels)), "MSP_REPORTS_HOME": str(home)}


def render_week(week_of: dt.date, codes: list[str]) -> None:
    """Extract, reconcile and render ``codes`` for ``week_of`` with the pipeline's own functions,
    in one run as the DAG's (its id in the item: the run records itself in ``run.json``)."""
    from msp_reports import pipeline
    from msp_reports.settings import Settings

    settings = Settings.load()
    for code in codes:
        item = {"customer": code, "week_of": week_of.isoformat(), "run": f"render_week__{week_of}"}
        for domain in pipeline.DOMAINS:
            pipeline.extract(settings, item, domain)
        pipeline.build_snapshot(settings, item)
        pipeline.render(settings, item)


def migrate_db(env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env or os.environ.copy(), cwd=ROOT)


def api_clients():
    """A client factory for Airflow's API app (the review page mounted as in production): ``client()``
    is anonymous, ``client(user, role)`` carries that Airflow user's token."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app("core")
    manager = get_auth_manager()

    def client(username: str | None = None, role: str | None = None) -> TestClient:
        c = TestClient(app, base_url="http://127.0.0.1:8080")
        if username:
            c.cookies.set("_token", manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role)))
        return c

    return client


@contextlib.contextmanager
def hitl_timeout_sweep(every: float = 1.0):
    """What the scheduler does for Human-in-the-loop waits and ``dag.test`` does not: end each wait
    at its response timeout. Airflow's own sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``),
    run every ``every`` seconds in a thread of this process, which has the run's database."""
    import logging
    import threading
    from types import SimpleNamespace

    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    stop = threading.Event()
    scheduler = SimpleNamespace(log=logging.getLogger("hitl-timeout-sweep"))

    def sweep() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):  # a locked database: the next sweep
                SchedulerJobRunner.check_awaiting_input_timeouts(scheduler)

    thread = threading.Thread(target=sweep, name="hitl-timeout-sweep", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)

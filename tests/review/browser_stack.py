"""Shared by the real-browser tests: an Airflow home with a real ``airflow api-server`` and a DAG
run (``dag.test``) in subprocesses, Chromium signed in through Airflow's login page, and the waits,
REST calls and PDF text the tests check with."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories import ROOT
from tests.review.review_helpers import sim_env

if TYPE_CHECKING:
    from devtools.simulators.mailsink import MailSink
    from msp_reports.registry import Registry

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")

_RUN_DAG = textwrap.dedent("""
    import datetime as dt, json, sys
    from zoneinfo import ZoneInfo
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(sys.argv[1]).dags[sys.argv[2]]
    at = dt.datetime.combine(dt.date.fromisoformat(sys.argv[3]), dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
    dr = dag.test(logical_date=at, run_after=at, run_conf=json.loads(sys.argv[4]))
    print("DAG RUN STATE", dr.state)
""")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started, and its children (it leads its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    """``check()``'s first truthy result within ``timeout`` seconds; fails early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}\n{log.read_text()[-4000:] if log else ''}")
        try:
            if result := check():
                return result
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:] if log else ''}")


def api(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    """One call to Airflow's REST API, its JSON answer."""
    request = urllib.request.Request(f"{base}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def token(base: str, user: str, password: str) -> str:
    return api(base, "POST", "/auth/token", body={"username": user, "password": password})["access_token"]


def pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


def approval_records(folder: Path) -> list[dict]:
    """The approval records of one report or pack folder, oldest first."""
    return [json.loads(p.read_text()) for p in sorted((folder / "approvals").glob("*.json"))]


@dataclass
class AirflowStack:
    """An Airflow home in ``tmp_path`` and the processes started in it (stopped by :func:`airflow_stack`)."""

    tmp_path: Path
    port: int
    env: dict[str, str]
    mail: MailSink
    registry: Registry
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dag_log(self) -> Path:
        return self.tmp_path / "dag.log"

    def start_dag(self, dag_id: str, monday: dt.date, conf: dict[str, Any]) -> subprocess.Popen:
        """``dag.test`` of ``dag_id`` for 06:00 London on ``monday``, its output in :attr:`dag_log`."""
        with self.dag_log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-c", _RUN_DAG, str(ROOT / "dags"), dag_id, monday.isoformat(),
                                     json.dumps(conf)],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_api_server(self) -> None:
        """``airflow api-server`` on :attr:`port`, once it answers its health check."""
        log = self.tmp_path / "api-server.log"
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
                                     "--port", str(self.port), "--workers", "1"],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        wait_for("the API server", lambda: urllib.request.urlopen(f"{self.base}/api/v2/monitor/health",
                                                                  timeout=5).status == 200, 180, proc, log)


@contextlib.contextmanager
def airflow_stack(sim, tmp_path: Path, reports: Path, users: dict[str, tuple[str, str]], secret: str,
                  extra_env: Callable[[int], dict[str, str]] = lambda port: {}) -> Iterator[AirflowStack]:
    """A migrated Airflow home (SQLite, this project's DAGs and plugins, pools imported) whose
    simple auth manager knows ``users`` (name: (role, password)), with connections to the
    simulators, ``reports`` as the store and a real SMTP server; ``extra_env`` adds variables that
    need the API server's port. Every process started in it is stopped afterwards."""
    from devtools.demo import import_pools
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import free_port
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    home = tmp_path / "airflow"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({name: password for name, (_, password) in users.items()}))
    registry = load_registry(Settings.load().registry_path)
    port = free_port()
    with MailSink(tmp_path / "outbox") as mail:
        env = {
            **os.environ, **sim_env(sim, reports),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(mail.connection(str(registry.msp.from_email))),
            **extra_env(port),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for name, (role, _) in users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__SECRET_KEY": f"{secret}-secret-key-0123456789",
            "AIRFLOW__API_AUTH__JWT_SECRET": f"{secret}-jwt-secret-0123456789-0123456789-0123456789",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
        }
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import_pools(env)
        stack = AirflowStack(tmp_path, port, env, mail, registry)
        try:
            yield stack
        finally:
            for proc in stack.procs:
                stop(proc)


@contextlib.contextmanager
def chromium_page():
    """A page of a headless Chromium, 1440×1000."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1440, "height": 1000})
        finally:
            browser.close()


def sign_in(page, url: str, user: str, password: str) -> None:
    """Open ``url`` signed out: Airflow sends the browser to its login page; sign in there as
    ``user`` and land back on ``url``'s page."""
    page.goto(url)
    page.wait_for_url(re.compile(r"/auth/login"))
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(urllib.parse.urlsplit(url).path)))

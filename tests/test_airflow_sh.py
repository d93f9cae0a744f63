"""``scripts/airflow.sh`` (``python -m devtools.demo serve``, which the script execs): the port
asked for and the URL printed agree, it listens on 127.0.0.1 only, the LocalExecutor keeps
:data:`devtools.standalone.PARALLELISM` workers, the admin password is printed again on a
restart, and a SIGTERM stops every process it started.

The script itself first runs ``scripts/bootstrap.sh`` (``uv sync``), so the test starts what it
execs, with a temporary Airflow home and report folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.factories import ROOT

from devtools.standalone import PARALLELISM, WATCHER_USER, saved_password, standalone_env, watcher_env

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    from devtools.simulators.server import free_port

    return free_port()


class Serve:
    """``devtools.demo serve`` in a subprocess, its output collected line by line.

    ``argv`` and ``cwd`` run something else that execs it, e.g. ``bash scripts/airflow.sh --port N``
    from a copy of the project (tests/integration/test_readme_path.py); it then gets no Airflow or
    MSP variables and no PYTHONPATH from this test process, as in a newcomer's shell.
    """

    def __init__(self, tmp: Path | None, port: int, *, argv: list[str] | None = None, cwd: Path = ROOT) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MSP_"))}
        if argv is None:
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
            env["MSP_AIRFLOW_PORT"] = str(port)
            argv = [sys.executable, "-m", "devtools.demo", "serve", "--home", str(tmp / "home"), "--dir",
                    str(tmp / "var"), "--history", "0", "--sim-port", "0"]
        else:
            env.pop("PYTHONPATH", None)
        self.port = port
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(1)
        raise AssertionError(f"{what} not seen in {timeout:.0f} s; output:\n" + "\n".join(self.lines[-40:]))

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/api/v2/monitor/health", timeout=3).ok
        except requests.RequestException:
            return False

    def family(self) -> list[psutil.Process]:
        try:
            return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def terminate_and_check(self) -> None:
        family = self.family()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        time.sleep(1)
        alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [" ".join(p.cmdline()[:4]) for p in alive]

    def kill(self) -> None:
        """Whatever is left, on any path: ``airflow standalone`` leads a process group of its own, so
        killing this process's group alone would leave it running; every descendant is killed."""
        family = self.family()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # serve stops standalone's group itself
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for p in family:
            try:
                p.kill()
            except psutil.Error:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _listening(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_standalone_env_is_loopback_small_and_on_the_port():
    env = standalone_env(8123)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) == PARALLELISM <= 4
    # only triggered runs: no scheduled Monday run ahead of them holding the one run slot
    assert env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"
    assert env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "INFO"  # the render task's approval command shows
    assert standalone_env(8123, schedule=True)["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "True"


def test_sim_port_default_or_a_free_one_when_taken(monkeypatch):
    from devtools import demo

    with socket.socket() as held:  # another airflow.sh's simulators
        held.bind(("127.0.0.1", 0))
        held.listen()
        monkeypatch.setattr(demo, "SIM_PORT", held.getsockname()[1])
        assert demo.sim_port(None) is None  # DemoServices then picks a free port
    free = _free_port()
    monkeypatch.setattr(demo, "SIM_PORT", free)
    assert demo.sim_port(None) == free
    assert demo.sim_port(0) is None and demo.sim_port(free) == free  # --sim-port: as asked


def test_saved_password(tmp_path):
    assert saved_password(tmp_path) is None
    (tmp_path / "simple_auth_manager_passwords.json.generated").write_text('{"admin": "s3cret"}')
    assert saved_password(tmp_path) == "s3cret"


def test_the_watchers_account_is_in_the_password_file_before_airflow_starts_and_stays(tmp_path):
    import json

    env = watcher_env(tmp_path, 18080)
    conn = json.loads(env["AIRFLOW_CONN_MSP_AIRFLOW_API"])
    assert (conn["host"], conn["port"], conn["login"]) == ("127.0.0.1", 18080, WATCHER_USER)
    assert saved_password(tmp_path, WATCHER_USER) == conn["password"] and saved_password(tmp_path) is None
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"admin:admin,{WATCHER_USER}:op"
    (tmp_path / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": "s3cret", WATCHER_USER: conn["password"]}))  # Airflow added admin's
    assert json.loads(watcher_env(tmp_path, 18080)["AIRFLOW_CONN_MSP_AIRFLOW_API"])["password"] == conn["password"]
    assert saved_password(tmp_path) == "s3cret"


def test_serve_port_loopback_sigterm_and_password_on_restart(tmp_path):
    port = _free_port()
    serve = Serve(tmp_path, port)
    try:
        serve.wait_for(serve.healthy, 420, f"/api/v2/monitor/health on port {port}")
        assert any(f"UI on http://127.0.0.1:{port}" in line for line in serve.lines), serve.lines[:20]
        assert _listening(port) == {"127.0.0.1"}
        workers = [p for p in serve.family() if "LocalExecutor" in " ".join(p.cmdline())]
        assert 1 <= len(workers) <= PARALLELISM, [" ".join(p.cmdline()[:4]) for p in serve.family()]
        assert len(serve.family()) < 25, [" ".join(p.cmdline()[:4]) for p in serve.family()]
        # the run's Variable watcher can sign in with the account its connection names
        watcher = saved_password(tmp_path / "home", WATCHER_USER)
        token = requests.post(f"http://127.0.0.1:{port}/auth/token", timeout=30,
                              json={"username": WATCHER_USER, "password": watcher})
        assert token.status_code == 201, token.text
        serve.terminate_and_check()
    finally:
        serve.kill()
    password = saved_password(tmp_path / "home")
    assert password

    again = Serve(tmp_path, port)
    try:
        again.wait_for(lambda: any("log in as admin / " in line for line in again.lines), 180, "the password")
        assert any(f"log in as admin / {password}" in line for line in again.lines)
        again.terminate_and_check()  # also while it is still starting
    finally:
        again.kill()

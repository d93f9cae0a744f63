"""``scripts/airflow.sh``: ``airflow standalone`` on loopback, small, and stopped as a whole.

What ``airflow standalone`` does not do by itself, and this module adds:

- it listens on 127.0.0.1 and on the port asked for (``--port`` or ``$MSP_AIRFLOW_PORT``), and the
  workers reach the execution API on that same port;
- the LocalExecutor starts ``[core] parallelism`` worker processes (32 by default, about 2 GB idle):
  :data:`PARALLELISM` is enough for the demo's 12 customers on a 2-core machine;
- it runs in its own process group, and a SIGTERM, SIGINT or SIGHUP to this process stops that
  whole group (and any task process that made a group of its own), so nothing survives the script;
- the admin password, which Airflow prints only the first time, is printed on every start;
- the run's Variable watcher gets its own Airflow account and the connection ``msp_airflow_api``
  to answer Required Actions with (:func:`watcher_env`);
- the scheduler creates no Monday runs (``[scheduler] use_job_schedule``) unless asked for: only the
  runs you trigger run (see :func:`standalone_env`);
- it logs at INFO, Airflow's default, not at the demo's WARNING: the task logs show the INFO lines,
  such as the render task's approval command. (``[logging] namespace_levels`` cannot lift one
  logger above the level of Airflow's stdlib handler, so it is all of INFO or none.)

The Airflow home is ``.airflow/ui`` (``$MSP_AIRFLOW_HOME``), not the demo's ``.airflow/demo``: the
demo's runs and this scheduler never share a database. ``scripts/approve.sh`` uses the same home.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from msp_reports.settings import PROJECT_ROOT

HOME_ENV = "MSP_AIRFLOW_HOME"
PORT_ENV = "MSP_AIRFLOW_PORT"
DIR_ENV = "MSP_AIRFLOW_DIR"
DEFAULT_HOME = PROJECT_ROOT / ".airflow" / "ui"
DEFAULT_DIR = PROJECT_ROOT / "var" / "airflow"
DEFAULT_PORT = 8080
PARALLELISM = 4  # LocalExecutor worker processes: one per task that may run at once
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
STOP_TIMEOUT = 30.0  # seconds the group has to stop on SIGTERM before it is killed


def ui_home() -> Path:
    """The Airflow home of ``scripts/airflow.sh`` and ``scripts/approve.sh``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).resolve()


def ui_dir() -> Path:
    """Where ``scripts/airflow.sh``'s reports go (store, outbox, archive): not the demo's ``var/demo``."""
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR).resolve()


def ui_port(arg: int | None = None) -> int:
    return int(arg or os.environ.get(PORT_ENV) or DEFAULT_PORT)


def standalone_env(port: int, *, schedule: bool = False) -> dict[str, str]:
    """The settings that make ``airflow standalone`` loopback-only, on ``port``, and small.

    :param schedule: let the scheduler create the Monday runs. Off by default: unpausing the DAG
        (the trigger form does) would start the latest Monday's run for every customer at once,
        ahead of the run just triggered, whose sensors would then hold the only run slot
        (``max_active_runs=1``) until every customer is decided or the cut-off; off, only the
        runs you trigger run.
    """
    return {
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(schedule),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # Airflow's default; the demo's WARNING would hide task logs' INFO
    }


WATCHER_USER = "msp-watcher"  # the run's Variable watcher's Airflow account (simple auth manager, role op)


def watcher_env(home: Path, port: int) -> dict[str, str]:
    """The Airflow account the run's Variable watcher answers Required Actions as, and its Airflow
    connection ``msp_airflow_api``: the password is written to the simple auth manager's password
    file before Airflow starts (it generates only the passwords that file lacks: admin's), so the
    connection can carry it from the first start; kept there across restarts."""
    import secrets

    path = home / PASSWORD_FILE
    try:
        passwords = json.loads(path.read_text())
    except (OSError, ValueError):
        passwords = {}
    if WATCHER_USER not in passwords:
        passwords[WATCHER_USER] = secrets.token_urlsafe(16)
        path.write_text(json.dumps(passwords))
        path.chmod(0o600)
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{WATCHER_USER}:op",
        "AIRFLOW_CONN_MSP_AIRFLOW_API": json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port,
                                                    "schema": "http", "login": WATCHER_USER,
                                                    "password": passwords[WATCHER_USER]}),
    }


def saved_password(home: Path, user: str = "admin") -> str | None:
    """The admin password Airflow generated on the first start, or None before that."""
    path = home / PASSWORD_FILE
    try:
        return json.loads(path.read_text()).get(user)
    except (OSError, ValueError):
        return None


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL whatever of it (or of its descendants,
    which includes task processes that set up their own group) is still there after ``timeout``."""
    import psutil

    family = _descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for p in family:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            if proc.poll() is not None and not alive:
                return
            time.sleep(0.2)


def run_standalone(env: dict[str, str]) -> int:
    """``airflow standalone`` as the leader of a new process group; a SIGTERM, SIGINT or SIGHUP
    to this process stops the group (:func:`stop_group`). Returns standalone's exit code, or 0
    when it was stopped by a signal."""
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, process_group=0)
    stopping: list[int] = []

    def _stop(signum: int, _frame) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        while proc.poll() is None and not stopping:
            time.sleep(0.2)
    finally:
        if proc.poll() is None or _descendants(proc.pid):
            print("Stopping airflow standalone and its processes …", flush=True)
            stop_group(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if stopping else (proc.returncode or 0)

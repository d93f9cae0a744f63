"""The production topology on this machine: scheduler, dag-processor, triggerer, api-server and a
Celery worker as separate processes, on PostgreSQL and Redis, with the CeleryExecutor.

The run is triggered through the REST API (JWT from ``POST /auth/token``) for the twelve demo
customers; approvals come from both places an engineer uses: ``airflow variables set`` and
``POST /api/v2/variables``. Then every customer's deliveries are checked where they landed
(the SMTP sink, the Gmail, Graph, Drive and Teams simulators, the archive folder) and against the
ledger receipts in the store.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user ``postgres`` or ``root``) and Redis on
127.0.0.1:6379. Skipped when they are not reachable, except under ``CI=true`` where it fails.
Each run gets a fresh database (dropped afterwards) and an empty Redis db number (flushed).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.factories import ROOT, WEEK_OF

pytestmark = pytest.mark.integration

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
DAG_ID = "weekly_executive_report"
WORKER_CONCURRENCY = 4
# Generous limits: on a shared 2-core machine each task process costs a few seconds of CPU.
STARTUP_TIMEOUT = 300
RUN_TIMEOUT = 1800
CLI_APPROVERS = 3  # the first customers are approved with the CLI, the rest through the REST API


# ---- services this test needs ------------------------------------------------------------------
def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
        return True
    return False


def _pg_user() -> str | None:
    import psycopg2

    for user in ("postgres", "root"):
        with contextlib.suppress(psycopg2.Error):
            psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="postgres", connect_timeout=5).close()
            return user
    return None


def _require_services() -> str:
    problems = []
    if not _port_open(PG_HOST, PG_PORT):
        problems.append(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}")
    if not _port_open(REDIS_HOST, REDIS_PORT):
        problems.append(f"Redis not reachable on {REDIS_HOST}:{REDIS_PORT}")
    user = None if problems else _pg_user()
    if not problems and user is None:
        problems.append("PostgreSQL refuses user postgres and root without a password (trust auth needed)")
    if problems:
        reason = "; ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Celery stack test is mandatory in CI: {reason}")
        pytest.skip(reason)
    return user


@contextlib.contextmanager
def fresh_database(user: str) -> Iterator[str]:
    """An empty PostgreSQL database for this run, dropped afterwards (connections forced out)."""
    import psycopg2

    name = f"msp_it_{os.getpid()}_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=user, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def empty_redis_db() -> Iterator[int]:
    """A Redis db number nobody uses (empty), claimed with a marker key and flushed afterwards."""
    import redis

    marker = "msp-weekly-report:celery-stack-test"
    for number in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        if client.dbsize() == 0 and client.set(marker, os.getpid(), nx=True):
            break
        client.close()
    else:
        pytest.fail("no empty Redis db number among 1..15")
    try:
        yield number
    finally:
        client.flushdb()
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the Airflow processes ---------------------------------------------------------------------
class Component:
    """One Airflow component as its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env, cwd=ROOT,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 30) -> None:
        """SIGTERM to the whole group (Celery's warm shutdown, the task supervisors), then SIGKILL."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived their leader
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"---- {self.name} ({'running' if self.alive() else f'exit {self.proc.returncode}'}) ----\n" + \
            "\n".join(text[-lines:])


def _kill_leftovers(airflow_home: Path) -> None:
    """Any process still carrying this run's AIRFLOW_HOME was started by this test: end it."""
    marker = f"AIRFLOW_HOME={airflow_home}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if int(proc.name) != os.getpid() and marker in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)


class Stack:
    def __init__(self, env: dict[str, str], home: Path, api_url: str, password: str) -> None:
        self.env, self.home, self.api_url, self.password = env, home, api_url, password
        self.components: list[Component] = []
        self.session = requests.Session()
        self.timings: dict[str, float] = {}

    def airflow(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"airflow {' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        self.components.append(Component(name, list(args), self.env, self.home / "logs"))

    def stop(self) -> None:
        for c in self.components:
            c.stop()
        _kill_leftovers(self.home)

    def diagnostics(self) -> str:
        return "\n".join(c.tail() for c in self.components)

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 3) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            dead = [c.name for c in self.components if not c.alive()]
            assert not dead, f"{', '.join(dead)} exited while waiting for {what}\n{self.diagnostics()}"
            with contextlib.suppress(requests.RequestException):
                if result := check():
                    return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.diagnostics()}")
            time.sleep(interval)

    # REST API with a JWT from the simple auth manager
    def login(self) -> None:
        r = self.session.post(f"{self.api_url}/auth/token", json={"username": "admin", "password": self.password},
                              timeout=30)
        assert r.status_code == 201, r.text
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.api_url}/api/v2{path}", timeout=60, **kwargs)

    def task_instances(self, run_id: str) -> list[dict]:
        """Every task instance of the run (the API pages at 100)."""
        tis: list[dict] = []
        while True:
            r = self.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                         params={"limit": 100, "offset": len(tis), "order_by": "id"})
            r.raise_for_status()
            page = r.json()
            tis += page["task_instances"]
            if not page["task_instances"] or len(tis) >= page["total_entries"]:
                return tis


def _airflow_env(home: Path, db: str, pg_user: str, redis_db: int, api_port: int, demo_dir: Path,
                 password_file: Path) -> dict[str, str]:
    from devtools.demo import MSP_TIMEZONE

    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    from cryptography.fernet import Fernet

    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # only the run this test triggers: no scheduled run for the latest Monday next to it
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg_user}@{PG_HOST}:{PG_PORT}/{db}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg_user}@{PG_HOST}:{PG_PORT}/{db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,msp-watcher:op",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",  # its server would listen on every interface
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "MSP_REPORTS_HOME": str(demo_dir),
        "MSP_REPORTS_TIMEZONE": MSP_TIMEZONE,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH")])),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict]:
    from devtools.demo import DemoServices, import_pools

    pg_user = _require_services()
    started = time.monotonic()
    home = tmp_path_factory.mktemp("celery-airflow-home")
    demo_dir = tmp_path_factory.mktemp("celery-demo")
    (home / "logs").mkdir()
    password = secrets.token_urlsafe(16)
    password_file = home / "passwords.json"
    watcher_password = secrets.token_urlsafe(16)  # the run's Variable watcher's service account
    password_file.write_text(json.dumps({"admin": password, "msp-watcher": watcher_password}))
    api_port = free_port()
    with fresh_database(pg_user) as db, empty_redis_db() as redis_db, \
            DemoServices(WEEK_OF, demo_dir) as services:
        env = _airflow_env(home, db, pg_user, redis_db, api_port, demo_dir, password_file)
        env["AIRFLOW_CONN_MSP_AIRFLOW_API"] = json.dumps({  # its credential: an Airflow connection only
            "conn_type": "http", "host": "127.0.0.1", "port": api_port, "schema": "http",
            "login": "msp-watcher", "password": watcher_password})
        s = Stack(env, home, f"http://127.0.0.1:{api_port}", password)
        try:
            t = time.monotonic()
            s.airflow("db", "migrate", timeout=600)
            s.timings["db migrate"] = time.monotonic() - t
            # the one place the demo's connections come from, imported as an operator would
            conns = services.write_connections(home / "connections.json")
            s.airflow("connections", "import", str(conns))
            conns.unlink()
            import_pools(env)
            s.timings["connections + pools"] = time.monotonic() - t - s.timings["db migrate"]
            t = time.monotonic()
            s.start("api-server", "api-server", "--port", str(api_port), "--host", "127.0.0.1")
            s.start("scheduler", "scheduler")
            s.start("dag-processor", "dag-processor")
            # the log servers listen on every interface: off (task logs are files in this AIRFLOW_HOME)
            s.start("triggerer", "triggerer", "--skip-serve-logs")
            s.start("worker", "celery", "worker", "--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs")
            s.wait_for("the API server", lambda: requests.get(f"{s.api_url}/api/v2/version", timeout=5).ok,
                       STARTUP_TIMEOUT)
            s.login()
            s.wait_for(f"{DAG_ID} to be parsed", lambda: s.api("GET", f"/dags/{DAG_ID}").ok, STARTUP_TIMEOUT)
            s.timings["components up, DAG parsed"] = time.monotonic() - t
            yield {"stack": s, "services": services, "demo_dir": demo_dir, "started": started}
        finally:
            s.stop()


def _by_customer(tis: list[dict], task_id: str) -> dict[str, dict]:
    return {ti["rendered_map_index"]: ti for ti in tis if ti["task_id"] == task_id}


@pytest.fixture(scope="module")
def finished_run(stack, pytestconfig) -> dict:
    from msp_reports.approval import variable_key
    from msp_reports.store import sha256

    s: Stack = stack["stack"]
    services = stack["services"]
    codes = [c.code for c in services.registry.customers]
    t = time.monotonic()
    r = s.api("POST", f"/dags/{DAG_ID}/dagRuns",
              json={"dag_run_id": f"celery-stack-{WEEK_OF}", "logical_date": None, "conf": {"week_of": str(WEEK_OF)}})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]

    waiting: dict[str, dict] = {}

    def all_waiting():  # each customer's Required Action seen parked (awaiting_input: no slot, no poke)
        sensors = _by_customer(s.task_instances(run_id), "customer_report.wait_for_approval")
        waiting.update({code: ti for code, ti in sensors.items() if ti["state"] == "awaiting_input"})
        unexpected = {code: ti["state"] for code, ti in sensors.items() if ti["state"] in ("success", "failed")}
        assert not unexpected, f"sensors finished before any approval was given: {unexpected}"
        return set(waiting) == set(codes)

    s.wait_for("every customer's wait_for_approval to be waiting (awaiting_input)", all_waiting, RUN_TIMEOUT, 3)
    s.timings["trigger -> 12 reports rendered, awaiting approval"] = time.monotonic() - t

    t = time.monotonic()
    cli, api = codes[:CLI_APPROVERS], codes[CLI_APPROVERS:]
    store = stack["demo_dir"] / "store"
    pinned = sha256((store / cli[0] / str(WEEK_OF) / "report.pdf").read_bytes())
    cli_values = [f"approve {pinned[:8]}", "approve",
                  json.dumps({"decision": "approve", "by": "cli.engineer"})]
    for code, value in zip(cli, cli_values, strict=False):
        s.airflow("variables", "set", variable_key(code, WEEK_OF), value)
    for code in api:
        r = s.api("POST", "/variables", json={"key": variable_key(code, WEEK_OF),
                                               "value": json.dumps({"decision": "approve", "by": "api.engineer"})})
        assert r.status_code == 201, r.text
    s.timings["approvals (CLI + REST)"] = time.monotonic() - t

    t = time.monotonic()

    def run_finished():
        state = s.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = s.wait_for("the run to finish", run_finished, RUN_TIMEOUT, 5)
    s.timings["approved -> run finished"] = time.monotonic() - t
    s.timings["whole test so far"] = time.monotonic() - stack["started"]
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # shown in every run, not only with -s
        with capture.global_and_fixture_disabled():
            reporter.write_line("\nCelery stack timings (s): "
                                + json.dumps({k: round(v, 1) for k, v in s.timings.items()}))
    return {"run_id": run_id, "state": state, "tis": s.task_instances(run_id), "waiting": waiting,
            "cli": cli, "api": api, "pinned": pinned, **stack}


# ---- what the run did --------------------------------------------------------------------------
def test_run_succeeds_on_celery_with_every_task_green(finished_run):
    s: Stack = finished_run["stack"]
    not_green = [(ti["task_id"], ti["rendered_map_index"], ti["state"]) for ti in finished_run["tis"]
                 if ti["state"] not in ("success", "skipped")]
    assert finished_run["state"] == "success", f"{not_green}\n{s.diagnostics()}"
    assert not_green == []
    codes = {c.code for c in finished_run["services"].registry.customers}
    per_task = {}
    for ti in finished_run["tis"]:
        if ti["state"] == "success":
            per_task.setdefault(ti["task_id"], set()).add(ti["rendered_map_index"])
    for task_id in ("extract_uptime", "extract_tickets", "extract_backups", "extract_security", "extract_sites",
                    "reconcile", "render", "wait_for_approval", "deliver_email", "post_to_teams", "archive"):
        assert per_task[f"customer_report.{task_id}"] == codes, task_id
    assert {ti["executor"] for ti in finished_run["tis"]} <= {None, "CeleryExecutor"}
    assert all(ti["hostname"] for ti in finished_run["tis"])  # ran on a worker


def test_tasks_ran_in_their_pools_and_the_pools_exist(finished_run):
    s: Stack = finished_run["stack"]
    declared = json.loads((ROOT / "include" / "pools.json").read_text())
    pools = {p["name"]: p for p in s.api("GET", "/pools", params={"limit": 100}).json()["pools"]}
    for name, spec in declared.items():
        assert pools[name]["slots"] == spec["slots"]
    used = {ti["task_id"].split(".")[-1]: ti["pool"] for ti in finished_run["tis"]}
    for domain in ("uptime", "tickets", "backups", "security", "sites"):
        assert used[f"extract_{domain}"] == f"msp_source_{domain}"
    assert used["render"] == "msp_render"
    assert used["deliver_email"] == used["post_to_teams"] == used["archive"] == "msp_delivery"


def test_waits_parked_and_the_watcher_recorded_each_variable_approval_by_its_airflow_user(finished_run):
    import getpass

    store = finished_run["demo_dir"] / "store"
    # every wait was seen parked (awaiting_input, no worker slot) before any approval existed,
    # then finished on its first try: the run's one watcher answered each from its Variable
    assert len(finished_run["waiting"]) == 12
    sensors = _by_customer(finished_run["tis"], "customer_report.wait_for_approval")
    assert {ti["state"] for ti in sensors.values()} == {"success"}
    assert {ti["try_number"] for ti in sensors.values()} == {1}
    records = {code: json.loads((store / code / str(WEEK_OF) / "approvals" / "0001.json").read_text())
               for code in finished_run["cli"] + finished_run["api"]}
    assert records[finished_run["cli"][0]]["pdf_sha256"] == finished_run["pinned"]
    # who set the Variable, from Airflow's audit log: the CLI records the OS user, the REST API the
    # Airflow user; a name the Variable gives is kept as a labelled note only
    assert records[finished_run["cli"][2]]["note"] == "named in the Variable, not verified: cli.engineer"
    for code in finished_run["cli"]:
        assert records[code]["by"] == f"{getpass.getuser()} (OS user, airflow CLI)", code
    for code in finished_run["api"]:
        assert records[code]["by"] == "admin"
        assert records[code]["note"] == "named in the Variable, not verified: api.engineer"
    assert {rec["via"] for rec in records.values()} == {"airflow-variable"}
    for code, rec in records.items():
        assert rec["decision"] == "approve", code


def test_every_customer_delivered_once_on_each_channel(finished_run):
    """Each customer's email, Teams post and archived PDF, wherever its channels deliver (SMTP sink,
    Gmail/Graph/Drive simulators, Teams webhook, local folder), is the approved PDF, exactly once."""
    from devtools.inbox import received
    from msp_reports.store import sha256

    services, demo_dir = finished_run["services"], finished_run["demo_dir"]
    store = demo_dir / "store"
    sender = str(services.registry.msp.from_email)
    for c in services.registry.customers:
        week = store / c.code / str(WEEK_OF)
        approved = json.loads((week / "approvals" / "0001.json").read_text())["pdf_sha256"]
        pdf = (week / "report.pdf").read_bytes()
        assert sha256(pdf) == approved
        receipts = {ch: json.loads((week / "ledger" / f"{ch}.json").read_text()) for ch in ("email", "teams", "archive")}
        assert {r["state"] for r in receipts.values()} == {"sent"}, c.code
        assert {r["pdf_sha256"] for r in receipts.values()} == {approved}
        got = received(c, WEEK_OF, sim=services.sim, mail_folder=services.mail.folder,
                       archive_root=demo_dir / "archive", sender=sender)
        vias = (c.delivery.email.via, c.delivery.teams.via, c.delivery.archive.via)
        assert (len(got.emails), len(got.posts), len(got.archived)) == (1, 1, 1), (c.code, vias)
        assert got.emails[0]["to"] == c.recipients and sha256(got.emails[0]["pdf"]) == approved
        assert c.name in json.dumps(got.posts[0]["card"])
        assert got.archived == [pdf]
    posts = services.sim.state.extra["teams_posts"]
    internal = [json.dumps(p["card"]) for p in posts["weekly-reports"]]
    rollups = [c for c in internal if "12 of 12 delivered." in c]
    missed = [c for c in internal if "Not approved at" in c]  # 09:00 had passed before the approvals
    assert len(rollups) == 1 and len(missed) <= 1 and len(internal) == len(rollups) + len(missed)
    rollup = (store / "_rollup" / str(WEEK_OF) / "rollup.md").read_text()
    assert "12 of 12 customer reports delivered" in rollup

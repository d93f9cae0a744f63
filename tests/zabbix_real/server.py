"""A real Zabbix 6.0 server and frontend on loopback, for the test suite.

Everything comes from Debian's packages (``scripts/install_zabbix.sh`` installs them):
``zabbix_server`` (PostgreSQL build) with a database of its own on the machine's PostgreSQL,
the PHP frontend served by ``php -S`` (no Apache), and ``zabbix_sender`` for history. The
server listens on a free loopback port, the frontend on another; both are stopped by PID and
the database is dropped afterwards.

The Debian frontend reads its settings from ``/etc/zabbix/zabbix.conf.php`` (a fixed path in
``CConfigFile``). The file written here is PHP that reads the database name and server port
from the environment of the ``php -S`` process, so the file never holds a test's values; an
existing file that this harness did not write is never replaced.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

PACKAGES = ("zabbix-server-pgsql", "zabbix-frontend-php", "php8.2-cgi", "php8.2-pgsql", "zabbix-agent")
SERVER_BIN = Path("/usr/sbin/zabbix_server")
SENDER_BIN = Path("/usr/bin/zabbix_sender")
FRONTEND = Path("/usr/share/zabbix")
SCHEMA_DIR = Path("/usr/share/zabbix-server-pgsql")
FRONTEND_CONF = Path("/etc/zabbix/zabbix.conf.php")
MARKER = "// msp-reports test harness"
PG = {"host": os.environ.get("MSP_ZBX_PGHOST", "127.0.0.1"), "port": os.environ.get("MSP_ZBX_PGPORT", "5432"),
      "user": os.environ.get("MSP_ZBX_PGUSER", "postgres")}
ADMIN = ("Admin", "zabbix")  # the account a new Zabbix database ships with

FRONTEND_CONF_TEXT = f"""<?php
{MARKER}: values come from the environment of the php -S process.
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = getenv('MSP_ZBX_DB_HOST') ?: '127.0.0.1';
$DB['PORT'] = getenv('MSP_ZBX_DB_PORT') ?: '5432';
$DB['DATABASE'] = getenv('MSP_ZBX_DB_NAME') ?: 'zabbix';
$DB['USER'] = getenv('MSP_ZBX_DB_USER') ?: 'postgres';
$DB['PASSWORD'] = '';
$DB['SCHEMA'] = '';
$DB['ENCRYPTION'] = false;
$DB['KEY_FILE'] = '';
$DB['CERT_FILE'] = '';
$DB['CA_FILE'] = '';
$DB['VERIFY_HOST'] = false;
$DB['CIPHER_LIST'] = '';
$DB['VAULT_URL'] = '';
$DB['VAULT_DB_PATH'] = '';
$DB['VAULT_TOKEN'] = '';
$DB['DOUBLE_IEEE754'] = true;
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = getenv('MSP_ZBX_SERVER_PORT') ?: '10051';
$ZBX_SERVER_NAME = 'msp-reports test';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
"""


class ZabbixUnavailable(RuntimeError):
    """The packages, PostgreSQL or the frontend config file are not there to run a real server."""


def missing() -> str | None:
    """Why a real server cannot run here, or None."""
    for path in (SERVER_BIN, SENDER_BIN, FRONTEND / "api_jsonrpc.php", SCHEMA_DIR / "schema.sql.gz"):
        if not path.exists():
            return f"{path} is missing (install {' '.join(PACKAGES)}: bash scripts/install_zabbix.sh)"
    for tool in ("php", "psql"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    if FRONTEND_CONF.exists() and MARKER not in FRONTEND_CONF.read_text(errors="replace"):
        return f"{FRONTEND_CONF} belongs to another Zabbix frontend; not replacing it"
    try:
        _psql("postgres", "SELECT 1")
    except ZabbixUnavailable as exc:
        return str(exc)
    return None


def _free_port(low: int = 20000, high: int = 32767) -> int:
    """A free loopback port in ``low..high`` (zabbix_server refuses a ListenPort above 32767)."""
    for port in random.Random().sample(range(low, high + 1), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ZabbixUnavailable(f"no free loopback port in {low}..{high}")


def _psql(database: str, sql: str | None = None, *, stdin: bytes | None = None) -> str:
    cmd = ["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", database, "-q", "-A", "-t",
           "-v", "ON_ERROR_STOP=1"]
    if sql is not None:
        cmd += ["-c", sql]
    done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=300)
    if done.returncode != 0:
        raise ZabbixUnavailable(f"psql on {database}: {done.stderr.decode(errors='replace').strip()[:500]}")
    return done.stdout.decode()


class ApiError(RuntimeError):
    pass


class ZabbixServer:
    """Start with ``with ZabbixServer() as zbx:``; ``zbx.api(method, params)`` as Admin."""

    def __init__(self) -> None:
        self.database = f"msp_zabbix_test_{os.getpid()}"
        self.workdir = Path(tempfile.mkdtemp(prefix="msp-zabbix-"))
        self.server_port = _free_port()
        self.web_port = _free_port()
        self.url = f"http://127.0.0.1:{self.web_port}/api_jsonrpc.php"
        self._php: subprocess.Popen | None = None
        self._token: str | None = None
        self._ids = 0
        self.calls = 0

    # ---- lifecycle
    def __enter__(self) -> ZabbixServer:
        reason = missing()
        if reason:
            raise ZabbixUnavailable(reason)
        try:
            self._create_database()
            self._start_server()
            self._start_frontend()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _create_database(self) -> None:
        _psql("postgres", f'DROP DATABASE IF EXISTS "{self.database}"')
        _psql("postgres", f'CREATE DATABASE "{self.database}"')
        for name in ("schema", "images", "data"):
            _psql(self.database, stdin=gzip.decompress((SCHEMA_DIR / f"{name}.sql.gz").read_bytes()))
        _psql(self.database, "UPDATE hosts SET status=1 WHERE host='Zabbix server'")  # no agent here to poll

    def _start_server(self) -> None:
        conf = self.workdir / "zabbix_server.conf"
        conf.write_text("\n".join([
            f"DBHost={PG['host']}", f"DBPort={PG['port']}", f"DBName={self.database}", f"DBUser={PG['user']}",
            "ListenIP=127.0.0.1", f"ListenPort={self.server_port}",
            f"PidFile={self.workdir / 'server.pid'}", f"LogFile={self.workdir / 'server.log'}",
            f"SocketDir={self.workdir}", f"TmpDir={self.workdir}", "AllowRoot=1",
            # one history syncer, so values sent in time order become events in time order
            "StartDBSyncers=1", "StartPreprocessors=1", "StartPollers=1", "StartTrappers=2",
            "StartPingers=0", "StartDiscoverers=0", "StartHTTPPollers=0", "StartAlerters=1",
            "StartLLDProcessors=1", "StartHistoryPollers=1",
            "CacheUpdateFrequency=1", "ServiceManagerSyncFrequency=1", "ProblemHousekeepingFrequency=3600",
            "HousekeepingFrequency=0",
        ]) + "\n")
        self.server_conf = conf
        done = subprocess.run([str(SERVER_BIN), "-c", str(conf)], capture_output=True, timeout=60)
        if done.returncode != 0:
            raise ZabbixUnavailable(f"zabbix_server did not start: {done.stderr.decode(errors='replace')[:500]}")
        self._wait(lambda: "started [service manager #1]" in self.log(), 60, "zabbix_server start-up")

    def _start_frontend(self) -> None:
        if not FRONTEND_CONF.exists() or FRONTEND_CONF.read_text() != FRONTEND_CONF_TEXT:
            FRONTEND_CONF.parent.mkdir(parents=True, exist_ok=True)
            FRONTEND_CONF.write_text(FRONTEND_CONF_TEXT)
        env = {**os.environ, "MSP_ZBX_DB_HOST": PG["host"], "MSP_ZBX_DB_PORT": PG["port"],
               "MSP_ZBX_DB_USER": PG["user"], "MSP_ZBX_DB_NAME": self.database,
               "MSP_ZBX_SERVER_PORT": str(self.server_port), "PHP_CLI_SERVER_WORKERS": "2"}
        self._php = subprocess.Popen(
            ["php", "-d", "memory_limit=512M", "-d", "max_execution_time=300", "-d", "date.timezone=UTC",
             "-S", f"127.0.0.1:{self.web_port}", "-t", str(FRONTEND)],
            env=env, stdout=(self.workdir / "php.log").open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)

        def up() -> bool:
            try:
                return self.api("apiinfo.version", {}, auth=False).startswith("6.")
            except (requests.RequestException, ApiError):
                return False

        self._wait(up, 30, "the Zabbix frontend")

    def stop(self) -> None:
        if self._php is not None and self._php.poll() is None:
            os.killpg(self._php.pid, signal.SIGTERM)
            try:
                self._php.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._php.pid, signal.SIGKILL)
        pidfile = self.workdir / "server.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().strip() or 0)
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.2)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        try:
            _psql("postgres", f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except ZabbixUnavailable:
            pass

    # ---- helpers
    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @staticmethod
    def _wait(check: Any, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.3)
        raise ZabbixUnavailable(f"{what} did not come up in {seconds:.0f} s")

    def api(self, method: str, params: Any, *, auth: bool = True) -> Any:
        if auth and self._token is None:
            self._token = self.api("user.login", {"username": ADMIN[0], "password": ADMIN[1]}, auth=False)
        self._ids += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": self._ids}
        if auth:
            body["auth"] = self._token  # 6.0 takes the session in the body
        self.calls += 1
        reply = requests.post(self.url, json=body, timeout=120).json()
        if "error" in reply:
            raise ApiError(f"{method}: {reply['error']}")
        return reply["result"]

    def sql(self, statement: str) -> str:
        return _psql(self.database, statement)

    def reload_config(self) -> None:
        subprocess.run([str(SERVER_BIN), "-c", str(self.server_conf), "-R", "config_cache_reload"],
                       capture_output=True, timeout=30, check=True)

    def send(self, values: Iterable[tuple[str, str, int, str]]) -> None:
        """``(host, key, unix time, value)`` through ``zabbix_sender -T``, in the order given."""
        lines = [f"{host} {key} {clock} {value}" for host, key, clock, value in values]
        path = self.workdir / "values.txt"
        path.write_text("\n".join(lines) + "\n")
        done = subprocess.run([str(SENDER_BIN), "-z", "127.0.0.1", "-p", str(self.server_port), "-T",
                               "-i", str(path)], capture_output=True, timeout=120)
        out = done.stdout.decode(errors="replace")
        if f"processed: {len(lines)}; failed: 0" not in out:
            raise ApiError(f"zabbix_sender: {out.strip()[-500:]}")

    def connection(self) -> Mapping[str, Any]:
        """An Airflow connection for the project's hook, logging in as Admin."""
        return {"conn_type": "zabbix", "host": self.url, "login": ADMIN[0], "password": ADMIN[1],
                "extra": json.dumps({})}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child is gone for our purposes
        return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0
    except OSError:
        return False

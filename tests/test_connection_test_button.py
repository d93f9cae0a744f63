"""The connection form's **Test** button answers for each of our connection types, through the
hook, against the simulators: yes with the demo credentials, no with a wrong secret, which the
answer never repeats."""

from __future__ import annotations

import importlib

import pytest

from msp_reports.provider import CONNECTION_TYPES, secret_fields
from devtools.simulators.server import demo_connections

WRONG_SECRET = "wrong-secret-5f2c9d81b7e4a6"
TEAMS_CHANNELS = {"teams_acme": "acme"}


def _demo_connection(sim, conn_type: str) -> dict:
    conns = demo_connections(sim.base_url, sim.creds, TEAMS_CHANNELS)
    return next(dict(c) for c in conns.values() if c["conn_type"] == conn_type)


def _secrets_of(conn: dict) -> list[str]:
    extra = conn.get("extra") or {}
    return [v for v in [conn.get("password"), *(extra[k] for k in secret_fields(conn["conn_type"]) if k in extra)] if v]


def _with_wrong_secret(conn: dict) -> dict:
    extra = dict(conn.get("extra") or {})
    for name in secret_fields(conn["conn_type"]) & extra.keys():
        extra[name] = WRONG_SECRET
    wrong = {**conn, "extra": extra}
    if conn.get("password") or not extra:
        wrong["password"] = WRONG_SECRET
    return wrong


def _hook(conn_type: str, conn_id: str):
    declared = next(c for c in CONNECTION_TYPES if c["connection-type"] == conn_type)
    module, _, name = declared["hook-class-name"].rpartition(".")
    return getattr(importlib.import_module(module), name)(conn_id)


CONN_TYPES = [c["connection-type"] for c in CONNECTION_TYPES]


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_test_button_succeeds_with_the_right_credentials(sim, use_connection, conn_type):
    conn = _demo_connection(sim, conn_type)
    conn_id = use_connection(f"probe_{conn_type}", conn)

    ok, message = _hook(conn_type, conn_id).test_connection()

    assert ok, message
    assert message
    for secret in _secrets_of(conn):
        assert secret not in message


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_test_button_fails_with_a_wrong_secret_and_does_not_repeat_it(sim, use_connection, conn_type):
    conn = _with_wrong_secret(_demo_connection(sim, conn_type))
    conn_id = use_connection(f"probe_{conn_type}", conn)

    ok, message = _hook(conn_type, conn_id).test_connection()

    assert not ok
    assert conn_id in message or conn_type in message.lower() or "sig" in message, message
    assert WRONG_SECRET not in message
    assert WRONG_SECRET[:12] not in message


def test_zabbix_login_and_password_are_tested_too(sim, use_connection):
    from devtools.simulators.zabbix import login_connection

    conn = login_connection(sim.base_url, sim.creds)
    good = _hook("zabbix", use_connection("zabbix_login", conn)).test_connection()
    bad = _hook("zabbix", use_connection("zabbix_login", {**conn, "password": WRONG_SECRET})).test_connection()

    assert good[0] and f"login '{conn['login']}'" in good[1], good
    assert not bad[0] and "login and password" in bad[1] and WRONG_SECRET not in bad[1], bad


def test_the_answer_masks_every_secret_of_the_connection(use_connection):
    """Whatever a system or a library puts in an error, the Test button does not show a secret."""
    from msp_reports.sources.zabbix import ZabbixHook

    class EchoingHook(ZabbixHook):
        def probe(self) -> str:
            conn = self.connection
            raise RuntimeError(f"refused {conn.password} and {conn.extra_dejson['api_token']}")

    conn_id = use_connection("zabbix_echo", {"conn_type": "zabbix", "host": "http://127.0.0.1:9/api_jsonrpc.php",
                                             "password": "pw-0123456789", "extra": {"api_token": "tok-9876543210"}})
    ok, message = EchoingHook(conn_id).test_connection()

    assert (ok, message) == (False, "refused *** and ***")


def test_test_button_fails_without_the_connection(use_connection):
    ok, message = _hook("datto", "no_such_connection").test_connection()
    assert not ok
    assert "no_such_connection" in message


def test_airflow_connection_test_calls_the_hook(sim):
    """What the API server and the worker do: ``Connection.test_connection()`` finds our hook."""
    from airflow.sdk import Connection

    conn = _demo_connection(sim, "datto")
    ok, message = Connection(conn_id="datto_ui_test", **conn).test_connection()
    assert ok, message


@pytest.fixture
def api_client(monkeypatch):
    """Airflow's REST API (the routes the UI calls) as an admin, with connection testing enabled."""
    import subprocess
    import sys

    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    app = create_app("core")
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    client.cookies.set("_token", get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin")))
    return client


def test_rest_route_for_the_test_button_answers_through_the_hook(sim, api_client):
    conn = _demo_connection(sim, "uptimerobot")
    body = {"connection_id": "uptimerobot_form", "conn_type": "uptimerobot", "host": conn["host"]}

    good = api_client.post("/api/v2/connections/test", json={**body, "password": conn["password"]})
    bad = api_client.post("/api/v2/connections/test", json={**body, "password": WRONG_SECRET})

    assert good.status_code == 200, good.text
    assert good.json()["status"] is True, good.json()
    assert bad.json()["status"] is False
    assert WRONG_SECRET not in bad.text and conn["password"] not in good.text + bad.text


def test_the_stack_enables_the_test_button():
    """Airflow disables the Test button unless ``[core] test_connection`` says otherwise."""
    import yaml

    from tests.factories import ROOT

    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    assert compose["services"]["airflow-apiserver"]["environment"]["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"

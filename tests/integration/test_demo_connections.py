"""The demo's connections come from one place (``DemoServices.connections()``) in two forms: the
``AIRFLOW_CONN_*`` variables the demo scripts export and the file ``airflow connections import``
reads (the Celery stack test imports it). Both must define the same connections."""

from __future__ import annotations

import json
import stat

import pytest

from tests.factories import WEEK_OF


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    from devtools.demo import DemoServices

    with DemoServices(WEEK_OF, tmp_path_factory.mktemp("demo-connections")) as s:
        yield s


def _fields(conn) -> dict:
    return {"conn_type": conn.conn_type, "host": conn.host, "login": conn.login, "password": conn.password,
            "port": conn.port, "schema": conn.schema, "extra": conn.extra_dejson}


def test_import_file_and_environment_define_the_same_connections(services, tmp_path):
    from airflow.models.connection import Connection
    from airflow.secrets.local_filesystem import load_connections_dict

    path = services.write_connections(tmp_path / "connections.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from_file = load_connections_dict(str(path))  # what `airflow connections import` parses
    from_env = {key.removeprefix("AIRFLOW_CONN_").lower(): Connection.from_json(value, conn_id=key)
                for key, value in services.connection_env().items()}
    assert set(from_file) == set(from_env) == set(services.connections())
    for conn_id, conn in from_file.items():
        assert _fields(conn) == _fields(from_env[conn_id]), conn_id
    registry_conn_ids = {src.conn_id for c in services.registry.customers for srcs in c.sources.values()
                         for src in srcs}
    assert registry_conn_ids <= set(from_file)  # every source a customer uses has its connection
    assert json.loads(path.read_text())["smtp_default"]["extra"]  # extras kept (retry_limit etc.)
    assert json.loads(json.loads(path.read_text())["smtp_default"]["extra"])["retry_limit"] == 0

"""Airflow's own REST API, as a task may use it: through the Airflow connection ``msp_airflow_api``.

A task cannot touch Airflow's database (the task SDK forbids it), and the execution API lets a
task answer only its *own* Human-in-the-loop request (its token is scoped to itself, and that
route does not resume a parked task). The run's Variable watcher must answer other tasks'
requests and read who set a Variable, so it calls the public REST API like any client, as the
service account the connection names (host, port and schema: the API server; login and password:
the account; ``extra.token_path`` if the auth manager's token route is not ``/auth/token``).
The answer is recorded in Airflow as by that account; the approval record says who decided.

Without the connection the watcher still records Variable decisions in the store, but cannot end
the parked wait (it says so in its log; the Required Actions page or the review page can), and a
Variable decision is recorded as by ``unknown (Airflow Variable)``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import quote

log = logging.getLogger(__name__)

CONN_ID = "msp_airflow_api"
# what Airflow's audit log calls a change to a Variable: the REST routes (the UI's Variables page
# uses them) record the route's name and the user; the CLI records cli_<command> and the OS user
REST_EVENTS = ("post_variable", "patch_variable", "bulk_variables")
CLI_EVENTS = ("cli_variables_set", "cli_variables_import")
TIMEOUT = 20.0


class AirflowApi:
    def __init__(self, base_url: str, username: str, password: str, token_path: str = "/auth/token") -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._login = (username, password, token_path)
        self._client = httpx.Client(base_url=self.base_url, timeout=TIMEOUT)
        self._token: str | None = None

    @classmethod
    def from_connection(cls, conn_id: str = CONN_ID) -> AirflowApi | None:
        from airflow.sdk import Connection

        try:
            conn = Connection.get(conn_id)
        except Exception:  # noqa: BLE001 - not configured: the watcher says what it cannot do
            return None
        scheme = conn.schema or "http"
        port = f":{conn.port}" if conn.port else ""
        extra = conn.extra_dejson or {}
        return cls(f"{scheme}://{conn.host}{port}", conn.login or "", conn.password or "",
                   extra.get("token_path", "/auth/token"))

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            username, password, path = self._login
            response = self._client.post(path, json={"username": username, "password": password})
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}

    def _call(self, method: str, path: str, **kwargs):
        response = self._client.request(method, path, headers=self._headers(), **kwargs)
        response.raise_for_status()
        return response.json()

    def parked(self, dag_id: str, run_id: str) -> list[dict]:
        """The run's Human-in-the-loop requests still waiting for an answer (one call per look)."""
        path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/hitlDetails"
        found, offset = [], 0
        while True:
            page = self._call("GET", path, params={"response_received": "false", "state": "awaiting_input",
                                                    "limit": 100, "offset": offset})
            found += page["hitl_details"]
            offset += 100
            if offset >= page["total_entries"]:
                return found

    def parked_after(self, dag_id: str, run_id: str, task_id: str, after: dt.datetime) -> set[int]:
        """The map indexes of ``task_id`` in the run that parked (``awaiting_input``) after ``after``,
        from the audit log's entries of the task's state changes."""
        found, offset = set(), 0
        while True:
            page = self._call("GET", "/api/v2/eventLogs", params={
                "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "event": "awaiting_input",
                "after": after.isoformat(), "limit": 100, "offset": offset})
            found |= {entry["map_index"] for entry in page["event_logs"]}
            offset += 100
            if offset >= page["total_entries"]:
                return found

    def answer(self, detail: dict, option: str, reason: str) -> None:
        ti = detail["task_instance"]
        path = (f"/api/v2/dags/{quote(ti['dag_id'], safe='')}/dagRuns/{quote(ti['dag_run_id'], safe='')}"
                f"/taskInstances/{quote(ti['task_id'], safe='')}/{ti['map_index']}/hitlDetails")
        self._call("PATCH", path, json={"chosen_options": [option], "params_input": {"reason": reason}})

    def variable_setter(self, key: str) -> str | None:
        """Who last set Variable ``key``, as Airflow's audit log records it, or None if it does not say."""
        page = self._call("GET", "/api/v2/eventLogs", params={
            "included_events": list(REST_EVENTS + CLI_EVENTS), "order_by": "-when", "limit": 100})
        for entry in page["event_logs"]:
            if _names(entry, key):
                owner = entry.get("owner") or ""
                if not owner or owner == "anonymous":
                    return None
                return f"{owner} (OS user, airflow CLI)" if entry["event"] in CLI_EVENTS else owner
        return None


def _names(entry: dict, key: str) -> bool:
    """Whether an audit-log entry is about Variable ``key`` (its ``extra``: the request body, the
    value masked; or the CLI's command line)."""
    raw = entry.get("extra") or ""
    try:
        extra = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(extra, dict):
        return False
    if entry["event"] in CLI_EVENTS:
        command = extra.get("full_command") or ""
        return key in (command if isinstance(command, list) else str(command).replace("'", " ").replace(",", " ").split())
    if extra.get("key") == key:
        return True
    for action in extra.get("actions") or []:
        for entity in (action or {}).get("entities") or []:
            if isinstance(entity, dict) and entity.get("key") == key:
                return True
    return False


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

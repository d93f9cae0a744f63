"""The Airflow side of every HTTP service: a hook that reads its connection lazily.

Each service's hook (a source system's, the Teams webhook's) subclasses :class:`HttpServiceHook`
and says only how to build an :class:`~msp_reports.http.client.ApiClient` from a connection;
retries, rate limits and the refusal of another host live in :mod:`msp_reports.http.client`.
A source system's hook adds paging and run-level listings (:class:`msp_reports.sources.base.SourceHook`).

The connection form's **Test** button calls :meth:`HttpServiceHook.test_connection`; each hook
names its cheapest authenticated request in :meth:`HttpServiceHook.probe`. The answer never
carries a credential: the connection's password and secret extra fields are masked in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from msp_reports.http.client import ApiClient, RetryPolicy
from msp_reports.provider import secret_fields

if TYPE_CHECKING:
    from airflow.sdk import Connection


class HttpServiceHook(BaseHook):
    """Base hook for an HTTP API reached through one Airflow connection.

    :param conn_id: the Airflow connection holding the service's URL and credentials.
    :param policy: retry policy; ``None`` leaves it to :meth:`build_client` (the client's default
        retries 5 times with backoff).
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    conn_name_attr = "conn_id"
    default_conn_name = ""
    conn_type = ""
    hook_name = ""
    system = ""

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self.policy = policy
        self.clock = clock

    @cached_property
    def connection(self) -> Connection:
        return self.get_connection(self.conn_id)

    def get_conn(self) -> ApiClient:
        return self.client

    @cached_property
    def client(self) -> ApiClient:
        conn = self.connection
        extra: dict[str, Any] = conn.extra_dejson
        return self.build_client(conn, extra)

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        raise NotImplementedError

    def probe(self) -> str:
        """Make the system's cheapest authenticated request that changes nothing; say what it proved."""
        raise NotImplementedError(f"{type(self).__name__} cannot test its connection: it names no probe")

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's **Test** button: ``(True, what the probe proved)`` or ``(False, what to fix)``.

        Any failure is an answer, not an error (a missing field, a refused secret, a host that does
        not answer); the message has every secret of the connection masked.
        """
        try:
            ok, message = True, self.probe()
        except Exception as exc:  # noqa: BLE001 - the Test button shows whatever went wrong
            ok, message = False, str(exc)
        return ok, self.mask_secrets(message)

    def mask_secrets(self, text: str) -> str:
        """``text`` with the connection's password and secret extra fields replaced by ``***``."""
        try:
            conn = self.connection
        except Exception:  # noqa: BLE001 - no connection, so no secret of it to mask
            return text
        names = secret_fields(self.conn_type)
        extra = conn.extra_dejson
        values = [conn.password] + [v for k, v in extra.items() if k.rpartition("__")[2] in names]
        for value in sorted((str(v) for v in values if v), key=len, reverse=True):
            text = text.replace(value, "***")
        return text

    @staticmethod
    def base_url(conn: Connection, default_path: str = "") -> str:
        """``host`` may be a full URL (``https://x/api``) or a bare host plus schema/port."""
        host = (conn.host or "").rstrip("/")
        if not host.startswith(("http://", "https://")):
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        return host + default_path

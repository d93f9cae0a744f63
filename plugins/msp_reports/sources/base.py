"""The source systems' hook: an HTTP service hook that pages and shares run-level listings.

Each system's hook subclasses :class:`SourceHook`; the connection, the client and the **Test**
button are :class:`~msp_reports.http.hooks.HttpServiceHook`'s (shared with the delivery hooks
that speak HTTP). What only a source needs is here: the page size to request, and a listing the
API cannot filter by customer, fetched once per DAG run (:mod:`msp_reports.shared`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from msp_reports.http.client import RetryPolicy
from msp_reports.http.hooks import HttpServiceHook

if TYPE_CHECKING:
    from msp_reports.shared import SharedListings


class SourceHook(HttpServiceHook):
    """Base hook for a source system's HTTP API.

    :param conn_id: the Airflow connection holding the system's URL and credentials.
    :param page_size: page size to request where the API pages; ``None`` leaves the API default.
    :param policy: retry policy; the default retries 5 times with backoff.
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    #: run-level listings shared by the run's customers; the pipeline sets it for a DAG run
    shared: SharedListings | None = None

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        page_size: int | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(conn_id, policy=policy, clock=clock)
        self.page_size = page_size

    def select_listing(self, name: str, fetch: Callable[[], list[dict[str, Any]]],
                       key_of: Callable[[dict[str, Any]], str], wanted: Iterable[str]) -> list[dict[str, Any]]:
        """The items of a listing the API cannot filter by customer, whose key is in ``wanted``.

        In a DAG run the listing is fetched once for all customers (:mod:`msp_reports.shared`);
        without one it is fetched here and filtered.
        """
        if self.shared is None:
            keys = set(wanted)
            return [item for item in fetch() if key_of(item) in keys]
        return self.shared.select(f"{self.system}.{self.conn_id}.{name}", fetch, key_of, wanted)

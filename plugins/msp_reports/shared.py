"""Listings fetched once per run and shared by all of its customers.

Some APIs cannot be asked for one customer's slice: Datto lists every appliance of the MSP
(``clientCompanyName`` is not a server-side filter) and a shared Veeam B&R server lists every
session of every tenant. Fetched per customer, the requests grow with the number of customers
(quadratically in total). Instead the first task of a run that needs such a listing fetches it,
splits it by the key customers ask for (company name, job id) and stores one file per key in the
report store; every later task of the run reads only its own key's file.

- **Scope**: one run (``item["run"]``, the DAG run id) and one report week. A new run fetches
  afresh, so a report never reads another run's listing; a retried task of the same run reuses
  it, which is what a retry should see.
- **Complete or absent**: the partition files are written first and the ``_complete.json``
  marker last (each write atomic), so a reader sees the whole listing or fetches it itself.
  A killed fetch leaves no marker.
- **Concurrency**: two tasks starting at the same moment may both fetch (each writes the same
  content); there is no lock, so the extra requests are bounded by the worker slots, not by
  the number of customers.
- **Failure**: a failed fetch raises in the task that tried, like any source error; nothing is
  stored, and the next task tries again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from msp_reports.store import ReportStore

OWNER = "_shared"  # the store's "customer" folder for run-level files


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:120]


def partition_file(part: str) -> str:
    """File name of one partition: a digest, since keys are free text (company names)."""
    return hashlib.sha256(part.encode()).hexdigest()[:24] + ".json"


class SharedListings:
    """Run-scoped listings in the report store, split by the key each customer asks for.

    :param store: the report store.
    :param week_of: the report week (a run reports on one week).
    :param run: the run's scope, normally the DAG run id.
    """

    def __init__(self, store: ReportStore, week_of: dt.date, run: str) -> None:
        self.store = store
        self.week_of = week_of
        self.folder = f"runs/{_safe(run)}"

    def _name(self, listing: str, file: str) -> str:
        return f"{self.folder}/{_safe(listing)}/{file}"

    def select(self, listing: str, fetch: Callable[[], list[dict[str, Any]]],
               key_of: Callable[[dict[str, Any]], str], wanted: Iterable[str]) -> list[dict[str, Any]]:
        """The items of ``listing`` whose key is in ``wanted``, fetching the listing at most once per run.

        :param listing: a name unique to the system, connection and query (window included).
        :param fetch: fetches the whole listing (all pages).
        :param key_of: the partition key of one item, as ``wanted`` spells it.
        """
        wanted = list(dict.fromkeys(wanted))
        marker = self.store.read_json(OWNER, self.week_of, self._name(listing, "_complete.json"))
        if marker is None:
            items = fetch()
            parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for item in items:
                parts[key_of(item)].append(item)
            for part, rows in parts.items():
                self.store.write_json(OWNER, self.week_of, self._name(listing, partition_file(part)), rows)
            self.store.write_json(OWNER, self.week_of, self._name(listing, "_complete.json"),
                                  {"items": len(items), "partitions": len(parts),
                                   "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat()})
            return [row for part in wanted for row in parts.get(part, [])]
        selected: list[dict[str, Any]] = []
        for part in wanted:
            rows = self.store.read_json(OWNER, self.week_of, self._name(listing, partition_file(part)))
            selected.extend(rows or [])
        return selected

"""Append-only records survive concurrent writers (the review page and a sensor at once)."""

from __future__ import annotations

import datetime as dt
import threading

from msp_reports.store import ReportStore

WEEK = dt.date(2026, 11, 16)


def test_concurrent_appends_never_overwrite_each_other(tmp_path):
    writers = 16
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def append(i: int) -> None:
        store = ReportStore(str(tmp_path))  # one store object per writer, as two processes would have
        start.wait()
        try:
            store.append_record("ACME", WEEK, "approvals", {"writer": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    store = ReportStore(str(tmp_path))
    assert sorted(r["writer"] for r in store.records("ACME", WEEK, "approvals")) == list(range(writers))
    # numbered without gaps, and no temporaries left behind
    assert store.list("ACME", WEEK, "approvals") == [f"{n:04d}.json" for n in range(1, writers + 1)]

"""The demo's account engineers: each approves its customer's report once it is rendered.

An approval must postdate the report it approves (:mod:`msp_reports.approval`), so an unattended
run cannot set ``approve`` in the Variables beforehand. Instead, while the DAG runs, this thread
watches the store and records an approval for each report as soon as it is published, bound to
every hash of its version, exactly as the review page records one (``via: review-page`` is what the page
writes; here ``via`` says it was the demo). The sensor then finds it in force.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator

from msp_reports import approval
from msp_reports.approval_request import WEEKLY, Kind
from msp_reports.store import ReportStore

POLL_SECONDS = 0.02
ANSWER_EVERY = 25  # looks: Airflow's database is asked about parked requests every half second


def _approve_rendered(store: ReportStore, week_of: dt.date, pending: set[str], by: str, since: dt.datetime,
                      answering: set[str], ask_airflow: bool = True, kind: Kind = WEEKLY) -> None:
    for code in sorted(pending):
        render = store.read_json(code, week_of, "render.json")
        if render is None or dt.datetime.fromisoformat(render.get("rendered_at") or "1970-01-01T00:00+00:00") < since:
            continue  # not rendered in this run yet
        with contextlib.suppress(approval.ApprovalError):  # re-rendered meanwhile: the next look approves it
            approval.record_decision(store, code, week_of, "approve", by=by, via="demo (simulated engineer)",
                                     now=dt.datetime.now(dt.timezone.utc),
                                     reviewed=approval.reviewed_version(render))
            pending.discard(code)
            answering.add(code)
    # the task may park on its Required Action before or after the record: answer it once it has
    # (until then, or once its delivery has started, there is nothing to answer)
    for code in sorted(answering) if ask_airflow else ():
        if approval.delivery_started(store, code, week_of) or _answer(code, kind.period_of(week_of), by, kind):
            answering.discard(code)


def _answer(code: str, period: str, by: str, kind: Kind) -> int:
    """Answer the customer's Required Action as the review page does (this process has Airflow's database)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from msp_reports.review import hitl

    try:
        return hitl.respond(SimpleAuthManagerUser(username=by, role="admin"), code, period, "approve", kind=kind)[0]
    except Exception:  # noqa: BLE001 - no Airflow database here (a unit test): the record is what counts
        return 0


@contextlib.contextmanager
def approving_when_rendered(store_root: str, week_of: dt.date, codes: list[str], *, by: str,
                            kind: Kind = WEEKLY) -> Iterator[None]:
    """While the block runs, approve each of ``codes`` once its report for ``week_of`` is published,
    and answer its Required Action.

    ``kind``: the QBR pack (:data:`msp_reports.approval_request.QBR`; ``week_of`` the quarter's
    first day) is approved in the packs' store and its request answered likewise.
    """
    store = kind.store(store_root)
    pending, answering = set(codes), set()
    since = dt.datetime.now(dt.timezone.utc)
    stop = threading.Event()

    def watch() -> None:
        looks = 0
        while (pending or answering) and not stop.wait(POLL_SECONDS):
            looks += 1
            _approve_rendered(store, week_of, pending, by, since, answering, looks % ANSWER_EVERY == 0, kind)

    watcher = threading.Thread(target=watch, name="demo-engineers", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(10)

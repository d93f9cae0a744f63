"""Where a customer's QBR pack lives and what names it: the storage half of :mod:`msp_reports.qbr_pipeline`.

Light on purpose (the store and the approval records only): the DAG file reads the Params'
default here when parsed, and the review page decides on packs through it, without importing
the pipeline (tests/test_import_layers.py).

Layout: ``<store>/<CUSTOMER>/qbr/<2026-Q3>/`` holds what a week's folder holds (``render.json``,
``report.pdf``, ``report.md``, ``subject.txt``, ``cover_note.html``, ``teams_card.json``,
``sources.json``, ``commentary.md``: the "quarter in review" narrative, ``approvals/``,
``variable_seen.json``, ``delivery_started.json``, ``ledger/<channel>.json``).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from msp_reports import approval
from msp_reports.delivery.ledger import CHANNELS
from msp_reports.store import ReportStore

FOLDER = "qbr"  # <store>/<CUSTOMER>/qbr/<quarter>/
KIND = "qbr"  # the ledger's idempotency keys: qbr.<CUSTOMER>.<first day>.<channel>.<sha>
VARIABLE_PREFIX = "qbr_approval"
SOURCES = "sources.json"  # the weekly snapshots the pack was built from, by hash: the pack's data
#: the files a pack's delivery sends, by the hash that names them (the weekly map, sources.json as the data)
ARTEFACTS = {**approval.ARTEFACTS, "snapshot_sha256": SOURCES}


def quarter_label(day: dt.date) -> str:
    """``2026-Q3`` for any day of that quarter (the spelling :class:`msp_reports.qbr.Quarter` prints)."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def quarter_first_day(label: str) -> dt.date:
    year, _, number = label.partition("-Q")
    return dt.date(int(year), 3 * int(number) - 2, 1)


def last_complete_quarter(now: dt.datetime, timezone: str) -> str:
    """The quarter before the one ``now`` falls in (``timezone``'s calendar): the Params' default."""
    first = quarter_first_day(quarter_label(now.astimezone(ZoneInfo(timezone)).date()))
    return quarter_label(first - dt.timedelta(days=1))


def after(label: str) -> dt.date:
    """The first day after the quarter (the next quarter's first day)."""
    first_day = quarter_first_day(label)
    return dt.date(first_day.year + 1, 1, 1) if first_day.month == 10 else first_day.replace(month=first_day.month + 3)


def due_monday(label: str) -> dt.date:
    """The first Monday after the quarter (on or after the next quarter's first day): the pack's day."""
    nxt = after(label)
    return nxt + dt.timedelta(days=(7 - nxt.weekday()) % 7)


def variable_key(customer: str, quarter: str) -> str:
    return f"{VARIABLE_PREFIX}__{customer}__{quarter}"


def archive_name(customer: str, quarter: str) -> str:
    """``ACME QBR 2026-Q3 (2026-10-05).pdf``: the same name on every run (the archive replaces by
    name, so a retry cannot make a second copy), stamped with the day the pack is due."""
    return f"{customer} QBR {quarter} ({due_monday(quarter).isoformat()}).pdf"


class PackStore(ReportStore):
    """The report store, one folder per customer and quarter (``<CUSTOMER>/qbr/2026-Q3``).

    Keyed like a week by a date: any day of the quarter names its folder (use the first day).
    """

    def folder(self, customer: str, week_of: dt.date):
        return self.root / customer / FOLDER / quarter_label(week_of)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def record_decision(store_root: str, customer: str, quarter: str, decision: str, *, by: str, via: str,
                    reason: str = "", reviewed: dict[str, str] | None = None) -> dict:
    """A decision on the pack as shown (the review page): refused if it changed since
    (:class:`msp_reports.approval.StaleReview`) or once its delivery started."""
    store = PackStore(store_root)
    key = quarter_first_day(quarter)
    with store.week_lock(customer, key):
        if approval.delivery_started(store, customer, key):
            raise approval.ApprovalError(f"{customer} {quarter}: the pack's delivery has started; "
                                         "the decision in force stays")
        return approval.record_decision(store, customer, key, decision, by=by, via=via, now=_now(),
                                        reason=reason, reviewed=reviewed)


def status(store_root: str, customer: str, quarter: str) -> dict:
    """Where a customer's pack stands: the decision in force, each channel's receipt state, the files."""
    store = PackStore(store_root)
    key = quarter_first_day(quarter)
    receipts = {ch: (store.week(customer, key).receipt(ch) or {}).get("state", "not sent") for ch in CHANNELS}
    record = approval.in_force(store, customer, key)
    return {"customer": customer, "quarter": quarter, "folder": str(store.folder(customer, key)),
            "rendered": store.week(customer, key).render_record() is not None,
            "decision": record["decision"] if record else None, "channels": receipts,
            "delivered": all(s == "sent" for s in receipts.values())}

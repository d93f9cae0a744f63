"""The report store: per customer and week, everything the pipeline produced and decided.

Layout under the store root (a local folder by default; any ObjectStoragePath URL works)::

    <CUSTOMER>/<week_of>/sections/<domain>.<system>.json   one per extract, success or failure
    <CUSTOMER>/<week_of>/snapshot.json | reconciled.json    the week, and compared with the last
    <CUSTOMER>/<week_of>/commentary.md            the account engineer's words (survive re-renders)
    <CUSTOMER>/<week_of>/report.md | report.pdf | render.json
    <CUSTOMER>/<week_of>/approvals/<n>.json       every decision, never overwritten
    <CUSTOMER>/<week_of>/variable_seen.json | variable_problem.json   the sensor's view of the Variable
    <CUSTOMER>/<week_of>/delivery_started.json    the version is fixed from here on
    <CUSTOMER>/<week_of>/ledger/<channel>.json    delivery receipts
    <CUSTOMER>/<week_of>/teams_tab.json           the "Weekly report" tab's last update
    _rollup/<week_of>/rollup.md

The names are spelled once, here (the constants below); :meth:`ReportStore.week` hands out a
:class:`CustomerWeek` that reads and writes each file by what it is, not by its name.

Every write goes to a temporary name and is then renamed, so a killed task leaves either the
old file or the new one, never half of one.

A render is several files described by one (``render.json`` holds the hashes of the PDF, the
commentary and the data): :meth:`ReportStore.publish` replaces them as one version, and
:meth:`ReportStore.week_lock` (a lock file per customer-week, ``.lock``) makes publishing, reading
the pair, and starting a delivery exclusive of each other. Other object stores have no lock
through fsspec: there the lock is a no-op, as exclusive creation is for :meth:`append_record`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from msp_reports.exceptions import StoreError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


LOCK_NAME = ".lock"
LOCK_TIMEOUT = 600.0  # seconds; a publish holds the lock for well under one
WITHDRAWN = ".withdrawn"  # suffix of a manifest set aside while its files are replaced
_held = threading.local()  # the week locks this thread holds: {path: shared?}

# ---- the layout of one customer-week (the only place these names are spelled)
SECTIONS = "sections"
SNAPSHOT = "snapshot.json"
RECONCILED = "reconciled.json"
COMMENTARY = "commentary.md"
REPORT_PDF = "report.pdf"
REPORT_MD = "report.md"
RENDER = "render.json"  # the manifest of a published render (:meth:`ReportStore.publish`)
APPROVALS = "approvals"
VARIABLE_SEEN = "variable_seen.json"
VARIABLE_PROBLEM = "variable_problem.json"
DELIVERY_STARTED = "delivery_started.json"
LEDGER = "ledger"
TEAMS_TAB = "teams_tab.json"
SUBJECT = "subject.txt"  # the email subject and Teams summary, UTF-8, no trailing newline (:mod:`messages`)
COVER_NOTE = "cover_note.html"  # the email's cover note, UTF-8 HTML, every value escaped
TEAMS_CARD = "teams_card.json"  # the Adaptive Card posted in the customer's channel
ROLLUP_MD = "rollup.md"  # the week's internal roll-up, under ROLLUP_OWNER
ROLLUP_OWNER = "_rollup"  # the pseudo-customer the run-level posts and files live under


def _path(url: str) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


class ReportStore:
    """Read and write one customer-week's artefacts.

    :param root: a folder path or ObjectStoragePath URL (``file:///...``, ``s3://bucket/prefix``).
    """

    def __init__(self, root: str) -> None:
        self.root = _path(root if "://" in root else f"file://{os.path.abspath(root)}")

    def folder(self, customer: str, week_of: dt.date) -> ObjectStoragePath:
        return self.root / customer / week_of.isoformat()

    # ---- raw access
    def write_bytes(self, customer: str, week_of: dt.date, name: str, data: bytes) -> str:
        target = self.folder(customer, week_of) / name
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(data)
            tmp.replace(target)
        except OSError as exc:
            if tmp is not None:  # a full or failing disk leaves no half-written temporary behind
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise StoreError(f"report store: cannot write {customer}/{week_of}/{name}: {exc}") from exc
        return str(target)

    def read_bytes(self, customer: str, week_of: dt.date, name: str) -> bytes | None:
        target = self.folder(customer, week_of) / name
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"report store: cannot read {customer}/{week_of}/{name}: {exc}") from exc

    def write_json(self, customer: str, week_of: dt.date, name: str, doc: Any) -> str:
        return self.write_bytes(customer, week_of, name,
                                json.dumps(doc, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, customer: str, week_of: dt.date, name: str) -> Any | None:
        raw = self.read_bytes(customer, week_of, name)
        return None if raw is None else json.loads(raw)

    def write_text(self, customer: str, week_of: dt.date, name: str, text: str) -> str:
        return self.write_bytes(customer, week_of, name, text.encode("utf-8"))

    def read_text(self, customer: str, week_of: dt.date, name: str) -> str | None:
        raw = self.read_bytes(customer, week_of, name)
        return None if raw is None else raw.decode("utf-8")

    def list(self, customer: str, week_of: dt.date, folder: str) -> list[str]:
        base = self.folder(customer, week_of) / folder
        try:
            return sorted(p.name for p in base.iterdir() if not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def append_record(self, customer: str, week_of: dt.date, folder: str, doc: dict) -> str:
        """Add a numbered record to ``folder``; existing records are never rewritten.

        Two writers at the same instant (the review page and a sensor) both take the next number;
        on a local store the record is linked into place, which fails if the name exists, and the
        loser takes the number after. Other object stores have no exclusive create through
        fsspec: there the last writer of the same number wins (documented in the README).
        """
        data = json.dumps(doc, indent=2, sort_keys=True, default=str).encode()
        for _ in range(100):
            existing = self.list(customer, week_of, folder)
            number = 1 + max((int(n.split(".")[0]) for n in existing if n.split(".")[0].isdigit()), default=0)
            name = f"{folder}/{number:04d}.json"
            if self.root.protocol not in ("file", "local"):
                return self.write_bytes(customer, week_of, name, data)
            if self._create_exclusive(customer, week_of, name, data):
                return str(self.folder(customer, week_of) / name)
        raise StoreError(f"report store: cannot append to {customer}/{week_of}/{folder}: too many concurrent writers")

    def _create_exclusive(self, customer: str, week_of: dt.date, name: str, data: bytes) -> bool:
        target = self.folder(customer, week_of) / name
        local = target.path
        tmp = f"{os.path.dirname(local)}/.{os.path.basename(local)}.{uuid.uuid4().hex}.tmp"
        try:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, local)  # atomic, and refuses an existing name
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise StoreError(f"report store: cannot write {customer}/{week_of}/{name}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def remove(self, customer: str, week_of: dt.date, name: str) -> None:
        target = self.folder(customer, week_of) / name
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"report store: cannot remove {customer}/{week_of}/{name}: {exc}") from exc

    # ---- one customer-week at a time
    @contextlib.contextmanager
    def week_lock(self, customer: str, week_of: dt.date, *, shared: bool = False,
                  timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the customer-week's lock: exclusive to change what is published or start a delivery,
        ``shared`` to read a published version whole. Re-entrant within a thread; a process that
        dies releases it (``flock``)."""
        if self.root.protocol not in ("file", "local"):
            yield
            return
        folder = self.folder(customer, week_of).path
        if shared and not os.path.isdir(folder):  # nothing published yet; a reader creates nothing
            yield
            return
        path = os.path.join(folder, LOCK_NAME)
        held: dict[str, bool] = _held.__dict__.setdefault("locks", {})
        if path in held:
            if held[path] and not shared:
                raise StoreError(f"report store: {customer}/{week_of}: cannot take the week's lock for writing "
                                 "while holding it for reading")
            yield
            return
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"report store: cannot lock {customer}/{week_of}: {exc}") from exc
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreError(f"report store: {customer}/{week_of} stayed locked by another writer "
                                         f"for {timeout:.0f} s; try again") from None
                    time.sleep(0.02)
            held[path] = shared
            try:
                yield
            finally:
                del held[path]
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def publish(self, customer: str, week_of: dt.date, files: dict[str, bytes], manifest: str, doc: dict,
                *, guard: Callable[[], None] | None = None) -> str:
        """Replace ``files`` and then ``manifest`` (which describes them) as one version.

        Under the week's lock, ``guard`` runs first and may refuse by raising. The manifest is
        set aside (renamed: no bytes written, so it works on a full disk) before the first file is
        replaced and written again after the last. A reader under the lock sees the old version or
        the new one; after a kill in between there is no manifest, so no version (the retry
        publishes one), never a new file beside an old manifest. A write that fails before any
        file was replaced puts the old manifest back.
        """
        with self.week_lock(customer, week_of):
            if guard is not None:
                guard()
            current = self.folder(customer, week_of) / manifest
            aside = self.folder(customer, week_of) / f".{manifest}{WITHDRAWN}"
            try:
                withdrawn = current.exists()
                if withdrawn:
                    current.replace(aside)
            except OSError as exc:
                raise StoreError(f"report store: cannot write {customer}/{week_of}/{manifest}: {exc}") from exc
            replaced = 0
            try:
                for name, data in files.items():
                    self.write_bytes(customer, week_of, name, data)
                    replaced += 1
            except StoreError:
                if withdrawn and not replaced:
                    with contextlib.suppress(OSError):
                        aside.replace(current)
                raise
            written = self.write_json(customer, week_of, manifest, doc)
            with contextlib.suppress(OSError):
                aside.unlink()
            return written

    def records(self, customer: str, week_of: dt.date, folder: str) -> list[dict]:
        return [self.read_json(customer, week_of, f"{folder}/{n}") for n in self.list(customer, week_of, folder)]

    def week(self, customer: str, week_of: dt.date) -> CustomerWeek:
        """One customer-week's files, by what they are (see :class:`CustomerWeek`)."""
        return CustomerWeek(self, customer, week_of)

    # ---- rollup (all customers)
    def write_rollup(self, week_of: dt.date, name: str, text: str) -> str:
        return self.write_text(ROLLUP_OWNER, week_of, name, text)


class CustomerWeek:
    """The files of one customer and week, each read and written by name here only.

    Reads return None (or an empty list) when the file is not there; a file that cannot be read
    raises :class:`StoreError`, as the raw methods do. Documents come back as stored (JSON
    objects): :mod:`msp_reports.week_records` turns them into the typed records the week's state
    is derived from.
    """

    def __init__(self, store: ReportStore, customer: str, week_of: dt.date) -> None:
        self.store = store
        self.customer = customer
        self.week_of = week_of

    def _json(self, name: str) -> Any | None:
        return self.store.read_json(self.customer, self.week_of, name)

    def _write_json(self, name: str, doc: Any) -> str:
        return self.store.write_json(self.customer, self.week_of, name, doc)

    # ---- extract and reconcile
    def section_names(self) -> list[str]:
        """The extracts stored so far (success or failure), as file names."""
        return self.store.list(self.customer, self.week_of, SECTIONS)

    def snapshot_bytes(self) -> bytes | None:
        """``snapshot.json`` as stored: the bytes its hash in ``render.json`` is taken over."""
        return self.store.read_bytes(self.customer, self.week_of, SNAPSHOT)

    def reconciled(self) -> dict | None:
        return self._json(RECONCILED)

    def write_reconciled(self, doc: dict) -> str:
        return self._write_json(RECONCILED, doc)

    # ---- render
    def commentary(self) -> str | None:
        return self.store.read_text(self.customer, self.week_of, COMMENTARY)

    def report_pdf(self) -> bytes | None:
        return self.store.read_bytes(self.customer, self.week_of, REPORT_PDF)

    def render_record(self) -> dict | None:
        """``render.json``: the hashes of the published version, or None (nothing published, or a
        publish under way or killed part-way: see :meth:`ReportStore.publish`)."""
        return self._json(RENDER)

    # ---- approval
    def approval_records(self) -> list[dict]:
        """Every decision, oldest first."""
        return self.store.records(self.customer, self.week_of, APPROVALS)

    def append_approval(self, doc: dict) -> str:
        return self.store.append_record(self.customer, self.week_of, APPROVALS, doc)

    def variable_problem(self) -> dict | None:
        return self._json(VARIABLE_PROBLEM)

    def write_variable_problem(self, doc: dict) -> str:
        return self._write_json(VARIABLE_PROBLEM, doc)

    # ---- delivery
    def delivery_started(self) -> dict | None:
        return self._json(DELIVERY_STARTED)

    def receipt(self, channel: str) -> dict | None:
        return self._json(f"{LEDGER}/{channel}.json")

    def write_receipt(self, channel: str, doc: dict) -> str:
        return self._write_json(f"{LEDGER}/{channel}.json", doc)

    def receipt_channels(self) -> list[str]:
        """The channels with a receipt (any state), by name."""
        return [n.removesuffix(".json") for n in self.store.list(self.customer, self.week_of, LEDGER)
                if n.endswith(".json")]

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

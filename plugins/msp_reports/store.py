"""The report store: per customer and week, everything the pipeline produced and decided.

Layout under the store root (a local folder by default; any ObjectStoragePath URL works)::

    <CUSTOMER>/<week_of>/sections/<domain>.json   one per extract, success or failure
    <CUSTOMER>/<week_of>/snapshot.json            the reconciled week
    <CUSTOMER>/<week_of>/commentary.md            the account engineer's words (survive re-renders)
    <CUSTOMER>/<week_of>/report.md | report.pdf | render.json
    <CUSTOMER>/<week_of>/approvals/<n>.json       every decision, never overwritten
    <CUSTOMER>/<week_of>/ledger/<channel>.json    delivery receipts
    _rollup/<week_of>/rollup.md

Every write goes to a temporary name and is then renamed, so a killed task leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import uuid
from typing import TYPE_CHECKING, Any

from msp_reports.exceptions import StoreError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


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

    def records(self, customer: str, week_of: dt.date, folder: str) -> list[dict]:
        return [self.read_json(customer, week_of, f"{folder}/{n}") for n in self.list(customer, week_of, folder)]

    # ---- rollup (all customers)
    def write_rollup(self, week_of: dt.date, name: str, text: str) -> str:
        return self.write_text("_rollup", week_of, name, text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

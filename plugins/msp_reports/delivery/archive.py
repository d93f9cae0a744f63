"""The archive: the approved PDF in the customer's folder under a date-stamped name.

The embedded default is a local folder (``<root>/<folder>/<CUSTOMER>_weekly-report_<week_of>.pdf``,
written atomically, with the week's snapshot JSON beside it); SharePoint
(:mod:`.graph`) and Google Drive (:mod:`.gdrive`) take the same interface and the same names.
A local archive settles an interrupted write by comparing bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


def archive_name(customer: str, week_of: dt.date) -> str:
    return f"{customer}_weekly-report_{week_of.isoformat()}.pdf"


def snapshot_name(pdf_name: str) -> str:
    """The snapshot JSON archived beside the PDF: ``<CUSTOMER>_weekly-report_<week_of>.snapshot.json``."""
    return pdf_name.removesuffix(".pdf") + ".snapshot.json"


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:  # a full disk leaves no half-written temporary behind
        tmp.unlink(missing_ok=True)
        raise


class ArchiveFiles:
    """What every archive channel (local, SharePoint, Drive) shares: the channel name, that a
    write replaces by name (so the ledger may write again after an interrupted write: it cannot
    duplicate), and the files to write, in order."""

    name: ClassVar[str] = "archive"
    rewrite_is_safe: ClassVar[bool] = True
    filename: str
    pdf: bytes
    snapshot: bytes | None

    def files(self) -> dict[str, bytes]:
        """The snapshot first: when the PDF is there, so is its snapshot."""
        files = {}
        if self.snapshot is not None:
            files[snapshot_name(self.filename)] = self.snapshot
        files[self.filename] = self.pdf
        return files


@dataclass
class LocalArchiveChannel(ArchiveFiles):
    root: Path
    folder: str
    filename: str
    pdf: bytes
    snapshot: bytes | None = None

    @property
    def target(self) -> Path:
        return self.root / self.folder / self.filename

    def send(self, idempotency_key: str) -> dict:
        for name, data in self.files().items():
            _write_atomically(self.target.with_name(name), data)
        return {"remote_id": str(self.target), "bytes": len(self.pdf), "via": "local"}

    def lookup(self, idempotency_key: str) -> dict | None:
        """An interrupted archive is settled by looking: same bytes there means done."""
        try:
            existing = self.target.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(existing).digest() == hashlib.sha256(self.pdf).digest():
            return {"remote_id": str(self.target), "bytes": len(existing), "via": "local"}
        return None

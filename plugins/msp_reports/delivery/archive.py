"""The archive: the approved PDF in the customer's folder under a date-stamped name.

The embedded default is a local folder (``<root>/<folder>/<CUSTOMER>_weekly-report_<week_of>.pdf``,
written atomically); SharePoint and Google Drive take the same interface.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path


def archive_name(customer: str, week_of: dt.date) -> str:
    return f"{customer}_weekly-report_{week_of.isoformat()}.pdf"


@dataclass
class LocalArchiveChannel:
    root: Path
    folder: str
    filename: str
    pdf: bytes
    name: str = "archive"

    @property
    def target(self) -> Path:
        return self.root / self.folder / self.filename

    def send(self, idempotency_key: str) -> dict:
        target = self.target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(self.pdf)
        os.replace(tmp, target)
        return {"remote_id": str(target), "bytes": len(self.pdf)}

    def lookup(self, idempotency_key: str) -> dict | None:
        """An interrupted archive is settled by looking: same bytes there means done."""
        try:
            existing = self.target.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(existing).digest() == hashlib.sha256(self.pdf).digest():
            return {"remote_id": str(self.target), "bytes": len(existing)}
        return None

"""The archive: the approved PDF in the customer's folder under a date-stamped name.

The embedded default is a local folder (``<root>/<folder>/<CUSTOMER>_weekly-report_<week_of>.pdf``,
written atomically, with the week's snapshot JSON beside it); SharePoint
(:mod:`.graph`) and Google Drive (:mod:`.gdrive`) take the same interface and the same names.
A local archive settles an interrupted write by comparing bytes.

A folder is one rule, :func:`relative_folder`, used by the registry when it loads and by the local
archive when it writes: backslashes are separators *before* anything is checked (``..\\..\\x`` is
``../../x``), and the local archive also resolves the target (symlinks included) at write time
and refuses one that is not under its root.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import ClassVar

from msp_reports.exceptions import ArchiveOutsideRoot

_DRIVE = re.compile(r"[A-Za-z]:")  # "C:\\archive", "C:x": a Windows drive, not a folder under the root


def archive_name(customer: str, week_of: dt.date) -> str:
    return f"{customer}_weekly-report_{week_of.isoformat()}.pdf"


def snapshot_name(pdf_name: str) -> str:
    """The snapshot JSON archived beside the PDF: ``<CUSTOMER>_weekly-report_<week_of>.snapshot.json``."""
    return pdf_name.removesuffix(".pdf") + ".snapshot.json"


def relative_folder(value: str) -> str:
    """The one spelling of a folder under an archive root ("./Acme\\Reports/" is "Acme/Reports").
    Raises ``ValueError`` for a folder that is empty, absolute, on a drive or climbs with ``..``,
    checked after backslashes become separators, so no spelling gets past it."""
    text = value.strip().replace("\\", "/")
    path = PurePosixPath(text)
    if text.startswith("/") or _DRIVE.match(text) or ".." in path.parts or not path.parts:
        raise ValueError(f"must be a relative folder name without '..' (got {value!r}; a backslash counts "
                         "as '/'): name a folder under the archive root, e.g. 'Acme/Reports'")
    return path.as_posix()


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
        """Where the PDF goes, resolved (symlinks followed) and checked to lie under the root."""
        root = self.root.resolve()
        try:
            target = (root / relative_folder(self.folder) / self.filename).resolve()
        except ValueError:
            target = None
        if target is None or not target.parent.is_relative_to(root) or target.name != self.filename:
            raise ArchiveOutsideRoot(
                f"{self.filename}: the archive folder {self.folder!r} resolves outside the archive root {root}; "
                "set delivery.archive.folder in the registry to a folder under the root (no '..', no absolute "
                "path, no symlink out of it)")
        return target

    def send(self, idempotency_key: str) -> dict:
        target = self.target
        for name, data in self.files().items():
            _write_atomically(target.with_name(name), data)
        return {"remote_id": str(target), "bytes": len(self.pdf), "via": "local"}

    def lookup(self, idempotency_key: str) -> dict | None:
        """An interrupted archive is settled by looking: same bytes there means done."""
        target = self.target
        try:
            existing = target.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(existing).digest() == hashlib.sha256(self.pdf).digest():
            return {"remote_id": str(target), "bytes": len(existing), "via": "local"}
        return None

"""A real SMTP server for the demo and tests (aiosmtpd): every accepted message becomes a
``.eml`` file in a folder, so what a customer would receive can be opened and checked.

Files are named by customer and week, from the report's ``X-Idempotency-Key``
(``weekly-report.<CODE>.<week_of>.email.<sha>``, a QBR pack's ``qbr.``): ``ACME-2026-11-16-0001.eml``, numbered in
arrival order; a message without that header is ``message-0001.eml``. A name already in the
folder (a second sink on it) is never overwritten: the number moves on.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from pathlib import Path

from aiosmtpd.controller import Controller

from devtools.simulators.server import free_port


_KEY = re.compile(rb"^X-Idempotency-Key:\s*(?:weekly-report|qbr)\.([A-Z0-9_-]+)\.(\d{4}-\d{2}-\d{2})\.", re.M | re.I)


def message_stem(raw: bytes) -> str:
    """``ACME-2026-11-16`` for a weekly report's message, ``message`` for any other."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _KEY.search(head)
    return f"{found.group(1).decode()}-{found.group(2).decode()}" if found else "message"


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}  # per customer and week

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        raw = envelope.original_content or envelope.content
        header = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        stem = message_stem(raw)
        with self.lock:  # by customer and week, numbered; a second sink on the folder never overwrites
            while True:
                self.counts[stem] = n = self.counts.get(stem, 0) + 1
                path = self.folder / f"{stem}-{n:04d}.eml"
                try:
                    with open(path, "xb") as out:
                        out.write(header.encode() + raw)
                    break
                except FileExistsError:
                    continue
        return "250 Message accepted for delivery"


class MailSink:
    """SMTP on 127.0.0.1:<port>, writing messages to ``folder``; a context manager."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.handler = _SaveToFolder(self.folder)
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    def messages(self) -> list[email.message.EmailMessage]:
        """Every message in the folder, in arrival order (file modification time, then name)."""
        paths = sorted(self.folder.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]

    def connection(self, from_email: str) -> dict:
        """The Airflow SMTP connection for this sink (plain SMTP on loopback, no login)."""
        return {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                          "retry_limit": 0, "timeout": 30}}

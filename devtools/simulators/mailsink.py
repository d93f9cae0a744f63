"""A real SMTP server for the demo and tests (aiosmtpd): every accepted message becomes a
``.eml`` file in a folder, so what a customer would receive can be opened and checked."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from devtools.simulators.server import free_port


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            self.count += 1
            n = self.count
        raw = envelope.original_content or envelope.content
        header = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        # unique, sortable names: a second sink on the same folder never overwrites a message
        name = f"{time.time_ns():019d}-{n:04d}.eml"
        (self.folder / name).write_bytes(header.encode() + raw)
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
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in sorted(self.folder.glob("*.eml"))]

    def connection(self, from_email: str) -> dict:
        """The Airflow SMTP connection for this sink (plain SMTP on loopback, no login)."""
        return {"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                          "retry_limit": 0, "timeout": 30}}

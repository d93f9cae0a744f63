"""Fixtures the renderer's tests share: a server rendering must never reach, and one rendered report."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from msp_reports.render import render_report
from tests.factories import MSP, make_customer, make_reconciled


# --- a server that records every request: rendering must never reach it ----------------------
@pytest.fixture(scope="package")
def tripwire():
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/css")
            self.end_headers()
            self.wfile.write(b"body { color: red }")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="package")
def report():
    rec = make_reconciled()
    commentary = "The *file server* backups failed after a NAS firmware update.\n\nWe rolled it back on Friday."
    return rec, render_report(rec, make_customer(), MSP, commentary=commentary)

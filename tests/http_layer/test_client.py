"""The one retry mechanism every hook uses, against a real local HTTP server."""

import email.utils
import http.server
import threading
import time

import pytest

from msp_reports.exceptions import SourceAuthError, SourceRateLimited, SourceResponseError, SourceUnavailable
from msp_reports.http.client import ApiClient, RetryPolicy, retry_after_seconds


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds("7") == 7.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retry_after_seconds(date, now=now) <= 31
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


class _Script(http.server.BaseHTTPRequestHandler):
    script: list = []
    seen: list = []

    def do_GET(self):  # noqa: N802
        self.seen.append(self.path)
        status, headers, body = self.script.pop(0) if self.script else (200, {}, b'{"ok": true}')
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Script)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Script.seen = []
    yield httpd
    httpd.shutdown()


def client(server, sleeps, attempts=4):
    return ApiClient("testsys", f"http://127.0.0.1:{server.server_port}",
                     policy=RetryPolicy(attempts=attempts, base_delay=0.01, max_retry_after=60, sleep=sleeps.append))


def test_429_honours_retry_after_then_succeeds(server):
    _Script.script = [(429, {"Retry-After": "3"}, b""), (503, {}, b"busy"), (200, {}, b'{"v": 1}')]
    sleeps = []
    assert client(server, sleeps).json("GET", "/x?key=secret") == {"v": 1}
    assert sleeps[0] == 3.0 and len(sleeps) == 2 and len(_Script.seen) == 3


def test_retries_are_bounded_and_error_hides_query(server):
    _Script.script = [(500, {}, b"boom")] * 10
    sleeps = []
    with pytest.raises(SourceUnavailable) as err:
        client(server, sleeps, attempts=3).json("GET", "/x?api_key=topsecret")
    assert len(_Script.seen) == 3 and "topsecret" not in str(err.value) and "testsys" in str(err.value)


def test_429_storm_ends_rate_limited(server):
    _Script.script = [(429, {"Retry-After": "1"}, b"")] * 10
    with pytest.raises(SourceRateLimited):
        client(server, [], attempts=3).json("GET", "/x")


def test_retry_after_beyond_limit_fails_fast(server):
    _Script.script = [(429, {"Retry-After": "3600"}, b"")]
    sleeps = []
    with pytest.raises(SourceRateLimited, match="exceeds"):
        client(server, sleeps).json("GET", "/x")
    assert sleeps == []


def test_auth_error_is_not_retried_and_non_json_is_reported(server):
    _Script.script = [(401, {}, b'{"message": "bad key"}')]
    with pytest.raises(SourceAuthError, match="HTTP 401"):
        client(server, []).json("GET", "/x")
    assert len(_Script.seen) == 1
    _Script.script = [(200, {}, b"<html>login</html>")]
    with pytest.raises(SourceResponseError, match="not JSON"):
        client(server, []).json("GET", "/x")


def test_connection_refused_is_unavailable():
    c = ApiClient("testsys", "http://127.0.0.1:9", policy=RetryPolicy(attempts=2, base_delay=0.01, sleep=lambda s: None))
    with pytest.raises(SourceUnavailable, match="ConnectionError"):
        c.json("GET", "/x")

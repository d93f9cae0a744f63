"""Issue 17 item 14: a source's credentials go only to its connection's host.

An API answer can name a URL: a next link (Graph's ``@odata.nextLink``, ARM's ``nextLink``) or a
redirect's ``Location``. The shared client (:class:`~msp_reports.http.client.ApiClient`) must
refuse one on another host, for every source, with a clear error, before anything (a bearer
token, an API-key header) is sent there. Real servers throughout: the simulators behind a
response rewriter that points the next links elsewhere, and a recording "attacker" server on
another loopback address.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import requests

from msp_reports.exceptions import SourceResponseError
from devtools.simulators import defender as defender_sim
from devtools.simulators import sentinel as sentinel_sim
from msp_reports.http.client import ApiClient, RetryPolicy
from msp_reports.sources import defender, sentinel
from tests.factories import report_week

POLICY = RetryPolicy(attempts=2, base_delay=0.01, sleep=lambda _s: None)
NEXT_LINK_KEYS = ("@odata.nextLink", "nextLink")


@dataclass
class Recorder:
    """What a server received: one (method, path, headers) per request."""

    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@contextlib.contextmanager
def _serve(host: str, handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on ``host`` and a free port, in a thread; yields its origin."""
    httpd = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def attacker() -> Iterator[tuple[str, Recorder]]:
    """Another host (127.0.0.2) that records every request and answers an empty page."""
    recorder = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            recorder.seen.append((self.command, self.path, dict(self.headers)))
            body = b'{"value": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    with _serve("127.0.0.2", Handler) as origin:
        yield origin, recorder


def rewriter(upstream: str, next_origin: Callable[[], str]) -> contextlib.AbstractContextManager[str]:
    """A proxy in front of ``upstream`` that moves the next links of its answers to ``next_origin()``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.request(self.command, upstream + self.path, headers=headers,
                                      data=self.rfile.read(length) if length else None, timeout=10)
            body = answer.content
            if answer.headers.get("content-type", "").startswith("application/json"):
                doc = answer.json()
                for key in NEXT_LINK_KEYS:
                    if isinstance(doc, dict) and doc.get(key):
                        link = urlsplit(doc[key])
                        doc[key] = next_origin() + link.path + (f"?{link.query}" if link.query else "")
                body = json.dumps(doc).encode()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _forward  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    return _serve("127.0.0.1", Handler)


@pytest.fixture
def front(sim) -> Iterator[tuple[str, list[str]]]:
    """The simulators behind a rewriter; ``target[0]`` is where it points next links (itself at first)."""
    target: list[str] = []
    with rewriter(sim.base_url, lambda: target[0]) as origin:
        target.append(origin)
        yield origin, target


def _defender(use_connection, sim, creds, front_origin: str) -> defender.DefenderHook:
    conn = defender_sim.demo_connections(sim.base_url, creds, {})["defender_default"]
    conn["host"] = conn["host"].replace(sim.base_url, front_origin)  # Graph via the rewriter, login direct
    use_connection("defender_links", conn)
    return defender.DefenderHook("defender_links", page_size=1, policy=POLICY)


def _sentinel(use_connection, sim, creds, front_origin: str) -> sentinel.SentinelHook:
    conn = sentinel_sim.demo_connections(sim.base_url, creds, {})["sentinel_default"]
    conn["host"] = conn["host"].replace(sim.base_url, front_origin)
    use_connection("sentinel_links", conn)
    return sentinel.SentinelHook("sentinel_links", page_size=1, policy=POLICY)


SOURCES = {
    "defender": (_defender, lambda world, code: {"tenant_id": world.customers[code].tenant_id}),
    "sentinel": (_sentinel, lambda world, code: sentinel_sim.workspace_ref(world.customers[code])),
}


@pytest.mark.parametrize("system", sorted(SOURCES))
def test_next_links_on_the_connections_host_are_followed(system, sim, creds, use_connection, world, front):
    origin, _target = front
    make_hook, ref = SOURCES[system]
    module = defender if system == "defender" else sentinel
    before = sim.state.requests[system]
    result = module.extract(make_hook(use_connection, sim, creds, origin), ref(world, "CNDR"), report_week(world, "CNDR"))
    assert len(result.data.incidents) >= 2
    assert sim.state.requests[system] - before >= len(result.data.incidents) + 2  # one page per incident


@pytest.mark.parametrize("system", sorted(SOURCES))
def test_a_next_link_to_another_host_gets_no_token(system, sim, creds, use_connection, world, front, attacker):
    origin, target = front
    attacker_origin, recorder = attacker
    target[0] = attacker_origin
    make_hook, ref = SOURCES[system]
    module = defender if system == "defender" else sentinel
    with pytest.raises(SourceResponseError) as err:
        module.extract(make_hook(use_connection, sim, creds, origin), ref(world, "CNDR"), report_week(world, "CNDR"))
    assert recorder.seen == []  # nothing reached the other host, so no bearer token either
    text = str(err.value)
    assert text.startswith(f"{system}: ") and attacker_origin in text and origin in text
    assert "another host than the connection's" in text and "skiptoken" not in text.lower()


# ---- the shared client, for every source ----------------------------------------------------
@pytest.fixture
def redirecting(attacker) -> Iterator[str]:
    """The connection's host answers every request with a redirect to the attacker."""
    attacker_origin, _ = attacker

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"{attacker_origin}/stolen{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with _serve("127.0.0.1", Handler) as origin:
        yield origin


def _client(base: str) -> ApiClient:
    # an API-key header, as LibreNMS (X-Auth-Token) or ConnectWise (clientId) send: requests strips
    # only Authorization on a redirect to another host
    return ApiClient("librenms", f"{base}/api/v0", headers={"X-Auth-Token": "secret-key-123"}, policy=POLICY)


def test_an_absolute_url_on_another_host_is_refused_before_sending(attacker, redirecting):
    attacker_origin, recorder = attacker
    client = _client(redirecting)
    with pytest.raises(SourceResponseError, match=r"^librenms: .*another host than the connection's"):
        client.json("GET", f"{attacker_origin}/api/v0/devices?token=abc")
    for sneaky in (f"//127.0.0.2:{urlsplit(attacker_origin).port}/x", f"{redirecting}@127.0.0.2/x",
                   redirecting.replace("http://", "https://") + "/api/v0/x"):
        with pytest.raises(SourceResponseError, match="another host than the connection's"):
            client.json("GET", sneaky)
    assert recorder.seen == [] and client.requests_sent == 0


def test_a_redirect_to_another_host_is_refused_with_no_key_sent(attacker, redirecting):
    attacker_origin, recorder = attacker
    with pytest.raises(SourceResponseError) as err:
        _client(redirecting).json("GET", "/devices")
    assert recorder.seen == []
    assert "a redirect" in str(err.value) and attacker_origin in str(err.value) and "stolen" not in str(err.value)


def test_same_host_absolute_urls_still_work():
    client = ApiClient("defender", "https://Graph.Microsoft.com/v1.0")
    for same in ("https://graph.microsoft.com/v1.0/security/incidents?$skiptoken=2",
                 "https://graph.microsoft.com:443/v1.0/security/incidents", "HTTPS://GRAPH.microsoft.com/beta/x"):
        assert client.url(same) == same
    assert client.url("/security/incidents") == "https://Graph.Microsoft.com/v1.0/security/incidents"
    for other in ("https://graph.microsoft.com.evil.example/v1.0/x", "http://graph.microsoft.com/v1.0/x",
                  "https://graph.microsoft.com:8443/v1.0/x", "https://login.microsoftonline.com/x"):
        with pytest.raises(SourceResponseError, match="another host than the connection's"):
            client.url(other)

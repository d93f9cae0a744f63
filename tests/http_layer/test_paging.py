"""The shared paging loops (issue 18): next link, offset/limit and page numbers, each written once.

The loops are pure (a function that fetches one page goes in), so most rules are checked with
in-memory pages; a next link that repeats is also checked end to end, through the Defender and
Sentinel hooks against a real HTTP server that keeps naming the same next page.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from msp_reports.exceptions import SourceResponseError
from devtools.simulators import defender as defender_sim
from devtools.simulators import sentinel as sentinel_sim
from msp_reports.http.client import RetryPolicy
from msp_reports.http.paging import next_link_pages, numbered_pages, odata_page, offset_pages
from msp_reports.sources import defender, sentinel

POLICY = RetryPolicy(attempts=2, base_delay=0.01, sleep=lambda _s: None)


def _link_pages(pages: dict[str | None, tuple[list[Any], str | None]]) -> tuple[list[str | None], Any]:
    """A fetch over ``pages`` (``None`` is the first page) that records each link it is given."""
    asked: list[str | None] = []

    def fetch(link: str | None) -> tuple[list[Any], str | None]:
        asked.append(link)
        return pages[link]

    return asked, fetch


# ---- next link ------------------------------------------------------------------------------
def test_next_links_are_followed_verbatim_until_a_page_names_none():
    asked, fetch = _link_pages({None: ([1, 2], "https://api/p?$skiptoken=2"),
                                "https://api/p?$skiptoken=2": ([3], "https://api/p?$skiptoken=3"),
                                "https://api/p?$skiptoken=3": ([], None)})
    assert next_link_pages("defender", fetch) == [1, 2, 3]
    assert asked == [None, "https://api/p?$skiptoken=2", "https://api/p?$skiptoken=3"]


def test_a_repeated_next_link_stops_the_listing_instead_of_spinning():
    asked, fetch = _link_pages({None: ([1], "https://api/p?$skiptoken=A"),
                                "https://api/p?$skiptoken=A": ([2], "https://api/p?$skiptoken=B"),
                                "https://api/p?$skiptoken=B": ([3], "https://api/p?$skiptoken=A")})
    with pytest.raises(SourceResponseError,
                       match=r"^sentinel: page 3 repeats the next link of page 1; the listing would never end") as err:
        next_link_pages("sentinel", fetch)
    assert len(asked) == 3
    assert "skiptoken" not in str(err.value).lower()  # a next link's query is not for messages


def test_the_next_link_page_cap_raises_a_clear_error():
    def endless(link: str | None) -> tuple[list[Any], str | None]:
        number = int(link.rsplit("=", 1)[1]) if link else 0
        return [number], f"https://api/p?page={number + 1}"

    with pytest.raises(SourceResponseError, match=r"^defender: still more pages after 3; refusing to continue"):
        next_link_pages("defender", endless, max_pages=3)


def test_odata_page_reads_items_and_the_next_link_of_each_dialect():
    assert odata_page("defender", {"value": [{"id": "a"}], "@odata.nextLink": "https://g/x"},
                      "@odata.nextLink") == ([{"id": "a"}], "https://g/x")
    assert odata_page("sentinel", {"value": [], "nextLink": ""}, "nextLink") == ([], None)
    assert odata_page("sentinel", {"value": [{"name": "i"}]}, "nextLink") == ([{"name": "i"}], None)
    with pytest.raises(SourceResponseError, match=r"^defender: a collection page without a 'value' list"):
        odata_page("defender", {"error": {"code": "BadRequest"}}, "@odata.nextLink")
    with pytest.raises(SourceResponseError, match=r"^sentinel: nextLink is 7, not a URL"):
        odata_page("sentinel", {"value": [], "nextLink": 7}, "nextLink")


# ---- offset / limit -------------------------------------------------------------------------
def test_offset_pages_stop_at_the_total_or_at_a_short_page():
    pages = {0: [1, 2], 2: [3, 4], 4: [5]}
    assert offset_pages("veeam", lambda offset: (pages[offset], None), 2) == [1, 2, 3, 4, 5]
    assert offset_pages("veeam", lambda offset: (pages[offset], 4), 2) == [1, 2, 3, 4]
    assert offset_pages("veeam", lambda offset: ([], 0), 2) == []


def test_offset_pages_refuse_an_empty_page_before_the_total():
    with pytest.raises(SourceResponseError, match=r"^uptimerobot: an empty page at offset 2 of 5; the listing was "
                                                  "cut short"):
        offset_pages("uptimerobot", lambda offset: ([1, 2] if offset == 0 else [], 5), 2)


def test_the_offset_page_cap_raises_a_clear_error():
    with pytest.raises(SourceResponseError, match=r"^veeam: still more pages after 3; refusing to continue"):
        offset_pages("veeam", lambda offset: ([offset], 10**9), 1, max_pages=3)


# ---- page numbers ---------------------------------------------------------------------------
def test_the_numbered_page_cap_raises_a_clear_error():
    with pytest.raises(SourceResponseError, match=r"^datto: still more pages after 3; refusing to continue"):
        numbered_pages("datto", lambda page: ([page], 10**9), max_pages=3)


# ---- end to end: a server whose next link never moves on -------------------------------------
@contextlib.contextmanager
def _stuck_collection(next_key: str) -> Iterator[tuple[str, list[str]]]:
    """An API on another port that ignores auth and answers every GET with one item and the same
    next link (``?$skiptoken=1``, on its own host); yields its origin and the paths it was asked."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            asked.append(self.path)
            origin = f"http://{self.headers['Host']}"
            body = json.dumps({"value": [{"id": f"inc-{len(asked)}", "name": f"inc-{len(asked)}"}],
                               next_key: f"{origin}{self.path.split('?', 1)[0]}?$skiptoken=1"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", asked
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_defender_stops_on_a_repeated_next_link(sim, creds, use_connection, world):
    conn = defender_sim.demo_connections(sim.base_url, creds, {})["defender_default"]
    with _stuck_collection("@odata.nextLink") as (origin, asked):
        use_connection("defender_stuck", {**conn, "host": f"{origin}/v1.0"})  # Graph stuck, login real
        hook = defender.DefenderHook("defender_stuck", policy=POLICY)
        with pytest.raises(SourceResponseError, match=r"^defender: page 2 repeats the next link of page 1"):
            hook.collection(world.customers["CNDR"].tenant_id, "/security/incidents", "status ne 'resolved'")
    assert asked[1:] == ["/v1.0/security/incidents?$skiptoken=1"]


def test_sentinel_stops_on_a_repeated_next_link(sim, creds, use_connection, world):
    conn = sentinel_sim.demo_connections(sim.base_url, creds, {})["sentinel_default"]
    with _stuck_collection("nextLink") as (origin, asked):
        use_connection("sentinel_stuck", {**conn, "host": origin})
        hook = sentinel.SentinelHook("sentinel_stuck", policy=POLICY)
        workspace = sentinel.Workspace.from_ref(sentinel_sim.workspace_ref(world.customers["CNDR"]))
        with pytest.raises(SourceResponseError, match=r"^sentinel: page 2 repeats the next link of page 1"):
            hook.collection(hook.tenant_for({}), workspace, "properties/status ne 'Closed'")
    assert len(asked) == 2

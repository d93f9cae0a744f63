"""The rules that turn a cut-short answer into a SourceError, one by one (the fault matrix runs
them end to end against the simulators)."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from msp_reports.exceptions import SourceResponseError, SourceUnavailable
from msp_reports.http.client import ApiClient, RetryPolicy
from msp_reports.http.paging import numbered_pages, offset_pages
from msp_reports.sources import librenms, zabbix
from msp_reports.week import ReportWeek

WEEK = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")


def test_numbered_pages_refuses_an_empty_page_the_api_still_counts():
    pages = {1: ([1, 2], 3), 2: ([], 3), 3: ([5], 3)}
    with pytest.raises(SourceResponseError, match="page 2 of 3 came back empty"):
        numbered_pages("datto", lambda page: pages[page])
    assert numbered_pages("datto", lambda page: ([], 0)) == []  # nothing at all is not a cut
    assert numbered_pages("datto", lambda page: {1: ([1], 2), 2: ([2], 2)}[page]) == [1, 2]


def test_offset_pages_refuses_an_empty_page_before_the_total():
    with pytest.raises(SourceResponseError, match="empty page at offset 2 of 5"):
        offset_pages("veeam", lambda offset: ([1, 2] if offset == 0 else [], 5), 2)
    assert offset_pages("veeam", lambda offset: ([1, 2] if offset == 0 else [], None), 2) == [1, 2]


def test_librenms_list_shorter_than_its_count_is_refused():
    with pytest.raises(SourceResponseError, match="holds 1 rows but count says 2"):
        librenms.read_envelope({"status": "ok", "devices": [{}], "count": 2}, "devices")
    assert librenms.read_envelope({"status": "ok", "devices": [{}], "count": 1}, "devices") == [{}]


def test_zabbix_slices_must_reach_the_end_of_a_finished_week():
    day = 86400
    start, end = int(WEEK.start.timestamp()), int(WEEK.end.timestamp())
    whole = [(start + i * day, start + (i + 1) * day) for i in range(7)]
    after = WEEK.end + dt.timedelta(hours=1)
    zabbix.check_complete(whole, WEEK, "SLA", now=after)
    zabbix.check_complete(whole[2:], WEEK, "SLA", now=after)  # an SLA made mid-week: no early slices
    zabbix.check_complete([], WEEK, "SLA", now=after)  # no data at all is reported as no data
    zabbix.check_complete(whole[:4], WEEK, "SLA", now=WEEK.start + dt.timedelta(days=4))  # week running
    with pytest.raises(SourceResponseError, match="cut short"):
        zabbix.check_complete(whole[:4], WEEK, "SLA", now=after)
    assert whole[-1][1] == end


class _CutOffSession(requests.Session):
    """The first answers break off mid-body, as a connection dropped mid-transfer does."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def request(self, method, url, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(10 bytes read)")
        response = requests.Response()
        response.status_code, response._content, response.url = 200, b'{"ok": true}', url
        return response


def test_a_body_cut_off_mid_transfer_is_retried_then_fails_as_unavailable():
    waits: list[float] = []
    client = ApiClient("zabbix", "http://127.0.0.1:9", session=_CutOffSession(1),
                       policy=RetryPolicy(attempts=3, sleep=waits.append))
    assert client.json("GET", "/x") == {"ok": True} and len(waits) == 1
    client = ApiClient("zabbix", "http://127.0.0.1:9", session=_CutOffSession(10),
                       policy=RetryPolicy(attempts=3, sleep=waits.append))
    with pytest.raises(SourceUnavailable, match="ChunkedEncodingError calling GET http://127.0.0.1:9/x, 3 attempts"):
        client.json("GET", "/x")
    assert client.session.calls == 3

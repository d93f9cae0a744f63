"""Issue 17 item 5: an impossible figure from a source makes its section unavailable, never printed.

The end-to-end cases run the real hooks against the simulators with a response rewriter in
front (the answer is edited after it crossed HTTP, before the hook reads it), then the real
snapshot, render and PDF text; the parser cases check each source's parsing on its own.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from pydantic import ValidationError
from pypdf import PdfReader

from tests.factories import WEEK_OF

from msp_reports import pipeline
from msp_reports.exceptions import SourceError, SourceResponseError
from msp_reports.sources import SYSTEMS, backup_rules, cloudflare, connectwise, defender, figures, halopsa
from msp_reports.sources import librenms, uptimerobot
from msp_reports.snapshot import SiteCheck, TicketData, UptimeRow
from msp_reports.store import ReportStore
from msp_reports.week import ReportWeek

WEEK = ReportWeek.starting(WEEK_OF, "Europe/London")
NOW = dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc)


# ---- the shared validators -------------------------------------------------------------------
@pytest.mark.parametrize("value", [-7, True, False, 12.9, "12.9", "-7", None, [], float("nan"), float("inf")])
def test_count_refuses_what_is_not_a_count(value):
    with pytest.raises(SourceResponseError, match=r"^connectwise: GET /count count is "):
        figures.count("connectwise", "GET /count count", value)


def test_count_takes_whole_numbers_as_numbers_or_digits():
    assert [figures.count("x", "n", v) for v in (0, 7, 7.0, " 12 ")] == [0, 7, 7, 12]


@pytest.mark.parametrize("value", [103.6, -0.01, 150, "150.000", "nan", float("nan"), float("inf"), True, None, "n/a"])
def test_percentage_refuses_out_of_range_and_non_finite(value):
    with pytest.raises(SourceResponseError, match="uptimerobot: ratio is "):
        figures.percentage("uptimerobot", "ratio", value)


def test_percentage_non_negative_and_past_instant_accept_real_values():
    assert figures.percentage("x", "p", "99.982") == 99.982 and figures.percentage("x", "p", 100) == 100.0
    assert figures.non_negative("x", "d", 0) == 0.0
    with pytest.raises(SourceResponseError, match="cannot be negative"):
        figures.non_negative("zabbix", "downtime", -350)
    assert figures.past_instant("x", "t", NOW + figures.CLOCK_SKEW, now=NOW) == NOW + figures.CLOCK_SKEW
    with pytest.raises(SourceResponseError, match=r"closedDate is '2099-01-01T00:00:00\+00:00', in the future"):
        figures.past_instant("connectwise", "closedDate", dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc), now=NOW)


def test_a_time_without_offset_may_be_a_server_local_time_but_never_2099():
    ahead = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    device = {"device_id": 3, "hostname": "fw1", "location": "HQ", "last_polled": ahead.strftime("%Y-%m-%d %H:%M:%S")}
    assert librenms.parse_devices([device], {})[0].last_polled is not None  # a UTC+2 server's local time
    with pytest.raises(SourceResponseError, match="in the future"):  # a ConnectWise date carries its Z
        connectwise.parse_date(ahead.strftime("%Y-%m-%dT%H:%M:%SZ"), "ticket 5 closedDate")


# ---- each source's parser --------------------------------------------------------------------
def test_connectwise_ticket_closed_in_the_future_is_refused():
    record = {"id": 41, "closedFlag": True, "closedDate": "2099-01-01T00:00:00Z",
              "_info": {"dateEntered": "2026-11-17T10:00:00Z"}}
    with pytest.raises(SourceResponseError, match="ticket 41 closedDate is '2099-01-01T00:00:00"):
        connectwise.parse_ticket(record)


@pytest.mark.parametrize("record_count", [-3, True, 2.5, "lots"])
def test_halopsa_record_count_must_be_a_count(record_count):
    with pytest.raises(SourceResponseError, match="record_count is"):
        halopsa.read_page({"record_count": record_count, "tickets": []}, 10)


def test_halopsa_ticket_opened_in_the_future_is_refused():
    with pytest.raises(SourceResponseError, match="ticket 9 dateoccurred is '2099"):
        halopsa.parse_ticket({"id": 9, "dateoccurred": "2099-03-01T00:00:00"})


@pytest.mark.parametrize(("current", "maximum"), [(300, 100), (-5, 100), ("NaN", 100), (True, 100), (5, "x")])
def test_defender_secure_score_out_of_range_is_refused(current, maximum):
    with pytest.raises(SourceResponseError, match="defender: secure score"):
        defender.score_pct({"currentScore": current, "maxScore": maximum})


@pytest.mark.parametrize("ratio", ["150.000", "nan", "inf", "-1", "150.000-99.9"])
def test_uptimerobot_ratio_out_of_range_is_refused(ratio):
    with pytest.raises(SourceResponseError, match="uptimerobot: (the first ratio of )?custom_uptime_ranges "
                                                  f"(is )?'{re.escape(ratio)}'"):
        uptimerobot.uptime_ratio(ratio)


def test_uptimerobot_negative_log_duration_is_refused():
    log = {"type": 1, "datetime": int(WEEK.start.timestamp()) + 60, "duration": -600}
    with pytest.raises(SourceResponseError, match="duration is -600"):
        uptimerobot.down_minutes([log], WEEK)


@pytest.mark.parametrize(("field", "value"), [("count", -4), ("count", 2.5), ("count", True), ("interval", -60)])
def test_cloudflare_negative_count_or_interval_is_refused(field, value):
    check = {"name": "www", "address": "www.acme.example", "type": "HTTPS", "interval": 60}
    group = {"count": 10, "dimensions": {"fqdn": "www.acme.example", "region": "WEUR", "healthStatus": "healthy"}}
    (group if field == "count" else check)[field] = value
    with pytest.raises(SourceResponseError, match=f"{field} is {value!r}"):
        cloudflare.parse_site_checks([check], [group])


def test_librenms_future_poll_and_impossible_slo_are_refused():
    device = {"device_id": 3, "hostname": "fw1", "location": "HQ", "type": "firewall",
              "last_polled": "2099-01-01 00:00:00"}
    with pytest.raises(SourceResponseError, match="device 3 last_polled is '2099"):
        librenms.parse_devices([device], {})
    with pytest.raises(SourceError, match="ref.slo_pct.Firewalls is '150'"):
        librenms.slo_targets({"slo_pct.Firewalls": "150"})


@pytest.mark.parametrize("value", ["-4", "nan", "inf", "0"])
def test_rpo_hours_must_be_a_positive_duration(value):
    with pytest.raises(SourceError, match=f"datto: ref.rpo_hours is '{value}'"):
        backup_rules.rpo_hours({"rpo_hours": value}, "datto")


# ---- the snapshot model: the last line of defence --------------------------------------------
def test_snapshot_model_refuses_impossible_figures():
    row = {"site": "HQ", "device_class": "Servers", "slo_pct": 99.9, "source": "zabbix"}
    for bad in ({"uptime_pct": 103.6, "downtime_minutes": 0}, {"uptime_pct": 99.0, "downtime_minutes": -350},
                {"uptime_pct": math.nan, "downtime_minutes": 0}):
        with pytest.raises(ValidationError):
            UptimeRow(**row, **bad)
    tickets = {"opened": 1, "closed": 1, "sla_breaches": 0, "by_priority": [], "changes": []}
    for backlog in (-7, True, 12.9):
        with pytest.raises(ValidationError):
            TicketData(**tickets, backlog_end=backlog)
    with pytest.raises(ValidationError):
        SiteCheck(name="www", address="x", availability_pct=150.0, downtime_minutes=0, status_now="up", source="x")
    assert UptimeRow(**row, uptime_pct=None, downtime_minutes=0).uptime_pct is None


# ---- end to end: simulator -> rewriter -> hook -> snapshot -> PDF ---------------------------
Edit = Callable[[Any], Any]


@pytest.fixture
def rewrite(monkeypatch) -> Callable[[str, Edit], None]:
    """``rewrite(path_suffix, edit)``: every JSON answer whose URL path ends with the suffix
    reaches the hook as ``edit(body)``; the request itself went to the simulator over HTTP."""
    rules: list[tuple[str, Edit]] = []
    send = requests.adapters.HTTPAdapter.send

    def rewriting_send(self, request, *args, **kwargs):
        response = send(self, request, *args, **kwargs)
        path = urlsplit(request.url).path
        for suffix, edit in rules:
            if path.endswith(suffix) and response.status_code == 200:
                response._content = json.dumps(edit(json.loads(response.content))).encode()
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", rewriting_send)
    return lambda suffix, edit: rules.append((suffix, edit))


def _report(settings, code: str, domain: str) -> tuple[Exception, dict, str]:
    """Run the customer's week; the faulted domain's error, its stored part, and the PDF text."""
    item = {"customer": code, "week_of": WEEK_OF.isoformat()}
    error = None
    for each in pipeline.DOMAINS:
        try:
            pipeline.extract(settings, item, each)
        except Exception as exc:  # noqa: BLE001 - only the faulted domain may fail
            assert each == domain, exc
            error = exc
    assert error is not None, f"{domain} was extracted with an impossible figure"
    pipeline.build_snapshot(settings, item)
    pipeline.render(settings, item)
    store = ReportStore(settings.store_root)
    system = pipeline.load_registry(settings.registry_path).get(code).sources[domain][0].system
    part = store.read_json(code, WEEK_OF, f"sections/{domain}.{system}.json")
    pdf = store.read_bytes(code, WEEK_OF, "report.pdf")
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    return error, part, text


def _assert_unavailable(text: str, system: str, title: str, impossible: str) -> None:
    section = text.split(f"{title} Source:", 1)[1]
    assert f"Data unavailable: {SYSTEMS[system].label}" in section[:300], section[:300]
    assert impossible not in text


def _first_record(edit: Callable[[dict], None]) -> Edit:
    def apply(body):
        if isinstance(body, list) and body:
            edit(body[0])
        return body
    return apply


@pytest.mark.parametrize("count", [-7, True, 12.9])
def test_connectwise_impossible_backlog_count_renders_unavailable(sim_settings, rewrite, count):
    rewrite("/service/tickets/count", lambda body: {**body, "count": count})
    error, part, text = _report(sim_settings, "ACME", "tickets")
    assert isinstance(error, SourceResponseError)
    assert part["status"]["ok"] is False and part["data"] is None
    assert f"count is {count!r}" in part["status"]["error"] and "service/tickets/count" in part["status"]["error"]
    _assert_unavailable(text, "connectwise", "Tickets", f"{int(count)} open at week end")
    assert not re.search(rf"Backlog at week end:? {int(count)}\b", text)


def test_connectwise_future_closed_date_does_not_set_data_as_of(sim_settings, rewrite):
    def close_in_2099(record: dict) -> None:
        record.update(closedFlag=True, closedDate="2099-01-01T00:00:00Z")

    rewrite("/service/tickets", _first_record(close_in_2099))
    error, part, text = _report(sim_settings, "ACME", "tickets")
    assert "closedDate is '2099-01-01T00:00:00+00:00', in the future" in part["status"]["error"], error
    assert part["status"]["as_of"] is None and part["data"] is None
    _assert_unavailable(text, "connectwise", "Tickets", "2099")


def test_defender_secure_score_over_100_renders_unavailable(sim_settings, rewrite):
    def triple(body: dict) -> dict:
        for record in body.get("value", []):
            record.update(currentScore=300.0, maxScore=100.0)
        return body

    rewrite("/security/secureScores", triple)
    _error, part, text = _report(sim_settings, "ACME", "security")
    assert "secure score" in part["status"]["error"] and "300" in part["status"]["error"]
    _assert_unavailable(text, "defender", "Security", "300.0%")


@pytest.mark.parametrize(("ratio", "printed"), [("150.000", "150.00"), ("nan", "nan%")])
def test_uptimerobot_impossible_availability_renders_unavailable(sim_settings, rewrite, ratio, printed):
    def set_ratio(body: dict) -> dict:
        for monitor in body.get("monitors", []):
            monitor["custom_uptime_ranges"] = ratio
        return body

    rewrite("/v2/getMonitors", set_ratio)
    _error, part, text = _report(sim_settings, "GOLF", "sites")
    assert f"custom_uptime_ranges is '{ratio}'" in part["status"]["error"]
    _assert_unavailable(text, "uptimerobot", "Public sites", printed)



def test_snapshot_model_stops_a_figure_that_a_parser_forgot_to_check(sim_settings, rewrite, monkeypatch):
    """The last line of defence, end to end: with the parser's percentage check switched off,
    150 % still never reaches the PDF, because the snapshot model refuses to hold it."""
    monkeypatch.setattr(figures, "percentage", lambda system, what, value: float(value))

    def set_ratio(body: dict) -> dict:
        for monitor in body.get("monitors", []):
            monitor["custom_uptime_ranges"] = "150.000"
        return body

    rewrite("/v2/getMonitors", set_ratio)
    _error, part, text = _report(sim_settings, "GOLF", "sites")
    assert "ValidationError" in part["status"]["error"] and "availability_pct" in part["status"]["error"]
    _assert_unavailable(text, "uptimerobot", "Public sites", "150.00")


def test_an_old_stored_week_with_an_impossible_figure_is_a_gap_not_a_failure(tmp_path, caplog):
    """A snapshot stored before the figure checks (uptime 103.6 %) is left out of the baseline and
    the trends with a warning; it neither fails this week nor becomes a figure."""
    from msp_reports.pipeline import load_snapshot
    from msp_reports.store import ReportStore

    from tests.factories import snapshot

    store = ReportStore(str(tmp_path))
    week_of = dt.date(2026, 11, 9)
    good = snapshot(week_of).model_dump(mode="json")
    store.write_json("ACME", week_of, "snapshot.json", good)
    assert load_snapshot(store, "ACME", week_of) is not None
    good["uptime"]["data"]["rows"][0]["uptime_pct"] = 103.6
    store.write_json("ACME", week_of, "snapshot.json", good)
    with caplog.at_level("WARNING"):
        assert load_snapshot(store, "ACME", week_of) is None
    assert "ACME 2026-11-09: the stored snapshot.json fails the figure checks" in caplog.text

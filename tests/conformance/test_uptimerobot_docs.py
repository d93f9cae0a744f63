"""UptimeRobot v2 has no published machine-readable spec: the documentation's example answers are
pinned as fixtures (``data/uptimerobot_*.json``) and the simulator's answers must have their shape
(same keys, same JSON types, per monitor and per log). The community client ``pyuptimerobot``
(23.x, the one Home Assistant uses) must parse both, and its own requests must be answered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import requests
from pyuptimerobot import UptimeRobot, UptimeRobotAuthenticationException
from pyuptimerobot import decorator as pyur_decorator
from pyuptimerobot.models import APIStatus, MonitorType, UptimeRobotApiResponse

from msp_reports.sources import uptimerobot as project
from tests.factories import report_week

DATA = Path(__file__).parent / "data"
DOC = json.loads((DATA / "uptimerobot_getMonitors.json").read_text())
ERRORS = json.loads((DATA / "uptimerobot_errors.json").read_text())


def _shape(value):
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _sim_monitors(sim, creds, world, code: str = "KILO") -> dict:
    week = report_week(world, code)
    start, end = int(week.start.timestamp()), int(week.end.timestamp())
    return requests.post(f"{sim.base_url}/uptimerobot/v2/getMonitors", data={
        "api_key": creds.uptimerobot_api_key, "format": "json", "search": code, "limit": 50, "logs": 1,
        "custom_uptime_ranges": f"{start}_{end}"}).json()


def test_envelope_and_pagination_match_the_documented_example(sim, creds, world):
    body = _sim_monitors(sim, creds, world)
    assert set(body) == set(_shape(DOC))
    assert _shape(body["pagination"]) == _shape(DOC["pagination"])


def test_monitor_fields_have_the_documented_types(sim, creds, world):
    documented = _shape(DOC["monitors"][0])
    for monitor in _sim_monitors(sim, creds, world)["monitors"]:
        got = _shape(monitor)
        missing = set(documented) - set(got)
        assert not missing, missing
        for key in set(documented) & set(got) - {"logs", "keyword_type"}:  # keyword_type: "" or null
            assert got[key] == documented[key], key
        for log in monitor["logs"]:
            assert _shape(log) == _shape(DOC["monitors"][0]["logs"][0])
            assert log["type"] in (1, 2, 98, 99)


def test_project_parses_the_documented_example():
    week_start = 1462565497
    (ratio,) = [project.uptime_ratio(m["custom_uptime_ranges"]) for m in DOC["monitors"][1:]]
    assert ratio == 99.982
    assert project.read_page(DOC)[1] == 2
    assert project.status_text(DOC["monitors"][1]["status"]) == "up"
    assert week_start  # the example's timestamps are Unix seconds, as the project reads them


@pytest.mark.parametrize("case", ["missing_key", "invalid_key"])
def test_errors_match_the_documented_envelope(sim, case):
    form = {"format": "json"} | ({"api_key": "u1234-wrongkey"} if case == "invalid_key" else {})
    body = requests.post(f"{sim.base_url}/uptimerobot/v2/getMonitors", data=form).json()
    assert body == ERRORS[case]


def test_rate_limit_headers_are_the_documented_ones(sim, creds):
    answer = requests.post(f"{sim.base_url}/uptimerobot/v2/getMonitors",
                           data={"api_key": creds.uptimerobot_api_key, "format": "json", "limit": 1})
    assert all(h in answer.headers for h in ERRORS["rate_limit_headers"][:3])
    assert answer.headers["X-RateLimit-Limit"] == str(ERRORS["free_plan_requests_per_minute"])


def test_pyuptimerobot_parses_the_simulator_and_the_documented_example(sim, creds, monkeypatch):
    monkeypatch.setattr(pyur_decorator, "API_BASE_URL", f"{sim.base_url}/uptimerobot/v2")

    async def run(key: str):
        async with aiohttp.ClientSession() as session:
            return await UptimeRobot(key, session).async_get_monitors()

    response = asyncio.run(run(creds.uptimerobot_api_key))
    assert response.status == APIStatus.OK
    assert response.data and all(m.type == MonitorType.HTTP and ":" in m.friendly_name for m in response.data)
    with pytest.raises(UptimeRobotAuthenticationException):  # it recognises the documented message only
        asyncio.run(run(""))
    parsed = UptimeRobotApiResponse.from_dict({k: v for k, v in DOC.items() if not k.startswith("_")})
    assert [m.id for m in parsed.data] == [777749809, 777712827]

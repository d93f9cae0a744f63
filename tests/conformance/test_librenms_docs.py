"""LibreNMS: the simulator against LibreNMS's documented examples and its handler code.

LibreNMS publishes no machine-readable spec and no official client. Its API docs
(``doc/API/Devices.md``, ``doc/API/DeviceGroups.md``) give example responses, pinned in
``data/librenms_*.json``; the simulator's replies for the same endpoints must have their fields
(``status``, the result list, ``message`` where set) and record fields, and the project must
parse the documented examples too (they write ids as strings, as older PHP/MySQL did).

Where the docs and the handler disagree, the handler wins: ``device_outages`` hands
``api_success`` an Eloquent Collection (``DeviceOutage::select(...)->get()``), and
``api_success`` only counts arrays (``is_array``), so the real envelope has no ``count``; the
docs' example still shows ``"count": 5`` from an older version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from msp_reports.sources import librenms

DATA = Path(__file__).parent / "data"


def doc(name: str) -> dict:
    body = json.loads((DATA / f"librenms_{name}.json").read_text())
    return body[0] if isinstance(body, list) else body  # DeviceGroups.md wraps its examples in a list


@pytest.fixture
def get(sim):
    def _get(path: str, **params) -> requests.Response:
        return requests.get(f"{sim.base_url}/librenms/api/v0{path}", params=params, timeout=10,
                            headers={"X-Auth-Token": sim.creds.librenms_token})
    return _get


def _kind(value) -> str:
    """JSON type, with a digit string counted as a number (the docs' old MySQL ids)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return "number"
    return "null" if value is None else type(value).__name__


def test_device_outages_envelope_has_no_count_as_the_handler_sends(get):
    body = get("/devices/acme-leeds-network-1/outages").json()
    documented = doc("device_outages")

    assert set(body) == set(documented) - {"count"} == {"status", "outages"}
    assert body["outages"], "the device has outages in the world"
    for record in body["outages"]:
        assert set(record) == set(documented["outages"][0])
        assert _kind(record["going_down"]) == "number"
        assert record["up_again"] is None or _kind(record["up_again"]) == "number"


def test_an_outage_free_device_answers_an_empty_list_without_count(get):
    assert get("/devices/acme-leeds-network-2/outages").json() == {"status": "ok", "outages": []}


def test_the_project_reads_outages_with_and_without_count():
    documented = doc("device_outages")
    real = {k: v for k, v in documented.items() if k != "count"}

    assert librenms.read_envelope(real, "outages") == documented["outages"]
    parsed = librenms.parse_outages(librenms.read_envelope(documented, "outages"))
    assert len(parsed) == 5 and all(up is not None and up > down for down, up in parsed)


@pytest.mark.parametrize("name, path, result", [
    ("devices_by_group", "/devicegroups/ACME", "devices"),
    ("devicegroups", "/devicegroups", "groups"),
])
def test_counted_envelopes_have_the_documented_fields(get, name, path, result):
    body = get(path).json()
    documented = doc(name)

    assert {"status", result, "count"} <= set(body) <= set(documented)
    assert body["count"] == len(body[result])
    documented_fields = set(documented[result][0])
    for record in body[result]:
        assert documented_fields - {"pattern"} <= set(record), record  # rule groups since replaced pattern
        for field in documented_fields & set(record):
            if field in ("id", "device_id"):
                assert _kind(record[field]) == _kind(documented[result][0][field]) == "number"


def test_the_project_parses_the_documented_group_members():
    rows = librenms.read_envelope(doc("devices_by_group"), "devices")
    assert [d.device_id for d in librenms.parse_devices(rows, {})] == [15, 18, 20]

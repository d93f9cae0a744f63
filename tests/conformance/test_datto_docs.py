"""Datto BCDR: the simulator against the example bodies of Datto's REST API reference.

Datto publishes no machine-readable spec outside its partner portal and no official SDK. The
reference's example bodies for the two endpoints the project calls (``GET /v1/bcdr/device`` and
``GET /v1/bcdr/device/{serialNumber}/asset/agent``) are pinned in ``data/datto_*.json`` (see
``data/README.md`` for where they come from). The simulator's replies must carry every
documented field with the documented JSON type, recursively; and the project must parse the
documented examples.

Nullability is not documented (the examples are Swagger "Example Value" bodies): the fields in
``MAY_BE_NULL`` are written as ``null`` by the simulator when there is nothing to report (no good
backup yet, no error, no screenshot). That is UNCONFIRMED against a live partner account, and
docs/fidelity.md says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from msp_reports.sources import datto
from tests.factories import report_week

DATA = Path(__file__).parent / "data"
MAY_BE_NULL = frozenset({"latestOffsite", "lastSnapshot", "lastScreenshotAttempt", "lastScreenshotUrl",
                         "errorMessage", "image"})


def doc(name: str) -> Any:
    return json.loads((DATA / f"datto_{name}.json").read_text())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}[type(value)]


def shape_errors(documented: Any, served: Any, path: str = "$") -> list[str]:
    """Where ``served`` lacks a documented field or has another JSON type (lists: every item
    against the documented first item; an empty served list is fine)."""
    name = path.rsplit(".", 1)[-1]
    if served is None and name in MAY_BE_NULL:
        return []
    if _kind(documented) != _kind(served):
        return [f"{path}: documented {_kind(documented)}, served {_kind(served)}"]
    errors: list[str] = []
    if isinstance(documented, dict):
        for key, value in documented.items():
            if key not in served:
                errors.append(f"{path}.{key}: missing")
            else:
                errors.extend(shape_errors(value, served[key], f"{path}.{key}"))
    elif isinstance(documented, list) and documented:
        for n, item in enumerate(served):
            errors.extend(shape_errors(documented[0], item, f"{path}[{n}]"))
    return errors


@pytest.fixture
def get(sim):
    def _get(path: str, **params) -> requests.Response:
        return requests.get(f"{sim.base_url}/datto/v1{path}", params=params, timeout=10,
                            auth=(sim.creds.datto_public_key, sim.creds.datto_secret_key))
    return _get


def test_devices_page_has_the_documented_fields_and_types(get):
    body = get("/bcdr/device", _page=1, _perPage=100).json()
    assert body["items"]
    assert shape_errors(doc("devices"), body) == []


def test_agents_have_the_documented_fields_and_types(get):
    serials = [d["serialNumber"] for d in get("/bcdr/device", _perPage=100).json()["items"]]
    for serial in serials:
        page = get(f"/bcdr/device/{serial}/asset/agent", _perPage=100).json()
        assert set(page) == {"pagination", "items"}
        assert shape_errors(doc("devices")["pagination"], page["pagination"]) == []
        for agent in page["items"]:
            assert shape_errors(doc("agent"), agent) == [], agent["name"]


def test_the_checker_catches_a_missing_documented_field():
    served = {k: v for k, v in doc("devices")["items"][0].items() if k != "shareCount"}
    assert shape_errors(doc("devices")["items"][0], served) == ["$.shareCount: missing"]


def test_the_project_parses_the_documented_examples(world):
    items, pages = datto.read_page(doc("devices"))
    assert pages == 0 and items[0]["serialNumber"] == "string"

    week = report_week(world, "ACME")
    asset = datto.parse_agent(doc("agent"), "SIRIS", week, 24.0)
    assert asset.name == "test-host"
    assert asset.last_status == "string"  # undocumented status values are kept raw, counted as failures
    assert datto.backup_attempts(doc("agent"))[0].ok is False

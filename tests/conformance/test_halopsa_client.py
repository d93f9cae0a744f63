"""The community HaloPSA client (package ``halopsa`` 2.0.x, import ``HaloPSA``; its ``Ticket``
dataclass mirrors Halo's ``Faults`` schema) against the simulator: the client's own
``Tickets.search`` / ``Tickets.get`` and its token request reach the simulator, every field the
simulator returns is a field of Halo's ticket model with a value of its type, and lists are
trimmed as Halo's are (``slaresponsestate`` listed, ``slastate`` only in the full ticket).

The client hard-codes ``https://<tenant>.halopsa.com``; its method helper is pointed at the
simulator instead (the only change)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import types
import typing

import pytest
import requests
from HaloPSA.responses.Ticket import Ticket

from devtools.simulators import halopsa as halo_sim
from msp_reports.sources import halopsa as project
from tests.factories import report_week

halo_module = importlib.import_module("HaloPSA.Halo")  # the module, not the Halo class the package exports
FIELDS = {f.name: f for f in dataclasses.fields(Ticket)}
HINTS = typing.get_type_hints(Ticket)


def _client(sim, creds):
    helper = object.__new__(halo_module._MethodsHelper)
    helper.session = requests.Session()
    helper.auth_url = f"{sim.base_url}/halopsa/auth/token"
    helper.url = f"{sim.base_url}/halopsa/api"
    helper.formatted_params = []
    helper.token = helper._create_token(creds.halo_client_id, creds.halo_client_secret, "all")
    helper.session.headers.update({"Content-Type": "application/json", "Authorization": f"Bearer {helper.token}"})
    return halo_module._Tickets(mh=helper)


def _accepts(hint, value) -> bool:
    if value is None:
        return type(None) in typing.get_args(hint) or hint is typing.Any
    allowed = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    for kind in allowed:
        if kind is dt.datetime and isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value)
                return True
            except ValueError:
                continue
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if isinstance(kind, type) and isinstance(value, kind):
            return True
        if kind is typing.Any:
            return True
    return False


def _check_fields(record: dict) -> None:
    unknown = set(record) - set(FIELDS) - {"status_name", "hasbeenclosed", "datecreated", "dateclosed"}
    assert not unknown, f"fields not in Halo's ticket model: {sorted(unknown)}"
    for key, value in record.items():
        if key in HINTS:
            assert _accepts(HINTS[key], value), (key, value, HINTS[key])


def test_the_clients_search_and_get_parse(sim, creds, world):
    tickets = _client(sim, creds)
    code = "ACME"
    week = report_week(world, code)
    query = project.week_queries(halo_sim.halo_client_id(code), week)["opened"]
    listed = tickets.search(pageinate=True, page_size=50, page_no=1, **query)
    assert set(listed) == {"page_no", "page_size", "record_count", "tickets"}
    assert listed["tickets"]
    for record in listed["tickets"]:
        _check_fields(record)
        assert "slaresponsestate" in record and "slastate" not in record
    full = tickets.get(listed["tickets"][0]["id"], includedetails=True)
    _check_fields(full)
    assert "slastate" in FIELDS and "slastate" in full
    assert full["slastate"] in ("I", "O", None)


def test_the_models_sla_fields_are_the_ones_the_project_reads():
    assert {"slaresponsestate", "slastate", "excludefromsla", "dateoccurred", "priority_id",
            "tickettype_id"} <= set(FIELDS)
    # the list-level (required) fields of the model carry neither SLA state: lists are trimmed
    required = {n for n, f in FIELDS.items() if f.default is dataclasses.MISSING}
    assert "slastate" not in required


@pytest.mark.parametrize("query", ["opened", "closed", "open_now", "closed_since_end"])
def test_the_projects_queries_use_parameters_the_client_knows(query, world):
    """The project's list filters are parameters the client passes to /api/Tickets unchanged."""
    params = project.week_queries(482918, report_week(world, "ACME"))[query]
    assert set(params) <= {"client_id", "datesearch", "startdate", "enddate", "open_only", "closed_only"}
    search = halo_module._Tickets.search
    known = set(search.__code__.co_varnames[:search.__code__.co_argcount])
    assert {"pageinate", "page_size", "page_no", "order"} <= known

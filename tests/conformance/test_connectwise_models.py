"""ConnectWise PSA (Manage) against ``pyconnectwise`` (0.6.x; pydantic models generated from
ConnectWise's Manage OpenAPI spec) and its API client: the client pages through the simulator
over TLS (it speaks https only), every ticket parses into ``Ticket`` with only fields the spec
knows, the references (board, status, priority, company, type) parse into their reference models,
``/count`` into ``Count``, and the project's sparse ``fields`` and ``conditions`` name fields of
the spec."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from pyconnectwise import ConnectWiseManageAPIClient
from pyconnectwise.models.manage import Ticket

from devtools.simulators.connectwise import BOARD_IDS, CODEBASE
from msp_reports.sources import connectwise as project
from tests.factories import report_week


def _aliases(model) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def _check_known_fields(record: dict) -> Ticket:
    ticket = Ticket.model_validate(record)
    unknown = set(record) - _aliases(Ticket)
    assert not unknown, f"fields not in the Manage spec's Ticket: {sorted(unknown)}"
    for name in ("board", "status", "priority", "company", "type"):
        if name in record:
            reference = type(getattr(ticket, name))
            assert not set(record[name]) - _aliases(reference), (name, record[name])
    return ticket


@pytest.fixture
def client(sim, creds, monkeypatch) -> ConnectWiseManageAPIClient:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.certificate.ca_bundle)
    host = sim.tls_base_url.removeprefix("https://") + "/connectwise"
    # no codebase given: the client looks it up (login/companyinfo) as it does against the cloud (and
    # pyconnectwise 0.6 drops a codebase passed in, so the lookup is the path that works)
    made = ConnectWiseManageAPIClient(creds.connectwise_company, host, creds.connectwise_client_id,
                                      creds.connectwise_public_key, creds.connectwise_private_key)
    assert made.codebase == f"{CODEBASE}/"
    return made


def test_the_client_pages_through_tickets_and_every_one_parses(client, world):
    company = "ACME"
    conditions = f'company/identifier="{company}"'
    first = client.service.tickets.paginated(1, 25, params={"conditions": conditions})
    tickets = list(first.all())
    want = [t for t in world.customers[company].tickets if t.entered <= dt.datetime.now(dt.timezone.utc)]
    assert len(tickets) == len(want) > 25  # more than one page, followed by the client's Link paging
    assert {t.board.name for t in tickets} <= set(BOARD_IDS)
    assert all(t.record_type == "ServiceTicket" and t.info and "dateEntered" in t.info for t in tickets)


def test_raw_records_hold_only_spec_fields(sim, creds, world):
    response = requests.get(f"{sim.base_url}/connectwise/{CODEBASE}/apis/3.0/service/tickets",
                            params={"pageSize": 50}, auth=(f"{creds.connectwise_company}+{creds.connectwise_public_key}",
                                                           creds.connectwise_private_key),
                            headers={"clientId": creds.connectwise_client_id})
    assert response.ok
    for record in response.json():
        _check_known_fields(record)
    one = requests.get(f"{sim.base_url}/connectwise/{CODEBASE}/apis/3.0/service/tickets/{response.json()[0]['id']}",
                       auth=(f"{creds.connectwise_company}+{creds.connectwise_public_key}", creds.connectwise_private_key),
                       headers={"clientId": creds.connectwise_client_id})
    _check_known_fields(one.json())


def test_count_parses(client):
    count = client.service.tickets.count.get(params={"conditions": 'board/name="Change Management"'})
    assert isinstance(count.count, int) and count.count > 0


@pytest.mark.parametrize("fields", [project.TICKET_FIELDS, project.CHANGE_FIELDS])
def test_the_projects_sparse_fields_are_spec_fields(fields):
    for path in fields.split(","):
        top, _, sub = path.partition("/")
        assert top in _aliases(Ticket), path
        if sub and top != "_info":
            reference = Ticket.model_fields[next(n for n, f in Ticket.model_fields.items() if (f.alias or n) == top)]
            model = next(a for a in reference.annotation.__args__ if a is not type(None))
            assert sub in _aliases(model), path


def test_the_projects_conditions_name_spec_fields_and_the_simulator_takes_them(client, world):
    week = report_week(world, "ACME")
    conditions = project.week_conditions("ACME", project.DEFAULT_CHANGE_BOARD, week)
    for text in conditions.values():
        for name in {w.split("/")[0] for w in re.findall(r"\b([a-zA-Z_]+(?:/[a-zA-Z]+)?)\s*(?:=|<|>|!=|like|in)\s", text)}:
            assert name in _aliases(Ticket) | {"_info"}, name
        assert client.service.tickets.count.get(params={"conditions": text}).count >= 0

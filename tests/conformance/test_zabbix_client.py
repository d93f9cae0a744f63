"""Zabbix: the simulator driven by Zabbix's own Python client, ``zabbix_utils``.

``zabbix_utils.ZabbixAPI`` reads ``apiinfo.version`` first and refuses a server outside the
releases it supports, picks the session transport from the version (``Authorization: Bearer``
from 6.4, the body's ``auth`` before), logs in with ``username`` or takes an API token, checks a
session with ``user.checkAuthentication`` and raises ``APIRequestError`` on a JSON-RPC
``error`` member. Each method the project calls is called here through it, with the project's
parameters and with the Zabbix 7.0 parameters the simulator claims (``selectHostGroups``,
``selectStatusTimeline``...), and the results must have the shapes the 7.0 reference gives.
"""

from __future__ import annotations

import datetime as dt

import pytest
from zabbix_utils import APIRequestError, ProcessingError, ZabbixAPI

from devtools.simulators import zabbix as sim_zabbix
from tests.factories import report_week

UTC = dt.timezone.utc


@pytest.fixture
def url(sim) -> str:
    return f"{sim.base_url}/zabbix/api_jsonrpc.php"


@pytest.fixture
def api(url, sim) -> ZabbixAPI:
    return ZabbixAPI(url=url, token=sim.creds.zabbix_api_token)


def _ids(records: list[dict], field: str) -> list[str]:
    assert all(isinstance(r[field], str) and r[field].isdigit() for r in records)  # ids are strings
    return [r[field] for r in records]


def test_the_client_accepts_the_servers_version(url):
    api = ZabbixAPI(url=url)
    assert api.version == 7.0 and str(api.api_version()) == sim_zabbix.VERSION


def test_password_login_check_and_logout(url, sim):
    api = ZabbixAPI(url=url, user=sim.creds.zabbix_user, password=sim.creds.zabbix_password)
    assert api.check_auth() is True  # user.checkAuthentication with the session id
    assert api.host.get(output=["hostid"], limit=1)
    api.logout()
    with pytest.raises(ProcessingError):
        api.host.get(output=["hostid"], limit=1)  # the client knows it is logged out


def test_token_login_is_checked_with_check_authentication(api):
    assert api.check_auth() is True


def test_a_wrong_password_is_an_api_error(url):
    with pytest.raises(APIRequestError, match="Incorrect user name or password"):
        ZabbixAPI(url=url, user="nobody", password="wrong")


def test_the_projects_calls_parse(api, world):
    """The project's parameters, verbatim from sources/zabbix.py's extract."""
    code = "ACME"
    customer = [{"tag": "customer", "value": code, "operator": 1}]
    services = api.service.get(output=["serviceid", "name"], tags=customer, selectTags=["tag", "value"])
    assert services and all(set(s) == {"serviceid", "name", "tags"} for s in services)
    serviceids = _ids(services, "serviceid")

    slas = api.sla.get(serviceids=serviceids, output=["slaid", "name", "period", "slo", "timezone", "status"],
                       selectServiceTags=["tag", "operator", "value"])
    assert slas and all(isinstance(t["operator"], str) for s in slas for t in s["service_tags"])

    hosts = api.host.get(output=["hostid"], tags=customer, selectTags=["tag", "value"], filter={"status": "0"})
    assert hosts and _ids(hosts, "hostid")

    week = report_week(world, code)
    sla = next(s for s in slas if s["name"].startswith(f"{code} daily"))
    sli = api.sla.getsli(slaid=sla["slaid"], period_from=int(week.start.timestamp()),
                         period_to=int(week.end.timestamp()) - 1)
    assert set(sli) == {"periods", "serviceids", "sli"}
    assert len(sli["sli"]) == len(sli["periods"]) and all(len(row) == len(sli["serviceids"]) for row in sli["sli"])
    assert {"uptime", "downtime", "sli", "error_budget", "excluded_downtimes"} <= set(sli["sli"][0][0])


def test_select_host_groups_is_a_valid_70_parameter(api):
    hosts = api.host.get(output=["hostid", "name"], selectHostGroups=["groupid", "name"], limit=3)
    assert hosts and all(h["hostgroups"] and {"groupid", "name"} == set(h["hostgroups"][0]) for h in hosts)


def test_select_status_timeline_is_a_valid_70_parameter(api, world):
    """Per period asked: ``start_value`` and the ``alarms`` (``clock``, ``value``) inside it; a
    service with an outage inside the week shows it going down and up again."""
    week = report_week(world, "ACME")
    period = {"period_from": int(week.start.timestamp()), "period_to": int(week.end.timestamp())}
    rows = {s.serviceid: s for cw in world.customers.values() for s in cw.services}
    inside = next(sid for sid, s in rows.items()
                  if any(o.end and week.start < o.start and o.end < week.end for o in s.outages))
    services = api.service.get(output=["serviceid"], serviceids=[str(inside)], selectStatusTimeline=[period],
                               selectProblemEvents="extend", selectStatusRules="extend")

    (service,) = services
    (timeline,) = service["status_timeline"]
    assert timeline["start_value"] in {"-1", "0", "1", "2", "3", "4", "5"}
    values = [a["value"] for a in timeline["alarms"]]
    assert "4" in values and "-1" in values
    assert all(period["period_from"] < int(a["clock"]) < period["period_to"] for a in timeline["alarms"])
    assert isinstance(service["problem_events"], list) and service["status_rules"] == []


def test_a_bad_status_timeline_is_an_invalid_params_error(api):
    with pytest.raises(APIRequestError, match="selectStatusTimeline"):
        api.service.get(output=["serviceid"], selectStatusTimeline="yesterday", limit=1)


def test_unknown_parameters_are_still_refused(api):
    with pytest.raises(APIRequestError, match='unexpected parameter "selectNonsense"'):
        api.host.get(output=["hostid"], selectNonsense="extend")


def test_a_60_server_refuses_select_host_groups():
    """6.2 added ``selectHostGroups``: a simulated 6.0 refuses it as the real 6.0 does."""
    assert "selectHostGroups" in sim_zabbix.accepted_params("host.get", "7.0.5")
    assert "selectHostGroups" not in sim_zabbix.accepted_params("host.get", "6.0.14")

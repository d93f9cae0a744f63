"""Microsoft Sentinel incidents (ARM, ``Microsoft.SecurityInsights``) through Microsoft's
azure-mgmt-securityinsight client: its own requests (its default api-version, ``$filter``,
``$orderby``, ``$top``, ``nextLink`` paging), its models deserialising every incident, ARM's
error envelope for refusals, and the project's request checked against the client's."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from tests.conformance.microsoft import ARM_SCOPE, app_token, ssl_context, tls

NEWER_VERSIONS = ["2021-10-01", "2022-11-01", "2023-02-01", "2023-11-01", "2024-03-01", "2024-09-01", "2025-06-01"]


@pytest.fixture(scope="module")
def customer(world):
    return max(world.customers.values(), key=lambda c: len(c.incidents))


@pytest.fixture
def arm_token(sim):
    from devtools.simulators.sentinel import MSP_TENANT_ID

    return app_token(sim, "sentinel", MSP_TENANT_ID, sim.creds.sentinel_client_id, sim.creds.sentinel_client_secret,
                     ARM_SCOPE)


@pytest.fixture
def client_for(sim, customer, arm_token):
    """``client_for()``: the SDK's client on the customer's subscription (this release takes the
    api-version per call: ``incidents.list(..., api_version=...)``)."""
    from azure.core.credentials import AccessToken
    from azure.mgmt.securityinsight import SecurityInsights
    from devtools.simulators.sentinel import subscription_id

    class _Token:
        def get_token(self, *scopes, **kwargs):
            return AccessToken(arm_token, int(time.time()) + 3000)

    def make() -> SecurityInsights:
        return SecurityInsights(_Token(), subscription_id(customer), base_url=f"{tls(sim).base_url}/sentinel",
                                connection_verify=tls(sim).ca_bundle)

    return make


def _check_incident(inc) -> None:
    from azure.mgmt.securityinsight.models import IncidentClassification, IncidentSeverity, IncidentStatus

    assert inc.id and inc.name and inc.type == "Microsoft.SecurityInsights/Incidents" and inc.etag
    assert inc.title and inc.severity in {s.value for s in IncidentSeverity}  # required by the spec
    assert inc.status in {s.value for s in IncidentStatus}
    assert isinstance(inc.created_time_utc, dt.datetime) and isinstance(inc.last_modified_time_utc, dt.datetime)
    assert inc.incident_number and inc.incident_url and inc.additional_data.alerts_count >= 1
    if inc.status == "Closed":
        assert inc.classification in {c.value for c in IncidentClassification}


def test_sdk_lists_incidents_with_its_default_api_version_and_follows_next_link(client_for, customer):
    from devtools.simulators.sentinel import resource_group, workspace_name

    client = client_for()
    sent: list[str] = []
    pager = client.incidents.list(resource_group(customer), workspace_name(customer),
                                  filter="properties/status ne 'Closed' or properties/status eq 'Closed'",
                                  orderby="properties/createdTimeUtc desc", top=2,
                                  raw_request_hook=lambda request: sent.append(request.http_request.url))
    pages = list(pager.by_page())
    assert "api-version=2021-10-01" in sent[0]  # what this client release sends by default
    incidents = [i for page in pages for i in page]
    assert len(pages) > 1 and len(incidents) == len({i.name for i in incidents}) > 2
    for inc in incidents:
        _check_incident(inc)
    created = [i.created_time_utc for i in incidents]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("version", NEWER_VERSIONS)
def test_every_published_api_version_is_accepted(client_for, customer, version):
    from devtools.simulators.sentinel import resource_group, workspace_name

    sent: list[str] = []
    incidents = list(client_for().incidents.list(resource_group(customer), workspace_name(customer), top=50,
                                                 api_version=version,
                                                 raw_request_hook=lambda r: sent.append(r.http_request.url)))
    assert incidents and f"api-version={version}" in sent[0]
    _check_incident(incidents[0])


@pytest.mark.parametrize("version", ["2099-01-01", "2021-10-01-nope"])
def test_an_unknown_api_version_is_refused_as_arm_does(client_for, customer, version):
    from azure.core.exceptions import HttpResponseError
    from devtools.simulators.sentinel import resource_group, workspace_name

    with pytest.raises(HttpResponseError) as refused:
        list(client_for().incidents.list(resource_group(customer), workspace_name(customer), api_version=version))
    assert refused.value.status_code == 400 and refused.value.error.code == "NoRegisteredProviderFound"
    assert version in refused.value.error.message and "supported api-versions" in refused.value.error.message


def test_project_api_version_is_a_published_one():
    from devtools.simulators.sentinel import API_VERSIONS
    from msp_reports.sources.sentinel import API_VERSION

    assert API_VERSION in API_VERSIONS


def test_projects_request_is_the_clients_request(customer):
    """Same path, and only query parameters the client's operation (the ARM spec's) defines."""
    from azure.mgmt.securityinsight.operations._incidents_operations import build_list_request
    from devtools.simulators.sentinel import workspace_ref
    from msp_reports.sources.sentinel import Workspace

    ref = workspace_ref(customer)
    ws = Workspace.from_ref(ref)
    sdk = build_list_request(ref["subscription_id"], ref["resource_group"], ref["workspace"],
                             filter="x", orderby="y", top=1, skip_token="z", api_version="2024-03-01")
    assert sdk.url.split("?")[0] == ws.incidents_path and sdk.method == "GET"
    sdk_params = {p.split("=")[0] for p in sdk.url.split("?")[1].split("&")}
    project_params = {"api-version", "$filter", "$orderby", "$top"}  # SentinelHook.collection
    assert project_params <= sdk_params


@pytest.mark.parametrize("method,suffix,status", [
    ("GET", "/providers/Microsoft.SecurityInsights/nosuch", 404),
    ("POST", "/providers/Microsoft.SecurityInsights/incidents", 405),
    ("GET", "/providers/Microsoft.SecurityInsights/incidents", 400),  # no api-version
])
def test_refusals_are_arm_error_envelopes(sim, customer, arm_token, method, suffix, status):
    from azure.mgmt.core.exceptions import ARMErrorFormat
    from devtools.simulators.sentinel import resource_group, subscription_id, workspace_name

    scope = (f"/subscriptions/{subscription_id(customer)}/resourceGroups/{resource_group(customer)}/providers/"
             f"Microsoft.OperationalInsights/workspaces/{workspace_name(customer)}")
    reply = httpx.request(method, f"{tls(sim).base_url}/sentinel{scope}{suffix}", verify=ssl_context(sim),
                          headers={"Authorization": f"Bearer {arm_token}"})
    assert reply.status_code == status
    body = reply.json()
    assert "detail" not in body
    error = ARMErrorFormat(body)
    assert error.code and error.message

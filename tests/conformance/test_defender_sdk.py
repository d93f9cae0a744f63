"""Defender XDR through Graph security (``/security/incidents``, ``/security/secureScores``) with
Microsoft's msgraph-sdk: the SDK's own requests, its models parsing every page (required fields,
enums, no unknown properties), its ``@odata.nextLink`` paging, and Graph error envelopes."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.conformance.microsoft import graph_error, graph_token, parse, run_graph, ssl_context, tls, unknown_properties
from tests.factories import WEEK_OF

BASE = "defender/graph/v1.0"


@pytest.fixture(scope="module")
def tenant(world):
    """A customer tenant with incidents and secure scores in the demo world."""
    return next(c for c in world.customers.values() if c.incidents and c.secure_scores).tenant_id


def _token(sim, tenant: str) -> str:
    return graph_token(sim, "defender", tenant)


async def _all_pages(first, request_builder):
    """Every item, following ``odata_next_link`` with the SDK's ``with_url``."""
    page, items = first, []
    while True:
        items += page.value
        if not page.odata_next_link:
            return items
        page = await request_builder.with_url(page.odata_next_link).get()


def test_incidents_parse_with_the_sdks_security_incident_model_across_pages(sim, tenant):
    from msgraph.generated.models.security.incident_status import IncidentStatus
    from msgraph.generated.models.security.alert_severity import AlertSeverity
    from msgraph.generated.security.incidents.incidents_request_builder import IncidentsRequestBuilder

    start = dt.datetime.combine(WEEK_OF - dt.timedelta(weeks=8), dt.time(), tzinfo=dt.timezone.utc)
    query = IncidentsRequestBuilder.IncidentsRequestBuilderGetQueryParameters(
        filter=f"createdDateTime ge {start:%Y-%m-%dT%H:%M:%SZ}", top=5)
    config = IncidentsRequestBuilder.IncidentsRequestBuilderGetRequestConfiguration(query_parameters=query)

    async def work(client):
        first = await client.security.incidents.get(config)
        return first, await _all_pages(first, client.security.incidents)

    first, incidents = run_graph(sim, work, base=BASE, token=_token(sim, tenant))
    assert first.odata_next_link, "expected more than one page at $top=5"
    assert len(incidents) > 5 and len({i.id for i in incidents}) == len(incidents)
    for inc in incidents:
        assert inc.id and inc.display_name and inc.created_date_time and inc.last_update_date_time
        assert inc.tenant_id == tenant and inc.incident_web_url
        assert isinstance(inc.status, IncidentStatus) and isinstance(inc.severity, AlertSeverity)
        assert inc.classification is not None and inc.determination is not None
        assert inc.created_date_time >= start
    assert unknown_properties(incidents) == []


def test_secure_scores_parse_with_the_sdks_model(sim, tenant):
    async def work(client):
        first = await client.security.secure_scores.get()
        return await _all_pages(first, client.security.secure_scores)

    scores = run_graph(sim, work, base=BASE, token=_token(sim, tenant))
    assert scores
    for score in scores:
        assert score.id and score.created_date_time and score.azure_tenant_id == tenant
        assert score.current_score is not None and score.max_score and score.current_score <= score.max_score
        assert score.average_comparative_scores and score.vendor_information.vendor == "Microsoft"
    assert unknown_properties(scores) == []


def test_the_projects_raw_pages_parse_with_the_sdks_collection_models(sim, tenant):
    """The project reads the JSON itself; its pages are what the SDK's collection models parse."""
    from msgraph.generated.models.secure_score_collection_response import SecureScoreCollectionResponse
    from msgraph.generated.models.security.incident_collection_response import IncidentCollectionResponse

    headers = {"Authorization": f"Bearer {_token(sim, tenant)}"}
    with httpx.Client(verify=ssl_context(sim), headers=headers) as http:
        for path, model in (("security/incidents", IncidentCollectionResponse),
                            ("security/secureScores", SecureScoreCollectionResponse)):
            reply = http.get(f"{tls(sim).base_url}/{BASE}/{path}", params={"$top": 2})
            assert reply.status_code == 200
            page = parse(model, reply.content)
            assert len(page.value) == 2 and page.odata_next_link and unknown_properties(page) == []


@pytest.mark.parametrize("path,params,status", [
    ("security/incidents", {"$filter": "nosuchfield eq 'x'"}, 400),
    ("security/incidents", {"$top": "many"}, 400),
    ("security/nosuch", {}, 400),
])
def test_refusals_are_graph_error_envelopes(sim, tenant, path, params, status):
    reply = httpx.get(f"{tls(sim).base_url}/{BASE}/{path}", params=params, verify=ssl_context(sim),
                      headers={"Authorization": f"Bearer {_token(sim, tenant)}"})
    assert reply.status_code == status
    graph_error(reply.content)


def test_wrong_method_and_missing_token_are_graph_error_envelopes(sim, tenant):
    base = f"{tls(sim).base_url}/{BASE}"
    posted = httpx.post(f"{base}/security/incidents", json={}, verify=ssl_context(sim),
                        headers={"Authorization": f"Bearer {_token(sim, tenant)}"})
    assert posted.status_code == 405
    graph_error(posted.content)
    anonymous = httpx.get(f"{base}/security/incidents", verify=ssl_context(sim))
    assert anonymous.status_code == 401 and graph_error(anonymous.content).code == "InvalidAuthenticationToken"

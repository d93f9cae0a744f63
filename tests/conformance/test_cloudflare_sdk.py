"""Cloudflare's own Python SDK (``cloudflare`` 5.x, Stainless-generated from Cloudflare's OpenAPI
spec) against the simulator: the REST calls the project makes, parsed with the SDK's pydantic
models and validated strictly (``model_validate``: types, enums), its paging and its errors. The
SDK does not wrap GraphQL Analytics, so the GraphQL call goes through the SDK's generic
``post`` and is checked against the shape the project reads, and the project's query is checked
for the dataset's rules (variables declared, a bounded window within ``maxDuration``)."""

from __future__ import annotations

import datetime as dt
import re

import cloudflare as cf
import pytest
from cloudflare.types.healthchecks import Healthcheck

from msp_reports.sources import cloudflare as project
from tests.factories import report_week


@pytest.fixture
def client(sim, creds) -> cf.Cloudflare:
    return cf.Cloudflare(api_token=creds.cloudflare_token, base_url=f"{sim.base_url}/cloudflare/client/v4",
                         max_retries=0)


def test_sdk_version_is_5():
    assert cf.__version__.startswith("5.")


def test_token_verify_parses(client):
    result = client.user.tokens.verify()
    assert result.status == "active"


@pytest.mark.parametrize("code", ["ACME", "HTEL"])
def test_health_checks_list_parses_strictly_and_pages(client, world, code):
    zone = world.customers[code].zone_id
    # the SDK's auto-paging (page / per_page, result_info) with the simulator's default page of 2
    listed = list(client.healthchecks.list(zone_id=zone))
    assert len(listed) == len(world.customers[code].checks)
    raw = client.healthchecks.with_raw_response.list(zone_id=zone, per_page=5).http_response.json()
    assert raw["success"] is True and set(raw) >= {"errors", "messages", "result", "result_info"}
    for record in raw["result"]:
        check = Healthcheck.model_validate(record)  # strict: Literal enums, datetimes, nested configs
        assert re.fullmatch(r"[A-Za-z0-9_-]+", check.name)
        assert check.status in ("healthy", "unhealthy", "unknown", "suspended")
        assert set(check.check_regions) <= {"WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF",
                                            "SAF", "IN", "SEAS", "NEAS", "ALL_REGIONS"}
        assert project.check_host(record) == check.address
        got = client.healthchecks.get(check.id, zone_id=zone)
        assert got.id == check.id and got.name == check.name


def test_per_page_not_a_multiple_of_five_is_refused(client, world):
    with pytest.raises(cf.BadRequestError):
        client.healthchecks.list(zone_id=world.customers["ACME"].zone_id, per_page=2)


def test_create_refuses_a_dotted_name(client, world):
    zone = world.customers["ACME"].zone_id
    with pytest.raises(cf.BadRequestError) as info:
        client.healthchecks.create(zone_id=zone, address="www.acme.example", name="www.acme.example")
    assert "alphanumeric" in str(info.value.body)
    made = client.healthchecks.create(zone_id=zone, address="www.acme.example", name="www-acme")
    assert made.name == "www-acme" and made.id


def test_errors_are_the_sdks_error_classes(sim, world, client):
    bad = cf.Cloudflare(api_token="wrong-token", base_url=f"{sim.base_url}/cloudflare/client/v4", max_retries=0)
    with pytest.raises(cf.PermissionDeniedError) as denied:
        list(bad.healthchecks.list(zone_id=world.customers["ACME"].zone_id))
    assert denied.value.body["errors"][0]["code"] == 10000
    with pytest.raises(cf.NotFoundError):
        list(client.healthchecks.list(zone_id="0" * 32))


def test_project_graphql_query_through_the_sdk(client, world):
    """The project's own query and windows, sent with the SDK's transport: every window within
    the dataset's maxDuration is answered, a wider one is refused with GraphQL's error envelope."""
    code = "KILO"
    week = report_week(world, code)
    checks = [c.to_dict() for c in client.healthchecks.list(zone_id=world.customers[code].zone_id)]
    declared = set(re.findall(r"\$(\w+)\s*:", project.AVAILABILITY_QUERY))
    used = set(re.findall(r"\$(\w+)", project.AVAILABILITY_QUERY))
    assert declared == used == {"zoneTag", "start", "end", "limit"}
    length = project.window_length(checks, dt.timedelta(hours=project.DEFAULT_MAX_WINDOW_HOURS))
    for start, end in project.windows(week.start, week.end, length):
        assert end - start <= dt.timedelta(days=1)
        body = client.post("/graphql", cast_to=object, body={"query": project.AVAILABILITY_QUERY, "variables": {
            "zoneTag": world.customers[code].zone_id, "start": project.iso_z(start), "end": project.iso_z(end),
            "limit": project.GROUP_LIMIT}})
        assert body["errors"] is None
        for group in body["data"]["viewer"]["zones"][0][project.DATASET]:
            assert isinstance(group["count"], int) and group["count"] > 0
            assert set(group["dimensions"]) == {"datetimeMinute", "healthStatus", "fqdn", "region"}
    wide = client.post("/graphql", cast_to=object, body={"query": project.AVAILABILITY_QUERY, "variables": {
        "zoneTag": world.customers[code].zone_id, "start": project.iso_z(week.start), "end": project.iso_z(week.end),
        "limit": 10}})
    assert wide["data"] is None and {"message", "path", "extensions"} <= set(wide["errors"][0])

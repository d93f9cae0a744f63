"""Cloudflare health checks: availability of a customer's public sites over the week.

The REST API (``/zones/{zone}/healthchecks``) knows the checks and their state *now*, nothing
about the past; history comes from the GraphQL Analytics dataset
``healthCheckEventsAdaptiveGroups``, filtered server-side to the zone and the week.

Assumptions, kept here because the reference marks them UNCONFIRMED:

- events are grouped by ``healthStatus``, ``fqdn`` and ``region`` (the dimensions real
  exporters query); an event belongs to the REST check whose ``address`` is that ``fqdn``.
  Two checks on the same host cannot be told apart: both get availability ``None``;
- ``healthStatus == "healthy"`` is up; any other value counts as down;
- a check emits one event per ``interval`` seconds from each region it runs in, so downtime is
  unhealthy events × interval, averaged over the regions that reported;
- the week fits in one query (Cloudflare documents a maximum window per plan for adaptive
  datasets; split the query by day here if a plan refuses a week).

GraphQL reports no timestamps in these groups, so ``as_of`` is ``None``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient
from msp_reports.http.paging import numbered_pages
from msp_reports.http.timestamps import iso_z
from msp_reports.snapshot import SiteCheck, SiteData
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "cloudflare"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
DATASET = "healthCheckEventsAdaptiveGroups"
GROUP_LIMIT = 10_000
DEFAULT_INTERVAL_SECONDS = 60
HEALTHY = "healthy"

AVAILABILITY_QUERY = """
query HealthCheckAvailability($zoneTag: string!, $start: Time!, $end: Time!, $limit: Int!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      healthCheckEventsAdaptiveGroups(limit: $limit, filter: {datetime_geq: $start, datetime_lt: $end}) {
        count
        dimensions { healthStatus fqdn region }
      }
    }
  }
}
"""


class CloudflareHook(SourceHook):
    """Cloudflare API v4 with an API token (needs Health Checks Read and Analytics Read).

    Connection: ``host`` = API root (default ``https://api.cloudflare.com/client/v4``),
    ``password`` = API token.

    :param conn_id: the Airflow connection id (default ``cloudflare_default``).
    :param page_size: ``per_page`` for REST lists; ``None`` leaves the API default (25).
    :param policy: retry policy for every request.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "cloudflare_default"
    conn_type = "cloudflare"
    hook_name = "Cloudflare health checks"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        if not conn.password:
            raise SourceAuthError(self.system, f"connection '{self.conn_id}' needs the API token as password")
        base = self.base_url(conn) if conn.host else DEFAULT_BASE_URL
        return ApiClient(
            self.system,
            base,
            headers={"Authorization": f"Bearer {conn.password}", "Accept": "application/json"},
            timeout=float(extra.get("timeout") or 30.0),
            policy=self.policy,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; a rejected token or unknown zone becomes an error that says what to fix."""
        try:
            return self.client.json(method, path, **kwargs)
        except SourceAuthError as exc:
            codes = ", ".join(re.findall(r'"code"\s*:\s*(\d+)', str(exc))) or "none"
            raise SourceAuthError(
                self.system,
                f"Cloudflare rejected the API token of connection '{self.conn_id}' (HTTP {exc.status}, "
                f"error code {codes}); it needs Zone > Health Checks Read and Analytics Read",
                status=exc.status,
            ) from exc
        except SourceResponseError as exc:
            if exc.status == 404 and "/zones/" in path:
                raise SourceResponseError(
                    self.system, f"{path.split('/healthchecks')[0]} not found: check ref.zone_id", status=404
                ) from exc
            raise

    def probe(self) -> str:
        """Cloudflare's own check of an API token (``GET /user/tokens/verify``)."""
        result = envelope_result(self.call("GET", "/user/tokens/verify"))
        status = result.get("status") if isinstance(result, dict) else None
        if status != "active":
            raise SourceAuthError(self.system, f"the API token of connection '{self.conn_id}' is {status!r}, "
                                               "not active: create a new one and update the connection")
        return f"Cloudflare verified the API token of connection '{self.conn_id}': active"

    def health_checks(self, zone_id: str) -> list[dict[str, Any]]:
        path = f"/zones/{quote(zone_id, safe='')}/healthchecks"

        def fetch(page: int) -> tuple[list[Any], int]:
            params: dict[str, Any] = {"page": page}
            if self.page_size:
                params["per_page"] = self.page_size
            return read_page(self.call("GET", path, params=params))

        return numbered_pages(self.system, fetch)

    def event_groups(self, zone_id: str, week: ReportWeek) -> list[dict[str, Any]]:
        variables = {"zoneTag": zone_id, "start": iso_z(week.start), "end": iso_z(week.end), "limit": GROUP_LIMIT}
        body = self.call("POST", "/graphql", json={"query": AVAILABILITY_QUERY, "variables": variables})
        rows = graphql_rows(body, DATASET)
        if len(rows) >= GROUP_LIMIT:
            raise SourceResponseError(self.system, f"{DATASET} hit the {GROUP_LIMIT}-group limit; result is cut")
        return rows


HOOK = CloudflareHook


# --- wire -> model (pure) ------------------------------------------------------------------
def envelope_result(body: Any) -> Any:
    """``result`` of a REST envelope; ``success: false`` (even with HTTP 200) is an error."""
    if not isinstance(body, dict) or "success" not in body:
        raise SourceResponseError(SYSTEM, "response is not a Cloudflare API envelope")
    if body["success"] is not True:
        errors = "; ".join(
            f"{e.get('code')}: {e.get('message')}" for e in body.get("errors") or [] if isinstance(e, dict)
        )
        raise SourceResponseError(SYSTEM, f"API error: {errors or 'success is false, no error given'}")
    return body.get("result")


def read_page(body: Any) -> tuple[list[Any], int]:
    """Items and page count from ``result_info`` (``total_pages``, else from ``total_count``)."""
    result = envelope_result(body)
    if not isinstance(result, list):
        raise SourceResponseError(SYSTEM, "expected a list in 'result'")
    info = body.get("result_info") or {}
    if "total_pages" in info:
        return result, int(info["total_pages"])
    if "total_count" in info and info.get("per_page"):
        return result, -(-int(info["total_count"]) // int(info["per_page"]))
    return result, 1


def graphql_rows(body: Any, dataset: str) -> list[dict[str, Any]]:
    """The dataset's groups for the first zone; GraphQL errors arrive with HTTP 200."""
    if not isinstance(body, dict):
        raise SourceResponseError(SYSTEM, "GraphQL answer is not a JSON object")
    errors = body.get("errors") or []
    if errors:
        messages = "; ".join(str(e.get("message")) if isinstance(e, dict) else str(e) for e in errors)
        if re.search(r"not authori[sz]ed|authentication", messages, re.IGNORECASE):
            raise SourceAuthError(SYSTEM, f"GraphQL refused the token (needs Analytics Read): {messages}")
        raise SourceResponseError(SYSTEM, f"GraphQL error: {messages}")
    try:
        zones = body["data"]["viewer"]["zones"]
    except (KeyError, TypeError) as exc:
        raise SourceResponseError(SYSTEM, "GraphQL answer has no data.viewer.zones") from exc
    if not zones:
        raise SourceResponseError(SYSTEM, "GraphQL returned no zone: check ref.zone_id and the token's zones")
    rows = zones[0].get(dataset)
    if not isinstance(rows, list):
        raise SourceResponseError(SYSTEM, f"GraphQL answer has no {dataset} list")
    return rows


def check_host(check: dict[str, Any]) -> str:
    """The host a check probes, as GraphQL's ``fqdn`` names it (``address`` is host or IP)."""
    address = str(check.get("address") or "")
    host = urlsplit(address if "//" in address else f"//{address}").hostname
    return (host or address).lower()


def check_address(check: dict[str, Any]) -> str:
    """A readable target: ``https://host/path`` for HTTP(S) checks, ``host:port`` for TCP."""
    kind = str(check.get("type") or "").upper()
    address = str(check.get("address") or "")
    if kind in ("HTTP", "HTTPS"):
        path = (check.get("http_config") or {}).get("path") or "/"
        return f"{kind.lower()}://{address}{path}"
    port = (check.get("tcp_config") or {}).get("port")
    return f"{address}:{port}" if port else address


def parse_site_checks(checks: list[dict[str, Any]], groups: list[dict[str, Any]]) -> SiteData:
    """Availability and downtime per REST check from the GraphQL event groups."""
    healthy: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    down_by_region: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    regions: dict[str, set[str]] = defaultdict(set)
    for group in groups:
        dims = group.get("dimensions") or {}
        fqdn = str(dims.get("fqdn") or "").lower()
        region = str(dims.get("region") or "")
        if "count" not in group:
            raise SourceResponseError(SYSTEM, f"{DATASET} group without a count")
        count = figures.count(SYSTEM, f"{DATASET} group {fqdn or '(no fqdn)'} count", group["count"])
        total[fqdn] += count
        regions[fqdn].add(region)
        if str(dims.get("healthStatus") or "").lower() == HEALTHY:
            healthy[fqdn] += count
        else:
            down_by_region[fqdn][region] += count

    hosts = [check_host(c) for c in checks]
    result = []
    for check, host in zip(checks, hosts):
        interval = figures.non_negative(SYSTEM, f"health check {check.get('name')!r} interval",
                                        check.get("interval") or DEFAULT_INTERVAL_SECONDS)
        attributable = hosts.count(host) == 1 and total[host] > 0
        unhealthy = sum(down_by_region[host].values()) / max(1, len(regions[host]))
        result.append(SiteCheck(
            name=str(check.get("name") or host),
            address=check_address(check),
            availability_pct=round(healthy[host] / total[host] * 100, 3) if attributable else None,
            downtime_minutes=round(unhealthy * interval / 60, 2) if attributable else 0.0,
            status_now="suspended" if check.get("suspended") else str(check.get("status") or "unknown"),
            source=SYSTEM,
        ))
    return SiteData(checks=sorted(result, key=lambda c: c.name))


# --- extract ------------------------------------------------------------------------------
def extract(hook: CloudflareHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """The zone's health checks and their availability over ``[week.start, week.end)``."""
    zone_id = ref.get("zone_id", "").strip()
    if not zone_id:
        raise SourceError(SYSTEM, "ref.zone_id is empty")
    checks = hook.health_checks(zone_id)
    if not checks:  # a customer on this source has sites to watch: none means a setup or source fault
        raise SourceResponseError(SYSTEM, f"zone {zone_id} has no health checks; add the customer's site "
                                          "checks in Cloudflare or fix ref.zone_id in the registry")
    groups = hook.event_groups(zone_id, week)
    return Extracted(parse_site_checks(checks, groups), as_of=None)

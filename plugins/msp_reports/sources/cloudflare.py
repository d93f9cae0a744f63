"""Cloudflare health checks: availability of a customer's public sites over the week.

The REST API (``/zones/{zone}/healthchecks``) knows the checks and their state *now*, nothing
about the past; history comes from the GraphQL Analytics dataset
``healthCheckEventsAdaptiveGroups``, filtered server-side to the zone and the week.

How downtime is derived. Cloudflare runs a health check from three data centres in each region
selected, so each ``interval`` brings up to three events per region, not one; and one data
centre can fail on its own (its network, not the site). Counting unhealthy events (the old rule
here) made downtime up to three times too long and counted a single data centre's blip as
downtime. Cloudflare documents, for load-balancing monitors, that a region is healthy when the
majority of its data centres pass and an origin is healthy when the majority of regions is; the
same rule is applied per interval here:

- events are grouped by ``datetimeMinute``, ``healthStatus``, ``fqdn`` and ``region``; each
  minute is put in its interval bucket (``interval`` seconds, from the REST check);
- in a bucket, a region is up when more than half of its data centres' events are healthy;
  the check is down when more than half of the regions reporting in that bucket are down;
- ``downtime_minutes`` = down buckets x interval; ``availability_pct`` = up buckets / buckets
  reported. An event belongs to the REST check whose ``address`` is that ``fqdn``; two checks on
  the same host cannot be told apart and get availability ``None``.

Windows. The dataset enforces ``maxDuration`` (widest window per query) and ``notOlderThan``
(how far back) per plan. The week is queried in consecutive windows of at most
``max_window_hours`` (connection extra, default 24), shortened further so that a window's
groups (one per minute, status, host and region) stay under the 10,000-group limit; a window the
API still refuses is an error, never a figure.

UNCONFIRMED: the majority rule for standalone health checks (documented for load-balancing
monitors); the ``datetimeMinute`` dimension on this dataset; the plan's ``maxDuration`` and
``notOlderThan`` for it; any ``healthStatus`` other than ``healthy`` counts as unhealthy.

GraphQL reports no timestamps in these groups, so ``as_of`` is ``None``.
"""

from __future__ import annotations

import datetime as dt
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
DEFAULT_MAX_WINDOW_HOURS = 24.0
STATUSES_PER_MINUTE = 2  # a minute's groups per host and region: healthy and unhealthy
PER_PAGE_STEP = 5  # Cloudflare: per_page must be a multiple of 5
HEALTHY = "healthy"

AVAILABILITY_QUERY = """
query HealthCheckAvailability($zoneTag: string!, $start: Time!, $end: Time!, $limit: Int!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      healthCheckEventsAdaptiveGroups(limit: $limit, filter: {datetime_geq: $start, datetime_lt: $end}) {
        count
        dimensions { datetimeMinute healthStatus fqdn region }
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
                params["per_page"] = per_page(self.page_size)
            return read_page(self.call("GET", path, params=params))

        return numbered_pages(self.system, fetch)

    def event_groups(self, zone_id: str, week: ReportWeek, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The week's event groups, queried window by window (see the module docstring)."""
        hours = float(self.connection.extra_dejson.get("max_window_hours") or DEFAULT_MAX_WINDOW_HOURS)
        rows: list[dict[str, Any]] = []
        for start, end in windows(week.start, week.end, window_length(checks, dt.timedelta(hours=hours))):
            variables = {"zoneTag": zone_id, "start": iso_z(start), "end": iso_z(end), "limit": GROUP_LIMIT}
            body = self.call("POST", "/graphql", json={"query": AVAILABILITY_QUERY, "variables": variables})
            chunk = graphql_rows(body, DATASET)
            if len(chunk) >= GROUP_LIMIT:
                raise SourceResponseError(self.system, f"{DATASET} hit the {GROUP_LIMIT}-group limit for "
                                                       f"{iso_z(start)}..{iso_z(end)}; result is cut")
            rows.extend(chunk)
        return rows


HOOK = CloudflareHook


# --- wire -> model (pure) ------------------------------------------------------------------
def per_page(size: int) -> int:
    """``size`` rounded up to the multiple of 5 that Cloudflare requires (5 at least)."""
    return max(PER_PAGE_STEP, -(-int(size) // PER_PAGE_STEP) * PER_PAGE_STEP)


def window_length(checks: list[dict[str, Any]], max_window: dt.timedelta) -> dt.timedelta:
    """At most ``max_window``, and short enough that one window's groups fit under the limit."""
    per_minute = sum(len(c.get("check_regions") or [None]) for c in checks) * STATUSES_PER_MINUTE
    fits = dt.timedelta(minutes=GROUP_LIMIT // max(1, per_minute) - 1)
    return max(dt.timedelta(minutes=1), min(max_window, fits))


def windows(start: dt.datetime, end: dt.datetime, length: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[start, end)`` as consecutive half-open windows of at most ``length``."""
    out = []
    while start < end:
        out.append((start, min(end, start + length)))
        start = out[-1][1]
    return out


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


def _check_intervals(checks: list[dict[str, Any]]) -> list[int]:
    return [int(figures.non_negative(SYSTEM, f"health check {c.get('name')!r} interval",
                                     c.get("interval") or DEFAULT_INTERVAL_SECONDS)) or DEFAULT_INTERVAL_SECONDS
            for c in checks]


def _minute(group: dict[str, Any]) -> int:
    """The group's ``datetimeMinute`` as Unix seconds."""
    value = (group.get("dimensions") or {}).get("datetimeMinute")
    try:
        return int(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise SourceResponseError(SYSTEM, f"{DATASET} group without a usable datetimeMinute: {value!r}") from None


def _events(groups: list[dict[str, Any]]) -> dict[str, dict[tuple[int, str], list[int]]]:
    """host -> (minute, region) -> [healthy events, unhealthy events]."""
    events: dict[str, dict[tuple[int, str], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    counted = []
    for group in groups:
        dims = group.get("dimensions") or {}
        fqdn = str(dims.get("fqdn") or "").lower()
        if "count" not in group:
            raise SourceResponseError(SYSTEM, f"{DATASET} group without a count")
        counted.append((group, fqdn, figures.count(SYSTEM, f"{DATASET} group {fqdn or '(no fqdn)'} count",
                                                   group["count"])))
    for group, fqdn, count in counted:
        dims = group.get("dimensions") or {}
        healthy = str(dims.get("healthStatus") or "").lower() == HEALTHY
        events[fqdn][(_minute(group), str(dims.get("region") or ""))][0 if healthy else 1] += count
    return events


def down_buckets(cells: dict[tuple[int, str], list[int]], interval: int) -> tuple[int, int]:
    """(buckets reported, buckets down) under the majority rule of the module docstring."""
    regions: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for (minute, region), (healthy, unhealthy) in cells.items():
        tally = regions[minute // interval][region]
        tally[0] += healthy
        tally[1] += unhealthy
    down = 0
    for by_region in regions.values():
        regions_down = sum(1 for healthy, unhealthy in by_region.values() if 2 * healthy <= healthy + unhealthy)
        down += 2 * regions_down > len(by_region)
    return len(regions), down


def parse_site_checks(checks: list[dict[str, Any]], groups: list[dict[str, Any]]) -> SiteData:
    """Availability and downtime per REST check from the GraphQL event groups (majority rule)."""
    intervals = _check_intervals(checks)
    events = _events(groups)
    hosts = [check_host(c) for c in checks]
    result = []
    for check, host, interval in zip(checks, hosts, intervals):
        reported, down = down_buckets(events.get(host, {}), interval)
        attributable = hosts.count(host) == 1 and reported > 0
        result.append(SiteCheck(
            name=str(check.get("name") or host),
            address=check_address(check),
            availability_pct=round((reported - down) / reported * 100, 3) if attributable else None,
            downtime_minutes=round(down * interval / 60, 2) if attributable else 0.0,
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
    groups = hook.event_groups(zone_id, week, checks)
    return Extracted(parse_site_checks(checks, groups), as_of=None)

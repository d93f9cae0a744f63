"""Microsoft Sentinel through Azure Resource Manager: the incidents of one customer's workspace.

The MSP reaches customers' workspaces through Azure Lighthouse: its own app registration, in
its own (managing) tenant, holds "Microsoft Sentinel Reader" on each delegated workspace. So
the hook asks Azure AD for one ARM token (scope ``https://management.azure.com/.default``) in
the tenant named by the connection's extra ``tenant_id``; a customer reached without
Lighthouse can name its own tenant in ``ref.tenant_id``. Tokens are cached and a refused cached
token is renewed once (:mod:`msp_reports.http.msidentity`, shared with Defender).

What the week contains, evaluated at ``week.end`` (the same rule as Defender's,
:func:`msp_reports.sources.defender.status_at_week_end`):

- **incidents**: created in ``[week.start, week.end)``, plus older ones still open at week end.
  Three server-side ``$filter`` queries on ``properties/createdTimeUtc``, ``properties/status``
  and ``properties/lastModifiedTimeUtc``, merged by incident: created in the week; created
  before it and not Closed now; created before it and modified after week end (closed since,
  possibly open at week end).
- **open or closed at week end**: the incident resource has no closing time. An incident counts
  as closed only if its status is ``Closed`` and ``lastModifiedTimeUtc`` is at or before week
  end; ``New`` and ``Active`` are open. One closed in the week but edited after it (a comment,
  a label) shows as open: that errs towards reporting an incident, never towards hiding one.
- **Secure Score**: Sentinel has none. Both percentages stay ``None`` ("not provided by this
  source"), never 0.

Paging: ``$top`` per page and ``nextLink`` (carrying ``$skipToken``) followed verbatim, but only
on the connection's own host, since the bearer token goes with it (the shared client's rule for
every source). The largest ``$top`` ARM accepts here is UNCONFIRMED; :data:`DEFAULT_TOP` stays
well under any documented limit.

Connection: ``login`` = client id, ``password`` = client secret, ``host`` = ARM root (default
``https://management.azure.com``); extra ``tenant_id`` (the MSP's managing tenant),
``login_url`` (default ``https://login.microsoftonline.com``), ``api_version`` (default
:data:`API_VERSION`), ``page_size``, ``timeout``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http import msidentity
from msp_reports.http.client import ApiClient
from msp_reports.http.oauth import ClientCredentialsTokens, with_token
from msp_reports.http.paging import next_link_pages, odata_page
from msp_reports.http.timestamps import iso_z, parse_instant
from msp_reports.snapshot import Incident, SecurityData
from msp_reports.sources import Extracted
from msp_reports.sources.base import SourceHook
from msp_reports.sources.defender import severity_of, status_at_week_end

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "sentinel"
DEFAULT_ARM_URL = "https://management.azure.com"
API_VERSION = "2024-03-01"
DEFAULT_TOP = 50
CREATED = "properties/createdTimeUtc"
MODIFIED = "properties/lastModifiedTimeUtc"
STATUS = "properties/status"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Workspace:
    """The customer's Log Analytics workspace with Sentinel, from the registry ``ref``."""

    subscription_id: str
    resource_group: str
    workspace: str

    @classmethod
    def from_ref(cls, ref: Mapping[str, str]) -> Workspace:
        values = {name: str(ref.get(name) or "").strip() for name in ("subscription_id", "resource_group", "workspace")}
        for name, value in values.items():
            if not value:
                what = name.replace("_", " ")
                raise SourceError(SYSTEM, f"ref.{name} is empty: set it to the customer's Sentinel {what}")
        if not _GUID.match(values["subscription_id"]):
            raise SourceError(SYSTEM, f"ref.subscription_id {values['subscription_id']!r} is not a subscription id "
                                      "(a GUID): copy it from the workspace's overview in the Azure portal")
        return cls(**values)

    @property
    def incidents_path(self) -> str:
        return (f"/subscriptions/{quote(self.subscription_id, safe='')}"
                f"/resourceGroups/{quote(self.resource_group, safe='')}"
                f"/providers/Microsoft.OperationalInsights/workspaces/{quote(self.workspace, safe='')}"
                "/providers/Microsoft.SecurityInsights/incidents")

    def __str__(self) -> str:
        return f"{self.subscription_id}/{self.resource_group}/{self.workspace}"


class SentinelHook(SourceHook):
    """Sentinel incidents through Azure Resource Manager, as the MSP's app.

    :param conn_id: the Airflow connection id (default ``sentinel_default``); see the module
        docstring for its fields.
    :param page_size: ``$top`` to request; overrides extra ``page_size``.
    :param policy: retry policy for every request, token requests included.
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "sentinel_default"
    conn_type = "sentinel"
    hook_name = "Microsoft Sentinel"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        msidentity.app_credentials(SYSTEM, self.conn_id, conn)
        base = self.base_url(conn) if conn.host else DEFAULT_ARM_URL
        return ApiClient(SYSTEM, base, headers={"Accept": "application/json"},
                         timeout=float(extra.get("timeout") or 30.0), policy=self.policy)

    @cached_property
    def tokens(self) -> ClientCredentialsTokens:
        return msidentity.tenant_tokens(
            SYSTEM, self.conn_id, self.connection, scope=msidentity.ARM_SCOPE,
            tenant_from=f"extra tenant_id of connection '{self.conn_id}' (or ref.tenant_id)",
            policy=self.policy, clock=self.clock,
        )

    @property
    def api_version(self) -> str:
        return str(self.connection.extra_dejson.get("api_version") or API_VERSION)

    @property
    def top(self) -> int:
        return max(1, int(self.page_size or self.connection.extra_dejson.get("page_size") or DEFAULT_TOP))

    def tenant_for(self, ref: Mapping[str, str]) -> str:
        tenant = str(ref.get("tenant_id") or self.connection.extra_dejson.get("tenant_id") or "").strip()
        if not tenant:
            raise SourceAuthError(SYSTEM, f"connection '{self.conn_id}' needs extra tenant_id (the MSP's Azure "
                                          "Lighthouse managing tenant), or the customer needs ref.tenant_id")
        return tenant

    def probe(self) -> str:
        """A token in the managing tenant: proves the client id and secret (each workspace's access
        is checked when its customer's report runs)."""
        tenant = self.tenant_for({})
        self.tokens.token(tenant)
        return f"Azure AD issued an ARM token to the app of connection '{self.conn_id}' in tenant {tenant}"

    def get(self, tenant_id: str, workspace: Workspace, path_or_url: str,
            params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET with an ARM token of ``tenant_id``; a refused cached token is renewed once."""
        query = urlencode(params, quote_via=quote) if params else None  # %20, not '+', in $filter

        def call(token: str) -> dict[str, Any]:
            try:
                body = self.client.json("GET", path_or_url, params=query,
                                        headers={"Authorization": f"Bearer {token}"})
            except SourceResponseError as exc:
                if exc.status == 404:
                    raise SourceResponseError(
                        SYSTEM, f"workspace {workspace} was not found ({arm_error_code(exc)}): check "
                                "ref.subscription_id, ref.resource_group and ref.workspace in the customer registry",
                        status=404,
                    ) from exc
                raise
            if not isinstance(body, dict):
                raise SourceResponseError(SYSTEM, "ARM answered with something other than a JSON object")
            return body

        return with_token(self.tokens, tenant_id, call, lambda exc: self._arm_refused(tenant_id, workspace, exc))

    def _arm_refused(self, tenant_id: str, workspace: Workspace, exc: SourceAuthError) -> SourceAuthError:
        code = arm_error_code(exc)
        if exc.status == 403:
            what = (f"the MSP app may not read incidents of workspace {workspace}: grant it 'Microsoft Sentinel "
                    f"Reader' on the workspace (Azure Lighthouse delegation to tenant {tenant_id})")
        else:
            what = (f"ARM rejected a newly issued token of tenant {tenant_id}: check extra tenant_id of connection "
                    f"'{self.conn_id}' (the tenant that manages the subscription) and extra login_url")
        return SourceAuthError(SYSTEM, f"HTTP {exc.status} {code}: {what}", status=exc.status)

    def collection(self, tenant_id: str, workspace: Workspace, filter_: str) -> list[dict[str, Any]]:
        """All incidents matching ``filter_``, following ``nextLink`` (the shared client refuses one on
        another host than the connection's)."""
        params = {"api-version": self.api_version, "$filter": filter_, "$orderby": f"{CREATED} desc",
                  "$top": self.top}

        def fetch(link: str | None) -> tuple[list[Any], str | None]:
            body = self.get(tenant_id, workspace, link or workspace.incidents_path, None if link else params)
            return odata_page(SYSTEM, body, "nextLink")

        return next_link_pages(SYSTEM, fetch)

    def incidents(self, tenant_id: str, workspace: Workspace, week: ReportWeek) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for filter_ in incident_filters(week):
            for record in self.collection(tenant_id, workspace, filter_):
                seen.setdefault(str(record.get("name") or record.get("id")), record)
        return list(seen.values())


HOOK = SentinelHook


def arm_error_code(exc: SourceError) -> str:
    """The ``code`` of ARM's ``{"error": {"code": ...}}`` inside an error message, if any."""
    match = re.search(r'"code"\s*:\s*"([A-Za-z]+)"', str(exc))
    return match.group(1) if match else "no error code"


# --- OData filters -------------------------------------------------------------------------
def incident_filters(week: ReportWeek) -> list[str]:
    """The three incident queries (see the module docstring)."""
    start, end = iso_z(week.start), iso_z(week.end)
    return [
        f"{CREATED} ge {start} and {CREATED} lt {end}",
        f"{CREATED} lt {start} and {STATUS} ne 'Closed'",
        f"{CREATED} lt {start} and {MODIFIED} gt {end}",
    ]


# --- wire -> model (pure) ------------------------------------------------------------------
def _properties(record: Mapping[str, Any]) -> Mapping[str, Any]:
    props = record.get("properties")
    if not isinstance(props, Mapping):
        raise SourceResponseError(SYSTEM, f"incident {record.get('name')!r} has no properties")
    return props


def parse_incident(record: Mapping[str, Any], week: ReportWeek) -> Incident | None:
    """The incident as it stood at week end, or ``None`` if it does not belong in the week."""
    props = _properties(record)
    try:
        created = parse_instant(props["createdTimeUtc"])
        modified = parse_instant(props["lastModifiedTimeUtc"]) if props.get("lastModifiedTimeUtc") else None
    except (KeyError, TypeError, ValueError):
        raise SourceResponseError(SYSTEM, f"incident {record.get('name')!r} has no valid createdTimeUtc") from None
    closed = str(props.get("status") or "").strip().lower() == "closed" and modified is not None \
        and modified <= week.end
    place = status_at_week_end(created, closed, week)
    if place is None:
        return None
    number = props.get("incidentNumber")
    return Incident(
        ref=f"#{number}" if number not in (None, "") else str(record.get("name")),
        title=str(props.get("title") or "(untitled incident)"),
        severity=severity_of(props.get("severity")),
        status=place,
        created_at=created,
        source=SYSTEM,
    )


def parse_incidents(records: Iterable[Mapping[str, Any]], week: ReportWeek) -> list[Incident]:
    incidents: dict[str, Incident] = {}
    for record in records:
        incident = parse_incident(record, week)
        if incident is not None:
            incidents[incident.ref] = incident
    return sorted(incidents.values(), key=lambda i: (i.created_at, i.ref))


def parse_security(records: Iterable[Mapping[str, Any]], week: ReportWeek) -> SecurityData:
    """Sentinel's part of the security section: incidents only; it has no Secure Score."""
    return SecurityData(incidents=parse_incidents(records, week), secure_score_pct=None, secure_score_prev_pct=None)


def newest_change(records: Iterable[Mapping[str, Any]], before: dt.datetime) -> dt.datetime | None:
    """The newest created/modified time at or before ``before``: the data's as-of."""
    stamps = [parse_instant(props[name]) for props in map(_properties, records)
              for name in ("createdTimeUtc", "lastModifiedTimeUtc") if props.get(name)]
    return max((s for s in stamps if s <= before), default=None)


# --- extract ------------------------------------------------------------------------------
def extract(hook: SentinelHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """Incidents of the customer's workspace for the week, as of week end."""
    workspace = Workspace.from_ref(ref)
    records = hook.incidents(hook.tenant_for(ref), workspace, week)
    return Extracted(parse_security(records, week), as_of=newest_change(records, week.end))

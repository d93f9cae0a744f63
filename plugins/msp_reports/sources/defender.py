"""Microsoft Defender through Graph security: incidents and Secure Score of one customer tenant.

The MSP has one multi-tenant app registration, consented in each customer's tenant; Graph
only serves a tenant's data to a token issued *by that tenant*, so the hook asks Azure AD for
one app-only token per tenant (client credentials, :mod:`msp_reports.http.msidentity`) and
keeps it until shortly before it expires. A cached token that Graph rejects with 401 (revoked,
clock skew) is replaced once.

What the week contains, evaluated at ``week.end``:

- **incidents**: created in ``[week.start, week.end)``, plus older ones still open at week end.
  Three server-side filtered queries, merged by id: created in the week; created before it and
  not resolved now; created before it and updated after week end (resolved since, possibly
  open at week end). Redirected incidents are dropped: they were merged into another one.
- **open or resolved at week end**: Graph incidents have no ``resolvedDateTime``. An incident
  counts as resolved only if its status is ``resolved`` and ``lastUpdateDateTime`` is at or
  before week end. Limitation: one resolved in the week but edited after it (a comment, a
  tag) shows as open; that errs towards reporting an incident, never towards hiding one.
- **Secure Score**: one snapshot a day. The week's score is the newest snapshot at or before
  week end, the previous one the newest at or before week start, each at most
  ``SCORE_LOOKBACK`` old; percentage = ``currentScore / maxScore * 100``.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlencode

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http import msidentity
from msp_reports.http.client import ApiClient
from msp_reports.http.oauth import ClientCredentialsTokens, with_token
from msp_reports.http.paging import next_link_pages, odata_page
from msp_reports.http.timestamps import iso_z, parse_instant
from msp_reports.snapshot import Incident, SecurityData, Severity
from msp_reports.sources import Extracted, figures
from msp_reports.sources.base import SourceHook

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from msp_reports.week import ReportWeek

SYSTEM = "defender"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
SCORE_LOOKBACK = dt.timedelta(days=3)
SEVERITIES: frozenset[str] = frozenset({"high", "medium", "low", "informational", "unknown"})

class DefenderHook(SourceHook):
    """Graph security API for customer tenants, with the MSP's multi-tenant app.

    Connection: ``login`` = client id, ``password`` = client secret, ``host`` = Graph root
    (default ``https://graph.microsoft.com/v1.0``); extra ``login_url`` = Azure AD authority
    (default ``https://login.microsoftonline.com``).

    :param conn_id: the Airflow connection id (default ``defender_default``).
    :param page_size: ``$top`` to request; ``None`` leaves Graph's default page size.
    :param policy: retry policy for every request, token requests included.
    :param clock: monotonic clock for token expiry (tests replace it).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "defender_default"
    conn_type = "defender"
    hook_name = "Microsoft Defender (Graph security)"
    system = SYSTEM

    def build_client(self, conn: Connection, extra: dict[str, Any]) -> ApiClient:
        msidentity.app_credentials(self.system, self.conn_id, conn)
        base = self.base_url(conn) if conn.host else DEFAULT_GRAPH_URL
        return ApiClient(self.system, base, headers={"Accept": "application/json"},
                         timeout=float(extra.get("timeout") or 30.0), policy=self.policy)

    @cached_property
    def tokens(self) -> ClientCredentialsTokens:
        return msidentity.tenant_tokens(
            self.system, self.conn_id, self.connection,
            scope=self.connection.extra_dejson.get("scope") or msidentity.GRAPH_SCOPE,
            tenant_from="ref.tenant_id in the customer registry",
            policy=self.policy, clock=self.clock,
        )

    def token(self, tenant_id: str) -> tuple[str, bool]:
        """An access token for ``tenant_id`` and whether it was just issued (not from cache)."""
        return self.tokens.token(tenant_id)

    def forget_token(self, tenant_id: str) -> None:
        self.tokens.forget(tenant_id)

    def probe(self) -> str:
        """A token in the MSP's own tenant: proves the client id and secret (each customer tenant's
        consent and permissions are checked when its report runs)."""
        tenant = str(self.connection.extra_dejson.get("tenant_id") or "").strip()
        if not tenant:
            raise SourceAuthError(self.system, f"connection '{self.conn_id}' needs extra tenant_id (the MSP "
                                               "tenant, the app's home) to be tested")
        self.token(tenant)
        return f"Azure AD issued a Graph token to the app of connection '{self.conn_id}' in tenant {tenant}"

    # --- Graph requests
    def get(self, tenant_id: str, path_or_url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET as the MSP app in ``tenant_id``; a rejected cached token is renewed once."""
        query = urlencode(params, quote_via=quote) if params else None  # %20, not '+', in $filter
        return with_token(self.tokens, tenant_id, lambda token: self._get_with(token, path_or_url, query),
                          lambda exc: self._graph_auth_error(tenant_id, exc))

    def _get_with(self, token: str, path_or_url: str, query: str | None) -> dict[str, Any]:
        body = self.client.json("GET", path_or_url, params=query, headers={"Authorization": f"Bearer {token}"})
        if not isinstance(body, dict):
            raise SourceResponseError(self.system, "Graph answered with something other than a JSON object")
        return body

    def _graph_auth_error(self, tenant_id: str, exc: SourceAuthError) -> SourceAuthError:
        if exc.status == 403:
            what = ("the MSP app lacks permission in this tenant: grant SecurityIncident.Read.All and "
                    "SecurityEvents.Read.All (application) and re-consent")
        else:
            what = "Graph rejected a newly issued token; check that the app is consented in this tenant"
        return SourceAuthError(self.system, f"tenant {tenant_id} (HTTP {exc.status}): {what}", status=exc.status)

    def collection(self, tenant_id: str, path: str, filter_: str) -> list[dict[str, Any]]:
        """All items of a Graph collection, following ``@odata.nextLink`` verbatim (the shared client
        refuses one on another host than the connection's, before the token is sent)."""
        params: dict[str, Any] = {"$filter": filter_}
        if self.page_size:
            params["$top"] = self.page_size

        def fetch(link: str | None) -> tuple[list[Any], str | None]:
            body = self.get(tenant_id, link or path, None if link else params)
            return odata_page(self.system, body, "@odata.nextLink")

        return next_link_pages(self.system, fetch)

    def incidents(self, tenant_id: str, week: ReportWeek) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for filter_ in incident_filters(week):
            for record in self.collection(tenant_id, "/security/incidents", filter_):
                seen.setdefault(str(record.get("id")), record)
        return list(seen.values())

    def secure_scores(self, tenant_id: str, week: ReportWeek) -> list[dict[str, Any]]:
        return self.collection(tenant_id, "/security/secureScores", secure_score_filter(week))


HOOK = DefenderHook


# --- OData filters -------------------------------------------------------------------------
def incident_filters(week: ReportWeek) -> list[str]:
    """The three incident queries (see the module docstring); Graph takes ``Z`` instants bare."""
    start, end = iso_z(week.start), iso_z(week.end)
    return [
        f"createdDateTime ge {start} and createdDateTime lt {end}",
        f"createdDateTime lt {start} and status ne 'resolved'",
        f"createdDateTime lt {start} and lastUpdateDateTime gt {end}",
    ]


def secure_score_filter(week: ReportWeek) -> str:
    return f"createdDateTime ge {iso_z(week.start - SCORE_LOOKBACK)} and createdDateTime le {iso_z(week.end)}"


# --- wire -> model (pure) ------------------------------------------------------------------
def _enum(value: Any) -> str:
    """Graph writes enums in camelCase or PascalCase depending on the endpoint and doc."""
    return str(value or "").strip().lower()


def severity_of(value: Any) -> Severity:
    severity = _enum(value)
    return severity if severity in SEVERITIES else "unknown"  # type: ignore[return-value]


def status_at_week_end(
    created: dt.datetime, resolved_by_end: bool, week: ReportWeek
) -> Literal["open", "resolved"] | None:
    """Where an incident stands in the week, or ``None`` if it is not part of it.

    Part of the week: created in it, or created before it and still open at its end. Shared
    with Sentinel, so both security sources put the same incident in the same weeks.
    """
    if created >= week.end or (created < week.start and resolved_by_end):
        return None
    return "resolved" if resolved_by_end else "open"


def parse_incident(record: dict[str, Any], week: ReportWeek) -> Incident | None:
    """The incident as it stood at week end, or ``None`` if it does not belong in the week."""
    status = _enum(record.get("status"))
    if status == "redirected":
        return None
    try:
        created = parse_instant(record["createdDateTime"])
        updated = parse_instant(record["lastUpdateDateTime"]) if record.get("lastUpdateDateTime") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceResponseError(SYSTEM, f"incident {record.get('id')!r} has no valid createdDateTime") from exc
    resolved = status == "resolved" and updated is not None and updated <= week.end
    place = status_at_week_end(created, resolved, week)
    if place is None:
        return None
    return Incident(
        ref=str(record.get("id")),
        title=str(record.get("displayName") or "(untitled incident)"),
        severity=severity_of(record.get("severity")),
        status=place,
        created_at=created,
        source=SYSTEM,
    )


def parse_incidents(records: list[dict[str, Any]], week: ReportWeek) -> list[Incident]:
    incidents = {}
    for record in records:
        incident = parse_incident(record, week)
        if incident is not None:
            incidents[incident.ref] = incident
    return sorted(incidents.values(), key=lambda i: (i.created_at, i.ref))


def score_pct(record: dict[str, Any]) -> float | None:
    """``currentScore / maxScore`` in %; ``None`` if the snapshot gives no score or no maximum."""
    if record.get("currentScore") is None or record.get("maxScore") is None:
        return None
    what = f"secure score of {record.get('createdDateTime') or 'a snapshot'}"
    current = figures.non_negative(SYSTEM, f"{what}: currentScore", record["currentScore"])
    maximum = figures.non_negative(SYSTEM, f"{what}: maxScore", record["maxScore"])
    if maximum == 0:
        return None
    return round(figures.percentage(SYSTEM, f"{what} (currentScore {current:g} of maxScore {maximum:g}) in %",
                                    current / maximum * 100), 2)


def score_at(records: list[dict[str, Any]], instant: dt.datetime) -> float | None:
    """Secure Score % of the newest snapshot at or before ``instant`` (within the lookback)."""
    candidates = []
    for record in records:
        created = parse_instant(record["createdDateTime"])
        if instant - SCORE_LOOKBACK <= created <= instant:
            candidates.append((created, record))
    if not candidates:
        return None
    return score_pct(max(candidates, key=lambda c: c[0])[1])


def parse_security(
    incidents: list[dict[str, Any]], scores: list[dict[str, Any]], week: ReportWeek
) -> SecurityData:
    return SecurityData(
        incidents=parse_incidents(incidents, week),
        secure_score_pct=score_at(scores, week.end),
        secure_score_prev_pct=score_at(scores, week.start),
    )


def newest_timestamp(
    records: list[dict[str, Any]], fields: tuple[str, ...], before: dt.datetime
) -> dt.datetime | None:
    """The newest of ``fields`` over ``records`` at or before ``before``: the data's as-of."""
    times = [parse_instant(record[name]) for record in records for name in fields if record.get(name)]
    times = [t for t in times if t <= before]
    return max(times) if times else None


# --- extract ------------------------------------------------------------------------------
def extract(hook: DefenderHook, ref: dict[str, str], week: ReportWeek) -> Extracted:
    """Incidents and Secure Score of ``ref["tenant_id"]`` for the week, as of week end."""
    tenant_id = ref.get("tenant_id", "").strip()
    if not tenant_id:
        raise SourceError(SYSTEM, "ref.tenant_id is empty")
    incidents = hook.incidents(tenant_id, week)
    scores = hook.secure_scores(tenant_id, week)
    try:
        data = parse_security(incidents, scores, week)
        newest = [
            newest_timestamp(incidents, ("createdDateTime", "lastUpdateDateTime"), week.end),
            newest_timestamp(scores, ("createdDateTime",), week.end),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceResponseError(SYSTEM, f"unexpected record shape from Graph: {type(exc).__name__}") from exc
    return Extracted(data, as_of=max((t for t in newest if t is not None), default=None))

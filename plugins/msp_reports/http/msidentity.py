"""Microsoft identity platform: app-only tokens per tenant, for Graph (Defender) and ARM (Sentinel).

One app registration of the MSP signs in with client credentials at
``{login_url}/{tenant}/oauth2/v2.0/token``; the token's audience is chosen by ``scope``
(``.../.default`` of Graph or of Azure Resource Manager). Caching and the one renewal on 401
are :mod:`msp_reports.http.oauth`'s; this module adds the Microsoft endpoint and turns
Azure AD's ``AADSTS`` error codes into what the user should fix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from msp_reports.exceptions import SourceAuthError, SourceError
from msp_reports.http.client import ApiClient, RetryPolicy
from msp_reports.http.oauth import ClientCredentialsTokens

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_LOGIN_URL = "https://login.microsoftonline.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"

# Azure AD error codes a user can act on. ``{conn}``: the connection id; ``{tenant}``: the tenant
# id; ``{tenant_from}``: where that tenant id was configured.
AADSTS_HINTS = {
    "7000215": "the client secret is wrong: update the password of connection '{conn}'",
    "7000222": "the client secret has expired: create a new one and update connection '{conn}'",
    "700016": "the app (client id) is unknown in this tenant: check the login of connection '{conn}' "
              "and that the customer consented the MSP app",
    "90002": "tenant '{tenant}' does not exist: check {tenant_from}",
    "65001": "the MSP app is not consented in tenant '{tenant}': ask the tenant's admin to consent it",
}


def app_credentials(system: str, conn_id: str, conn: Connection) -> tuple[str, str]:
    """The app's client id and secret: the connection's login and password."""
    if not conn.login or not conn.password:
        raise SourceAuthError(system, f"connection '{conn_id}' needs login (client id) and password (client secret)")
    return conn.login, conn.password


def tenant_tokens(
    system: str,
    conn_id: str,
    conn: Connection,
    *,
    scope: str,
    tenant_from: str,
    policy: RetryPolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ClientCredentialsTokens:
    """Tokens for ``scope``, one per tenant, as the app in ``conn``.

    :param tenant_from: where the tenant id comes from, for the "tenant not found" message
        (e.g. ``"ref.tenant_id in the customer registry"``).
    """
    client_id, client_secret = app_credentials(system, conn_id, conn)
    login_url = conn.extra_dejson.get("login_url") or DEFAULT_LOGIN_URL
    login = ApiClient(system, login_url, headers={"Accept": "application/json"},
                      timeout=float(conn.extra_dejson.get("timeout") or 30.0), policy=policy)

    def token_request(tenant_id: str) -> tuple[str, dict[str, str]]:
        form = {"client_id": client_id, "client_secret": client_secret,
                "grant_type": "client_credentials", "scope": scope}
        return f"/{quote(tenant_id, safe='')}/oauth2/v2.0/token", form

    def refused(tenant_id: str, exc: SourceError) -> SourceAuthError:
        return aad_refusal(system, conn_id, tenant_id, exc, tenant_from)

    return ClientCredentialsTokens(system, login, token_request, refused, clock=clock)


def aad_refusal(system: str, conn_id: str, tenant_id: str, exc: SourceError, tenant_from: str) -> SourceAuthError:
    """Azure AD's refusal as what to fix, by its ``AADSTS`` code."""
    match = re.search(r"AADSTS(\d+)", str(exc))
    code = match.group(1) if match else ""
    hint = AADSTS_HINTS.get(code, "check the client id/secret of connection '{conn}' and the tenant id")
    label = f"HTTP {exc.status}" + (f", AADSTS{code}" if code else "")
    return SourceAuthError(
        system,
        f"Azure AD refused a token for tenant {tenant_id} ({label}): "
        + hint.format(conn=conn_id, tenant=tenant_id, tenant_from=tenant_from),
        status=exc.status,
    )

"""Google's OAuth 2.0 token endpoint for service accounts (the JWT-bearer grant), shared by the
Gmail and Drive simulators.

A service-account key (made per run: an RSA key pair; the private half goes only into the
Airflow connection's ``keyfile_dict``) signs a JWT with ``iss`` = the account's email, ``aud``
= the token URI, ``scope`` and, under domain-wide delegation, ``sub`` = the user to act as;
``POST {token_uri}`` with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
``assertion=<jwt>`` returns a bearer token. Errors are Google's ``{"error", "error_description"}``.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth signs this aud, whatever token_uri is
TOKEN_PATH = "/gmail/oauth2/v4/token"  # served by the Gmail simulator; Drive uses the same one
SERVICE_ACCOUNT = "report-delivery@northwind-reports.iam.gserviceaccount.com"
PROJECT_ID = "northwind-reports"
STATE_KEY = "google_tokens"


@dataclass
class GrantedToken:
    subject: str | None
    scopes: frozenset[str]
    expires: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3599))


@functools.lru_cache(maxsize=8)
def _key_pair(creds: SimCredentials) -> tuple[str, str, str]:
    """(private PEM, public PEM, key id), one per set of simulator credentials."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public, secrets.token_hex(20)


def service_account_info(creds: SimCredentials, token_uri: str) -> dict:
    """The service-account key JSON, as Google Cloud console downloads it."""
    private, _, key_id = _key_pair(creds)
    return {"type": "service_account", "project_id": PROJECT_ID, "private_key_id": key_id,
            "private_key": private, "client_email": SERVICE_ACCOUNT, "client_id": "10" + key_id[:19],
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"}


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status)


async def issue_token(state: SimState, request: Request) -> JSONResponse:
    import jwt

    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    if form.get("grant_type") != JWT_BEARER:
        return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
    _, public, _ = _key_pair(state.creds)
    try:
        claims = jwt.decode(form.get("assertion", ""), public, algorithms=["RS256"],
                            options={"require": ["iss", "aud", "exp", "iat"], "verify_aud": False})
    except jwt.InvalidSignatureError:
        return _oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
    except jwt.ExpiredSignatureError:
        return _oauth_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) "
                                                  "and in a reasonable timeframe.")
    except jwt.PyJWTError as exc:
        return _oauth_error(400, "invalid_grant", f"Invalid JWT: {exc}")
    if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, str(request.url)):
        return _oauth_error(400, "invalid_grant", "Invalid JWT: Audience doesn't match")
    if claims.get("iss") != SERVICE_ACCOUNT:
        return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
    scopes = frozenset(str(claims.get("scope", "")).split())
    if not scopes:
        return _oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    access = "ya29." + secrets.token_urlsafe(48)
    with state.lock:
        state.extra.setdefault(STATE_KEY, {})[access] = GrantedToken(claims.get("sub"), scopes)
    return JSONResponse({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})


def granted(state: SimState, request: Request, scope_any: tuple[str, ...]) -> GrantedToken | JSONResponse:
    """The token on the request, or Google's 401/403 error body."""
    scheme, _, access = request.headers.get("authorization", "").partition(" ")
    with state.lock:
        token = state.extra.setdefault(STATE_KEY, {}).get(access) if scheme.lower() == "bearer" else None
    if token is None or token.expires <= dt.datetime.now(dt.timezone.utc):
        return google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                 "login cookie or other valid authentication credential.", "UNAUTHENTICATED")
    if not token.scopes.intersection(scope_any):
        return google_error(403, "Request had insufficient authentication scopes.", "PERMISSION_DENIED")
    return token


def google_error(code: int, message: str, status: str, reason: str | None = None) -> JSONResponse:
    error = {"code": code, "message": message, "status": status}
    if reason:
        error["errors"] = [{"message": message, "domain": "global", "reason": reason}]
    return JSONResponse({"error": error}, code)


def google_connection(conn_tls_base: str, ca_bundle: str, creds: SimCredentials, scopes: list[str],
                      api_endpoint: str, **extra: str) -> dict:
    """A ``google_cloud_platform`` Airflow connection pointing at the simulator over TLS."""
    return {"conn_type": "google_cloud_platform", "extra": {
        "keyfile_dict": service_account_info(creds, conn_tls_base + TOKEN_PATH), "scope": ",".join(scopes),
        "project": PROJECT_ID, "num_retries": 2, "api_endpoint": api_endpoint, "ca_certs": ca_bundle, **extra}}


REQUEST_LOG_KEY = "google_requests"  # state.extra[...]: every Gmail / Drive API request (method, path, query)


def log_request(state: SimState, request: Request) -> None:
    """Keep the request line, for tests that check the project's calls against the discovery documents."""
    with state.lock:
        state.extra.setdefault(REQUEST_LOG_KEY, []).append(
            {"method": request.method, "path": request.url.path, "query": dict(request.query_params)})

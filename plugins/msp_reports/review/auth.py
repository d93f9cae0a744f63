"""Who may use the review page: Airflow's own login and permissions, plus CSRF checks.

Airflow mounts a plugin's FastAPI app with no authentication of its own, so every route here
depends on Airflow's dependencies from ``airflow.api_fastapi.core_api.security``:

- **Who**: :func:`~airflow.api_fastapi.core_api.security.get_user` — the same JWT the Airflow UI
  uses, from the ``_token`` cookie the login page sets (or an ``Authorization: Bearer`` header),
  validated by the configured auth manager. None → 401 (the HTML page redirects to the login
  page instead).
- **May they**: :func:`~airflow.api_fastapi.core_api.security.requires_access_dag` on the DAG
  ``weekly_executive_report`` — read (``GET``) to see the page and the PDFs, edit (``PUT``) to
  save commentary or decide. Otherwise → 403.
- **Is it really them** (state-changing requests, since the cookie is sent automatically):
  a per-session CSRF token — an HMAC, under the API server's ``[api] secret_key``, of a random
  session value (kept in an HttpOnly, SameSite=Strict cookie scoped to this app) and the user's
  name — must come back in the form; and the browser's ``Sec-Fetch-Site`` must be
  ``same-origin`` and ``Origin`` (when sent) this server's own. Any miss → 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Form, HTTPException, Request, status

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user, requires_access_dag

DAG_ID = "weekly_executive_report"
CSRF_COOKIE = "msp_review_session"
CSRF_FIELD = "csrf_token"


def _forbidden(why: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: {why}")


def reader(request: Request, user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The signed-in user, allowed to read the DAG's reports."""
    requires_access_dag("GET", param_dag_id=DAG_ID)(request, user)
    return user


def editor(request: Request, user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The signed-in user, allowed to edit the DAG (write commentary, approve, reject)."""
    requires_access_dag("PUT", param_dag_id=DAG_ID)(request, user)
    return user


@cache
def _key() -> bytes:
    from airflow.api_fastapi.auth.tokens import get_signing_key

    secret = get_signing_key("api", "secret_key")
    return hashlib.sha256(b"msp-reports review csrf\0" + secret.encode()).digest()


def session_value(request: Request) -> tuple[str, bool]:
    """This browser's review session value, and whether it is new (then it must be set as a cookie)."""
    current = request.cookies.get(CSRF_COOKIE, "")
    if len(current) == 43 and current.replace("-", "").replace("_", "").isalnum():
        return current, False
    return secrets.token_urlsafe(32), True


def csrf_token(session: str, user: BaseUser) -> str:
    return hmac.new(_key(), f"{session}\0{user.get_name()}".encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise _forbidden(f"cross-site request ({site})")
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        allowed = {own.lower()}
        from airflow.configuration import conf

        if base := conf.get("api", "base_url", fallback=""):
            parts = urlsplit(base)
            allowed.add(f"{parts.scheme}://{parts.netloc}".lower())
        if origin.lower() not in allowed:
            raise _forbidden(f"request from another origin ({origin})")


def checked_editor(request: Request, user: Annotated[BaseUser, Depends(editor)],
                   csrf_token_field: Annotated[str, Form(alias=CSRF_FIELD)] = "") -> BaseUser:
    """An editor whose request came from this page: same origin and a valid CSRF token."""
    _same_origin(request)
    session = request.cookies.get(CSRF_COOKIE)
    if not session or not csrf_token_field:
        raise _forbidden("missing CSRF token; reload the page")
    if not hmac.compare_digest(csrf_token(session, user), csrf_token_field):
        raise _forbidden("invalid CSRF token; reload the page")
    return user

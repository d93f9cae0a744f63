"""OAuth2 client credentials, written once for every hook that signs in as an app.

HaloPSA and the Microsoft identity platform (Graph for Defender, Azure Resource Manager for
Sentinel) issue app-only tokens the same way: POST a form with the client id and secret, get
``access_token`` and ``expires_in`` back. What differs is the token request and how to explain a
refusal, so each system supplies those two and shares the cache and the renewal rule:

- a token is kept until ``TOKEN_MARGIN_SECONDS`` before it expires, so a request never outlives
  its token;
- a *cached* token that the resource server refuses with 401 (revoked, rotated, clock skew) is
  replaced once; a token issued moments ago that is refused is a configuration error.

Retries and rate limits on the token endpoint are the ``ApiClient``'s, like any other request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from msp_reports.exceptions import SourceAuthError, SourceError, SourceResponseError
from msp_reports.http.client import ApiClient

TOKEN_MARGIN_SECONDS = 120
DEFAULT_LIFETIME_SECONDS = 3599.0
REFUSED_STATUSES = frozenset({400, 401, 403})  # OAuth2 answers a bad client with 400 or 401

T = TypeVar("T")
TokenRequest = Callable[[str], tuple[str, Mapping[str, str]]]
Refusal = Callable[[str, SourceError], SourceAuthError]


class ClientCredentialsTokens:
    """App-only tokens from one authorization server, cached per key.

    :param system: the source system, for error messages.
    :param client: an ``ApiClient`` on the authorization server.
    :param token_request: for a key (a tenant id, or ``""`` when there is one audience), the
        path to POST to and the form to send.
    :param refused: turns the server's 400/401/403 answer into a ``SourceAuthError`` that says
        what to fix; it must not repeat the form (it holds the secret).
    :param clock: a monotonic clock, in seconds (tests replace it).
    """

    def __init__(
        self,
        system: str,
        client: ApiClient,
        token_request: TokenRequest,
        refused: Refusal,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system = system
        self.client = client
        self.token_request = token_request
        self.refused = refused
        self.clock = clock
        self._cache: dict[str, tuple[str, float]] = {}  # key -> (access token, renew after)
        self.issued = 0

    def token(self, key: str = "") -> tuple[str, bool]:
        """An access token for ``key`` and whether it was just issued (not from the cache)."""
        cached = self._cache.get(key)
        if cached and cached[1] > self.clock():
            return cached[0], False
        path, form = self.token_request(key)
        try:
            body = self.client.json("POST", path, data=dict(form))
        except (SourceAuthError, SourceResponseError) as exc:
            if exc.status not in REFUSED_STATUSES:
                raise
            raise self.refused(key, exc) from exc
        try:
            access = str(body["access_token"])
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_SECONDS))
        except (KeyError, TypeError, ValueError, AttributeError):
            where = f" for {key}" if key else ""
            raise SourceResponseError(self.system, f"the token response{where} has no access_token") from None
        self.issued += 1
        self._cache[key] = (access, self.clock() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS))
        return access, True

    def forget(self, key: str = "") -> None:
        self._cache.pop(key, None)


def with_token(
    tokens: ClientCredentialsTokens,
    key: str,
    call: Callable[[str], T],
    rejected: Callable[[SourceAuthError], SourceAuthError],
) -> T:
    """``call(token)``; if a cached token is refused with 401, renew it once and call again.

    :param rejected: explains a 401/403 that renewing cannot fix (names what to check).
    """
    token, fresh = tokens.token(key)
    try:
        return call(token)
    except SourceAuthError as exc:
        if exc.status != 401 or fresh:
            raise rejected(exc) from exc
    tokens.forget(key)
    token, _ = tokens.token(key)
    try:
        return call(token)
    except SourceAuthError as exc:
        raise rejected(exc) from exc

"""One HTTP mechanism for every hook that calls an HTTP API (the source systems, the Teams
webhook): timeouts, bounded retries, 429 with Retry-After, and pacing by rate-limit headers.

Written once so that every system pages, backs off and fails the same way; each hook only
says how to authenticate and how to read its own envelope (a delivery hook that must not
repeat a POST asks for one attempt).

A system that announces its budget (``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset``,
the Unix second its window ends, as UptimeRobot does) is not asked again before that second:
the next request waits (with the policy's sleep, bounded by ``max_retry_after``) instead of
spending a request on a 429.

Credentials go to the connection's host only. An answer may name a URL (a next link such as
Graph's ``@odata.nextLink``, a redirect's ``Location``); one on another origin (scheme, host,
port) than the connection's base URL is refused with :class:`SourceResponseError` before
anything is sent there: a bearer token or an API-key header would go with it (``requests``
strips only ``Authorization`` on a redirect to another host, not ``X-Auth-Token`` or ``clientId``).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from msp_reports.exceptions import (
    SourceAuthError,
    SourceRateLimited,
    SourceResponseError,
    SourceUnavailable,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({500, 502, 503, 504, 520})  # 520: VSPC reports server errors so
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of an absolute URL, default port filled in; ``None`` when it has
    none or cannot be told for sure (user info or a backslash in the authority, a bad port)."""
    parts = urlsplit(url)
    if "@" in parts.netloc or "\\" in parts.netloc or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS.get(scheme)


def _origin_text(url: str) -> str:
    """The scheme and authority of a URL, for a message: never its path or query (tokens, signatures)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}" if parts.netloc else "(no host)"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta seconds or an HTTP date. ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


@dataclass
class RetryPolicy:
    """Bounded retries: ``attempts`` tries in all, exponential jittered backoff, capped waits."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # a Retry-After longer than this fails the source instead
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class ApiClient:
    """A ``requests`` session bound to one system's base URL and credentials.

    :param system: the system's name, used in every error message.
    :param base_url: the API root; relative paths are joined to it, absolute URLs (next links)
        are used as they are if they are on its origin, and refused otherwise; so are redirects.
    :param headers: headers sent with every request (auth, API version).
    :param auth: a ``requests`` auth object, if the system uses one.
    :param timeout: seconds for connect and for each read.
    :param policy: the retry policy.
    """

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.session = session or requests.Session()
        self.session.headers.update(headers or {})
        if auth is not None:
            self.session.auth = auth
        self.session.hooks["response"].append(self._refuse_foreign_redirect)
        self.requests_sent = 0
        self.resume_at: float | None = None  # Unix seconds: the announced budget is spent until then

    def url(self, path: str) -> str:
        """``path`` joined to the base URL; an absolute URL only on the base URL's origin."""
        parts = urlsplit(path)
        if not (parts.scheme or parts.netloc):
            return f"{self.base_url}/{path.lstrip('/')}"
        self.check_origin(path, "the URL")
        return path

    def check_origin(self, url: str, what: str) -> None:
        """Raise unless ``url`` is on the connection's origin, so that nothing is sent elsewhere."""
        mine = origin(self.base_url)
        if mine is None or origin(url) != mine:
            raise SourceResponseError(
                self.system,
                f"{what} {_origin_text(url)} is on another host than the connection's ({_origin_text(self.base_url)}); "
                "nothing was sent there, as the connection's credentials go to its own host only "
                f"(if {_origin_text(url)} is this API's address, set the connection's host to it)",
            )

    def _refuse_foreign_redirect(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        """A ``requests`` response hook: runs before a redirect is followed."""
        if response.is_redirect:
            try:
                self.check_origin(urljoin(response.url, response.headers["location"]), "a redirect to")
            except SourceResponseError:
                response.close()
                raise
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send with retries; return a 2xx response or raise a :class:`SourceError` subclass."""
        url = self.url(path)
        policy = self.policy
        last: str = ""
        last_status: int | None = None
        last_exc: BaseException | None = None
        for attempt in range(1, policy.attempts + 1):
            self._wait_for_budget(method, url)
            self.requests_sent += 1
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
                self._note_budget(response)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last = f"{type(exc).__name__} calling {method} {_redact(url)}"
                last_status, last_exc = None, exc
                wait = policy.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return response
                last_status, last_exc = status, None
                if status in (401, 403):
                    raise SourceAuthError(
                        self.system, f"HTTP {status}: {_error_text(response)}", status=status
                    )
                if status == 429:
                    self.resume_at = None  # Retry-After (or the backoff) governs this wait
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
                    last = f"HTTP 429 (rate limited) from {method} {_redact(url)}"
                    if wait is None:
                        wait = policy.backoff(attempt)
                    elif wait > policy.max_retry_after:
                        raise SourceRateLimited(
                            self.system, f"{last}; Retry-After {wait:.0f}s exceeds the limit", status=429
                        )
                elif status in RETRY_STATUSES:
                    last = f"HTTP {status} from {method} {_redact(url)}: {_error_text(response)}"
                    wait = policy.backoff(attempt)
                else:
                    raise SourceResponseError(
                        self.system, f"HTTP {status} from {method} {_redact(url)}: {_error_text(response)}",
                        status=status,
                    )
            if attempt < policy.attempts:
                log.warning("%s: %s; retry %d/%d in %.1fs", self.system, last, attempt, policy.attempts - 1, wait)
                policy.sleep(wait)
        if last.startswith("HTTP 429"):
            raise SourceRateLimited(self.system, f"{last}, {policy.attempts} attempts", status=429)
        # The last status and the kinds of network error travel with the error, so that a delivery's
        # ledger can tell whether the other side may have acted on the request (a timeout, a 5xx).
        # Only the class names: the network error's text holds the full URL (a webhook's signature),
        # so it is neither chained (tracebacks print causes) nor kept.
        error = SourceUnavailable(self.system, f"{last}, {policy.attempts} attempts", status=last_status)
        error.network_errors = _chain_names(last_exc)
        raise error

    def _note_budget(self, response: requests.Response) -> None:
        """Remember when an exhausted rate-limit budget comes back (``X-RateLimit-*`` headers)."""
        remaining, reset = (response.headers.get(h) for h in ("X-RateLimit-Remaining", "X-RateLimit-Reset"))
        try:
            self.resume_at = float(reset) if remaining is not None and int(remaining) <= 0 and reset else None
        except ValueError:
            self.resume_at = None

    def _wait_for_budget(self, method: str, url: str) -> None:
        if self.resume_at is None:
            return
        wait, self.resume_at = self.resume_at - time.time(), None
        if wait > self.policy.max_retry_after:
            raise SourceRateLimited(self.system, f"rate limit spent for {wait:.0f}s more before {method} "
                                                 f"{_redact(url)}; that exceeds the limit", status=429)
        if wait > 0:
            log.info("%s: rate limit spent; waiting %.1fs for the next window", self.system, wait)
            self.policy.sleep(wait)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise SourceResponseError(
                self.system, f"{method} {_redact(response.url)} returned a body that is not JSON"
            ) from exc


def _chain_names(exc: BaseException | None) -> frozenset[str]:
    """The class names (with their bases) of an exception and everything it was raised from."""
    names: set[str] = set()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names.update(cls.__name__ for cls in type(exc).__mro__)
        exc = exc.__cause__ or exc.__context__
    return frozenset(names)


_SECRET_QUERY = re.compile(r"(?i)\b(sig|api_key|apikey|key|token|access_token|client_secret|password)=[^&\s\"']+")


class RedactQuerySecrets(logging.Filter):
    """urllib3 logs every request line with its query string at DEBUG; some APIs carry the secret
    there (a Workflows webhook's ``sig``, UptimeRobot's ``api_key``). Replace those values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_SECRET_QUERY.sub(r"\1=***", a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = _SECRET_QUERY.sub(r"\1=***", record.msg)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQuerySecrets())


def _error_text(response: requests.Response, limit: int = 300) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] or response.reason or ""


def _redact(url: str) -> str:
    """Drop the query string: it can hold keys (UptimeRobot, Teams webhook signatures)."""
    return url.split("?", 1)[0]

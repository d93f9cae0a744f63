"""Gmail API simulator: ``users.messages.send`` (raw RFC 822) and ``users.messages.list`` (``q``).

Served at ``/gmail/gmail/v1/...`` (the client's ``api_endpoint`` is ``…/gmail/``; the discovery
paths start ``gmail/v1/``), over TLS, with Google's service-account token endpoint at
``/gmail/oauth2/v4/token`` (:mod:`.googleauth`). Like Gmail: a service-account token without
domain-wide delegation (no ``sub``) is refused with 400 ``failedPrecondition``; ``raw`` must be
base64url of an RFC 822 message with ``To``; the ``From`` is the delegated user; the message is
filed with label ``SENT`` and found again by ``q=rfc822msgid:<Message-ID>`` (angle brackets
optional). Tests read ``state.extra["gmail"]`` (mailbox -> messages).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import secrets
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devtools.simulators.crash import hold_after_accept
from devtools.simulators.googleauth import TOKEN_PATH, google_connection, google_error, granted, issue_token, log_request

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

SEND_SCOPES = ("https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.compose",
               "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/")
READ_SCOPES = ("https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/gmail.metadata",
               "https://www.googleapis.com/auth/gmail.modify", "https://mail.google.com/")
#: the lookup searches (``q=rfc822msgid:``), which Gmail refuses under ``gmail.metadata`` alone
SEARCH_SCOPES = tuple(s for s in READ_SCOPES if not s.endswith("gmail.metadata"))
DEMO_SCOPES = ["https://www.googleapis.com/auth/gmail.send", "https://www.googleapis.com/auth/gmail.readonly"]
STATE_KEY = "gmail"


def _strip(message_id: str) -> str:
    return message_id.strip().strip("<>").lower()


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    with state.lock:
        mailboxes: dict[str, list[dict]] = state.extra.setdefault(STATE_KEY, {})

    @api.post(TOKEN_PATH.removeprefix("/gmail"))
    async def token(request: Request):
        return await issue_token(state, request)

    def mailbox(request: Request, user_id: str, scopes: tuple[str, ...]):
        token = granted(state, request, scopes)
        if isinstance(token, JSONResponse):
            return token
        if not token.subject:
            return google_error(400, "Precondition check failed.", "FAILED_PRECONDITION", "failedPrecondition")
        if user_id not in ("me", token.subject):
            return google_error(403, "Delegation denied for " + token.subject, "PERMISSION_DENIED", "forbidden")
        return token.subject.lower()

    @api.post("/gmail/v1/users/{user_id}/messages/send")
    async def send(user_id: str, request: Request):
        log_request(state, request)
        user = mailbox(request, user_id, SEND_SCOPES)
        if isinstance(user, JSONResponse):
            return user
        try:
            body = await request.json()
            raw = base64.urlsafe_b64decode(body["raw"] + "=" * (-len(body["raw"]) % 4))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return google_error(400, "Invalid value for ByteString: raw", "INVALID_ARGUMENT", "invalidArgument")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if not msg["To"]:
            return google_error(400, "Invalid To header", "INVALID_ARGUMENT", "invalidArgument")
        stored = {"id": secrets.token_hex(8), "threadId": secrets.token_hex(8), "labelIds": ["SENT"],
                  "raw": raw, "rfc822msgid": _strip(msg["Message-ID"] or f"<{secrets.token_hex(16)}@mail.gmail.com>"),
                  "from": user, "to": str(msg["To"]), "subject": str(msg["Subject"])}
        with state.lock:
            mailboxes.setdefault(user, []).append(stored)
        await hold_after_accept(state, "gmail.send")
        return {"id": stored["id"], "threadId": stored["threadId"], "labelIds": stored["labelIds"]}

    @api.get("/gmail/v1/users/{user_id}/messages")
    async def list_messages(user_id: str, request: Request):
        log_request(state, request)
        user = mailbox(request, user_id, READ_SCOPES)
        if isinstance(user, JSONResponse):
            return user
        token = granted(state, request, READ_SCOPES)
        if request.query_params.get("q") and not token.scopes.intersection(SEARCH_SCOPES):
            return google_error(403, "Metadata scope does not support 'q' parameter", "PERMISSION_DENIED",
                                "insufficientPermissions")
        with state.lock:
            rows = list(reversed(mailboxes.get(user, [])))
        for term in request.query_params.get("q", "").split():
            key, _, value = term.partition(":")
            if key == "rfc822msgid":
                rows = [r for r in rows if r["rfc822msgid"] == _strip(value)]
            elif key == "in" and value == "sent":
                rows = [r for r in rows if "SENT" in r["labelIds"]]
        if not rows:
            return {"resultSizeEstimate": 0}
        return {"messages": [{"id": r["id"], "threadId": r["threadId"]} for r in rows],
                "resultSizeEstimate": len(rows)}

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    """``gmail_default``: a Google connection (service account with domain-wide delegation)."""
    from devtools.simulators.tls import endpoint_for

    tls = endpoint_for(base_url)
    if tls is None:
        return {}
    return {"gmail_default": google_connection(tls.base_url, tls.ca_bundle, creds, DEMO_SCOPES,
                                               api_endpoint=f"{tls.base_url}/gmail/")}

"""Teams Workflows webhook simulator: ``POST /teams/workflows/<id>/triggers/manual/paths/invoke``.

Like the real trigger URL, the query carries ``api-version``, ``sp``, ``sv`` and a ``sig``
that authorises the call; a wrong ``sig`` gets 401 with the Logic Apps error body, and a GET
with the right one gets 400 ``TriggerRequestMethodNotValid`` (the trigger takes POST only). Accepted
posts answer 202 with a run id and are kept per channel for the tests and the demo to read
at ``GET /teams/_sim/posts``. A message over Teams' ~28 KB limit gets 413, as in Teams.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from devtools.simulators.credentials import SimCredentials


MESSAGE_LIMIT = 28 * 1024  # Teams refuses a message (card and envelope) over about 28 KB


def channel_sig(creds: SimCredentials, workflow_id: str) -> str:
    return hmac.new(creds.teams_signing_key.encode(), workflow_id.encode(), hashlib.sha256).hexdigest()[:43]


def router(state) -> APIRouter:
    api = APIRouter()
    posts: dict[str, list[dict[str, Any]]] = state.extra.setdefault("teams_posts", {})
    run_ids = itertools.count(1)

    def refused(workflow_id: str, request: Request) -> JSONResponse | None:
        """The trigger's checks of the URL, before anything else: its query, then its ``sig``."""
        q = request.query_params
        if q.get("api-version") != "2016-06-01" or "sp" not in q or "sv" not in q:
            return JSONResponse({"error": {"code": "InvalidRequest",
                                           "message": "The request must include api-version, sp and sv."}}, 400)
        if not hmac.compare_digest(q.get("sig", ""), channel_sig(state.creds, workflow_id)):
            return JSONResponse({"error": {"code": "DirectApiAuthorizationRequired",
                                           "message": "The request must be authenticated only by Shared Access scheme."}}, 401)
        return None

    @api.get("/workflows/{workflow_id}/triggers/manual/paths/invoke")
    async def invoke_with_get(workflow_id: str, request: Request):
        """A POST-only trigger refuses another method once the sig is accepted, before the flow runs."""
        return refused(workflow_id, request) or JSONResponse(
            {"error": {"code": "TriggerRequestMethodNotValid",
                       "message": "The HTTP method for this request is not valid: expected 'POST' and actual 'GET'."}},
            400)

    @api.post("/workflows/{workflow_id}/triggers/manual/paths/invoke")
    async def invoke(workflow_id: str, request: Request):
        if (denied := refused(workflow_id, request)) is not None:
            return denied
        if len(await request.body()) > MESSAGE_LIMIT:
            return JSONResponse({"error": {"code": "RequestEntityTooLarge",
                                           "message": "Teams messages are limited to about 28 KB."}}, 413)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"code": "InvalidRequestContent", "message": "Body is not JSON."}}, 400)
        attachments = body.get("attachments") if isinstance(body, dict) else None
        if (body.get("type") != "message" or not attachments
                or attachments[0].get("contentType") != "application/vnd.microsoft.card.adaptive"
                or attachments[0].get("content", {}).get("type") != "AdaptiveCard"):
            return JSONResponse({"error": {"code": "InvalidTemplate",
                                           "message": "Expected a message with an Adaptive Card attachment."}}, 400)
        run_id = f"08584{next(run_ids):015d}"
        with state.lock:
            posts.setdefault(workflow_id, []).append({
                "run_id": run_id, "card": attachments[0]["content"],
                "client_request_id": request.headers.get("x-ms-client-request-id"),
            })
        return Response(status_code=202, headers={"x-ms-workflow-run-id": run_id})

    @api.get("/_sim/posts")
    async def list_posts() -> dict:
        with state.lock:
            return {k: list(v) for k, v in posts.items()}

    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict[str, str]) -> dict[str, dict]:
    """One connection per channel: ``host`` is the trigger URL, ``password`` its ``sig``."""
    conns = {}
    for conn_id, workflow_id in teams_channels.items():
        conns[conn_id] = {
            "conn_type": "teams_workflow",
            "host": f"{base_url}/teams/workflows/{workflow_id}/triggers/manual/paths/invoke"
                    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0",
            "password": channel_sig(creds, workflow_id),
        }
    return conns

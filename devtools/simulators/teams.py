"""Teams Workflows webhook simulator, both forms of trigger URL Microsoft hands out:

- Power Platform (the current form): ``https://<env>.environment.api.powerplatform.com:443/
  powerautomate/automations/direct/workflows/<id>/triggers/manual/paths/invoke?api-version=1
  &sp=...&sv=1.0&sig=...``, served here as ``POST /teams/powerautomate/automations/direct/
  workflows/<id>/triggers/manual/paths/invoke``;
- Logic Apps (the older form): ``https://prod-NN.<region>.logic.azure.com:443/workflows/<id>/
  triggers/manual/paths/invoke?api-version=2016-06-01&sp=...&sv=1.0&sig=...``, served as
  ``POST /teams/workflows/<id>/triggers/manual/paths/invoke``.

Each form takes its own ``api-version`` (``1`` and ``2016-06-01``). The demo's channels use
the Power Platform form. Like the real trigger URL, the query carries ``api-version``, ``sp``,
``sv`` and a ``sig`` that authorises the call; a wrong ``sig`` gets 401 with the Logic Apps error body, and a GET
with the right one gets 400 ``TriggerRequestMethodNotValid`` (the trigger takes POST only). Accepted
posts answer 202 with a run id and are kept per channel for the tests and the demo to read
at ``GET /teams/_sim/posts``. A message over Teams' ~28 KB limit gets 413, as in Teams.
UNCONFIRMED for the Power Platform form: that its error bodies (bad sig, GET) are the Logic Apps
ones.
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
LOGIC_APPS_PATH = "/workflows/{workflow_id}/triggers/manual/paths/invoke"
POWER_PLATFORM_PATH = "/powerautomate/automations/direct" + LOGIC_APPS_PATH
API_VERSIONS = {LOGIC_APPS_PATH: "2016-06-01", POWER_PLATFORM_PATH: "1"}


def channel_sig(creds: SimCredentials, workflow_id: str) -> str:
    return hmac.new(creds.teams_signing_key.encode(), workflow_id.encode(), hashlib.sha256).hexdigest()[:43]


def router(state) -> APIRouter:
    api = APIRouter()
    posts: dict[str, list[dict[str, Any]]] = state.extra.setdefault("teams_posts", {})
    run_ids = itertools.count(1)

    def refused(workflow_id: str, request: Request) -> JSONResponse | None:
        """The trigger's checks of the URL, before anything else: its query, then its ``sig``."""
        q = request.query_params
        form = POWER_PLATFORM_PATH if "/powerautomate/" in request.url.path else LOGIC_APPS_PATH
        if q.get("api-version") != API_VERSIONS[form] or "sp" not in q or "sv" not in q:
            return JSONResponse({"error": {"code": "InvalidRequest",
                                           "message": "The request must include api-version, sp and sv."}}, 400)
        if not hmac.compare_digest(q.get("sig", ""), channel_sig(state.creds, workflow_id)):
            return JSONResponse({"error": {"code": "DirectApiAuthorizationRequired",
                                           "message": "The request must be authenticated only by Shared Access scheme."}}, 401)
        return None

    async def invoke_with_get(workflow_id: str, request: Request):
        """A POST-only trigger refuses another method once the sig is accepted, before the flow runs."""
        return refused(workflow_id, request) or JSONResponse(
            {"error": {"code": "TriggerRequestMethodNotValid",
                       "message": "The HTTP method for this request is not valid: expected 'POST' and actual 'GET'."}},
            400)

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

    for path in (LOGIC_APPS_PATH, POWER_PLATFORM_PATH):
        api.add_api_route(path, invoke_with_get, methods=["GET"])
        api.add_api_route(path, invoke, methods=["POST"])

    @api.get("/_sim/posts")
    async def list_posts() -> dict:
        with state.lock:
            return {k: list(v) for k, v in posts.items()}

    return api


def trigger_url(base_url: str, workflow_id: str, *, power_platform: bool = True) -> str:
    """A channel's trigger URL without its ``sig``, in either form."""
    path = (POWER_PLATFORM_PATH if power_platform else LOGIC_APPS_PATH).format(workflow_id=workflow_id)
    version = API_VERSIONS[POWER_PLATFORM_PATH if power_platform else LOGIC_APPS_PATH]
    return f"{base_url}/teams{path}?api-version={version}&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict[str, str]) -> dict[str, dict]:
    """One connection per channel: ``host`` is the (Power Platform) trigger URL, ``password`` its ``sig``."""
    conns = {}
    for conn_id, workflow_id in teams_channels.items():
        conns[conn_id] = {
            "conn_type": "teams_workflow",
            "host": trigger_url(base_url, workflow_id),
            "password": channel_sig(creds, workflow_id),
        }
    return conns

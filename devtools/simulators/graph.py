"""Microsoft Graph for delivery: the MSP tenant's mailbox, Teams channels and SharePoint library.

Served under ``/graph`` (over TLS too: see :mod:`.tls`; azure-identity will not fetch a token
from an ``http://`` authority):

- ``POST /graph/login/{tenant}/oauth2/v2.0/token``: client credentials for the MSP app
  (the same Azure AD checks and error bodies as the Defender simulator);
- mail: ``POST /v1.0/users/{id}/sendMail`` (inline attachments up to 3 MB, as Graph documents),
  ``POST /users/{id}/messages`` (draft), ``.../messages/{id}/attachments/createUploadSession``,
  ``POST .../messages/{id}/send``, ``GET /users/{id}/mailFolders/sentitems/messages`` with
  ``$filter=internetMessageId eq '...'``;
- Teams: ``POST``/``GET /v1.0/teams/{team}/channels/{channel}/messages`` (newest first,
  ``$top``), ``GET``/``POST /tabs``, ``PATCH /tabs/{id}``. App-only channel posts are what
  Microsoft documents them to be: refused (401 ``Unauthorized``, "Message POST is allowed in
  application-only context only for import purposes...") unless the app holds the
  resource-specific consent (RSC) permission ``ChannelMessage.Send.Group`` in that team, granted
  by installing the app in the team (:func:`install_app`); reading them needs
  ``ChannelMessage.Read.Group`` there, else 403. Every demo customer's team
  (:func:`demo_team_id`) has the app installed with both;
- SharePoint: ``PUT /v1.0/drives/{drive}/root:/{path}:/content`` (simple upload, at most 4 MB
  here, with ``@microsoft.graph.conflictBehavior``), ``POST .../root:/{path}:/createUploadSession``,
  ``GET .../root:/{path}`` (driveItem with ``file.hashes.quickXorHash`` and ``size``); the same
  under ``/drives/{drive}/items/root:/{path}:`` (the SDK's form, ``items.by_drive_item_id``) and
  ``GET /drives/{drive}/items/{id}``;
- upload sessions: ``PUT {uploadUrl}`` with ``Content-Range: bytes a-b/total``; like Graph, the
  upload URL is pre-authorised and a request carrying ``Authorization`` is refused (401); drive
  chunks must be multiples of 320 KiB except the last; each answer names ``nextExpectedRanges``.

Request bodies are read as Graph reads them: property names case-insensitively (the Python
SDK sends ``{"Message": …, "SaveToSentItems": …}`` to ``sendMail``). Every answer that is not a
success, including an unknown path or method, is a Graph error body
``{"error": {"code", "message", "innerError"}}``, never the web framework's own.

Every request is logged in ``state.extra["graph"].log`` (method, path, query, headers, body) so
tests check what went over the wire. UNCONFIRMED: real ``sendMail`` may ignore an
``internetMessageId`` set on the message; the draft path sets it on a draft, where Graph
documents it as writable.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from devtools.simulators.crash import hold_after_accept
from devtools.simulators.world import _guid
from devtools.simulators.defender import (
    GRAPH_SCOPE, _Field, _odata_error, aad_client_credentials_error, add_graph_fallback, graph_time, parse_filter,
    ODataError,
)

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

MSP_TENANT_ID = "7d3c1f0e-5b2a-4c8e-9f61-2a4b6c8d0e1f"
TOKEN_LIFETIME = 3599
INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024
SIMPLE_UPLOAD_LIMIT = 4 * 1024 * 1024
DRIVE_CHUNK_MULTIPLE = 320 * 1024
MAIL_CHUNK_LIMIT = 4 * 1024 * 1024
WEBSITE_TAB_APP = "com.microsoft.teamspace.tab.web"
STATE_KEY = "graph"
SEND_RSC = "ChannelMessage.Send.Group"
READ_RSC = "ChannelMessage.Read.Group"
#: what the reports app's Teams manifest asks for, granted when a team owner installs it
REPORTS_APP_RSC = frozenset({SEND_RSC, READ_RSC, "TeamsTab.ReadWrite.Group"})
IMPORT_ONLY = ("Message POST is allowed in application-only context only for import purposes. Refer to "
               "https://learn.microsoft.com/microsoftteams/platform/graph-api/import-messages/"
               "import-external-messages-to-teams for more details.")
PROTECTED_READ = ("Invoked API requires Protected API access in application-only context when not using Resource "
                  "Specific Consent. Visit https://docs.microsoft.com/en-us/graph/teams-protected-apis for more details.")



def quick_xor_hash(content: bytes) -> str:
    """SharePoint's ``quickXorHash`` of ``content``, computed byte by byte as Microsoft describes it.

    Byte ``i`` is XORed into a 160-bit register at bit ``11 * i mod 160`` (bits past the top wrap
    to the bottom), then the length (64-bit little-endian) is XORed into the register's last eight
    bytes; the answer is the register's 20 bytes, little-endian, in base64. Deliberately the plain
    reading of the description, not the product's folded version.
    """
    register = 0
    for index, byte in enumerate(content):
        register ^= byte << (11 * index % 160)
    register = (register ^ (register >> 160)) & ((1 << 160) - 1)  # the wrapped-around top bits
    register ^= len(content) << (160 - 64)
    return base64.b64encode(register.to_bytes(20, "little")).decode()

def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class GraphWorld:
    """What the simulated tenant holds; tests read it directly."""

    tokens: dict[str, dt.datetime] = field(default_factory=dict)
    sent: dict[str, list[dict]] = field(default_factory=dict)  # mailbox -> sent items
    drafts: dict[str, dict] = field(default_factory=dict)  # message id -> draft
    channel_messages: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    tabs: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)
    drives: dict[str, dict[str, dict]] = field(default_factory=dict)  # drive id -> path -> item (+content)
    sessions: dict[str, dict] = field(default_factory=dict)
    #: team id -> the RSC permissions the reports app holds there (the app is installed in the team)
    team_consent: dict[str, set[str]] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mail_to(self, address: str) -> list[dict]:
        """Every message sent to ``address``, from any mailbox."""
        return [m for box in self.sent.values() for m in box
                if address.lower() in (r["emailAddress"]["address"].lower() for r in m.get("toRecipients", []))]


def demo_team_id(code: str) -> str:
    """The Teams team of demo customer ``code`` (the registry's ``delivery.teams.team_id``)."""
    return _guid("team", code)


def graph_world(state: SimState) -> GraphWorld:
    """The tenant's state; created with the reports app installed in every demo customer's team."""
    with state.lock:
        if STATE_KEY not in state.extra:
            gw = GraphWorld()
            for code in state.full_world.customers:
                gw.team_consent[demo_team_id(code)] = set(REPORTS_APP_RSC)
            state.extra[STATE_KEY] = gw
        return state.extra[STATE_KEY]


def install_app(state: SimState, team_id: str, permissions: frozenset[str] | set[str] = REPORTS_APP_RSC) -> None:
    """A team owner installs the reports app in ``team_id`` and consents to its RSC ``permissions``
    (replacing what it held); an empty set is the app without consent (or uninstalled)."""
    gw = graph_world(state)
    with gw.lock:
        gw.team_consent[team_id] = set(permissions)


def _ci(body: Any, name: str, default: Any = None) -> Any:
    """``body[name]`` with the property name matched case-insensitively, as Graph reads JSON."""
    if not isinstance(body, dict):
        return default
    if name in body:
        return body[name]
    return next((v for k, v in body.items() if k.lower() == name.lower()), default)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return _odata_error(status, code, message, headers)


def _item_view(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "content"}


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    gw = graph_world(state)

    async def _log(request: Request, body: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "content-range", "content-length",
                                    "prefer", "client-request-id")}
        if "authorization" in headers:
            headers["authorization"] = headers["authorization"].split(" ")[0] + " …"
        entry = {"method": request.method, "path": request.url.path, "query": dict(request.query_params),
                 "headers": headers}
        if headers.get("content-type", "").startswith("application/json") and body:
            try:
                entry["json"] = json.loads(body)
            except ValueError:
                entry["json"] = None
        else:
            entry["bytes"] = len(body)
        with gw.lock:
            gw.log.append(entry)

    def authorised(request: Request) -> JSONResponse | None:
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if scheme.lower() != "bearer" or not access:
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        with gw.lock:
            expires = gw.tokens.get(access)
        if expires is None:
            return _error(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).",
                          challenge)
        if expires <= _now():
            return _error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.",
                          challenge)
        return None

    async def read_json(request: Request) -> tuple[Any, JSONResponse | None]:
        body = await request.body()
        await _log(request, body)
        refused = authorised(request)
        if refused is not None:
            return None, refused
        if not body:
            return {}, None
        if not request.headers.get("content-type", "").startswith("application/json"):
            return None, _error(415, "UnsupportedMediaType", "Content-Type must be application/json.")
        try:
            return json.loads(body), None
        except ValueError:
            return None, _error(400, "BadRequest", "Unable to read JSON request payload.")

    def new_id(prefix: str) -> str:
        return f"{prefix}{next(gw.ids):06d}" + base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=")

    # ---- identity --------------------------------------------------------------------------
    @api.post("/login/{tenant_id}/oauth2/v2.0/token")
    async def token(tenant_id: str, request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        refused = aad_client_credentials_error(form, tenant_id, tenant_known=tenant_id == MSP_TENANT_ID,
                                               client_id=state.creds.graph_client_id,
                                               client_secret=state.creds.graph_client_secret)
        if refused is not None:
            return refused
        if form.get("scope") != GRAPH_SCOPE:
            return JSONResponse({"error": "invalid_scope",
                                 "error_description": f"AADSTS1002012: The provided value for scope "
                                                      f"{form.get('scope')} is not valid."}, 400)
        access = secrets.token_urlsafe(32)
        with gw.lock:
            gw.tokens[access] = _now() + dt.timedelta(seconds=TOKEN_LIFETIME)
        return {"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME,
                "access_token": access}

    # ---- mail ------------------------------------------------------------------------------
    def check_message(msg: Any, *, draft: bool) -> JSONResponse | None:
        if not isinstance(msg, dict):
            return _error(400, "ErrorInvalidRequest", "The message is missing.")
        if not draft and not msg.get("toRecipients"):
            return _error(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        for r in msg.get("toRecipients", []):
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", str(r.get("emailAddress", {}).get("address", ""))):
                return _error(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        if msg.get("body", {}).get("contentType", "HTML").lower() not in ("html", "text"):
            return _error(400, "RequestBodyRead", "Invalid body contentType.")
        for h in msg.get("internetMessageHeaders", []):
            if not str(h.get("name", "")).lower().startswith("x-"):
                return _error(400, "InvalidInternetMessageHeader",
                              f"The internet message header name '{h.get('name')}' should start with 'x-' or 'X-'.")
        total = 0
        for att in msg.get("attachments", []):
            if att.get("@odata.type") != "#microsoft.graph.fileAttachment" or "contentBytes" not in att:
                return _error(400, "ErrorInvalidAttachment", "Attachments must be fileAttachment with contentBytes.")
            total += len(base64.b64decode(att["contentBytes"]))
        if total > INLINE_ATTACHMENT_LIMIT:
            return _error(413, "ErrorRequestEntityTooLarge",
                          "The request exceeds the maximum limit; attachments over 3 MB need an upload session.")
        return None

    def file_to_sent(mailbox: str, msg: dict) -> dict:
        stored = dict(msg)
        stored.setdefault("internetMessageId", f"<{uuid.uuid4().hex}@{mailbox.split('@')[-1]}>")
        stored.update(id=stored.get("id") or new_id("AAMkAG"), isDraft=False, sentDateTime=graph_time(_now()),
                      **{"from": {"emailAddress": {"address": mailbox}}})
        with gw.lock:
            gw.sent.setdefault(mailbox.lower(), []).append(stored)
        return stored

    @api.post("/v1.0/users/{user}/sendMail")
    async def send_mail(user: str, request: Request):
        body, refused = await read_json(request)
        if refused is not None:
            return refused
        msg = _ci(body, "message")
        bad = check_message(msg, draft=False)
        if bad is not None:
            return bad
        if _ci(body, "saveToSentItems", True) in (True, "true"):
            file_to_sent(unquote(user), msg)
        await hold_after_accept(state, "graph.sendMail")
        return Response(status_code=202)

    @api.post("/v1.0/users/{user}/messages")
    async def create_draft(user: str, request: Request):
        msg, refused = await read_json(request)
        if refused is not None:
            return refused
        bad = check_message(msg, draft=True)
        if bad is not None:
            return bad
        draft = dict(msg, id=new_id("AAMkAD"), isDraft=True, createdDateTime=graph_time(_now()),
                     _mailbox=unquote(user), attachments=list(msg.get("attachments", [])))
        with gw.lock:
            gw.drafts[draft["id"]] = draft
        return JSONResponse({k: v for k, v in draft.items() if not k.startswith("_")}, 201)

    @api.post("/v1.0/users/{user}/messages/{message_id}/attachments/createUploadSession")
    async def mail_upload_session(user: str, message_id: str, request: Request):
        body, refused = await read_json(request)
        if refused is not None:
            return refused
        item = _ci(body, "AttachmentItem") or {}
        if message_id not in gw.drafts:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        if item.get("attachmentType") != "file" or not item.get("name") or not isinstance(item.get("size"), int):
            return _error(400, "ErrorInvalidRequest", "AttachmentItem needs attachmentType 'file', name and size.")
        return JSONResponse(open_session(request, "mail", item["size"], {"message_id": message_id, "item": item}), 201)

    @api.post("/v1.0/users/{user}/messages/{message_id}/send")
    async def send_draft(user: str, message_id: str, request: Request):
        _, refused = await read_json(request)
        if refused is not None:
            return refused
        with gw.lock:
            draft = gw.drafts.pop(message_id, None)
        if draft is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        bad = check_message({**draft, "attachments": []}, draft=False)
        if bad is not None:
            return bad
        file_to_sent(draft.pop("_mailbox"), draft)
        await hold_after_accept(state, "graph.send")
        return Response(status_code=202)

    @api.get("/v1.0/users/{user}/mailFolders/{folder}/messages")
    async def folder_messages(user: str, folder: str, request: Request):
        _, refused = await read_json(request)
        if refused is not None:
            return refused
        if folder.lower() != "sentitems":
            return _error(404, "ErrorItemNotFound", "The specified folder could not be found in the store.")
        with gw.lock:
            rows = list(gw.sent.get(unquote(user).lower(), []))
        flt = request.query_params.get("$filter")
        if flt:
            try:
                pred = parse_filter(flt, {"internetMessageId": _Field("enum")})
            except ODataError as exc:
                return _error(400, "BadRequest", str(exc))
            rows = [r for r in rows if pred({"internetMessageId": r["internetMessageId"].lower()})]
        select = [s for s in request.query_params.get("$select", "").split(",") if s]
        value = [{k: r[k] for k in ["id", *select] if k in r} if select else
                 {k: v for k, v in r.items() if k != "attachments"} for r in rows]
        return {"@odata.context": "…/$metadata#users('…')/mailFolders('sentitems')/messages", "value": value}

    # ---- Teams -----------------------------------------------------------------------------
    def consented(team: str, permission: str) -> bool:
        with gw.lock:
            return permission in gw.team_consent.get(team, set())

    @api.post("/v1.0/teams/{team}/channels/{channel}/messages")
    async def post_channel_message(team: str, channel: str, request: Request):
        body, refused = await read_json(request)
        if refused is not None:
            return refused
        if not consented(team, SEND_RSC):  # app-only without RSC: migration only
            return _error(401, "Unauthorized", IMPORT_ONLY)
        content = (body.get("body") or {}).get("content")
        if not content:
            return _error(400, "BadRequest", "Message body cannot be empty.")
        for att in body.get("attachments", []):
            if f'<attachment id="{att.get("id")}"></attachment>' not in content:
                return _error(400, "BadRequest", f"Attachment with id '{att.get('id')}' is not referenced in the body.")
            if att.get("contentType") == "application/vnd.microsoft.card.adaptive":
                try:
                    json.loads(att.get("content") or "")
                except ValueError:
                    return _error(400, "BadRequest", "Adaptive card content must be a JSON string.")
        msg = {"id": str(int(_now().timestamp() * 1000) * 1000 + next(gw.ids) % 1000), "replyToId": None,
               "messageType": "message", "createdDateTime": graph_time(_now()), "subject": body.get("subject"),
               "body": body["body"], "attachments": body.get("attachments", []),
               "channelIdentity": {"teamId": team, "channelId": unquote(channel)},
               "from": {"application": {"id": state.creds.graph_client_id, "displayName": "Weekly reports"}}}
        with gw.lock:
            gw.channel_messages.setdefault((team, unquote(channel)), []).append(msg)
        await hold_after_accept(state, "graph.channelMessage")
        return JSONResponse(msg, 201)

    @api.get("/v1.0/teams/{team}/channels/{channel}/messages")
    async def list_channel_messages(team: str, channel: str, request: Request):
        _, refused = await read_json(request)
        if refused is not None:
            return refused
        if not consented(team, READ_RSC):
            return _error(403, "Forbidden", PROTECTED_READ)
        try:
            top = int(request.query_params.get("$top", "20"))
        except ValueError:
            return _error(400, "BadRequest", "Invalid value for $top.")
        if not 1 <= top <= 50:
            return _error(400, "BadRequest", "$top must be between 1 and 50.")
        with gw.lock:
            rows = list(reversed(gw.channel_messages.get((team, unquote(channel)), [])))
        return {"@odata.count": min(top, len(rows)), "value": rows[:top]}

    @api.get("/v1.0/teams/{team}/channels/{channel}/tabs")
    async def list_tabs(team: str, channel: str, request: Request):
        _, refused = await read_json(request)
        if refused is not None:
            return refused
        with gw.lock:
            tabs = list(gw.tabs.get((team, unquote(channel)), {}).values())
        expand = request.query_params.get("$expand") == "teamsApp"
        return {"value": [t if expand else {k: v for k, v in t.items() if k != "teamsApp"} for t in tabs]}

    def check_tab_config(config: Any) -> JSONResponse | None:
        if not isinstance(config, dict) or not str(config.get("contentUrl", "")).startswith("https://"):
            return _error(400, "BadRequest", "configuration.contentUrl must be an https URL.")
        return None

    @api.post("/v1.0/teams/{team}/channels/{channel}/tabs")
    async def add_tab(team: str, channel: str, request: Request):
        body, refused = await read_json(request)
        if refused is not None:
            return refused
        bind = body.get("teamsApp@odata.bind", "")
        if not bind.endswith(f"/appCatalogs/teamsApps/{WEBSITE_TAB_APP}") or not body.get("displayName"):
            return _error(400, "BadRequest", "displayName and teamsApp@odata.bind (an app in the catalog) are required.")
        bad = check_tab_config(body.get("configuration"))
        if bad is not None:
            return bad
        tab = {"id": str(uuid.uuid4()), "displayName": body["displayName"], "configuration": body["configuration"],
               "webUrl": f"https://teams.microsoft.com/l/channel/{unquote(channel)}/tab",
               "teamsApp": {"id": WEBSITE_TAB_APP, "displayName": "Website", "distributionMethod": "store"}}
        with gw.lock:
            gw.tabs.setdefault((team, unquote(channel)), {})[tab["id"]] = tab
        return JSONResponse({k: v for k, v in tab.items() if k != "teamsApp"}, 201)

    @api.patch("/v1.0/teams/{team}/channels/{channel}/tabs/{tab_id}")
    async def update_tab(team: str, channel: str, tab_id: str, request: Request):
        body, refused = await read_json(request)
        if refused is not None:
            return refused
        with gw.lock:
            tab = gw.tabs.get((team, unquote(channel)), {}).get(tab_id)
        if tab is None:
            return _error(404, "NotFound", "Tab not found.")
        if "configuration" in body:
            bad = check_tab_config(body["configuration"])
            if bad is not None:
                return bad
        with gw.lock:
            tab.update({k: v for k, v in body.items() if k in ("displayName", "configuration")})
        return {k: v for k, v in tab.items() if k != "teamsApp"}

    # ---- SharePoint / OneDrive ---------------------------------------------------------------
    def store_item(drive_id: str, path: str, content: bytes, behaviour: str) -> tuple[dict, int] | JSONResponse:
        with gw.lock:
            items = gw.drives.setdefault(drive_id, {})
            existing = items.get(path)
            if existing is not None and behaviour == "fail":
                return _error(409, "nameAlreadyExists", "The specified item name already exists.")
            if existing is not None and behaviour == "rename":
                stem, dot, ext = path.rpartition(".")
                n = 1
                while f"{stem} {n}.{ext}" in items:
                    n += 1
                path, existing = f"{stem} {n}.{ext}", None
            folder, _, name = path.rpartition("/")
            item = {"id": existing["id"] if existing else "01" + secrets.token_hex(16).upper(),
                    "name": name, "size": len(content), "eTag": f'"{{{uuid.uuid4()}}},1"',
                    "createdDateTime": existing["createdDateTime"] if existing else graph_time(_now()),
                    "lastModifiedDateTime": graph_time(_now()),
                    "webUrl": f"https://northwindmsp.sharepoint.com/sites/Reports/{drive_id}/{path}".replace(" ", "%20"),
                    "parentReference": {"driveId": drive_id, "path": f"/drives/{drive_id}/root:/{folder}"},
                    "file": {"mimeType": "application/pdf" if name.endswith(".pdf") else "application/json",
                             "hashes": {"quickXorHash": quick_xor_hash(content)}},
                    "content": content}
            items[path] = item
        return _item_view(item), 200 if existing else 201

    async def drive_item_at(drive_id: str, rest: str, request: Request):
        """``root:/{path}:[/{action}]`` under a drive, whichever URL form carried it."""
        path, _, action = unquote(rest).partition(":/")
        path = path.rstrip(":").strip("/")
        behaviour = request.query_params.get("@microsoft.graph.conflictBehavior", "fail")
        if request.method == "PUT" and action == "content":
            body = await request.body()
            await _log(request, body)
            refused = authorised(request)
            if refused is not None:
                return refused
            if len(body) > SIMPLE_UPLOAD_LIMIT:
                return _error(413, "requestEntityTooLarge", "Simple upload is limited to 4 MB; use an upload session.")
            stored = store_item(drive_id, path, body, behaviour)
            if path.endswith(".pdf"):
                await hold_after_accept(state, "graph.driveItem")
            return stored if isinstance(stored, JSONResponse) else JSONResponse(*stored)
        if request.method == "POST" and action == "createUploadSession":
            body, refused = await read_json(request)
            if refused is not None:
                return refused
            item = _ci(body, "item") or {}
            return JSONResponse(open_session(request, "drive", None, {
                "drive_id": drive_id, "path": path,
                "behaviour": item.get("@microsoft.graph.conflictBehavior", "fail")}), 200)
        if request.method == "GET" and not action:
            _, refused = await read_json(request)
            if refused is not None:
                return refused
            with gw.lock:
                item = gw.drives.get(drive_id, {}).get(path)
            if item is None:
                return _error(404, "itemNotFound", "The resource could not be found.")
            return _item_view(item)
        await _log(request, await request.body())
        return _error(400, "invalidRequest", f"Unsupported {request.method} on root:/…:/{action}.")

    @api.api_route("/v1.0/drives/{drive_id}/root:/{rest:path}", methods=["GET", "PUT", "POST"])
    async def drive_path(drive_id: str, rest: str, request: Request):
        return await drive_item_at(drive_id, rest, request)

    @api.api_route("/v1.0/drives/{drive_id}/items/{rest:path}", methods=["GET", "PUT", "POST"])
    async def drive_items(drive_id: str, rest: str, request: Request):
        """``items/root:/{path}:/…`` (the SDK's ``by_drive_item_id("root:/…:")``) or ``items/{id}``."""
        rest = unquote(rest)
        if rest.startswith("root:"):
            return await drive_item_at(drive_id, rest.removeprefix("root:").lstrip("/"), request)
        item_id, _, action = rest.partition("/")
        refused = authorised(request)
        if refused is not None:
            await _log(request, await request.body())
            return refused
        with gw.lock:
            found = next(((p, i) for p, i in gw.drives.get(drive_id, {}).items() if i["id"] == item_id), None)
        if found is None:
            await _log(request, await request.body())
            return _error(404, "itemNotFound", "The resource could not be found.")
        if request.method == "GET" and not action:
            await _log(request, b"")
            return _item_view(found[1])
        return await drive_item_at(drive_id, f"{found[0]}:/{action}", request)

    # ---- upload sessions -------------------------------------------------------------------
    def open_session(request: Request, kind: str, size: int | None, target: dict) -> dict:
        sid = secrets.token_urlsafe(24)
        expires = _now() + dt.timedelta(hours=1)
        with gw.lock:
            gw.sessions[sid] = {"kind": kind, "size": size, "received": bytearray(), "target": target}
        base = str(request.base_url).rstrip("/")
        return {"uploadUrl": f"{base}/graph/_upload/{sid}?tempauth={secrets.token_urlsafe(16)}",
                "expirationDateTime": graph_time(expires), "nextExpectedRanges": ["0-"]}

    @api.put("/_upload/{sid}")
    async def upload_chunk(sid: str, request: Request):
        body = await request.body()
        await _log(request, body)
        if request.headers.get("authorization"):
            return _error(401, "unauthenticated", "The upload URL is pre-authenticated; do not send Authorization.")
        with gw.lock:
            session = gw.sessions.get(sid)
        if session is None:
            return _error(404, "itemNotFound", "The upload session was not found or has expired.")
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("content-range", ""))
        if not m:
            return _error(400, "invalidRange", "Content-Range is required: bytes {start}-{end}/{total}.")
        start, end, total = (int(x) for x in m.groups())
        received = session["received"]
        if start != len(received) or end - start + 1 != len(body) or end >= total:
            return _error(416, "invalidRange", f"Expected the fragment starting at byte {len(received)}.")
        if session["size"] is not None and total != session["size"]:
            return _error(400, "invalidRange", "Total size does not match the upload session.")
        last = end + 1 == total
        if session["kind"] == "drive" and not last and len(body) % DRIVE_CHUNK_MULTIPLE:
            return _error(400, "invalidRange", "Fragments must be a multiple of 320 KiB (except the last).")
        if session["kind"] == "mail" and len(body) > MAIL_CHUNK_LIMIT:
            return _error(413, "ErrorRequestEntityTooLarge", "Fragments may be at most 4 MB.")
        received.extend(body)
        if not last:
            return JSONResponse({"expirationDateTime": graph_time(_now() + dt.timedelta(hours=1)),
                                 "nextExpectedRanges": [f"{len(received)}-"]}, 202)
        with gw.lock:
            gw.sessions.pop(sid, None)
        content = bytes(received)
        target = session["target"]
        if session["kind"] == "mail":
            item = target["item"]
            with gw.lock:
                draft = gw.drafts.get(target["message_id"])
                if draft is None:
                    return _error(404, "ErrorItemNotFound", "The draft was sent or deleted.")
                draft["attachments"].append({"@odata.type": "#microsoft.graph.fileAttachment", "name": item["name"],
                                             "contentType": item.get("contentType", "application/octet-stream"),
                                             "size": len(content),
                                             "contentBytes": base64.b64encode(content).decode()})
            return Response(status_code=201, headers={"Location": f"{target['message_id']}/attachments"})
        stored = store_item(target["drive_id"], target["path"], content, target["behaviour"])
        return stored if isinstance(stored, JSONResponse) else JSONResponse(*stored)

    add_graph_fallback(api)
    return api


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    """``msgraph_default``: the provider's Graph connection, pointed at the TLS listener."""
    from devtools.simulators.tls import endpoint_for

    tls = endpoint_for(base_url)
    if tls is None:  # only a running SimServer has the TLS listener
        return {}
    return {"msgraph_default": {
        "conn_type": "msgraph", "login": creds.graph_client_id, "password": creds.graph_client_secret,
        "host": tls.base_url.removeprefix("https://"), "schema": "https",
        "extra": {"tenant_id": MSP_TENANT_ID, "authority": f"{tls.base_url}/graph/login",
                  "base_url": f"{tls.base_url}/graph/v1.0/", "allowed_hosts": "127.0.0.1",
                  "verify": tls.ca_bundle, "api_version": "v1.0"},
    }}

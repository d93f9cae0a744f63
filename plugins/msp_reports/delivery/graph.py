"""Microsoft Graph delivery: Outlook mail, Teams channel messages and tabs, SharePoint archive.

All through the Azure provider's :class:`KiotaRequestAdapterHook` on an ``msgraph`` Airflow
connection (login = application id, password = client secret, extras ``tenant_id`` and, for a
sovereign cloud or the simulator, ``authority``, ``base_url``, ``allowed_hosts`` and ``verify``,
a CA bundle path). The token comes from azure-identity's client-credentials flow, so it is an
application (app-only) token. What each channel does, and how a crash between the send and the
ledger write is settled (``lookup``):

- **Outlook** (``GraphMailChannel``): ``POST /users/{sender}/sendMail`` with the PDF as a
  ``fileAttachment`` when it is at most 3 MB; above that, a draft (``POST /users/{id}/messages``),
  ``attachments/createUploadSession``, the PDF in chunks ``PUT`` to the pre-authorised upload URL
  (no ``Authorization`` header), then ``POST /messages/{id}/send``. The message carries
  ``internetMessageId`` = the Message-ID derived from the idempotency key, and lookup filters
  Sent Items by it (``$filter=internetMessageId eq '…'``). Permission: ``Mail.Send``
  (application), scoped to the reports mailbox with an application access policy;
  ``Mail.ReadBasic.All`` or ``Mail.Read`` for the lookup.
- **Teams** (``GraphTeamsChannel``): ``POST /teams/{team}/channels/{channel}/messages`` with the
  Adaptive Card as an attachment whose ``id`` is derived from the idempotency key; lookup reads
  the channel's recent messages (``$top=50``) for that attachment id. Permission: Graph allows
  app-only channel posts only for imports (``Teamwork.Migrate.All``, channels in migration mode)
  and answers any other app-only post with 401 "Message POST is allowed in application-only
  context only for import purposes"; the way that works for production posts is the
  resource-specific consent (RSC) permission ``ChannelMessage.Send.Group``, granted by
  installing the reports app (its manifest asks for it) in each customer's team (UNCONFIRMED
  for shared channels), or else the Workflows webhook for that customer. The post then shows as
  sent by the app. The lookup reads channel messages: ``ChannelMessage.Read.Group`` (RSC), else
  Graph answers 403 (protected API). Either refusal raises :class:`TeamsConsentMissing`, naming
  the team and the missing permission.
- **"Pinned for the week"**: Graph has no pinning of channel messages. Instead a *Website* tab
  named ``Weekly report`` (app ``com.microsoft.teamspace.tab.web``) is added once to the channel
  (``POST /tabs``) and then updated (``PATCH /tabs/{id}``) every week to point at that week's
  archived PDF (its SharePoint or Drive web URL). A customer whose archive is local gets no tab.
  Permission: ``TeamsTab.ReadWriteForTeam.All`` (or the RSC ``TeamsTab.ReadWrite.Group``).
- **SharePoint** (``SharePointArchiveChannel``): ``PUT /drives/{drive}/root:/{folder}/{name}:/content``
  up to 4 MB, an upload session above, with ``@microsoft.graph.conflictBehavior=replace`` (the
  ledger, not the name, decides whether a send is a duplicate); the snapshot JSON goes beside the
  PDF. Lookup reads the item by path and compares ``size`` and ``file.hashes.quickXorHash``.
  Permission: ``Sites.Selected`` with write on the reports site.

The hook's adapter is bound to the event loop it was built on, so each operation runs in one
``asyncio.run`` and closes the adapter before the loop ends (as ``MSGraphMailHook`` does).
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.microsoft.azure.hooks.msgraph import DefaultResponseHandler, KiotaRequestAdapterHook
from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption

from msp_reports.delivery.archive import ArchiveFiles
from msp_reports.delivery.email import ReportEmail
from msp_reports.delivery.hashes import quick_xor_hash
from msp_reports.exceptions import DeliveryError

T = TypeVar("T")
INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024
SIMPLE_UPLOAD_LIMIT = 4 * 1024 * 1024
DRIVE_CHUNK = 10 * 320 * 1024  # a multiple of 320 KiB, as OneDrive/SharePoint require
MAIL_CHUNK = 3 * 1024 * 1024  # at most 4 MB per fragment for mail attachments
GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
WEBSITE_TAB_APP = "com.microsoft.teamspace.tab.web"
TAB_NAME = "Weekly report"


class GraphServerError(AirflowException):
    """Graph answered 429 or 5xx. ``status`` tells the ledger whether the request may have been
    acted on (5xx: perhaps, so the retry looks before sending again; 429: no)."""

    def __init__(self, status: int, message: Any) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class _StatusResponseHandler(DefaultResponseHandler):
    """The provider's handler, but a 429 or 5xx raises :class:`GraphServerError` with its status
    (the provider's plain ``AirflowException`` does not say which status it was)."""

    async def handle_response_async(self, response: Any, error_map: Any) -> Any:
        if response.status_code == 429 or response.status_code >= 500:
            raise GraphServerError(response.status_code, self.get_value(response) or response.reason_phrase)
        return await super().handle_response_async(response, error_map)


#: only these are repeated by Kiota's retry middleware; a POST, PUT or PATCH is sent once and the
#: ledger decides what a failure means (Kiota would otherwise repeat a sendMail after a 503 or 504,
#: which Exchange may already have acted on)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class GraphDeliveryHook(KiotaRequestAdapterHook):
    """The provider's Graph hook, plus absolute-URL calls and the pre-authorised upload PUTs.

    :param conn_id: the ``msgraph`` connection (see the module docstring).
    :param timeout: seconds per HTTP request.
    """

    def __init__(self, conn_id: str = KiotaRequestAdapterHook.default_conn_name, timeout: float = 60) -> None:
        super().__init__(conn_id=conn_id, timeout=timeout)

    def request_information(self, url: str, response_type: str | None = None, path_parameters: Any = None,
                            method: str = "GET", query_parameters: Any = None, headers: Any = None,
                            data: Any = None) -> Any:
        info = super().request_information(url=url, response_type=response_type, path_parameters=path_parameters,
                                           method=method, query_parameters=query_parameters, headers=headers,
                                           data=data)
        if not response_type:
            info.request_options[ResponseHandlerOption.get_key()] = ResponseHandlerOption(
                response_handler=_StatusResponseHandler())
        if method.strip().upper() not in IDEMPOTENT_METHODS:
            info.request_options[RetryHandlerOption.get_key()] = RetryHandlerOption(max_retries=0, should_retry=False)
        return info

    def run_sync(self, work: Callable[[GraphDeliveryHook], Awaitable[T]]) -> T:
        async def run_and_close() -> T:
            try:
                return await work(self)
            finally:
                await self.close()

        return asyncio.run(run_and_close())

    async def call(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                   json_body: dict | None = None, content: bytes | None = None,
                   headers: dict[str, str] | None = None) -> Any:
        """``path`` is relative to the connection's Graph base URL and already URL-quoted."""
        adapter = await self.get_async_conn()
        url = adapter.base_url.rstrip("/") + "/" + path.lstrip("/")
        if query:
            url += "?" + urlencode(query, quote_via=quote, safe="$@:,'()")
        return await self.run(url=url, method=method, data=json_body if content is None else content,
                              headers=headers)

    def upload_chunks(self, upload_url: str, data: bytes, chunk: int) -> dict:
        """PUT ``data`` to a Graph upload URL in ``Content-Range`` fragments, without the token."""
        import httpx

        verify = self.get_connection(self.conn_id).extra_dejson.get("verify", True)
        if isinstance(verify, str):  # a CA bundle path, as the hook's own httpx client takes it
            import ssl

            verify = ssl.create_default_context(cafile=verify)
        last: dict = {}
        with httpx.Client(verify=verify, timeout=self.timeout) as client:
            for start in range(0, len(data), chunk):
                part = data[start:start + chunk]
                end = start + len(part) - 1
                resp = client.put(upload_url, content=part, headers={
                    "Content-Length": str(len(part)), "Content-Range": f"bytes {start}-{end}/{len(data)}"})
                if resp.status_code not in (200, 201, 202):
                    raise DeliveryError(f"graph upload session: HTTP {resp.status_code} at bytes {start}-{end}: "
                                        f"{resp.text[:300]}")
                last = resp.json() if resp.content else dict(resp.headers)
        return last


def _segment(value: str) -> str:
    return quote(value, safe="")


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _run(conn_id: str, work: Callable[[GraphDeliveryHook], Awaitable[T]]) -> T:
    return GraphDeliveryHook(conn_id).run_sync(work)


# ---- Outlook -----------------------------------------------------------------------------
@dataclass
class GraphMailChannel(ReportEmail):
    """:param conn_id: the ``msgraph`` connection; ``sender`` is the mailbox sending the reports."""

    def _message(self, idempotency_key: str, *, inline: bool) -> dict:
        from airflow.providers.microsoft.azure.hooks.msgraph import MSGraphMailHook

        message = {
            "subject": self.subject,
            "body": {"contentType": "HTML", "content": self.cover_html},
            "toRecipients": MSGraphMailHook.build_recipients(self.to),
            "internetMessageId": self.message_id(idempotency_key),
            "internetMessageHeaders": [{"name": "X-Idempotency-Key", "value": idempotency_key}],
        }
        if inline:
            message["attachments"] = [{
                "@odata.type": "#microsoft.graph.fileAttachment", "name": self.filename,
                "contentType": "application/pdf",  # the report is always a PDF, whatever its name
                "contentBytes": base64.b64encode(self.pdf).decode("ascii")}]
        return message

    def send(self, idempotency_key: str) -> dict:
        user = _segment(self.sender)
        inline = len(self.pdf) <= INLINE_ATTACHMENT_LIMIT

        async def work(hook: GraphDeliveryHook) -> dict:
            if inline:
                await hook.call("POST", f"users/{user}/sendMail", json_body={
                    "message": self._message(idempotency_key, inline=True), "saveToSentItems": True})
                return {"path": "sendMail"}
            draft = await hook.call("POST", f"users/{user}/messages",
                                    json_body=self._message(idempotency_key, inline=False))
            session = await hook.call("POST", f"users/{user}/messages/{_segment(draft['id'])}/attachments/"
                                              "createUploadSession", json_body={"AttachmentItem": {
                                                  "attachmentType": "file", "name": self.filename,
                                                  "size": len(self.pdf), "contentType": "application/pdf"}})
            await asyncio.to_thread(hook.upload_chunks, session["uploadUrl"], self.pdf, MAIL_CHUNK)
            await hook.call("POST", f"users/{user}/messages/{_segment(draft['id'])}/send")
            return {"path": "draft+uploadSession", "draft_id": draft["id"]}

        how = _run(self.conn_id, work)
        return {"remote_id": self.message_id(idempotency_key), "to": self.to, "attachment": self.filename,
                "via": "graph", **how}

    def lookup(self, idempotency_key: str) -> dict | None:
        message_id = self.message_id(idempotency_key)

        async def work(hook: GraphDeliveryHook) -> Any:
            return await hook.call("GET", f"users/{_segment(self.sender)}/mailFolders/sentitems/messages", query={
                "$filter": f"internetMessageId eq {_odata_literal(message_id)}",
                "$select": "id,internetMessageId,sentDateTime"})

        found = _run(self.conn_id, work).get("value", [])
        if not found:
            return None
        return {"remote_id": message_id, "graph_id": found[0]["id"], "to": self.to, "via": "graph",
                "found_by": "sentitems internetMessageId"}


# ---- Teams ---------------------------------------------------------------------------------
SEND_RSC = "ChannelMessage.Send.Group"
READ_RSC = "ChannelMessage.Read.Group"
#: what Graph says when an app-only post has no RSC in the team (it allows app-only posts only
#: for importing messages into a channel in migration mode)
IMPORT_ONLY_REFUSAL = "only for import purposes"


class TeamsConsentMissing(DeliveryError):
    """Graph refused an app-only Teams call because the reports app holds no resource-specific
    consent (RSC) for it in that team: the app is not installed there, or was installed without
    consenting to ``permission``. Nothing was posted; installing the app fixes it (see
    docs/operations.md, "Teams through Graph")."""

    def __init__(self, team_id: str, channel_id: str, permission: str, graph_said: Any) -> None:
        super().__init__(
            f"teams/graph: Graph refused the reports app in team {team_id} (channel {channel_id}): it lacks the "
            f"resource-specific consent permission {permission} in that team. A team owner must install the "
            f"reports app in the customer's team and consent to {SEND_RSC} and {READ_RSC} (docs/operations.md, "
            f"'Teams through Graph'), or switch the customer to a Workflows webhook. Graph said: {graph_said}")
        self.team_id = team_id
        self.channel_id = channel_id
        self.permission = permission


def _graph_message(exc: BaseException) -> str:
    """The ``error.message`` of a Graph error the provider raised (it passes the parsed body)."""
    body = exc.args[0] if exc.args else None
    if isinstance(body, dict):
        return str((body.get("error") or {}).get("message") or body)
    return str(body or exc)


def attachment_id(idempotency_key: str) -> str:
    """The card's attachment id: stable for a key, so the post can be found again."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"msp-weekly-report:{idempotency_key}"))


@dataclass
class GraphTeamsChannel:
    conn_id: str
    team_id: str
    channel_id: str
    card: dict
    summary: str = "Weekly report"
    name: str = "teams"
    lookback: int = 50

    @property
    def _messages(self) -> str:
        return f"teams/{_segment(self.team_id)}/channels/{_segment(self.channel_id)}/messages"

    def send(self, idempotency_key: str) -> dict:
        att = attachment_id(idempotency_key)
        body = {"subject": self.summary,
                "body": {"contentType": "html", "content": f'<attachment id="{att}"></attachment>'},
                "attachments": [{"id": att, "contentType": "application/vnd.microsoft.card.adaptive",
                                 "contentUrl": None, "content": json.dumps(self.card)}]}

        async def work(hook: GraphDeliveryHook) -> dict:
            return await hook.call("POST", self._messages, json_body=body)

        try:
            posted = _run(self.conn_id, work)
        except PermissionError as exc:  # the provider's 401/403; a 401 here is never the token's fault alone
            said = _graph_message(exc)
            if IMPORT_ONLY_REFUSAL in said:
                raise TeamsConsentMissing(self.team_id, self.channel_id, SEND_RSC, said) from exc
            raise
        return {"remote_id": posted["id"], "attachment_id": att, "via": "graph",
                "team_id": self.team_id, "channel_id": self.channel_id}

    def lookup(self, idempotency_key: str) -> dict | None:
        att = attachment_id(idempotency_key)

        async def work(hook: GraphDeliveryHook) -> Any:
            return await hook.call("GET", self._messages, query={"$top": self.lookback})

        try:
            recent = _run(self.conn_id, work)
        except PermissionError as exc:
            said = _graph_message(exc)
            if "Resource Specific Consent" in said or READ_RSC in said:
                raise TeamsConsentMissing(self.team_id, self.channel_id, READ_RSC, said) from exc
            raise
        for msg in recent.get("value", []):
            if any(a.get("id") == att for a in msg.get("attachments", [])):
                return {"remote_id": msg["id"], "attachment_id": att, "via": "graph",
                        "found_by": f"last {self.lookback} channel messages"}
        return None


def pin_weekly_tab(conn_id: str, team_id: str, channel_id: str, url: str, entity_id: str) -> dict:
    """Point the channel's ``Weekly report`` Website tab at ``url``: add it once, then update it."""
    tabs = f"teams/{_segment(team_id)}/channels/{_segment(channel_id)}/tabs"
    config = {"entityId": entity_id, "contentUrl": url, "websiteUrl": url, "removeUrl": None}

    async def work(hook: GraphDeliveryHook) -> dict:
        existing = await hook.call("GET", tabs, query={"$expand": "teamsApp"})
        for tab in existing.get("value", []):
            if tab.get("displayName") == TAB_NAME and tab.get("teamsApp", {}).get("id") == WEBSITE_TAB_APP:
                await hook.call("PATCH", f"{tabs}/{_segment(tab['id'])}", json_body={"configuration": config})
                return {"tab_id": tab["id"], "action": "updated", "url": url}
        added = await hook.call("POST", tabs, json_body={
            "displayName": TAB_NAME, "teamsApp@odata.bind": f"{GRAPH_ROOT}/appCatalogs/teamsApps/{WEBSITE_TAB_APP}",
            "configuration": config})
        return {"tab_id": added["id"], "action": "added", "url": url}

    return _run(conn_id, work)


# ---- SharePoint ----------------------------------------------------------------------------
@dataclass
class SharePointArchiveChannel(ArchiveFiles):
    """:param drive_id: the document library (drive) of the reports site; ``folder`` the customer's folder."""

    conn_id: str
    drive_id: str
    folder: str
    filename: str
    pdf: bytes
    snapshot: bytes | None = None
    conflict_behavior: str = "replace"

    def _item_path(self, filename: str) -> str:
        path = "/".join(_segment(p) for p in f"{self.folder}/{filename}".split("/") if p)
        return f"drives/{_segment(self.drive_id)}/root:/{path}:"

    def send(self, idempotency_key: str) -> dict:
        query = {"@microsoft.graph.conflictBehavior": self.conflict_behavior}

        async def upload(hook: GraphDeliveryHook, filename: str, data: bytes) -> dict:
            item = self._item_path(filename)
            if len(data) <= SIMPLE_UPLOAD_LIMIT:
                return await hook.call("PUT", f"{item}/content", query=query, content=data,
                                       headers={"Content-Type": mimetypes.guess_type(filename)[0] or
                                                "application/octet-stream"})
            session = await hook.call("POST", f"{item}/createUploadSession", json_body={
                "item": {"@microsoft.graph.conflictBehavior": self.conflict_behavior, "name": filename}})
            return await asyncio.to_thread(hook.upload_chunks, session["uploadUrl"], data, DRIVE_CHUNK)

        async def work(hook: GraphDeliveryHook) -> dict:
            return {name: await upload(hook, name, data) for name, data in self.files().items()}

        items = _run(self.conn_id, work)
        pdf_item = items[self.filename]
        return {"remote_id": pdf_item["id"], "web_url": pdf_item.get("webUrl"), "via": "sharepoint",
                "size": pdf_item.get("size"), "files": {n: i.get("id") for n, i in items.items()},
                "path": "simple" if len(self.pdf) <= SIMPLE_UPLOAD_LIMIT else "uploadSession"}

    def lookup(self, idempotency_key: str) -> dict | None:
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        async def work(hook: GraphDeliveryHook) -> dict | None:
            try:
                return await hook.call("GET", self._item_path(self.filename).rstrip(":"))
            except AirflowNotFoundException:
                return None

        item = _run(self.conn_id, work)
        if not item or item.get("size") != len(self.pdf):
            return None
        if item.get("file", {}).get("hashes", {}).get("quickXorHash") != quick_xor_hash(self.pdf):
            return None
        return {"remote_id": item["id"], "web_url": item.get("webUrl"), "via": "sharepoint",
                "size": item["size"], "found_by": "path, size and quickXorHash"}

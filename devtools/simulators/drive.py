"""Google Drive v3 simulator: the MSP's shared drive "Customer reports", one folder per customer.

Served at ``/drive/v3/files`` and ``/upload/drive/v3/files`` (the client's ``api_endpoint`` is
``…/drive/v3/``; googleapiclient moves the upload URL to the same host and keeps
``/upload/drive/v3/``), over TLS, with the Google token endpoint of :mod:`.googleauth`.

- ``files.create``/``files.update`` with media: ``uploadType=media`` (the content alone),
  ``uploadType=multipart`` (``multipart/related``: JSON metadata, then the content) or
  ``uploadType=resumable`` (metadata first; ``Location`` names the session;
  ``PUT`` chunks with ``Content-Range``; ``308`` with ``Range: bytes=0-N`` until the last);
  ``files.update`` (``PATCH /upload/drive/v3/files/{id}``) replaces the content;
- ``files.list`` with ``q`` (``name = '…'``, ``'<id>' in parents``, ``trashed = false``,
  ``mimeType = '…'`` joined by ``and``), ``corpora``/``driveId``/``includeItemsFromAllDrives``;
- shared drives: a file or folder in a shared drive is "not found" (404) unless the request says
  ``supportsAllDrives=true``, as Drive does. Drive lets two files share a name, so the client
  must look before it creates. Files carry ``md5Checksum``, ``size`` and ``webViewLink``.

Partial responses as Drive gives them: only the ``fields`` asked for (``id, name`` for a file,
``files(id, md5Checksum)`` for a list, ``*`` for all); without ``fields``, a file is its
default ``kind, id, name, mimeType`` and a list ``kind, incompleteSearch, files`` of those.

Tests read ``state.extra["drive"]`` (file id -> file, with ``content``) and
``state.extra["drive_upload_log"]`` (each upload request).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import secrets
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from devtools.simulators.crash import hold_after_accept
from devtools.simulators.googleauth import google_connection, google_error, granted, log_request

if TYPE_CHECKING:
    from devtools.simulators.app import SimState
    from devtools.simulators.credentials import SimCredentials

SHARED_DRIVE_ID = "0AMspCustomerReportsPVA"
FOLDER_MIME = "application/vnd.google-apps.folder"
SCOPES = ("https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.file")
STATE_KEY = "drive"
LOG_KEY = "drive_upload_log"  # every upload request: method, path, query, content type and range
_CLAUSE = re.compile(r"^\s*(?:(name|mimeType)\s*=\s*'((?:[^'\\]|\\.)*)'|'((?:[^'\\]|\\.)*)'\s+in\s+parents"
                     r"|trashed\s*=\s*(true|false))\s*$")


def folder_id(code: str) -> str:
    """The customer's folder in the shared drive (stable, so the registry can name it)."""
    return "1" + hashlib.sha256(f"drive-folder:{code}".encode()).hexdigest()[:32]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _matcher(q: str):
    preds = []
    for clause in re.split(r"\s+and\s+", q.strip()) if q.strip() else []:
        m = _CLAUSE.match(clause)
        if not m:
            return None
        field_name, value, parent, trashed = m.groups()
        if field_name:
            preds.append(lambda f, k=field_name, v=_unescape(value): f.get(k) == v)
        elif parent is not None:
            preds.append(lambda f, p=_unescape(parent): p in f.get("parents", []))
        else:
            preds.append(lambda f, t=trashed == "true": f.get("trashed", False) is t)
    return lambda f: all(p(f) for p in preds)


def router(state: SimState) -> APIRouter:
    api = APIRouter()
    files = _files(state)

    @api.get("/v3/files")
    async def list_files(request: Request):
        log_request(state, request)
        token = granted(state, request, SCOPES)
        if isinstance(token, JSONResponse):
            return token
        p = request.query_params
        all_drives = p.get("supportsAllDrives") == "true"
        if p.get("corpora") == "drive" and (not p.get("driveId") or p.get("includeItemsFromAllDrives") != "true"):
            return google_error(400, "The includeItemsFromAllDrives parameter must be set to true when driveId "
                                     "is specified.", "INVALID_ARGUMENT", "invalid")
        match = _matcher(p.get("q", ""))
        if match is None:
            return google_error(400, "Invalid Value", "INVALID_ARGUMENT", "invalid")
        with state.lock:
            rows = [f for f in files.values()
                    if match(f) and (not f.get("driveId") or (all_drives and p.get("includeItemsFromAllDrives") == "true"))]
        rows.sort(key=lambda f: f["modifiedTime"], reverse=True)
        return partial_list(rows, p.get("fields"))

    return api


def _files(state: SimState) -> dict[str, dict]:
    with state.lock:
        if STATE_KEY not in state.extra:
            files: dict[str, dict] = {}
            for code in state.full_world.customers:
                fid = folder_id(code)
                files[fid] = {"id": fid, "name": code, "mimeType": FOLDER_MIME, "parents": [SHARED_DRIVE_ID],
                              "driveId": SHARED_DRIVE_ID, "trashed": False, "modifiedTime": "2026-01-05T09:00:00.000Z"}
            state.extra[STATE_KEY] = files
        return state.extra[STATE_KEY]


DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")  # files.* without a fields parameter


def _view(f: dict) -> dict:
    return {k: v for k, v in f.items() if k not in ("content",)} | {"kind": "drive#file"}


def _split_fields(text: str) -> list[str]:
    """``a, b(c, d), e`` -> ``["a", "b(c, d)", "e"]``: top-level commas only."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [p for p in parts + [current.strip()] if p]


def partial_file(f: dict, fields: str | None) -> dict:
    """A file as Drive answers with ``fields`` (``None``: its default fields)."""
    view = _view(f)
    if fields is None:
        return {k: view[k] for k in DEFAULT_FILE_FIELDS if k in view}
    if fields.strip() == "*":
        return view
    return {k: view[k] for k in _split_fields(fields) if k in view}


def partial_list(rows: list[dict], fields: str | None) -> dict:
    """A file list as Drive answers with ``fields`` such as ``files(id, name)`` or ``nextPageToken, files(*)``."""
    body = {"kind": "drive#fileList", "incompleteSearch": False}
    if fields is None:
        return body | {"files": [partial_file(f, None) for f in rows]}
    out: dict = {}
    for part in _split_fields(fields):
        name, _, inner = part.partition("(")
        name = name.strip()
        if name == "files":
            out["files"] = [partial_file(f, inner.rstrip(")") if inner else "*") for f in rows]
        elif name in body:
            out[name] = body[name]
    return out


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def extra_routers(state: SimState) -> dict[str, APIRouter]:
    """``/upload/drive/v3/files``: media uploads, outside the ``/drive`` prefix as in Drive."""
    api = APIRouter()
    files = _files(state)
    sessions: dict[str, dict] = {}
    with state.lock:
        log: list[dict] = state.extra.setdefault(LOG_KEY, [])

    def record(request: Request, body: bytes) -> None:
        with state.lock:
            log.append({"method": request.method, "path": request.url.path, "query": dict(request.query_params),
                        "content-type": request.headers.get("content-type", ""),
                        "content-range": request.headers.get("content-range"), "bytes": len(body)})

    def visible(fid: str, all_drives: bool) -> dict | None:
        f = files.get(fid)
        if f is None or (f.get("driveId") and not all_drives):
            return None
        return f

    def store(meta: dict, content: bytes, all_drives: bool, file_id: str | None = None) -> dict | JSONResponse:
        with state.lock:
            if file_id is not None:
                f = visible(file_id, all_drives)
                if f is None:
                    return google_error(404, f"File not found: {file_id}.", "NOT_FOUND", "notFound")
            else:
                parents = meta.get("parents") or ["root"]
                parent = visible(parents[0], all_drives)
                if parent is None or parent["mimeType"] != FOLDER_MIME:
                    return google_error(404, f"File not found: {parents[0]}.", "NOT_FOUND", "notFound")
                fid = "1" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
                f = {"id": fid, "name": meta.get("name", "Untitled"), "parents": parents,
                     "driveId": parent.get("driveId"), "trashed": False}
                files[fid] = f
            f.update(mimeType=meta.get("mimeType") or f.get("mimeType") or "application/octet-stream",
                     content=content, size=str(len(content)), md5Checksum=hashlib.md5(content, usedforsecurity=False).hexdigest(), modifiedTime=_now(),
                     webViewLink=f"https://drive.google.com/file/d/{f['id']}/view?usp=drivesdk")
            if "name" in meta:
                f["name"] = meta["name"]
            return f

    async def finish(request: Request, file_id: str | None):
        token = granted(state, request, SCOPES)
        if isinstance(token, JSONResponse):
            return token
        p = request.query_params
        all_drives = p.get("supportsAllDrives") == "true"
        body = await request.body()
        record(request, body)
        log_request(state, request)
        kind = p.get("uploadType")
        if kind == "multipart":
            ctype = request.headers.get("content-type", "")
            if not ctype.startswith("multipart/related"):
                return google_error(400, "Bad content type; multipart/related expected.", "INVALID_ARGUMENT", "badContent")
            msg = email.message_from_bytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body,
                                           policy=email.policy.HTTP)
            parts = list(msg.iter_parts())
            if len(parts) != 2 or parts[0].get_content_type() != "application/json":
                return google_error(400, "Multipart body must be metadata (JSON) then media.", "INVALID_ARGUMENT",
                                    "badContent")
            meta = json.loads(parts[0].get_payload(decode=True) or b"{}")
            result = store(meta, parts[1].get_payload(decode=True) or b"", all_drives, file_id)
            if not isinstance(result, JSONResponse) and result["name"].endswith(".pdf"):
                await hold_after_accept(state, "drive.file")
        elif kind == "media":  # the content alone; metadata unchanged (or defaults on create)
            result = store({"mimeType": request.headers.get("content-type") or None} if file_id else {},
                           body, all_drives, file_id)
        elif kind == "resumable":
            meta = json.loads(body or b"{}")
            sid = secrets.token_urlsafe(32)
            sessions[sid] = {"meta": meta, "file_id": file_id, "all_drives": all_drives, "data": bytearray(),
                             "fields": p.get("fields")}
            location = str(request.url.include_query_params(upload_id=sid))
            return Response(status_code=200, headers={"Location": location, "X-GUploader-UploadID": sid})
        else:
            return google_error(400, f"Invalid uploadType: {kind}", "INVALID_ARGUMENT", "invalid")
        return result if isinstance(result, JSONResponse) else partial_file(result, p.get("fields"))

    async def chunk(request: Request):
        sid = request.query_params.get("upload_id", "")
        session = sessions.get(sid)
        if session is None:
            return google_error(404, "Upload session not found.", "NOT_FOUND", "notFound")
        body = await request.body()
        record(request, body)
        m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", request.headers.get("content-range", ""))
        if not m:
            return google_error(400, "Content-Range required.", "INVALID_ARGUMENT", "badRequest")
        start, end, total = m.groups()
        data = session["data"]
        if start is not None:
            if int(start) != len(data) or int(end) - int(start) + 1 != len(body):
                return google_error(400, "Invalid Content-Range for the upload session.", "INVALID_ARGUMENT",
                                    "badRequest")
            data.extend(body)
        if total != "*" and len(data) == int(total):
            sessions.pop(sid, None)
            result = store(session["meta"], bytes(data), session["all_drives"], session["file_id"])
            return result if isinstance(result, JSONResponse) else partial_file(result, session["fields"])
        headers = {"Range": f"bytes=0-{len(data) - 1}"} if data else {}
        return Response(status_code=308, headers=headers)

    @api.post("/drive/v3/files")
    async def create(request: Request):
        return await finish(request, None)

    @api.patch("/drive/v3/files/{file_id}")
    async def update(file_id: str, request: Request):
        return await finish(request, file_id)

    @api.put("/drive/v3/files")
    async def put_create(request: Request):
        return await chunk(request)

    @api.put("/drive/v3/files/{file_id}")
    async def put_update(file_id: str, request: Request):
        return await chunk(request)

    return {"/upload": api}


def demo_connections(base_url: str, creds: SimCredentials, teams_channels: dict) -> dict[str, dict]:
    """``google_drive_default``: a Google connection (service account, a member of the shared drive)."""
    from devtools.simulators.tls import endpoint_for

    tls = endpoint_for(base_url)
    if tls is None:
        return {}
    return {"google_drive_default": google_connection(tls.base_url, tls.ca_bundle, creds,
                                                      ["https://www.googleapis.com/auth/drive"],
                                                      api_endpoint=f"{tls.base_url}/drive/v3/")}


def file_tree(state: SimState) -> list[dict[str, Any]]:
    """Every non-folder file, for tests and the demo summary."""
    return [_view(f) | {"content": f["content"]} for f in _files(state).values() if f["mimeType"] != FOLDER_MIME]

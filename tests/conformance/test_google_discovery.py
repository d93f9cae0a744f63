"""Gmail v1 and Drive v3 against Google's own discovery documents, as shipped in
google-api-python-client (``googleapiclient/discovery_cache/documents/gmail.v1.json`` and
``drive.v3.json``; the project builds its clients from the same static documents).

Two directions:

- the simulators' replies to the project's calls (``users.messages.send`` / ``list``,
  ``files.list`` / ``create`` / ``update``) validate against the method's response schema: every
  field is a property of the schema, of its type (``int64`` travels as a string), nested schemas
  followed through ``$ref``; the fields the project reads are there;
- the project's requests, as the simulators received them, are documented methods: the path
  matches a method's (or its media upload's) path, the HTTP method is that method's, and every
  query parameter is one of its parameters or a global one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import googleapiclient
import pytest

from devtools.simulators import drive as drive_sim
from devtools.simulators import gmail as gmail_sim
from devtools.simulators.googleauth import REQUEST_LOG_KEY
from msp_reports.delivery.google import DriveArchiveChannel, GmailApiChannel, GmailHook

DOCS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
GMAIL = json.loads((DOCS / "gmail.v1.json").read_text())
DRIVE = json.loads((DOCS / "drive.v3.json").read_text())
SENDER = "reports@northwind-msp.example"
UPLOAD_PARAMETERS = {"uploadType", "upload_id"}  # the media-upload protocol's own


def method(doc: dict, dotted: str) -> dict:
    node: dict = doc
    *resources, name = dotted.split(".")
    for resource in resources:
        node = node["resources"][resource]
    return node["methods"][name]


def validate(value, schema: dict, doc: dict, where: str = "$") -> None:
    """``value`` against a discovery schema (types, properties, items, additionalProperties)."""
    if "$ref" in schema:
        return validate(value, doc["schemas"][schema["$ref"]], doc, where)
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                validate(item, props[key], doc, f"{where}.{key}")
            else:
                assert extra is not None, f"{where}.{key}: not a property of the schema"
                validate(item, extra, doc, f"{where}.{key}")
    elif kind == "array":
        assert isinstance(value, list), f"{where}: not an array"
        for n, item in enumerate(value):
            validate(item, schema["items"], doc, f"{where}[{n}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: {value!r} is not a string ({schema.get('format', '')})"
        if schema.get("format") == "int64":
            assert re.fullmatch(r"-?\d+", value), f"{where}: {value!r} is not an int64 string"
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: not an integer"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: not a boolean"


def response_schema(doc: dict, dotted: str) -> dict:
    return doc["schemas"][method(doc, dotted)["response"]["$ref"]]


def documented(doc: dict, request: dict) -> str:
    """The method that documents ``request`` (its name), or an assertion error saying why none does."""
    path = request["path"]
    candidates = []

    def walk(node: dict, prefix: str = "") -> None:
        for name, m in node.get("methods", {}).items():
            candidates.append((prefix + name, m))
        for name, r in node.get("resources", {}).items():
            walk(r, f"{prefix}{name}.")

    walk(doc)
    for name, m in candidates:
        if m["httpMethod"] != request["method"] and not (request["method"] == "PUT" and m.get("supportsMediaUpload")):
            continue
        paths = [doc["servicePath"] + m.get("flatPath", m["path"])]
        if m.get("supportsMediaUpload"):
            paths += [p["path"] for p in m["mediaUpload"]["protocols"].values()]
        for template in paths:
            pattern = "^/?" + re.sub(r"\{[^}]+\}", "[^/]+", template.lstrip("/")) + "$"
            if re.search(pattern.replace("^/?", "/"), path):
                allowed = set(m.get("parameters", {})) | set(doc["parameters"]) | UPLOAD_PARAMETERS
                unknown = set(request["query"]) - allowed
                assert not unknown, f"{name}: undocumented parameters {sorted(unknown)}"
                return name
    raise AssertionError(f"no documented method for {request['method']} {path}")


@pytest.fixture
def google(sim, use_connection):
    for module in (gmail_sim, drive_sim):
        for conn_id, conn in module.demo_connections(sim.base_url, sim.creds, {}).items():
            use_connection(conn_id, conn)
    with sim.state.lock:
        sim.state.extra[REQUEST_LOG_KEY] = []
    return sim


def test_gmail_send_and_lookup_replies_and_requests_are_documented(google):
    channel = GmailApiChannel("gmail_default", SENDER, ["cto@acme.example"], "Weekly report", "<p>Hi</p>",
                              b"%PDF-1.7 test", "ACME.pdf", "northwind-msp.example")
    receipt = channel.send("conformance-key-1")
    service = GmailHook("gmail_default", mailbox=SENDER).get_conn()
    sent = service.users().messages().send(userId="me", body={"raw": "VG86IGFAYi5leGFtcGxlCgpoaQ"}).execute()
    validate(sent, response_schema(GMAIL, "users.messages.send"), GMAIL)
    assert {"id", "threadId"} <= set(sent) and receipt["gmail_id"]
    found = service.users().messages().list(userId="me", q=f"rfc822msgid:{channel.message_id('conformance-key-1')}").execute()
    validate(found, response_schema(GMAIL, "users.messages.list"), GMAIL)
    nothing = service.users().messages().list(userId="me", q="rfc822msgid:<none@x>").execute()
    validate(nothing, response_schema(GMAIL, "users.messages.list"), GMAIL)
    assert channel.lookup("conformance-key-1")["gmail_id"] == receipt["gmail_id"]
    names = {documented(GMAIL, r) for r in google.state.extra[REQUEST_LOG_KEY]}
    assert names == {"users.messages.send", "users.messages.list"}


@pytest.mark.parametrize("size", [2_000, 6 * 1024 * 1024], ids=["multipart", "resumable"])
def test_drive_archive_replies_and_requests_are_documented(google, size):
    channel = DriveArchiveChannel("google_drive_default", drive_sim.folder_id("ACME"), drive_sim.SHARED_DRIVE_ID,
                                  f"ACME_conformance_{size}.pdf", b"%PDF" + b"x" * size, snapshot=b'{"a": 1}')
    first = channel.send("k")
    again = channel.send("k")  # found by name, md5Checksum and size: nothing uploaded
    assert again["action"] == "already there" and again["remote_id"] == first["remote_id"]
    channel.pdf += b"changed"
    assert channel.send("k")["action"] == "replaced"
    names = {documented(DRIVE, r) for r in google.state.extra[REQUEST_LOG_KEY]}
    assert names == {"files.list", "files.create", "files.update"}


def test_drive_replies_validate_and_honour_fields(google):
    from msp_reports.delivery.google import ArchiveDriveHook
    from googleapiclient.http import MediaInMemoryUpload

    files = ArchiveDriveHook(gcp_conn_id="google_drive_default").get_conn().files()
    made = files.create(body={"name": "fields.json", "parents": [drive_sim.folder_id("BRVO")]},
                        media_body=MediaInMemoryUpload(b"{}", mimetype="application/json"),
                        supportsAllDrives=True, fields="id, name, size, md5Checksum").execute()
    validate(made, response_schema(DRIVE, "files.create"), DRIVE)
    assert set(made) == {"id", "name", "size", "md5Checksum"}  # a partial response: the fields asked for
    default = files.create(body={"name": "default.json", "parents": [drive_sim.folder_id("BRVO")]},
                           media_body=MediaInMemoryUpload(b"{}", mimetype="application/json"),
                           supportsAllDrives=True).execute()
    assert set(default) == {"kind", "id", "name", "mimeType"}  # Drive v3's default file fields
    listed = files.list(q=f"'{drive_sim.folder_id('BRVO')}' in parents and trashed = false", supportsAllDrives=True,
                        includeItemsFromAllDrives=True, corpora="drive", driveId=drive_sim.SHARED_DRIVE_ID,
                        fields="files(id, webViewLink, size)").execute()
    validate(listed, response_schema(DRIVE, "files.list"), DRIVE)
    assert listed["files"] and all(set(f) == {"id", "webViewLink", "size"} for f in listed["files"])
    everything = files.list(q=f"'{drive_sim.folder_id('BRVO')}' in parents", supportsAllDrives=True,
                            includeItemsFromAllDrives=True, corpora="drive", driveId=drive_sim.SHARED_DRIVE_ID,
                            fields="*").execute()
    validate(everything, response_schema(DRIVE, "files.list"), DRIVE)


def test_the_projects_fields_are_file_properties():
    props = DRIVE["schemas"]["File"]["properties"]
    assert all(f.strip() in props for f in DriveArchiveChannel.fields.split(","))

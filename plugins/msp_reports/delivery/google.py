"""Gmail API email and Google Drive archive, through the Google provider's hooks.

Credentials come from a ``google_cloud_platform`` Airflow connection (``GoogleBaseHook``): a
service-account key in ``keyfile_dict`` (or ``key_path``, or workload identity) and ``scope``.
Two optional extras this project reads: ``api_endpoint`` (handed to the hook's own
``get_client_options(api_endpoint_override=...)``: a private endpoint, or the simulator) and
``ca_certs`` (a CA bundle for httplib2, for a TLS-inspecting proxy or the simulator's
certificate). The API clients are built with googleapiclient's static discovery documents.
Only the provider's public API is used (``get_credentials``, ``get_client_options``, ``extras``,
``get_field``, ``num_retries``): the provider is not pinned, and its private members may change in
any release (``tests/delivery/test_google_public_api.py`` keeps it so).

- **Gmail API** (``GmailApiChannel``): the service account acts as the reports mailbox through
  domain-wide delegation (``credentials.with_subject(sender)``; scopes ``gmail.send`` and
  ``gmail.readonly`` granted in the Workspace admin console; the lookup below searches with
  ``q``, which Gmail refuses under ``gmail.metadata`` alone). ``users.messages.send`` with
  ``raw`` = base64url of the RFC 822 message (cover note as HTML, the PDF attached) whose
  ``Message-ID`` derives from the idempotency key. It is sent once (``num_retries=0``: a send is
  not idempotent); after a crash, ``users.messages.list`` with ``q=rfc822msgid:<Message-ID>``
  says whether it went.
- **Drive** (``DriveArchiveChannel``): the customer's folder (``folder_id``) in a shared drive
  (``drive_id``; every call says ``supportsAllDrives=true``), the snapshot JSON then the PDF under
  the date-stamped name. Drive lets two files share a name, so every upload looks first
  (``files.list`` with ``q``): the same ``md5Checksum`` and size means it is already there; a
  different file under that name gets its content replaced (``files.update``), never a second
  file. Uploads over 5 MB are resumable (chunks with ``Content-Range``). The service account
  needs to be a Content manager of the shared drive; scope ``drive``.
"""

from __future__ import annotations

import base64
import email.policy
from dataclasses import dataclass
from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook, get_field
from airflow.providers.google.suite.hooks.drive import GoogleDriveHook

from msp_reports.delivery.archive import ArchiveFiles
from msp_reports.delivery.email import ReportEmail, report_message
from msp_reports.delivery.hashes import md5_hex

RFC822_POLICY = email.policy.SMTP.clone(max_line_length=998)  # CRLF; never fold the long Message-ID
RESUMABLE_OVER = 5 * 1024 * 1024
UPLOAD_CHUNK = 2 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require


def drive_query_literal(value: str) -> str:
    r"""``value`` inside a Drive ``q=`` string literal: ``'`` and ``\`` escaped with a backslash,
    as the Drive query language documents (a customer or file name may hold a quote)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class _ProjectEndpoint:
    """Endpoint and CA bundle from the connection's extras, for hooks built on ``GoogleBaseHook``."""

    def client_options(self: Any):
        return self.get_client_options(api_endpoint_override=get_field(self.extras, "api_endpoint"))

    def authorized_http(self: Any):
        """httplib2 with the hook's credentials, trusting extra ``ca_certs`` when it is set."""
        import google_auth_httplib2
        from googleapiclient.http import build_http, set_user_agent

        http = build_http()  # keeps 308 (resumable upload) out of httplib2's redirects
        ca_certs = get_field(self.extras, "ca_certs")
        if ca_certs:
            http.ca_certs = ca_certs
        http = set_user_agent(http, "msp-weekly-report (airflow)")
        return google_auth_httplib2.AuthorizedHttp(self.get_credentials(), http=http)

    def build_service(self: Any, name: str, version: str):
        from googleapiclient.discovery import build

        return build(name, version, http=self.authorized_http(), cache_discovery=False,
                     static_discovery=True, client_options=self.client_options())


class GmailHook(_ProjectEndpoint, GoogleBaseHook):
    """Gmail API as one Workspace user (domain-wide delegation).

    :param gcp_conn_id: the Google connection holding the service account.
    :param mailbox: the user to act as (the reports mailbox).
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "gmail_default"
    conn_type = "google_cloud_platform"
    hook_name = "Gmail API"

    def __init__(self, gcp_conn_id: str = default_conn_name, *, mailbox: str) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id)
        self.mailbox = mailbox
        self._service = None

    def get_credentials(self):
        return super().get_credentials().with_subject(self.mailbox)

    def get_conn(self):
        if self._service is None:
            self._service = self.build_service("gmail", "v1")
        return self._service


class ArchiveDriveHook(_ProjectEndpoint, GoogleDriveHook):
    """The provider's Drive hook, built against the connection's endpoint and CA bundle."""

    _service: Any = None

    def get_conn(self) -> Any:
        if self._service is None:
            self._service = self.build_service("drive", self.api_version)
        return self._service


@dataclass
class GmailApiChannel(ReportEmail):
    """Through the Gmail API (``users.messages.send``): ``conn_id`` is the Google connection."""

    def send(self, idempotency_key: str) -> dict:
        message = report_message(self.sender, self.to, self.subject, self.cover_html, self.pdf, self.filename,
                                 self.message_id(idempotency_key), idempotency_key)
        raw = base64.urlsafe_b64encode(message.as_bytes(policy=RFC822_POLICY)).decode("ascii")
        service = GmailHook(self.conn_id, mailbox=self.sender).get_conn()
        sent = service.users().messages().send(userId="me", body={"raw": raw}).execute(num_retries=0)
        return {"remote_id": self.message_id(idempotency_key), "gmail_id": sent["id"], "to": self.to,
                "attachment": self.filename, "via": "gmail_api"}

    def lookup(self, idempotency_key: str) -> dict | None:
        hook = GmailHook(self.conn_id, mailbox=self.sender)
        found = hook.get_conn().users().messages().list(
            userId="me", q=f"rfc822msgid:{self.message_id(idempotency_key)}").execute(num_retries=hook.num_retries)
        messages = found.get("messages", [])
        if not messages:
            return None
        return {"remote_id": self.message_id(idempotency_key), "gmail_id": messages[0]["id"], "to": self.to,
                "via": "gmail_api", "found_by": "q=rfc822msgid"}


@dataclass
class DriveArchiveChannel(ArchiveFiles):
    """:param folder_id: the customer's folder; ``drive_id`` the shared drive it is in (or None)."""

    conn_id: str
    folder_id: str
    drive_id: str | None
    filename: str
    pdf: bytes
    snapshot: bytes | None = None
    fields: str = "id, name, md5Checksum, size, webViewLink"

    def _find(self, hook: ArchiveDriveHook, name: str) -> dict | None:
        query = (f"name = {drive_query_literal(name)} and "
                 f"{drive_query_literal(self.folder_id)} in parents and trashed = false")
        scope: dict[str, Any] = {"corpora": "drive", "driveId": self.drive_id} if self.drive_id else {}
        found = hook.get_conn().files().list(
            q=query, spaces="drive", fields=f"files({self.fields})", supportsAllDrives=True,
            includeItemsFromAllDrives=True, orderBy="modifiedTime desc", **scope).execute(num_retries=hook.num_retries)
        files = found.get("files", [])
        return files[0] if files else None

    def _put(self, hook: ArchiveDriveHook, name: str, data: bytes, mimetype: str) -> dict:
        from googleapiclient.http import MediaInMemoryUpload

        existing = self._find(hook, name)
        if existing and existing.get("md5Checksum") == md5_hex(data) and int(existing.get("size", -1)) == len(data):
            return existing | {"action": "already there"}
        media = MediaInMemoryUpload(data, mimetype=mimetype, resumable=len(data) > RESUMABLE_OVER,
                                    chunksize=UPLOAD_CHUNK)
        files = hook.get_conn().files()
        if existing:
            request = files.update(fileId=existing["id"], media_body=media, supportsAllDrives=True, fields=self.fields)
        else:
            request = files.create(body={"name": name, "parents": [self.folder_id], "mimeType": mimetype},
                                   media_body=media, supportsAllDrives=True, fields=self.fields)
        if not media.resumable():
            return request.execute(num_retries=0) | {"action": "replaced" if existing else "created"}
        response = None
        while response is None:
            _, response = request.next_chunk(num_retries=0)
        return response | {"action": "replaced" if existing else "created"}

    def send(self, idempotency_key: str) -> dict:
        hook = ArchiveDriveHook(gcp_conn_id=self.conn_id)
        files = {name: self._put(hook, name, data, "application/pdf" if name == self.filename else "application/json")
                 for name, data in self.files().items()}
        pdf = files[self.filename]
        return {"remote_id": pdf["id"], "web_url": pdf.get("webViewLink"), "via": "drive", "size": len(self.pdf),
                "files": {n: f["id"] for n, f in files.items()}, "action": pdf["action"],
                "path": "resumable" if len(self.pdf) > RESUMABLE_OVER else "multipart"}

    def lookup(self, idempotency_key: str) -> dict | None:
        found = self._find(ArchiveDriveHook(gcp_conn_id=self.conn_id), self.filename)
        if not found or found.get("md5Checksum") != md5_hex(self.pdf) or int(found.get("size", -1)) != len(self.pdf):
            return None
        return {"remote_id": found["id"], "web_url": found.get("webViewLink"), "via": "drive", "size": len(self.pdf),
                "found_by": "name in folder, md5Checksum and size"}

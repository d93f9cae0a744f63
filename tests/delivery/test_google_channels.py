"""Gmail API and Google Drive through the Google provider's hooks (service-account JWT flow,
static discovery, ``api_endpoint`` and CA bundle from the connection) against the simulators."""

from __future__ import annotations

import base64
import email
import email.policy
import json

import pytest

from tests.factories import WEEK_OF
from tests.delivery.conftest import MSP_SENDER

LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}


def _gmail(sim):
    return sim.state.extra["gmail"]


def test_gmail_api_sends_one_raw_rfc822_message_with_the_pdf(sim, make_case):
    case = make_case({"email": {"via": "gmail_api"}, "teams": WEBHOOK, "archive": LOCAL})
    before = len(_gmail(sim).get(MSP_SENDER, [])) if "gmail" in sim.state.extra else 0
    out = case.deliver("email")
    sent = _gmail(sim)[MSP_SENDER][before:]
    assert len(sent) == 1  # acting as the reports mailbox (domain-wide delegation: the JWT's sub)
    msg = email.message_from_bytes(sent[0]["raw"], policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    body, att = list(msg.iter_parts())
    assert body.get_content_type() == "multipart/alternative"  # the cover note as plain text and HTML
    text, html = list(body.iter_parts())
    assert text.get_content_type() == "text/plain" and case.customer.cto.name in text.get_content()
    assert html.get_content_type() == "text/html" and case.customer.cto.name in html.get_content()
    assert "<p>" not in text.get_content()
    assert att.get_content_type() == "application/pdf"
    assert att.get_filename() == f"ACME_weekly-report_{WEEK_OF}.pdf" and att.get_content() == case.pdf
    assert att["Content-Transfer-Encoding"] == "base64"
    assert sorted(a.strip() for a in msg["To"].split(",")) == case.customer.recipients
    assert msg["From"] == MSP_SENDER
    key = case.receipt("email")["idempotency_key"]
    assert msg["Message-ID"] == f"<{key}@northwind-msp.example>" == out["remote_id"]
    assert msg["X-Idempotency-Key"] == key
    assert case.receipt("email")["receipt"]["gmail_id"] == sent[0]["id"]


def test_gmail_lookup_searches_rfc822msgid(sim, make_case):
    from msp_reports.delivery.google import GmailApiChannel

    case = make_case({"email": {"via": "gmail_api"}, "teams": WEBHOOK, "archive": LOCAL})
    case.deliver("email")
    key = case.receipt("email")["idempotency_key"]
    channel = GmailApiChannel("gmail_default", MSP_SENDER, case.customer.recipients, "s", "<p/>", b"", "x.pdf",
                              "northwind-msp.example")
    assert channel.lookup(key)["gmail_id"] == case.receipt("email")["receipt"]["gmail_id"]
    assert channel.lookup(key + ".resend1") is None


def test_gmail_search_under_the_metadata_scope_alone_is_refused_as_gmail_does(sim, delivery_conns, use_connection):
    """The lookup needs ``gmail.readonly``: Gmail refuses ``q`` to a ``gmail.metadata`` token."""
    from googleapiclient.errors import HttpError

    from msp_reports.delivery.google import GmailHook

    conn = json.loads(json.dumps(delivery_conns["gmail_default"]))
    conn["extra"]["scope"] = "https://www.googleapis.com/auth/gmail.send,https://www.googleapis.com/auth/gmail.metadata"
    use_connection("gmail_metadata_only", conn)
    service = GmailHook("gmail_metadata_only", mailbox=MSP_SENDER).get_conn()
    with pytest.raises(HttpError) as err:
        service.users().messages().list(userId="me", q="rfc822msgid:x").execute(num_retries=0)
    assert err.value.resp.status == 403 and "Metadata scope does not support 'q' parameter" in str(err.value)
    assert "resultSizeEstimate" in service.users().messages().list(userId="me").execute(num_retries=0)


def test_gmail_without_domain_wide_delegation_is_refused_as_gmail_does(sim, delivery_conns):
    from googleapiclient.errors import HttpError

    from msp_reports.delivery.google import GmailHook

    class NoDelegation(GmailHook):
        def get_credentials(self):  # the plain service account, no sub
            return super(GmailHook, self).get_credentials()

    service = NoDelegation("gmail_default", mailbox=MSP_SENDER).get_conn()
    with pytest.raises(HttpError) as err:
        service.users().messages().list(userId="me", q="rfc822msgid:x").execute(num_retries=0)
    assert err.value.resp.status == 400 and "Precondition check failed" in str(err.value)


def _drive_files(sim, folder_id):
    from devtools.simulators.drive import file_tree

    return [f for f in file_tree(sim.state) if folder_id in f["parents"]]


@pytest.mark.parametrize("code, size, path", [("ECHO", 0, "multipart"), ("FXTR", 6 * 1024 * 1024, "resumable")])
def test_drive_archive_puts_snapshot_and_pdf_in_the_customers_shared_drive_folder(sim, make_case, code, size, path):
    from devtools.simulators.drive import SHARED_DRIVE_ID, folder_id

    archive = {"via": "drive", "drive_id": SHARED_DRIVE_ID, "folder_id": folder_id(code), "folder": "Reports"}
    case = make_case({"teams": {"via": "workflow", "conn_id": f"teams_{code.lower()}"}, "archive": archive},
                     pdf_bytes=size, code=code)
    start = len(sim.state.extra.get("drive_upload_log", []))
    out = case.deliver("archive")
    uploads = sim.state.extra["drive_upload_log"][start:]
    creates = [u for u in uploads if u["method"] == "POST"]
    assert [u["path"] for u in creates] == ["/upload/drive/v3/files"] * 2  # snapshot, then the PDF
    assert all(u["query"]["supportsAllDrives"] == "true" for u in uploads if u["method"] == "POST")
    assert creates[0]["query"]["uploadType"] == "multipart"
    assert creates[0]["content-type"].startswith("multipart/related; boundary=")
    if path == "multipart":
        assert creates[1]["query"]["uploadType"] == "multipart" and creates[1]["bytes"] > len(case.pdf)
    else:
        assert creates[1]["query"]["uploadType"] == "resumable"
        assert creates[1]["content-type"].startswith("application/json")  # the metadata, then the chunks
        chunks = [u for u in uploads if u["method"] == "PUT"]
        assert len(chunks) >= 3 and all(u["query"]["upload_id"] for u in chunks)
        assert [u["content-range"] for u in chunks] == [
            f"bytes {a}-{min(a + 2 * 1024 * 1024, len(case.pdf)) - 1}/{len(case.pdf)}"
            for a in range(0, len(case.pdf), 2 * 1024 * 1024)]
    files = {f["name"]: f for f in _drive_files(sim, folder_id(code))}
    name = f"{code}_weekly-report_{WEEK_OF}"
    assert set(files) == {f"{name}.pdf", f"{name}.snapshot.json"}
    assert files[f"{name}.pdf"]["content"] == case.pdf and files[f"{name}.pdf"]["mimeType"] == "application/pdf"
    assert files[f"{name}.snapshot.json"]["content"] == case.snapshot
    assert files[f"{name}.pdf"]["driveId"] == SHARED_DRIVE_ID
    assert out["remote_id"] == files[f"{name}.pdf"]["id"]
    receipt = case.receipt("archive")["receipt"]
    assert receipt["path"] == path and receipt["web_url"] == files[f"{name}.pdf"]["webViewLink"]
    # a resend of the same PDF finds it by name and checksum: still one file of each
    case.deliver("archive", resend=True)
    assert len(_drive_files(sim, folder_id(code))) == 2
    assert case.receipt("archive")["receipt"]["action"] == "already there"
    # another PDF under the same name replaces the content of the same file (Drive would keep both)
    from msp_reports.delivery.google import DriveArchiveChannel

    other = case.pdf + b"%% corrected\n"
    again = DriveArchiveChannel("google_drive_default", folder_id(code), SHARED_DRIVE_ID, f"{name}.pdf", other).send("k")
    assert again["action"] == "replaced" and again["remote_id"] == out["remote_id"]
    assert {f["name"]: f["content"] for f in _drive_files(sim, folder_id(code))}[f"{name}.pdf"] == other
    assert len(_drive_files(sim, folder_id(code))) == 2


def test_drive_requests_say_supports_all_drives_and_the_shared_drive_hides_files_otherwise(sim, delivery_conns):
    from msp_reports.delivery.google import ArchiveDriveHook
    from devtools.simulators.drive import SHARED_DRIVE_ID, folder_id

    service = ArchiveDriveHook(gcp_conn_id="google_drive_default").get_conn()
    q = f"'{folder_id('ACME')}' in parents and trashed = false"
    hidden = service.files().list(q=f"name = 'ACME' and '{SHARED_DRIVE_ID}' in parents").execute(num_retries=0)
    assert hidden["files"] == []  # without supportsAllDrives a shared drive's items are invisible
    seen = service.files().list(q=f"name = 'ACME' and '{SHARED_DRIVE_ID}' in parents", supportsAllDrives=True,
                                includeItemsFromAllDrives=True, corpora="drive",
                                driveId=SHARED_DRIVE_ID).execute(num_retries=0)
    assert [f["id"] for f in seen["files"]] == [folder_id("ACME")]
    assert "files" in service.files().list(q=q, supportsAllDrives=True, includeItemsFromAllDrives=True,
                                           corpora="drive", driveId=SHARED_DRIVE_ID).execute(num_retries=0)

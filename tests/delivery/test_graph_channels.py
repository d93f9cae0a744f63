"""Outlook, Teams and SharePoint through the Azure provider's Graph hook, against the Graph
simulator over TLS: request shapes as Graph documents them, the >3/4 MB upload-session paths,
and the lookups that settle an interrupted send."""

from __future__ import annotations

import base64
import json

import pytest

from tests.factories import WEEK_OF
from tests.delivery.conftest import CHANNEL, MSP_SENDER, SP_DRIVE, TEAM, graph_world

LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}


def _log_since(sim, n):
    return graph_world(sim).log[n:]


def test_outlook_small_report_is_one_sendmail_with_the_pdf_inline(sim, make_case):
    case = make_case({"email": {"via": "graph"}, "teams": WEBHOOK, "archive": LOCAL})
    start = len(graph_world(sim).log)
    out = case.deliver("email")
    calls = _log_since(sim, start)
    assert [(c["method"], c["path"]) for c in calls] == [
        ("POST", f"/graph/v1.0/users/{MSP_SENDER}/sendMail")]
    body = calls[0]["json"]
    assert calls[0]["headers"]["authorization"] == "Bearer …"
    assert body["saveToSentItems"] is True
    msg = body["message"]
    assert msg["toRecipients"] == [{"emailAddress": {"address": a}} for a in case.customer.recipients]
    assert msg["body"]["contentType"] == "HTML" and case.customer.cto.name in msg["body"]["content"]
    [att] = msg["attachments"]
    assert att["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert att["name"] == f"ACME_weekly-report_{WEEK_OF}.pdf" and att["contentType"] == "application/pdf"
    assert base64.b64decode(att["contentBytes"]) == case.pdf
    key = case.receipt("email")["idempotency_key"]
    assert msg["internetMessageId"] == f"<{key}@northwind-msp.example>" == out["remote_id"]
    assert {"name": "X-Idempotency-Key", "value": key} in msg["internetMessageHeaders"]
    assert case.receipt("email")["receipt"]["via"] == "graph"


def test_outlook_large_report_goes_by_draft_upload_session_and_send(sim, make_case):
    case = make_case({"email": {"via": "graph"}, "teams": WEBHOOK, "archive": LOCAL}, pdf_bytes=5 * 1024 * 1024)
    assert len(case.pdf) > 4 * 1024 * 1024
    start = len(graph_world(sim).log)
    case.deliver("email")
    calls = _log_since(sim, start)
    steps = [(c["method"], c["path"].split("/messages/")[-1] if "/messages/" in c["path"] else c["path"]) for c in calls]
    draft_id = graph_world(sim).sent[MSP_SENDER][-1]["id"]
    assert steps[0] == ("POST", f"/graph/v1.0/users/{MSP_SENDER}/messages")
    assert "attachments" not in calls[0]["json"]  # the draft carries no inline attachment
    assert steps[1] == ("POST", f"{draft_id}/attachments/createUploadSession")
    assert calls[1]["json"] == {"AttachmentItem": {"attachmentType": "file", "name": f"ACME_weekly-report_{WEEK_OF}.pdf",
                                                   "size": len(case.pdf), "contentType": "application/pdf"}}
    puts = [c for c in calls if c["method"] == "PUT"]
    assert len(puts) >= 2 and all("authorization" not in c["headers"] for c in puts)  # pre-authorised URL
    ranges = [c["headers"]["content-range"] for c in puts]
    assert ranges[0].startswith("bytes 0-") and ranges[-1].endswith(f"-{len(case.pdf) - 1}/{len(case.pdf)}")
    assert steps[-1] == ("POST", f"{draft_id}/send")
    sent = graph_world(sim).sent[MSP_SENDER][-1]
    assert base64.b64decode(sent["attachments"][0]["contentBytes"]) == case.pdf
    assert case.receipt("email")["receipt"]["path"] == "draft+uploadSession"


def test_outlook_lookup_finds_the_message_in_sent_items_by_internet_message_id(sim, make_case):
    from msp_reports.delivery.graph import GraphMailChannel

    case = make_case({"email": {"via": "graph"}, "teams": WEBHOOK, "archive": LOCAL})
    case.deliver("email")
    key = case.receipt("email")["idempotency_key"]
    channel = GraphMailChannel("msgraph_default", MSP_SENDER, case.customer.recipients, "s", "<p>x</p>", case.pdf,
                               "x.pdf", "northwind-msp.example")
    start = len(graph_world(sim).log)
    found = channel.lookup(key)
    [call] = _log_since(sim, start)
    assert call["path"] == f"/graph/v1.0/users/{MSP_SENDER}/mailFolders/sentitems/messages"
    assert call["query"]["$filter"] == f"internetMessageId eq '<{key}@northwind-msp.example>'"
    assert found["remote_id"] == f"<{key}@northwind-msp.example>"
    assert channel.lookup(key + ".other") is None


def test_teams_graph_post_is_an_adaptive_card_attachment_and_can_be_found_again(sim, make_case):
    from msp_reports.delivery.graph import GraphTeamsChannel, attachment_id

    teams = {"via": "graph", "team_id": TEAM, "channel_id": CHANNEL + "post"}
    case = make_case({"teams": teams, "archive": LOCAL})
    start = len(graph_world(sim).log)
    out = case.deliver("teams")
    [call] = _log_since(sim, start)
    assert call["method"] == "POST"
    assert call["path"] == f"/graph/v1.0/teams/{TEAM}/channels/{CHANNEL}post/messages"
    key = case.receipt("teams")["idempotency_key"]
    [att] = call["json"]["attachments"]
    assert att["id"] == attachment_id(key)
    assert call["json"]["body"] == {"contentType": "html", "content": f'<attachment id="{att["id"]}"></attachment>'}
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = json.loads(att["content"])  # Graph takes the card as a JSON string
    assert card["type"] == "AdaptiveCard" and case.customer.name in json.dumps(card)
    posted = graph_world(sim).channel_messages[(TEAM, CHANNEL + "post")]
    assert [m["id"] for m in posted] == [out["remote_id"]]
    channel = GraphTeamsChannel("msgraph_default", TEAM, CHANNEL + "post", card)
    assert channel.lookup(key)["remote_id"] == out["remote_id"]
    assert channel.lookup(key + ".resend1") is None


@pytest.mark.parametrize("size, path", [(0, "simple"), (5 * 1024 * 1024, "uploadSession")])
def test_sharepoint_archive_puts_pdf_and_snapshot_with_explicit_conflict_behaviour(sim, make_case, size, path):
    folder = f"Acme Manufacturing Ltd/Reports/{path}"
    case = make_case({"teams": WEBHOOK, "archive": {"via": "sharepoint", "drive_id": SP_DRIVE, "folder": folder}},
                     pdf_bytes=size)
    start = len(graph_world(sim).log)
    out = case.deliver("archive")
    calls = _log_since(sim, start)
    name = f"ACME_weekly-report_{WEEK_OF}"
    quoted = "Acme%20Manufacturing%20Ltd/Reports/" + path
    assert (calls[0]["method"], calls[0]["path"]) == (
        "PUT", f"/graph/v1.0/drives/{SP_DRIVE}/root:/{folder}/{name}.snapshot.json:/content")
    assert calls[0]["query"] == {"@microsoft.graph.conflictBehavior": "replace"}
    assert calls[0]["headers"]["content-type"] == "application/json"
    if path == "simple":
        assert (calls[1]["method"], calls[1]["path"]) == (
            "PUT", f"/graph/v1.0/drives/{SP_DRIVE}/root:/{folder}/{name}.pdf:/content")
        assert calls[1]["query"] == {"@microsoft.graph.conflictBehavior": "replace"}
        assert calls[1]["headers"]["content-type"] == "application/pdf" and calls[1]["bytes"] == len(case.pdf)
    else:
        assert (calls[1]["method"], calls[1]["path"]) == (
            "POST", f"/graph/v1.0/drives/{SP_DRIVE}/root:/{folder}/{name}.pdf:/createUploadSession")
        assert calls[1]["json"] == {"item": {"@microsoft.graph.conflictBehavior": "replace", "name": f"{name}.pdf"}}
        puts = calls[2:]
        assert len(puts) >= 2 and all("authorization" not in c["headers"] for c in puts)
        assert all(c["bytes"] % (320 * 1024) == 0 for c in puts[:-1])  # 320 KiB multiples, as SharePoint requires
    item = graph_world(sim).drives[SP_DRIVE][f"{folder}/{name}.pdf"]
    assert item["content"] == case.pdf and out["remote_id"] == item["id"]
    assert graph_world(sim).drives[SP_DRIVE][f"{folder}/{name}.snapshot.json"]["content"] == case.snapshot
    receipt = case.receipt("archive")["receipt"]
    assert receipt["path"] == path and receipt["web_url"].endswith(f"{quoted}/{name}.pdf".replace(" ", "%20"))


def test_sharepoint_lookup_compares_size_and_quickxorhash(sim, make_case):
    from msp_reports.delivery.graph import SharePointArchiveChannel

    folder = "Acme/lookup"
    case = make_case({"teams": WEBHOOK, "archive": {"via": "sharepoint", "drive_id": SP_DRIVE, "folder": folder}})
    channel = SharePointArchiveChannel("msgraph_default", SP_DRIVE, folder, f"ACME_weekly-report_{WEEK_OF}.pdf",
                                       case.pdf)
    assert channel.lookup("k") is None  # nothing there yet (404 from Graph)
    case.deliver("archive")
    assert channel.lookup("k")["remote_id"] == case.receipt("archive")["remote_id"]
    channel.pdf = case.pdf[:-1] + bytes([case.pdf[-1] ^ 1])  # same size, other bytes
    assert channel.lookup("k") is None


def test_weekly_tab_is_added_then_pointed_at_each_weeks_archived_pdf(sim, make_case):
    channel_id = CHANNEL + "tab"
    teams = {"via": "graph", "team_id": TEAM, "channel_id": channel_id}
    archive = {"via": "sharepoint", "drive_id": SP_DRIVE, "folder": "Acme/tab"}
    case = make_case({"teams": teams, "archive": archive})
    from msp_reports import pipeline

    case.deliver("teams")
    assert pipeline.pin_tab(case.settings, case.item)["waiting_for"] == ["archive"]  # archive not there yet
    assert (TEAM, channel_id) not in graph_world(sim).tabs
    case.deliver("archive")  # the channels no longer touch the tab: the step after them does
    assert (TEAM, channel_id) not in graph_world(sim).tabs
    assert pipeline.pin_tab(case.settings, case.item)["pinned"] is True
    [tab] = graph_world(sim).tabs[(TEAM, channel_id)].values()
    url = case.receipt("archive")["receipt"]["web_url"]
    assert tab["displayName"] == "Weekly report" and tab["teamsApp"]["id"] == "com.microsoft.teamspace.tab.web"
    assert tab["configuration"]["contentUrl"] == url == tab["configuration"]["websiteUrl"]
    # next week: the same tab, updated (PATCH), not a second one
    from msp_reports.delivery.graph import pin_weekly_tab

    start = len(graph_world(sim).log)
    done = pin_weekly_tab("msgraph_default", TEAM, channel_id, url.replace("2026-11-16", "2026-11-23"), "e")
    assert done["action"] == "updated" and len(graph_world(sim).tabs[(TEAM, channel_id)]) == 1
    assert [c["method"] for c in _log_since(sim, start)] == ["GET", "PATCH"]
    assert tab["configuration"]["contentUrl"].endswith("2026-11-23.pdf")

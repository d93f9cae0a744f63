"""Graph (mail, Teams channel messages and tabs, SharePoint drive) through Microsoft's msgraph-sdk.

The SDK builds its own requests (its body casing, its URL forms) and parses every reply with its
generated models: each must parse with the fields the project relies on, no property the model
does not know, and every refusal must be Graph's error envelope (the SDK's ``ODataError``).
"""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest

from tests.conformance.microsoft import graph_error, graph_token, parse, run_graph, ssl_context, tls, unknown_properties

MAILBOX = "reports@northwind-msp.example"
DRIVE = "b!ConformanceDrive0123456789abcdefABCDEF"
TEAM = "c0f0c0f0-0000-4000-8000-00000000c0f0"
CHANNEL = "19:conformance0123456789abcdef@thread.tacv2"


@pytest.fixture
def team(sim):
    """A team where the reports app is installed with its RSC permissions."""
    from devtools.simulators.graph import install_app

    install_app(sim.state, TEAM)
    return TEAM


def _mail(subject: str, to: str = "cto@acme.example", *, message_id: str | None = None, pdf: bytes | None = None):
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.file_attachment import FileAttachment
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient

    msg = Message(subject=subject, body=ItemBody(content_type=BodyType.Html, content="<p>Weekly report</p>"),
                  to_recipients=[Recipient(email_address=EmailAddress(address=to))], internet_message_id=message_id)
    if pdf is not None:
        msg.attachments = [FileAttachment(odata_type="#microsoft.graph.fileAttachment", name="r.pdf",
                                          content_type="application/pdf", content_bytes=pdf)]
    return msg


def _last_json(sim) -> dict:
    from devtools.simulators.graph import graph_world

    return graph_world(sim.state).log[-1].get("json") or {}


# ---- mail ----------------------------------------------------------------------------------
def test_send_mail_accepts_the_sdks_body_casing_and_files_it_in_sent_items(sim):
    from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
        MessagesRequestBuilder,
    )
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    message_id = f"<{uuid.uuid4()}@northwind-msp.example>"

    async def work(client):
        await client.users.by_user_id(MAILBOX).send_mail.post(SendMailPostRequestBody(
            message=_mail("SDK casing", message_id=message_id, pdf=b"%PDF-1.4 tiny"), save_to_sent_items=True))
        sent_body = _last_json(sim)
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            filter=f"internetMessageId eq '{message_id}'", select=["id", "internetMessageId", "sentDateTime"])
        config = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration(query_parameters=query)
        found = await client.users.by_user_id(MAILBOX).mail_folders.by_mail_folder_id("sentitems").messages.get(config)
        return sent_body, found

    sent_body, found = run_graph(sim, work)
    assert set(sent_body) == {"Message", "SaveToSentItems"}  # how the SDK serialises sendMail
    [msg] = found.value
    assert msg.id and msg.internet_message_id == message_id and msg.sent_date_time is not None
    assert unknown_properties(found) == []


def test_large_mail_by_draft_upload_session_and_send_with_the_sdk(sim):
    from msgraph.generated.models.attachment_item import AttachmentItem
    from msgraph.generated.models.attachment_type import AttachmentType
    from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
        CreateUploadSessionPostRequestBody,
    )

    pdf = b"%PDF-1.4 " + bytes(700_000)

    async def work(client):
        draft = await client.users.by_user_id(MAILBOX).messages.post(_mail("draft path"))
        session = await client.users.by_user_id(MAILBOX).messages.by_message_id(draft.id).attachments \
            .create_upload_session.post(CreateUploadSessionPostRequestBody(attachment_item=AttachmentItem(
                attachment_type=AttachmentType.File, name="r.pdf", size=len(pdf), content_type="application/pdf")))
        return draft, session

    draft, session = run_graph(sim, work)
    assert draft.id and draft.is_draft is True and unknown_properties(draft) == []
    assert session.upload_url and session.next_expected_ranges == ["0-"] and session.expiration_date_time
    reply = httpx.put(session.upload_url, content=pdf, verify=ssl_context(sim),
                      headers={"Content-Range": f"bytes 0-{len(pdf) - 1}/{len(pdf)}"})
    assert reply.status_code == 201

    async def send(client):
        await client.users.by_user_id(MAILBOX).messages.by_message_id(draft.id).send.post()

    run_graph(sim, send)
    from devtools.simulators.graph import graph_world

    sent = graph_world(sim.state).sent[MAILBOX][-1]
    assert sent["id"] == draft.id and base64.b64decode(sent["attachments"][0]["contentBytes"]) == pdf


# ---- SharePoint / drive --------------------------------------------------------------------
def test_drive_upload_by_the_sdks_items_root_path_form_and_read_back(sim):
    content = b"%PDF-1.4 archived"
    path = f"root:/Conformance/{uuid.uuid4().hex}.pdf:"

    async def work(client):
        items = client.drives.by_drive_id(DRIVE).items
        put = await items.by_drive_item_id(path).content.put(content)
        by_path = await items.by_drive_item_id(path).get()
        by_id = await items.by_drive_item_id(put.id).get()
        return put, by_path, by_id

    put, by_path, by_id = run_graph(sim, work)
    from devtools.simulators.graph import quick_xor_hash

    for item in (put, by_path, by_id):
        assert item.id == put.id and item.size == len(content) and item.name.endswith(".pdf")
        assert item.file.hashes.quick_xor_hash == quick_xor_hash(content) and item.web_url
        assert unknown_properties(item) == []


def test_drive_upload_session_by_the_sdk(sim):
    from msgraph.generated.drives.item.items.item.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
        CreateUploadSessionPostRequestBody,
    )
    from msgraph.generated.models.drive_item_uploadable_properties import DriveItemUploadableProperties

    async def work(client):
        body = CreateUploadSessionPostRequestBody(item=DriveItemUploadableProperties(
            additional_data={"@microsoft.graph.conflictBehavior": "replace"}))
        return await client.drives.by_drive_id(DRIVE).items.by_drive_item_id("root:/Conformance/big.pdf:") \
            .create_upload_session.post(body)

    session = run_graph(sim, work)
    assert session.upload_url and session.next_expected_ranges == ["0-"]


def test_the_projects_drive_url_forms_answer_driveitems(sim):
    """The project's own requests (``/drives/{d}/root:/{path}:/content`` and ``…/root:/{path}``)
    answered with what the SDK's ``DriveItem`` parses."""
    from msgraph.generated.models.drive_item import DriveItem

    headers = {"Authorization": f"Bearer {graph_token(sim)}"}
    url = f"{tls(sim).base_url}/graph/v1.0/drives/{DRIVE}/root:/Conformance/project.json:"
    with httpx.Client(verify=ssl_context(sim), headers=headers) as http:
        put = http.put(url + "/content", params={"@microsoft.graph.conflictBehavior": "replace"}, content=b"{}",
                       headers={"Content-Type": "application/json"})
        got = http.get(url)
    assert put.status_code in (200, 201) and got.status_code == 200
    for reply in (put, got):
        item = parse(DriveItem, reply.content)
        assert item.id and item.size == 2 and item.file.hashes.quick_xor_hash and unknown_properties(item) == []


# ---- Teams ---------------------------------------------------------------------------------
def _card_message(attachment_id: str):
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.chat_message import ChatMessage
    from msgraph.generated.models.chat_message_attachment import ChatMessageAttachment
    from msgraph.generated.models.item_body import ItemBody

    card = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "Weekly report"}]}
    return ChatMessage(subject="Weekly report",
                       body=ItemBody(content_type=BodyType.Html, content=f'<attachment id="{attachment_id}"></attachment>'),
                       attachments=[ChatMessageAttachment(id=attachment_id, content=json.dumps(card),
                                                          content_type="application/vnd.microsoft.card.adaptive")])


def test_channel_message_posted_and_listed_by_the_sdk_in_a_team_with_rsc(sim, team):
    from msgraph.generated.teams.item.channels.item.messages.messages_request_builder import MessagesRequestBuilder

    att = str(uuid.uuid4())

    async def work(client):
        messages = client.teams.by_team_id(team).channels.by_channel_id(CHANNEL).messages
        posted = await messages.post(_card_message(att))
        config = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration(
            query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=50))
        return posted, await messages.get(config)

    posted, listed = run_graph(sim, work)
    assert posted.id and posted.created_date_time and posted.attachments[0].id == att
    assert posted.channel_identity.team_id == team and posted.from_.application.id
    assert listed.value[0].id == posted.id and unknown_properties([posted, listed]) == []


@pytest.mark.parametrize("granted", [set(), {"ChannelMessage.Read.Group"}], ids=["not installed", "read only"])
def test_app_only_channel_post_without_send_rsc_is_refused_as_graph_does(sim, granted):
    """Graph allows app-only channel posts only for imports unless the app holds the RSC
    permission ChannelMessage.Send.Group in the team: 401 with Graph's documented message."""
    from kiota_abstractions.api_error import APIError
    from devtools.simulators.graph import graph_world, install_app

    team_id = str(uuid.uuid4())
    install_app(sim.state, team_id, granted)

    async def work(client):
        with pytest.raises(APIError) as refused:
            await client.teams.by_team_id(team_id).channels.by_channel_id(CHANNEL).messages.post(
                _card_message(str(uuid.uuid4())))
        return refused.value

    error = run_graph(sim, work)
    assert error.response_status_code == 401 and error.error.code == "Unauthorized"
    assert error.error.message.startswith("Message POST is allowed in application-only context only for import purposes")
    assert not graph_world(sim.state).channel_messages.get((team_id, CHANNEL))


def test_reading_channel_messages_without_read_rsc_is_403(sim):
    from kiota_abstractions.api_error import APIError
    from devtools.simulators.graph import install_app

    team_id = str(uuid.uuid4())
    install_app(sim.state, team_id, {"ChannelMessage.Send.Group"})

    async def work(client):
        with pytest.raises(APIError) as refused:
            await client.teams.by_team_id(team_id).channels.by_channel_id(CHANNEL).messages.get()
        return refused.value

    error = run_graph(sim, work)
    assert error.response_status_code == 403 and "Resource Specific Consent" in error.error.message


def test_every_demo_customers_team_has_the_reports_app_with_rsc(sim):
    """The demo delivers to Teams through Graph the documented way: each demo team has the app."""
    from devtools.simulators.graph import REPORTS_APP_RSC, demo_team_id, graph_world
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    registry = load_registry(Settings.load().registry_path)
    graph_teams = [c for c in registry.customers if c.delivery.teams.via == "graph"]
    assert graph_teams
    for customer in graph_teams:
        assert customer.delivery.teams.team_id == demo_team_id(customer.code)
        assert graph_world(sim.state).team_consent[customer.delivery.teams.team_id] >= REPORTS_APP_RSC


def test_weekly_tab_added_listed_and_updated_by_the_sdk(sim, team):
    from msgraph.generated.models.teams_tab import TeamsTab
    from msgraph.generated.models.teams_tab_configuration import TeamsTabConfiguration
    from msgraph.generated.teams.item.channels.item.tabs.tabs_request_builder import TabsRequestBuilder

    channel = CHANNEL + "tabs"
    url = "https://northwindmsp.sharepoint.com/sites/Reports/week.pdf"

    async def work(client):
        tabs = client.teams.by_team_id(team).channels.by_channel_id(channel).tabs
        added = await tabs.post(TeamsTab(display_name="Weekly report", configuration=TeamsTabConfiguration(
            entity_id="w", content_url=url, website_url=url), additional_data={
            "teamsApp@odata.bind": "https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/com.microsoft.teamspace.tab.web"}))
        config = TabsRequestBuilder.TabsRequestBuilderGetRequestConfiguration(
            query_parameters=TabsRequestBuilder.TabsRequestBuilderGetQueryParameters(expand=["teamsApp"]))
        listed = await tabs.get(config)
        patched = await tabs.by_teams_tab_id(added.id).patch(TeamsTab(configuration=TeamsTabConfiguration(
            content_url=url + "?v=2", website_url=url + "?v=2")))
        return added, listed, patched

    added, listed, patched = run_graph(sim, work)
    assert added.id and listed.value[0].teams_app.id == "com.microsoft.teamspace.tab.web"
    assert patched.configuration.content_url.endswith("?v=2")
    assert unknown_properties([added, listed, patched]) == []


# ---- error envelopes -----------------------------------------------------------------------
@pytest.mark.parametrize("method,path,status", [
    ("GET", "v1.0/users/x/nosuchthing", 400),
    ("GET", "v1.0/nosuch", 400),
    ("DELETE", f"v1.0/users/{MAILBOX}/sendMail", 405),
    ("PATCH", f"v1.0/drives/{DRIVE}/root:/a.pdf:/content", 405),
    ("GET", "v1.0/drives/x/items/NOTANID", 404),
    ("POST", f"v1.0/users/{MAILBOX}/sendMail", 400),  # no message
])
def test_every_refusal_is_a_graph_error_envelope(sim, method, path, status):
    headers = {"Authorization": f"Bearer {graph_token(sim)}", "Content-Type": "application/json"}
    reply = httpx.request(method, f"{tls(sim).base_url}/graph/{path}", headers=headers, verify=ssl_context(sim),
                          content=b"{}" if method in ("POST", "PATCH") else None)
    assert reply.status_code == status
    graph_error(reply.content)


def test_sdk_sees_a_graph_error_for_an_unknown_item(sim):
    from kiota_abstractions.api_error import APIError

    async def work(client):
        with pytest.raises(APIError) as refused:
            await client.drives.by_drive_id(DRIVE).items.by_drive_item_id("root:/Conformance/missing.pdf:").get()
        return refused.value

    error = run_graph(sim, work)
    assert error.response_status_code == 404 and error.error.code == "itemNotFound"

"""Which implementation carries each channel, from the customer's registry entry (``via``).

Three channels per customer, whatever carries them, so the ledger, the DAG's three delivery
tasks and the roll-up stay the same: ``email`` (SMTP, Gmail API, Outlook via Graph), ``teams``
(Workflows webhook, Graph channel message) and ``archive`` (local folder, SharePoint, Drive).

How an interrupted send is settled, per implementation (``lookup``):

========================  ==========================================================  ==================
channel / via             looks up                                                    if it cannot
========================  ==========================================================  ==================
email / smtp              nothing: SMTP cannot be asked what it accepted              DeliveryStateUnknown
email / gmail_api         ``users.messages.list q=rfc822msgid:<Message-ID>``
email / graph             Sent Items ``$filter=internetMessageId eq '<Message-ID>'``
teams / workflow          nothing: a Workflows webhook lists nothing                  DeliveryStateUnknown
teams / graph             the channel's last 50 messages, by the card's attachment id
archive / local           the file's bytes
archive / sharepoint      the item by path: size and ``quickXorHash``
archive / drive           ``files.list`` by name in the folder: ``md5Checksum`` and size
========================  ==========================================================  ==================

Caveats of the lookups: Exchange files a ``sendMail`` message in Sent Items, and Gmail indexes a
sent message for search, a few seconds after accepting it, so a lookup is meant for the retry
(the deliver task waits 2 minutes before its first retry, doubling after), not for the same
second. An Outlook send that died between the draft and ``/send`` leaves an unsent draft in the
reports mailbox, never a duplicate to the customer; the retry finds nothing in Sent Items and
stops with ``DeliveryStateUnknown`` for a person to check and resend. The archives replace by
name (``rewrite_is_safe``): when the lookup does not find the approved bytes, they write again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msp_reports.delivery.ledger import Channel
    from msp_reports.registry import ArchiveDelivery, EmailDelivery, Msp, TeamsDelivery


def email_channel(cfg: EmailDelivery, *, default_sender: str, to: list[str], subject: str, cover_html: str,
                  pdf: bytes, filename: str) -> Channel:
    sender = str(cfg.sender or default_sender)
    common = {"to": to, "subject": subject, "cover_html": cover_html, "pdf": pdf, "filename": filename,
              "domain": sender.split("@")[-1]}
    if cfg.via == "gmail_api":
        from msp_reports.delivery.google import GmailApiChannel

        return GmailApiChannel(conn_id=cfg.conn_id, sender=sender, **common)
    if cfg.via == "graph":
        from msp_reports.delivery.graph import GraphMailChannel

        return GraphMailChannel(conn_id=cfg.conn_id, sender=sender, **common)
    from msp_reports.delivery.email import EmailChannel

    return EmailChannel(conn_id=cfg.conn_id, sender=sender, **common)


def teams_channel(cfg: TeamsDelivery, card: dict, summary: str) -> Channel:
    if cfg.via == "graph":
        from msp_reports.delivery.graph import GraphTeamsChannel

        return GraphTeamsChannel(conn_id=cfg.conn_id, team_id=cfg.team_id or "", channel_id=cfg.channel_id or "",
                                 card=card, summary=summary)
    from msp_reports.delivery.teams import TeamsChannel

    return TeamsChannel(conn_id=cfg.conn_id, card=card)


def internal_teams_channel(msp: Msp, card: dict, summary: str, *, name: str = "teams") -> Channel:
    """The MSP's own ``#weekly-reports``: ``msp.internal_teams`` (Graph or a webhook) when the registry
    gives it, else the Workflows webhook of ``msp.internal_teams_conn_id``. Every internal post (the
    roll-up, the missed-approvals notice) goes through here, so they all reach the same channel.

    :param name: the receipt's name in the ``_rollup`` ledger (each kind of post keeps its own).
    """
    from msp_reports.registry import TeamsDelivery

    channel = teams_channel(msp.internal_teams or TeamsDelivery(conn_id=msp.internal_teams_conn_id), card, summary)
    channel.name = name
    return channel


def archive_channel(cfg: ArchiveDelivery, *, archive_root: str, filename: str, pdf: bytes,
                    snapshot: bytes | None) -> Channel:
    if cfg.via == "sharepoint":
        from msp_reports.delivery.graph import SharePointArchiveChannel

        return SharePointArchiveChannel(conn_id=cfg.conn_id, drive_id=cfg.drive_id or "", folder=cfg.folder,
                                        filename=filename, pdf=pdf, snapshot=snapshot)
    if cfg.via == "drive":
        from msp_reports.delivery.google import DriveArchiveChannel

        return DriveArchiveChannel(conn_id=cfg.conn_id, folder_id=cfg.folder_id or "", drive_id=cfg.drive_id,
                                   filename=filename, pdf=pdf, snapshot=snapshot)
    from msp_reports.delivery.archive import LocalArchiveChannel

    return LocalArchiveChannel(Path(archive_root), cfg.folder, filename, pdf, snapshot)


def pin_weekly_tab(cfg: TeamsDelivery, archive_receipt: dict | None, entity_id: str) -> dict | None:
    """Point the customer's "Weekly report" tab at this week's archived PDF (Graph channels only).

    Needs a web URL, so a customer archived locally gets no tab. Returns what was done, or None.
    """
    url = (archive_receipt or {}).get("receipt", {}).get("web_url")
    if cfg.via != "graph" or not cfg.weekly_tab or (archive_receipt or {}).get("state") != "sent" or not url:
        return None
    from msp_reports.delivery.graph import pin_weekly_tab as pin

    return pin(cfg.conn_id, cfg.team_id or "", cfg.channel_id or "", url, entity_id)

"""What each customer actually received, read from wherever its channels deliver: the SMTP sink's
folder, the Gmail, Graph and Drive simulators, the Teams webhook simulator and the local archive.

Used by the demo's summary and by the tests, so each counts "exactly one per channel" whatever
carries the channel. :func:`write_received` turns it into files a person can open: the demo
writes them to ``var/demo/received/<CODE>/`` (README, "Two commands").
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from msp_reports.delivery.archive import archive_name


@dataclass
class Received:
    # {"to": [...], "pdf": bytes, "html": str, "message_id": str, "subject": str, "text": str | None,
    #  "content_type": the PDF part's type, "raw": the whole RFC 822 message when the carrier has one}
    emails: list[dict] = field(default_factory=list)
    posts: list[dict] = field(default_factory=list)  # {"card": dict, "id": str}
    archived: list[bytes] = field(default_factory=list)  # the PDF(s) under the date-stamped name
    snapshots: list[bytes] = field(default_factory=list)


def _mime(raw: bytes) -> dict:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    att = [p for p in msg.iter_attachments()]
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))  # either may be absent (not ours)
    return {"to": sorted(a.strip() for a in str(msg["To"]).split(",")), "message_id": str(msg["Message-ID"]),
            "pdf": att[0].get_content() if att else b"", "filename": att[0].get_filename() if att else None,
            "html": html.get_content() if html is not None else "", "subject": str(msg["Subject"]),
            "text": text.get_content() if text is not None else None,
            "content_type": att[0].get_content_type() if att else None, "raw": raw}


def _keys(store_root: str | Path | None, code: str, week_of, folder: str | None = None) -> dict[str, set[str]] | None:
    """Every idempotency key this store's ledger used per channel (first send and resends);
    ``folder``: the records' folder under the customer's, if not the week's (a QBR pack's)."""
    if store_root is None:
        return None
    keys: dict[str, set[str]] = {}
    for channel in ("email", "teams", "archive"):
        path = Path(store_root) / code / (folder or str(week_of)) / "ledger" / f"{channel}.json"
        if path.exists():
            doc = json.loads(path.read_text())
            base = doc["idempotency_key"].split(".resend")[0]
            keys[channel] = {base} | {f"{base}.resend{n}" for n in range(1, doc.get("resends", 0) + 1)}
    return keys


def received(customer, week_of, *, sim, mail_folder: Path | None, archive_root: Path | None,
             sender: str, store_root: str | Path | None = None, filename: str | None = None,
             folder: str | None = None) -> Received:
    """Everything delivered to ``customer`` for ``week_of``, by channel.

    With ``store_root``, only what that store's ledger sent (by idempotency key): the
    simulators may be shared with other runs that delivered to the same customer.
    ``filename`` and ``folder`` (the records' folder under the customer's): a QBR pack's
    (``ACME QBR 2026-Q3 (2026-10-05).pdf``, ``qbr/2026-Q3``) instead of the week's.
    """
    out = Received()
    keys = _keys(store_root, customer.code, week_of, folder)
    filename = filename or archive_name(customer.code, week_of)
    state = sim.state
    d = customer.delivery
    if d.email.via == "smtp" and mail_folder is not None:
        for p in sorted(Path(mail_folder).glob("*.eml")):
            m = _mime(p.read_bytes())
            if m["filename"] == filename:
                out.emails.append(m)
    elif d.email.via == "gmail_api":
        for stored in state.extra.get("gmail", {}).get(str(d.email.sender or sender).lower(), []):
            m = _mime(stored["raw"])
            if m["filename"] == filename:
                out.emails.append(m | {"gmail_id": stored["id"]})
    elif d.email.via == "graph":
        graph = state.extra.get("graph")
        for msg in (graph.sent.get(str(d.email.sender or sender).lower(), []) if graph else []):
            atts = [a for a in msg.get("attachments", []) if a["name"] == filename]
            if atts:
                out.emails.append({"to": sorted(r["emailAddress"]["address"] for r in msg["toRecipients"]),
                                   "message_id": msg["internetMessageId"], "filename": filename,
                                   "pdf": base64.b64decode(atts[0]["contentBytes"]), "html": msg["body"]["content"],
                                   "subject": msg.get("subject", ""), "text": None,
                                   "content_type": atts[0].get("contentType"), "raw": None})
    if keys is not None:
        def from_this_store(message_id: str) -> bool:
            return any(f"<{k}@" in message_id for k in keys.get("email", ()))

        out.emails = [m for m in out.emails if from_this_store(m["message_id"])]
    if d.teams.via == "workflow":
        for post in state.extra.get("teams_posts", {}).get(f"{customer.code.lower()}-shared", []):
            if keys is None or post.get("client_request_id") in keys.get("teams", ()):
                out.posts.append({"card": post["card"], "id": post["run_id"]})
    else:
        from msp_reports.delivery.graph import attachment_id

        wanted = None if keys is None else {attachment_id(k) for k in keys.get("teams", ())}
        graph = state.extra.get("graph")
        for msg in (graph.channel_messages.get((d.teams.team_id, d.teams.channel_id), []) if graph else []):
            for att in msg["attachments"]:
                if wanted is None or att["id"] in wanted:
                    out.posts.append({"card": json.loads(att["content"]), "id": msg["id"]})
    snapshot = filename.removesuffix(".pdf") + ".snapshot.json"
    if d.archive.via == "local" and archive_root is not None:
        folder = Path(archive_root) / d.archive.folder
        if (folder / filename).exists():
            out.archived.append((folder / filename).read_bytes())
        if (folder / snapshot).exists():
            out.snapshots.append((folder / snapshot).read_bytes())
    elif d.archive.via == "sharepoint":
        graph = state.extra.get("graph")
        items = graph.drives.get(d.archive.drive_id, {}) if graph else {}
        for name, target in ((filename, out.archived), (snapshot, out.snapshots)):
            item = items.get(f"{d.archive.folder}/{name}")
            if item:
                target.append(item["content"])
    elif d.archive.via == "drive":
        from devtools.simulators.drive import file_tree

        for f in file_tree(state):
            if d.archive.folder_id in f["parents"]:
                if f["name"] == filename:
                    out.archived.append(f["content"])
                elif f["name"] == snapshot:
                    out.snapshots.append(f["content"])
    return out


def _listing(name: str, data: bytes) -> str:
    return f"{name}  {len(data):,} bytes  sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def write_received(customer, got: Received, folder: Path) -> list[Path]:
    """What ``customer`` received, as files in ``folder`` (replaced): for each email its whole
    message (``email-1.eml``, when the carrier keeps one), a readable ``email-1.txt`` (headers, the
    plain-text note, the attachment) and the HTML note (``email-1.html``); each Teams card as
    ``teams-1.json``; and ``archive.txt`` listing what the archive holds and where."""
    from msp_reports.delivery.email import plain_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    d, written = customer.delivery, []

    def write(name: str, data: bytes | str) -> None:
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        written.append(path)

    for n, m in enumerate(got.emails, 1):
        if m.get("raw"):
            write(f"email-{n}.eml", m["raw"])
        write(f"email-{n}.html", m["html"])
        text = m.get("text") or plain_text(m["html"])
        write(f"email-{n}.txt", "\n".join([
            f"Via:        {d.email.via}", f"To:         {', '.join(m['to'])}", f"Subject:    {m.get('subject', '')}",
            f"Message-ID: {m['message_id']}",
            f"Attachment: {_listing(m['filename'] or '?', m['pdf'])}  ({m.get('content_type') or 'type not given'})",
            "Body:       " + ("text/plain and text/html" if m.get("text") else "HTML (shown here as text)"),
            "", text]))
    for n, post in enumerate(got.posts, 1):
        write(f"teams-{n}.json", json.dumps(post["card"], indent=2, ensure_ascii=False) + "\n")
    where = {"local": f"local folder {d.archive.folder}", "sharepoint": f"SharePoint drive, folder {d.archive.folder}",
             "drive": f"Google shared drive, folder {d.archive.folder} (id {d.archive.folder_id})"}.get(d.archive.via, d.archive.via)
    lines = [f"Archive via {d.archive.via}: {where}"]
    lines += [f"  PDF       {_listing('report', pdf)}" for pdf in got.archived]
    lines += [f"  snapshot  {_listing('snapshot', snap)}" for snap in got.snapshots]
    write("archive.txt", "\n".join(lines) + "\n")
    return written

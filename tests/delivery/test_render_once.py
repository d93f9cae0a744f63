"""Render once, deliver bytes: the render task builds everything the channels send (the PDF, the
subject line, the email's cover note, the Teams card) and hashes it; the approval binds all of it;
delivery reads the stored bytes, checks each against its approved hash and sends them, never
rendering again. And the report is rendered from the ``snapshot.json`` whose hash is bound."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.delivery.conftest import CHANNEL, MSP_SENDER, TEAM, graph_world
from tests.factories import WEEK_OF

LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}
MESSAGES = ("subject.txt", "cover_note.html", "teams_card.json")
APPROVED_AT = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)


def _store(case):
    from msp_reports.store import ReportStore

    return ReportStore(case.settings.store_root)


def _approve(case) -> dict:
    from msp_reports import approval

    store = _store(case)
    return approval.record_decision(store, case.customer.code, WEEK_OF, "approve", by="test", via="test",
                                    now=APPROVED_AT,
                                    reviewed=approval.reviewed_version(approval.current_render(store, "ACME", WEEK_OF)))


def _graph_case(make_case, tag: str):
    teams = {"via": "graph", "team_id": TEAM, "channel_id": CHANNEL + tag}
    return make_case({"email": {"via": "graph"}, "teams": teams, "archive": LOCAL})


@pytest.fixture
def forbid_rendering(monkeypatch):
    """Once called, any call into the renderer (or a message builder) fails the test."""
    import msp_reports.delivery.email as email_module
    import msp_reports.render as render_module
    from msp_reports import messages

    def forbidden(*args, **kwargs):
        raise AssertionError("delivery called the renderer")

    def forbid() -> None:
        for name in ("executive_summary", "teams_summary", "render_report", "render_markdown"):
            monkeypatch.setattr(render_module, name, forbidden)
        monkeypatch.setattr(messages, "build", forbidden)
        monkeypatch.setattr(email_module, "cover_note", forbidden)

    return forbid


def test_render_publishes_the_messages_beside_the_pdf_with_their_hashes(sim, make_case):
    from msp_reports import approval, pipeline
    from msp_reports.store import sha256

    case = make_case({"teams": WEBHOOK, "archive": LOCAL})
    pipeline.render(case.settings, case.item)
    store = _store(case)
    meta = store.read_json("ACME", WEEK_OF, "render.json")
    for key, name in approval.ARTEFACTS.items():  # every artefact delivery sends is hashed in render.json
        assert meta[key] == sha256(store.read_bytes("ACME", WEEK_OF, name)), name
    assert store.read_text("ACME", WEEK_OF, "subject.txt") == f"{case.customer.name}: weekly IT report, " \
        f"{pipeline.Context(case.settings, case.item).week.label()}"
    cover = store.read_text("ACME", WEEK_OF, "cover_note.html")
    assert case.customer.cto.name in cover and case.customer.account_engineer.name in cover
    card = json.loads(store.read_bytes("ACME", WEEK_OF, "teams_card.json"))
    assert card["type"] == "AdaptiveCard" and case.customer.name in json.dumps(card)
    assert set(approval.reviewed_version(meta)) == set(approval.HASHES) and all(approval.reviewed_version(meta).values())


def test_delivery_sends_the_stored_bytes_and_never_renders(sim, make_case, forbid_rendering):
    from msp_reports import approval
    from tests.delivery.observed import received

    case = _graph_case(make_case, "render-once")
    forbid_rendering()
    store = _store(case)
    for channel in ("email", "teams", "archive"):
        assert case.deliver(channel)["state"] == "sent"
    got = received(case.customer, WEEK_OF, sim=sim, mail_folder=None, archive_root=case.home / "archive",
                   sender=MSP_SENDER, store_root=case.settings.store_root)
    [mail] = got.emails
    assert mail["html"] == store.read_text("ACME", WEEK_OF, "cover_note.html")
    assert mail["pdf"] == case.pdf
    sent = graph_world(sim).sent[MSP_SENDER][-1]
    subject = store.read_text("ACME", WEEK_OF, "subject.txt")
    assert sent["subject"] == subject
    [post] = got.posts
    assert post["card"] == json.loads(store.read_bytes("ACME", WEEK_OF, "teams_card.json"))
    [message] = graph_world(sim).channel_messages[(TEAM, CHANNEL + "render-once")]
    assert message["subject"] == subject
    assert got.archived == [case.pdf] and got.snapshots == [case.snapshot]
    started = store.read_json("ACME", WEEK_OF, approval.DELIVERY_STARTED)
    assert {h: started[h] for h in approval.HASHES} == approval.reviewed_version(
        store.read_json("ACME", WEEK_OF, "render.json"))


@pytest.mark.parametrize("artefact", ["report.pdf", "snapshot.json", *MESSAGES])
@pytest.mark.parametrize("channel", ["email", "teams", "archive"])
def test_a_changed_artefact_is_refused_on_every_channel_naming_it(sim, make_case, artefact, channel):
    """Each file is checked, whichever channel sends it: the approved version goes whole or not at all."""
    from msp_reports.exceptions import ApprovalError

    case = make_case({"teams": WEBHOOK, "archive": LOCAL})
    store = _store(case)
    store.write_bytes("ACME", WEEK_OF, artefact, store.read_bytes("ACME", WEEK_OF, artefact) + b" ")
    with pytest.raises(ApprovalError, match=rf"ACME {WEEK_OF}: {artefact.replace('.', '[.]')} changed after approval"):
        case.deliver(channel)
    assert case.receipt(channel) is None  # nothing was tried


@pytest.mark.parametrize("artefact", MESSAGES + ("snapshot.json",))
def test_a_missing_artefact_is_refused_naming_it(sim, make_case, artefact):
    from msp_reports.exceptions import ApprovalError

    case = make_case({"teams": WEBHOOK, "archive": LOCAL})
    _store(case).remove("ACME", WEEK_OF, artefact)
    with pytest.raises(ApprovalError, match=rf"ACME {WEEK_OF}: {artefact.replace('.', '[.]')} .*missing"):
        case.deliver("email")
    assert case.receipt("email") is None


@pytest.mark.parametrize("artefact", MESSAGES)
def test_a_new_render_of_any_message_voids_the_approval(sim, make_case, artefact):
    """A re-render that changes only the cover note, the subject or the card voids the decision, as a new PDF does."""
    from msp_reports import approval
    from msp_reports.exceptions import ApprovalError
    from msp_reports.store import sha256

    case = make_case({"teams": WEBHOOK, "archive": LOCAL})
    store = _store(case)
    assert approval.in_force(store, "ACME", WEEK_OF)["decision"] == "approve"
    changed = store.read_bytes("ACME", WEEK_OF, artefact) + b"\n"
    key = next(k for k, name in approval.ARTEFACTS.items() if name == artefact)
    meta = {**store.read_json("ACME", WEEK_OF, "render.json"), key: sha256(changed)}
    store.publish("ACME", WEEK_OF, {artefact: changed}, "render.json", meta)
    assert approval.in_force(store, "ACME", WEEK_OF) is None
    assert approval.voided(store, "ACME", WEEK_OF)["by"] == "test"
    with pytest.raises(ApprovalError, match="changed after approval"):
        case.deliver("teams")
    with pytest.raises(approval.StaleReview, match=key.removesuffix("_sha256")):
        approval.record_decision(store, "ACME", WEEK_OF, "approve", by="x", via="review-page", now=APPROVED_AT,
                                 reviewed={**approval.reviewed_version(meta), key: sha256(changed[:-1])})
    _approve(case)
    assert case.deliver("archive")["state"] == "sent"


def test_a_week_rendered_before_the_messages_were_stored_is_refused_until_re_rendered(sim, make_case):
    """Delivering it would mean building the cover note and the card now, unhashed: refused, before
    any channel starts, so the re-render (and a new approval) still can happen."""
    from msp_reports import approval, pipeline
    from msp_reports.store import sha256

    case = make_case({"teams": WEBHOOK, "archive": LOCAL})
    store = _store(case)
    for name in MESSAGES:
        store.remove("ACME", WEEK_OF, name)
    store.write_json("ACME", WEEK_OF, "render.json", {  # the render.json of before
        "pdf_sha256": sha256(case.pdf), "snapshot_sha256": sha256(case.snapshot), "commentary_sha256": sha256(b"")})
    store.append_record("ACME", WEEK_OF, "approvals", {**store.records("ACME", WEEK_OF, "approvals")[-1],
                                                        "subject_sha256": None, "cover_note_sha256": None,
                                                        "teams_card_sha256": None})
    assert approval.in_force(store, "ACME", WEEK_OF)["decision"] == "approve"
    for channel in ("email", "teams", "archive"):
        with pytest.raises(approval.RenderedBeforeMessages, match=rf"ACME {WEEK_OF}: .*re-render to deliver"):
            case.deliver(channel)
        assert case.receipt(channel) is None
    assert not approval.delivery_started(store, "ACME", WEEK_OF)
    pipeline.render(case.settings, case.item)
    assert approval.in_force(store, "ACME", WEEK_OF) is None  # the new version needs its own review
    _approve(case)
    assert case.deliver("archive")["state"] == "sent"


def test_render_reads_the_bound_snapshot_and_refuses_one_changed_after_reconcile(sim, make_case):
    from msp_reports import pipeline
    from msp_reports.exceptions import ReportError
    from msp_reports.store import sha256

    case = make_case({"teams": WEBHOOK, "archive": LOCAL})
    store = _store(case)
    pipeline.render(case.settings, case.item)
    before = store.read_json("ACME", WEEK_OF, "render.json")
    assert before["snapshot_sha256"] == sha256(store.read_bytes("ACME", WEEK_OF, "snapshot.json"))
    snap = json.loads(case.snapshot)
    snap["tickets"]["data"]["opened"] += 1000  # tampered after reconcile: reconciled.json still has the old copy
    tampered = json.dumps(snap).encode()
    store.write_bytes("ACME", WEEK_OF, "snapshot.json", tampered)
    with pytest.raises(ReportError, match=rf"ACME {WEEK_OF}: snapshot.json and the snapshot in reconciled.json differ"):
        pipeline.render(case.settings, case.item)
    assert store.read_json("ACME", WEEK_OF, "render.json") == before  # nothing published
    # the stored render names the old bytes, so the tampered file cannot be delivered either
    from msp_reports.exceptions import ApprovalError

    _approve(case)
    with pytest.raises(ApprovalError, match="snapshot.json changed after approval"):
        case.deliver("archive")
    store.remove("ACME", WEEK_OF, "snapshot.json")
    with pytest.raises(ReportError, match="no snapshot.json"):
        pipeline.render(case.settings, case.item)


def test_deliver_leaves_the_tab_to_the_step_after_the_channels(sim, make_case):
    from msp_reports import pipeline

    case = make_case({"teams": {"via": "graph", "team_id": TEAM, "channel_id": CHANNEL + "no-tab"}, "archive": LOCAL})
    store = _store(case)
    case.deliver("archive")
    assert pipeline.pin_tab(case.settings, case.item) == {"customer": "ACME", "pinned": False,
                                                          "waiting_for": ["teams"]}
    case.deliver("teams")
    assert store.read_json("ACME", WEEK_OF, "teams_tab.json") is None  # deliver() no longer touches the tab
    # a local archive has no web address for a tab to open: nothing done, nothing waited for
    assert pipeline.pin_tab(case.settings, case.item) == {"customer": "ACME", "pinned": False, "tab": None}


def test_a_version_with_any_artefact_unhashed_is_refused_naming_the_files(tmp_path):
    """The oldest render.json held only the PDF's hash: nothing else it would send is bound."""
    from msp_reports import approval
    from msp_reports.store import ReportStore, sha256

    store = ReportStore(str(tmp_path / "store"))
    store.write_bytes("ACME", WEEK_OF, "report.pdf", b"%PDF old")
    store.write_bytes("ACME", WEEK_OF, "snapshot.json", b"{}")
    store.write_json("ACME", WEEK_OF, "render.json", {"pdf_sha256": sha256(b"%PDF old")})
    approval.record_decision(store, "ACME", WEEK_OF, "approve", by="test", via="test", now=APPROVED_AT)
    with pytest.raises(approval.RenderedBeforeMessages,
                       match="no hash of snapshot.json, subject.txt, cover_note.html, teams_card.json.*re-render to deliver"):
        approval.start_delivery(store, "ACME", WEEK_OF, now=APPROVED_AT)
    assert not approval.delivery_started(store, "ACME", WEEK_OF)

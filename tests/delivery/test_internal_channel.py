"""#weekly-reports is one channel: the 09:00 missed-approvals notice goes where the roll-up goes,
``msp.internal_teams`` when the registry gives it (here Graph), else the webhook connection
``msp.internal_teams_conn_id``."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF
from tests.delivery.conftest import TEAM, graph_world

INTERNAL = {"via": "graph", "team_id": TEAM, "channel_id": "19:weekly-reports-internal-channel@thread.tacv2"}


@pytest.fixture
def unapproved_week(tmp_path, delivery_conns):
    """ACME rendered and not decided on, in a registry whose internal channel is a Graph channel."""
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore, sha256

    raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
    acme = next(c for c in raw["customers"] if c["code"] == "ACME")
    path = tmp_path / "customers.yaml"
    path.write_text(yaml.safe_dump({"msp": {**raw["msp"], "internal_teams": INTERNAL}, "customers": [acme]}))
    settings = Settings(registry_path=str(path), store_root=str(tmp_path / "store"),
                        archive_root=str(tmp_path / "archive"))
    pdf = b"%PDF ACME"
    store = ReportStore(settings.store_root)
    store.write_bytes("ACME", WEEK_OF, "report.pdf", pdf)
    store.write_json("ACME", WEEK_OF, "render.json", {"pdf_sha256": sha256(pdf), "snapshot_sha256": "s",
                                                      "commentary_sha256": sha256(b"")})
    return settings, [{"customer": "ACME", "week_of": WEEK_OF.isoformat()}]


def _internal_cards(sim) -> list[str]:
    return [m["attachments"][0]["content"]
            for m in graph_world(sim).channel_messages.get((TEAM, INTERNAL["channel_id"]), [])]


def test_missed_approvals_go_to_the_graph_internal_channel_as_the_rollup_does(sim, unapproved_week):
    from msp_reports import pipeline

    settings, items = unapproved_week
    notice = pipeline.post_missed_approvals(settings, items, lambda key: None)
    assert notice == {"unapproved": ["ACME"], "posted": "sent"}
    [card] = _internal_cards(sim)
    assert "Not approved at 09:00" in card and "ACME" in json.loads(card)["body"][2]["facts"][0]["title"]
    # a retry posts nothing more: the notice keeps its own receipt, apart from the roll-up's
    assert pipeline.post_missed_approvals(settings, items, lambda key: None)["posted"] == "sent"
    assert len(_internal_cards(sim)) == 1
    assert pipeline.rollup(settings, items)["posted"] == "sent"
    notice_card, rollup_card = _internal_cards(sim)
    assert notice_card == card and "Not approved at" not in rollup_card and "ACME" in rollup_card


def test_without_internal_teams_both_use_the_webhook_connection():
    from msp_reports.delivery.channels import internal_teams_channel
    from msp_reports.delivery.teams import TeamsChannel
    from msp_reports.registry import load_registry

    msp = load_registry(ROOT / "include" / "customers.yaml").msp
    assert msp.internal_teams is None
    channel = internal_teams_channel(msp, {"type": "AdaptiveCard"}, "Weekly reports", name="teams-missed-approvals")
    assert isinstance(channel, TeamsChannel)
    assert (channel.conn_id, channel.name) == (msp.internal_teams_conn_id, "teams-missed-approvals")

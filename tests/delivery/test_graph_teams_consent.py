"""Teams through Graph needs the reports app installed in the customer's team with its RSC
permissions: without them Graph refuses app-only posts (401, "allowed ... only for import
purposes") and reads (403), and the delivery fails with an error naming the team and the missing
permission, having posted nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.delivery.conftest import CHANNEL, graph_world

LOCAL = {"via": "local", "folder": "Acme/Reports"}


@pytest.fixture
def bare_team(sim):
    """A team where the reports app holds no RSC permission (not installed there)."""
    from devtools.simulators.graph import install_app

    team_id = str(uuid.uuid4())
    install_app(sim.state, team_id, set())
    return team_id


def test_post_to_a_team_without_the_app_fails_naming_the_team_and_the_send_permission(sim, make_case, bare_team):
    from msp_reports.delivery.graph import TeamsConsentMissing

    case = make_case({"teams": {"via": "graph", "team_id": bare_team, "channel_id": CHANNEL + "bare"},
                      "archive": LOCAL})
    with pytest.raises(TeamsConsentMissing) as failed:
        case.deliver("teams")
    message = str(failed.value)
    assert bare_team in message and "ChannelMessage.Send.Group" in message and "install" in message
    assert failed.value.permission == "ChannelMessage.Send.Group"
    assert not graph_world(sim).channel_messages.get((bare_team, CHANNEL + "bare"))
    assert case.receipt("teams")["state"] != "sent"


def test_lookup_without_read_consent_fails_naming_the_read_permission(sim, delivery_conns):
    from devtools.simulators.graph import install_app
    from msp_reports.delivery.graph import GraphTeamsChannel, TeamsConsentMissing

    team_id = str(uuid.uuid4())
    install_app(sim.state, team_id, {"ChannelMessage.Send.Group"})
    channel = GraphTeamsChannel("msgraph_default", team_id, CHANNEL + "noread", {"type": "AdaptiveCard"})
    assert channel.send("key-1")["remote_id"]
    with pytest.raises(TeamsConsentMissing) as failed:
        channel.lookup("key-1")
    assert team_id in str(failed.value) and failed.value.permission == "ChannelMessage.Read.Group"


def test_once_the_app_is_installed_the_same_delivery_goes_through(sim, make_case, bare_team):
    from devtools.simulators.graph import install_app

    case = make_case({"teams": {"via": "graph", "team_id": bare_team, "channel_id": CHANNEL + "later"},
                      "archive": LOCAL})
    with pytest.raises(Exception):
        case.deliver("teams")
    install_app(sim.state, bare_team)
    case.deliver("teams")
    assert case.receipt("teams")["state"] == "sent"
    assert len(graph_world(sim).channel_messages[(bare_team, CHANNEL + "later")]) == 1

"""Teams Workflows trigger URLs in both forms Microsoft hands out: the current Power Platform form
(``…environment.api.powerplatform.com/powerautomate/automations/direct/workflows/<id>/…?api-version=1``)
and the older Logic Apps form (``…logic.azure.com/workflows/<id>/…?api-version=2016-06-01``)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from devtools.simulators import teams as teams_sim
from msp_reports.delivery import teams
from msp_reports.exceptions import SourceResponseError

CARD = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "hello"}]}
POWER_PLATFORM = ("https://default0123456789abcdef0123456789abcd.ef.environment.api.powerplatform.com:443"
                  "/powerautomate/automations/direct/workflows/3f1e2d4c5b6a49788796a5b4c3d2e1f0/triggers/manual"
                  "/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0")
LOGIC_APPS = ("https://prod-27.westeurope.logic.azure.com:443/workflows/3f1e2d4c5b6a49788796a5b4c3d2e1f0"
              "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0")


def _hook(use_connection, conn_id: str, host: str, sig: str) -> teams.TeamsWorkflowHook:
    use_connection(conn_id, {"conn_type": "teams_workflow", "host": host, "password": sig})
    return teams.TeamsWorkflowHook(conn_id)


@pytest.mark.parametrize("power_platform", [True, False], ids=["power-platform", "logic-apps"])
def test_both_forms_post_through_the_simulator(sim, creds, use_connection, power_platform):
    workflow = f"url-form-{power_platform}"
    hook = _hook(use_connection, "teams_url_form", teams_sim.trigger_url(sim.base_url, workflow,
                                                                         power_platform=power_platform),
                 teams_sim.channel_sig(creds, workflow))
    assert "accepted its sig" in hook.probe()
    receipt = hook.post_card(CARD, "key-1")
    assert receipt["status"] == 202
    assert sim.state.extra["teams_posts"][workflow][-1]["card"] == CARD


def test_each_form_takes_its_own_api_version(sim, creds):
    workflow = "api-versions"
    sig = teams_sim.channel_sig(creds, workflow)
    body = {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "content": CARD}]}
    new = teams_sim.trigger_url(sim.base_url, workflow).replace("api-version=1", "api-version=2016-06-01")
    assert requests.post(f"{new}&sig={sig}", json=body).status_code == 400


@pytest.mark.parametrize("url", [POWER_PLATFORM, LOGIC_APPS], ids=["power-platform", "logic-apps"])
def test_real_trigger_urls_are_kept_as_given_with_the_sig_added(use_connection, url):
    hook = _hook(use_connection, "teams_real_url", url, "s3cr3t-sig")
    built = urlsplit(hook.webhook_url())
    assert built._replace(query="").geturl() == urlsplit(url)._replace(query="").geturl()
    query = dict(parse_qsl(built.query))
    assert query == {**dict(parse_qsl(urlsplit(url).query)), "sig": "s3cr3t-sig"}


def test_a_url_that_is_not_a_trigger_is_refused_before_sending(use_connection):
    hook = _hook(use_connection, "teams_wrong_url", "https://make.powerautomate.com/environments/x/flows/y", "sig")
    with pytest.raises(SourceResponseError, match="not a Workflows trigger URL"):
        hook.post_card(CARD, "key-2")

"""The registry's delivery block, the roll-up's per-channel states (posted through Graph), and the
resend command as an operator runs it (scripts/resend.sh in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF
from tests.delivery.conftest import MSP_SENDER, SP_DRIVE, TEAM, graph_world


def _registry(delivery: dict):
    from msp_reports.registry import parse_registry

    raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
    raw["customers"][0]["delivery"] = delivery
    return parse_registry(raw, "customers.yaml")


def test_demo_registry_uses_a_mix_of_every_carrier():
    from msp_reports.registry import load_registry

    customers = load_registry(ROOT / "include" / "customers.yaml").customers
    assert {c.delivery.email.via for c in customers} == {"smtp", "gmail_api", "graph"}
    assert {c.delivery.teams.via for c in customers} == {"workflow", "graph"}
    assert {c.delivery.archive.via for c in customers} == {"local", "sharepoint", "drive"}


@pytest.mark.parametrize("delivery, message", [
    ({"teams": {"via": "graph", "team_id": TEAM}, "archive": {"folder": "x"}},
     "customer 'ACME': delivery.teams: channel_id is missing (via: graph)"),
    ({"teams": {"via": "workflow"}, "archive": {"folder": "x"}},
     "customer 'ACME': delivery.teams: conn_id is missing"),
    ({"teams": {"conn_id": "t"}, "archive": {"via": "sharepoint", "folder": "x"}},
     "customer 'ACME': delivery.archive: drive_id is missing"),
    ({"teams": {"conn_id": "t"}, "archive": {"via": "drive", "folder": "x"}},
     "customer 'ACME': delivery.archive: folder_id is missing"),
    ({"email": {"via": "pigeon"}, "teams": {"conn_id": "t"}, "archive": {"folder": "x"}},
     "customer 'ACME': delivery.email.via"),
])
def test_registry_names_the_delivery_field_to_fix(delivery, message):
    from msp_reports.exceptions import RegistryError

    with pytest.raises(RegistryError, match="customers.yaml: ") as err:
        _registry(delivery)
    assert message in str(err.value)


def test_two_customers_may_not_share_a_graph_channel_or_a_sharepoint_folder():
    from msp_reports.exceptions import RegistryError
    from msp_reports.registry import parse_registry

    raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
    cndr = next(c for c in raw["customers"] if c["code"] == "CNDR")
    htel = next(c for c in raw["customers"] if c["code"] == "HTEL")
    htel["delivery"]["teams"] = dict(cndr["delivery"]["teams"])
    htel["delivery"]["archive"]["folder"] = cndr["delivery"]["archive"]["folder"]
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "customers.yaml")
    assert "customer 'HTEL': delivery.teams.channel_id" in str(err.value)
    assert "customer 'HTEL': delivery.archive.folder" in str(err.value)


def test_defaults_follow_the_carrier():
    reg = _registry({"email": {"via": "gmail_api"}, "teams": {"via": "graph", "team_id": "t", "channel_id": "c"},
                     "archive": {"via": "drive", "folder_id": "f", "folder": "x"}})
    d = reg.get("ACME").delivery
    assert (d.email.conn_id, d.teams.conn_id, d.archive.conn_id) == (
        "gmail_default", "msgraph_default", "google_drive_default")


def test_rollup_goes_through_graph_after_deliveries_and_names_each_channels_state(sim, make_case):
    from msp_reports import pipeline

    internal = {"via": "graph", "team_id": TEAM, "channel_id": "19:weekly-reports@thread.tacv2"}
    case = make_case({"email": {"via": "graph"}, "teams": {"via": "workflow", "conn_id": "teams_not_configured"},
                      "archive": {"via": "sharepoint", "drive_id": SP_DRIVE, "folder": "Acme/rollup"}},
                     msp_extra={"internal_teams": internal})
    case.deliver("email")
    case.deliver("archive")
    with pytest.raises(Exception, match="teams_not_configured"):
        case.deliver("teams")  # one channel fails; the others went
    assert case.receipt("teams")["state"] == "failed"
    result = pipeline.rollup(case.settings, [case.item])
    assert result["posted"] == "sent" and result["delivered"] == 0
    assert result["needs_attention"] == ["ACME approved; not delivered on teams (failed)"]
    [post] = graph_world(sim).channel_messages[(TEAM, internal["channel_id"])]
    card = json.loads(post["attachments"][0]["content"])
    assert "not delivered on teams (failed)" in json.dumps(card)
    text = (case.home / "store" / "_rollup" / str(WEEK_OF) / "rollup.md").read_text()
    assert "| sent (graph) | failed (workflow) | sent (sharepoint) |" in text


def test_resend_script_sends_again_on_purpose_and_the_ledger_records_it(sim, make_case):
    case = make_case({"email": {"via": "graph"}, "teams": {"via": "workflow", "conn_id": "teams_acme"},
                      "archive": {"via": "local", "folder": "Acme/Reports"}})
    case.deliver("email")
    first = case.receipt("email")
    # the operator's command, in the deployment's environment (connections as AIRFLOW_CONN_*)
    env = {**os.environ, "PYTHONPATH": ""}
    settings_vars = {"AIRFLOW_VAR_MSP_REPORTS_REGISTRY": case.settings.registry_path,
                     "AIRFLOW_VAR_MSP_REPORTS_STORE": case.settings.store_root,
                     "AIRFLOW_VAR_MSP_REPORTS_ARCHIVE": case.settings.archive_root}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "resend.sh"), "ACME", str(WEEK_OF), "email",
                           "--reason", "CTO asked for it again", "--by", "priya"],
                          env={**env, **settings_vars}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout[done.stdout.index("{"):])
    assert out["state"] == "sent" and out["resends"] == 1 and out["via"] == "graph"
    receipt = case.receipt("email")
    assert receipt["idempotency_key"] == first["idempotency_key"] + ".resend1"
    assert receipt["resend_note"] == {"by": "priya", "reason": "CTO asked for it again"}
    ids = [m["internetMessageId"] for m in graph_world(sim).sent[MSP_SENDER]]
    assert ids.count(f"<{first['idempotency_key']}@northwind-msp.example>") == 1
    assert ids.count(f"<{receipt['idempotency_key']}@northwind-msp.example>") == 1
    # an ordinary re-run after the resend sends nothing
    case.deliver("email")
    assert [m["internetMessageId"] for m in graph_world(sim).sent[MSP_SENDER]] == ids


@pytest.mark.parametrize("error, state", [
    (TimeoutError("read timed out"), "attempted"),
    (ConnectionResetError("reset by peer"), "attempted"),
    (ConnectionRefusedError("nothing listening"), "failed"),
    (ValueError("bad recipient"), "failed"),
])
def test_an_ambiguous_send_error_is_settled_by_lookup_on_retry_not_resent(tmp_path, error, state):
    """A timeout may come after the other side accepted: the retry must look, not send again."""
    from msp_reports.delivery.ledger import Ledger
    from msp_reports.store import ReportStore

    class Flaky:
        name = "email"

        def __init__(self):
            self.accepted: list[str] = []
            self.calls = 0

        def send(self, key):
            self.calls += 1
            if self.calls == 1 and state == "failed":
                raise error  # refused: nothing accepted
            self.accepted.append(key)  # the server took it ...
            if self.calls == 1:
                raise error  # ... and the answer never came back
            return {"remote_id": key}

        def lookup(self, key):
            return {"remote_id": key, "found_by": "lookup"} if key in self.accepted else None

    channel, ledger = Flaky(), Ledger(ReportStore(str(tmp_path / "store")), "ACME", WEEK_OF)
    with pytest.raises(type(error)):
        ledger.send_once(channel, "a" * 64)
    assert ledger.receipt("email")["state"] == state
    retry = ledger.send_once(channel, "a" * 64)
    assert retry["state"] == "sent"
    assert len(channel.accepted) == 1  # exactly one copy either way
    if state == "attempted":  # found by looking, not sent twice
        assert channel.calls == 1 and retry["receipt"]["found_by"] == "lookup"
    else:  # looked first (nothing there), then sent
        assert channel.calls == 2

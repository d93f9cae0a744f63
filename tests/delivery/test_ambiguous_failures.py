"""A send that fails *ambiguously* through the real hooks (a timeout, a 5xx: the other side may
have acted on it) is never repeated blindly: not by the client library's own retries, not by the
task's retry. The receipt stays ``attempted`` and the retry settles it by lookup or stops for a
person. An archive write, which replaces by name, is written again instead."""

from __future__ import annotations

import pytest
import requests

from tests.factories import WEEK_OF
from tests.delivery.conftest import MSP_SENDER, SP_DRIVE, graph_world

LOCAL = {"via": "local", "folder": "Acme/Reports"}
WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}


def _fault(sim, system: str, **fault) -> None:
    requests.post(f"{sim.base_url}/_sim/faults/{system}", json=fault, timeout=5).raise_for_status()


def _webhook(sim, use_connection, conn_id: str, workflow: str, **extra) -> None:
    from devtools.simulators import teams as teams_sim

    for cid, conn in teams_sim.demo_connections(sim.base_url, sim.creds, {conn_id: workflow}).items():
        use_connection(cid, {**conn, "extra": extra} if extra else conn)


def _posts(sim, workflow: str) -> int:
    return len(sim.state.extra.get("teams_posts", {}).get(workflow, []))


@pytest.mark.parametrize("fault", [{"mode": "slow", "delay": 2, "times": 1}, {"mode": "503", "times": 1}],
                         ids=["timeout", "503"])
def test_webhook_timeout_or_5xx_leaves_attempted_and_the_retry_does_not_post_again(
        sim, make_case, use_connection, fault):
    from msp_reports.exceptions import DeliveryStateUnknown, SourceUnavailable

    workflow = f"acme-ambiguous-{fault['mode']}"
    case = make_case({"teams": {"via": "workflow", "conn_id": "teams_ambiguous"}, "archive": LOCAL})
    _webhook(sim, use_connection, "teams_ambiguous", workflow, timeout=0.5)
    _fault(sim, "teams", **fault)
    before = sim.state.requests["teams"]
    with pytest.raises(SourceUnavailable):
        case.deliver("teams")
    assert sim.state.requests["teams"] == before + 1  # one POST: the hook does not repeat it
    receipt = case.receipt("teams")
    assert receipt["state"] == "attempted" and "outcome unknown" in receipt["history"][-1]["state"]
    posted = _posts(sim, workflow)
    # the task's retry: a webhook cannot be asked, so it stops for a person instead of posting again
    with pytest.raises(DeliveryStateUnknown):
        case.deliver("teams")
    assert sim.state.requests["teams"] == before + 1
    assert _posts(sim, workflow) == posted <= 1


def test_webhook_refused_connection_is_a_plain_failure_and_the_retry_posts(sim, make_case, use_connection):
    """Nothing can have arrived through a refused connection: that is ``failed``, and safe to resend."""
    from msp_reports.exceptions import SourceUnavailable
    from devtools.simulators.server import free_port
    from devtools.simulators import teams as teams_sim

    case = make_case({"teams": {"via": "workflow", "conn_id": "teams_refused"}, "archive": LOCAL})
    [(cid, conn)] = teams_sim.demo_connections(sim.base_url, sim.creds, {"teams_refused": "acme-refused"}).items()
    dead = conn["host"].replace(sim.base_url, f"http://127.0.0.1:{free_port()}")
    use_connection(cid, {**conn, "host": dead})
    with pytest.raises(SourceUnavailable):
        case.deliver("teams")
    assert case.receipt("teams")["state"] == "failed"
    use_connection(cid, conn)
    assert case.deliver("teams")["state"] == "sent"
    assert _posts(sim, "acme-refused") == 1


def test_graph_503_on_sendmail_is_sent_once_not_retried_by_kiota(sim, make_case):
    """Kiota's retry middleware repeats a POST after 503/504 by default; for a send it must not."""
    from msp_reports.exceptions import DeliveryStateUnknown

    case = make_case({"email": {"via": "graph"}, "teams": WEBHOOK, "archive": LOCAL})
    gw = graph_world(sim)
    sent_before = len(gw.sent.get(MSP_SENDER, []))
    _fault(sim, "graph", mode="503", times=4, path="/sendMail")
    before = sim.state.requests["graph"]
    sendmails_before = len([c for c in gw.log if c["path"].endswith("/sendMail")])
    with pytest.raises(Exception) as raised:
        case.deliver("email")
    assert getattr(raised.value, "status", None) == 503
    sendmails = [c for c in graph_world(sim).log if c["path"].endswith("/sendMail")]
    assert sim.state.requests["graph"] - before == 2  # the token, then one sendMail: no hidden repeats
    assert len(sendmails) == sendmails_before  # the fault answered before the simulator took it
    assert case.receipt("email")["state"] == "attempted"
    with sim.state.lock:
        sim.state.faults.clear()
    # the retry asks Sent Items by the Message-ID; nothing there, and it does not guess
    with pytest.raises(DeliveryStateUnknown):
        case.deliver("email")
    assert len(gw.sent.get(MSP_SENDER, [])) == sent_before


def test_graph_429_on_sendmail_is_a_plain_failure_and_the_retry_sends_once(sim, make_case):
    """A 429 says Graph did not take the request: ``failed``, then the retry looks once and sends."""
    case = make_case({"email": {"via": "graph"}, "teams": WEBHOOK, "archive": LOCAL})
    gw = graph_world(sim)
    sent_before = len(gw.sent.get(MSP_SENDER, []))
    _fault(sim, "graph", mode="429", times=1, retry_after=1, path="/sendMail")
    with pytest.raises(Exception) as raised:
        case.deliver("email")
    assert getattr(raised.value, "status", None) == 429
    assert case.receipt("email")["state"] == "failed"
    assert case.deliver("email")["state"] == "sent"
    assert len(gw.sent.get(MSP_SENDER, [])) == sent_before + 1


def test_smtp_sends_once_per_attempt_whatever_the_connections_retry_limit(make_case, use_connection, tmp_path):
    """``SmtpHook`` would repeat ``sendmail`` ``retry_limit`` times (default 5) after an error that
    may follow the server's acceptance; the channel ignores ``retry_limit``."""
    from aiosmtpd.controller import Controller

    from devtools.simulators.server import free_port

    class AcceptsThenFails:  # stores the message, then answers as if it had not
        received = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            AcceptsThenFails.received += 1
            return "451 4.3.0 Try again later"

    port = free_port()
    controller = Controller(AcceptsThenFails(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        case = make_case({"email": {"via": "smtp", "conn_id": "smtp_flaky"}, "teams": WEBHOOK, "archive": LOCAL})
        use_connection("smtp_flaky", {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                                      "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 5}})
        with pytest.raises(Exception, match="451"):
            case.deliver("email")
    finally:
        controller.stop()
    assert AcceptsThenFails.received == 1
    assert case.receipt("email")["state"] == "failed"


def test_interrupted_sharepoint_archive_is_written_again_not_held(sim, make_case):
    """The archive replaces by name: a lookup that finds no approved bytes means write it (again)."""
    from msp_reports.delivery.ledger import Ledger
    from msp_reports.store import ReportStore, sha256

    folder = "Acme Corp/Reports/Interrupted"
    case = make_case({"archive": {"via": "sharepoint", "drive_id": SP_DRIVE, "folder": folder}, "teams": WEBHOOK})
    # as a worker killed before the upload leaves it: attempted, nothing after
    Ledger(ReportStore(case.settings.store_root), "ACME", WEEK_OF)._write("archive", {
        "channel": "archive", "customer": "ACME", "week_of": WEEK_OF.isoformat(), "state": "attempted",
        "pdf_sha256": sha256(case.pdf), "idempotency_key": "weekly-report.ACME.interrupted", "resends": 0,
        "history": []})
    assert case.deliver("archive")["state"] == "sent"
    item = graph_world(sim).drives[SP_DRIVE][f"{folder}/ACME_weekly-report_{WEEK_OF}.pdf"]
    assert item["content"] == case.pdf

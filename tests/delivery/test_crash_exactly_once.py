"""Kill the delivery (a real subprocess, SIGKILL) after the send reached the simulator and before
the ledger recorded it; run it again. Channels that can look the send up settle it and the
customer has exactly one message, post or file; SMTP and the Workflows webhook cannot, so the
re-run stops with DeliveryStateUnknown for a person to decide (then the resend command)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.factories import ROOT, WEEK_OF
from tests.delivery.conftest import CHANNEL, MSP_SENDER, SP_DRIVE, TEAM, graph_world

WEBHOOK = {"via": "workflow", "conn_id": "teams_acme"}
LOCAL = {"via": "local", "folder": "Acme/Reports"}


def _start_delivery(case, channel: str) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        from msp_reports import pipeline
        from msp_reports.settings import Settings
        pipeline.deliver(Settings(registry_path={case.settings.registry_path!r}, store_root={case.settings.store_root!r},
                                  archive_root={case.settings.archive_root!r}), {case.item!r}, {channel!r})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the delivery ended before the crash point: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the send never reached the crash point")
        time.sleep(0.05)


def _kill_after_accept(sim, case, channel: str, point: str) -> None:
    """Run the delivery in a subprocess; SIGKILL it while the simulator holds its answer."""
    with sim.state.lock:
        sim.state.extra["hold_after_accept"] = {point: 120}
        sim.state.extra["held"] = []
    proc = _start_delivery(case, channel)
    try:
        _wait_for(lambda: point in sim.state.extra["held"], proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with sim.state.lock:
            sim.state.extra["hold_after_accept"] = {}
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert case.receipt(channel)["state"] == "attempted"  # the ledger never heard back


CASES = {
    "email/graph": ({"email": {"via": "graph"}, "teams": WEBHOOK, "archive": LOCAL}, "email", "graph.sendMail"),
    "email/gmail_api": ({"email": {"via": "gmail_api"}, "teams": WEBHOOK, "archive": LOCAL}, "email", "gmail.send"),
    "teams/graph": ({"teams": {"via": "graph", "team_id": TEAM, "channel_id": CHANNEL + "crash"}, "archive": LOCAL},
                    "teams", "graph.channelMessage"),
    "archive/sharepoint": ({"teams": WEBHOOK, "archive": {"via": "sharepoint", "drive_id": SP_DRIVE,
                                                          "folder": "Acme/crash"}}, "archive", "graph.driveItem"),
    "archive/drive": (None, "archive", "drive.file"),
}


def _count(sim, case, name: str, key: str) -> int:
    """How many copies the customer has on that channel, from the simulator's own state."""
    if name == "email/graph":
        return sum(m["internetMessageId"] == f"<{key}@northwind-msp.example>" for m in graph_world(sim).sent[MSP_SENDER])
    if name == "email/gmail_api":
        return sum(m["rfc822msgid"] == f"{key}@northwind-msp.example".lower()
                   for m in sim.state.extra["gmail"][MSP_SENDER])
    if name == "teams/graph":
        return len(graph_world(sim).channel_messages[(TEAM, CHANNEL + "crash")])
    if name == "archive/sharepoint":
        path = f"/graph/v1.0/drives/{SP_DRIVE}/root:/Acme/crash/ACME_weekly-report_{WEEK_OF}.pdf:/content"
        return sum(c["method"] == "PUT" and c["path"] == path for c in graph_world(sim).log)
    from devtools.simulators.drive import file_tree, folder_id

    return sum(f["name"] == f"LIMA_weekly-report_{WEEK_OF}.pdf" and folder_id("LIMA") in f["parents"]
               for f in file_tree(sim.state))


@pytest.mark.parametrize("name", sorted(CASES))
def test_killed_after_the_send_a_rerun_finds_it_and_sends_nothing_more(sim, make_case, name):
    from devtools.simulators.drive import SHARED_DRIVE_ID, folder_id

    delivery, channel, point = CASES[name]
    code = "ACME"
    if delivery is None:  # Drive: its own customer folder, so the count is this test's alone
        code = "LIMA"
        delivery = {"teams": {"via": "workflow", "conn_id": "teams_lima"},
                    "archive": {"via": "drive", "drive_id": SHARED_DRIVE_ID, "folder_id": folder_id(code),
                                "folder": "Reports"}}
    case = make_case(delivery, code=code)
    _kill_after_accept(sim, case, channel, point)
    key = case.receipt(channel)["idempotency_key"]
    assert _count(sim, case, name, key) == 1  # it did arrive

    out = case.deliver(channel)  # the re-run (a task retry, or the next run)
    receipt = case.receipt(channel)
    assert out["state"] == receipt["state"] == "sent"
    assert receipt["receipt"]["found_by"]  # settled by looking, not by sending
    assert receipt["idempotency_key"] == key
    assert _count(sim, case, name, key) == 1
    case.deliver(channel)  # and once more: still one
    assert _count(sim, case, name, key) == 1


def test_smtp_killed_mid_send_stops_for_a_person_then_resend_delivers_once(sim, make_case, use_connection, tmp_path):
    from msp_reports.exceptions import DeliveryStateUnknown
    from msp_reports.resend import resend
    from devtools.simulators.mailsink import MailSink

    case = make_case({"email": {"via": "smtp", "conn_id": "smtp_crash"}, "teams": WEBHOOK, "archive": LOCAL})
    with socket.socket() as tarpit:  # accepts the connection, never greets: the send hangs mid-way
        tarpit.bind(("127.0.0.1", 0))
        tarpit.listen(8)
        use_connection("smtp_crash", {"conn_type": "smtp", "host": "127.0.0.1", "port": tarpit.getsockname()[1],
                                      "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0,
                                                "timeout": 60, "from_email": MSP_SENDER}})
        proc = _start_delivery(case, "email")
        _wait_for(lambda: (case.receipt("email") or {}).get("state") == "attempted", proc)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    with MailSink(tmp_path / "outbox") as mail:
        use_connection("smtp_crash", mail.connection(MSP_SENDER))
        with pytest.raises(DeliveryStateUnknown, match="check email and then run the resend command"):
            case.deliver("email")
        assert mail.messages() == []  # nothing guessed
        out = resend("ACME", WEEK_OF, "email", reason="checked the mailbox: not received", by="priya",
                     settings=case.settings)
        assert out["state"] == "sent" and out["resends"] == 1
        [m] = mail.messages()
        assert m["Message-ID"].endswith(".resend1@northwind-msp.example>")
    receipt = case.receipt("email")
    assert {"state": "resend requested", "by": "priya", "reason": "checked the mailbox: not received"}.items() <= \
        next(h for h in receipt["history"] if h["state"] == "resend requested").items()


def test_workflow_webhook_killed_mid_post_stops_for_a_person(sim, make_case, use_connection):
    import requests

    from msp_reports.exceptions import DeliveryStateUnknown
    from devtools.simulators import teams as teams_sim

    case = make_case({"teams": {"via": "workflow", "conn_id": "teams_crash"}, "archive": LOCAL})
    for conn_id, conn in teams_sim.demo_connections(sim.base_url, sim.creds, {"teams_crash": "acme-crash"}).items():
        use_connection(conn_id, conn)
    requests.post(f"{sim.base_url}/_sim/faults/teams", json={"mode": "slow", "delay": 3, "times": 1}, timeout=5)
    before = sim.state.requests["teams"]
    proc = _start_delivery(case, "teams")
    _wait_for(lambda: sim.state.requests["teams"] > before, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(3.5)
    assert case.receipt("teams")["state"] == "attempted"
    posted = len(sim.state.extra["teams_posts"].get("acme-crash", []))
    with pytest.raises(DeliveryStateUnknown, match="check teams and then run the resend command"):
        case.deliver("teams")
    # the webhook returns no id and lists nothing, so the re-run guesses neither way: nothing more is posted
    assert len(sim.state.extra["teams_posts"].get("acme-crash", [])) == posted <= 1

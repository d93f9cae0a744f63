"""The SIGKILL campaign, short: the worker is killed once per iteration, in an extract, the render,
the email, the Teams post or the archive (in turn), then re-run; nothing is sent twice, nothing
said sent is missing, every file in the store and the archive parses, the ledger is consistent.

``MSP_CHAOS_ITERATIONS`` raises the count (default 5: one kill in each kind of step); the long
version is ``bash scripts/kill_campaign.sh`` (docs/evidence.md has its last summary line).
"""

from __future__ import annotations

import os

from tests.factories import WEEK_OF

from devtools.chaos import KILL_TARGETS, Campaign, child_env, demo_conns

from .conftest import REGISTRY

ITERATIONS = int(os.environ.get("MSP_CHAOS_ITERATIONS", len(KILL_TARGETS)))


def test_kill_campaign(sim, tmp_path):
    from devtools.simulators.mailsink import MailSink

    with MailSink(tmp_path / "outbox") as mail:
        env = child_env(demo_conns(sim, mail, REGISTRY), tmp_path / "airflow")
        (tmp_path / "airflow").mkdir()
        # customers whose channels cover every implementation: SMTP/webhook/local (ACME),
        # Gmail/webhook/SharePoint (BRVO), Graph/Graph/SharePoint (CNDR), Gmail/webhook/Drive (DLTA)
        campaign = Campaign(sim, mail, env, tmp_path / "runs", WEEK_OF, seed=11,
                            customers=["ACME", "BRVO", "CNDR", "DLTA", "GOLF"], log=print)
        summary = campaign.run(ITERATIONS)
    print(summary.line())
    print(summary.detail())
    assert summary.runs == ITERATIONS and summary.kills >= 1  # a kill timed after the last step finds none
    assert set(summary.killed_in) - {"start-up"}, summary.killed_in
    assert summary.clean, summary.problems
    assert summary.duplicates == summary.lost == summary.corrupt == 0
    # every channel that was not held for a person delivered exactly once
    assert sum(summary.sends.values()) + summary.held == 3 * ITERATIONS, (summary.sends, summary.held)

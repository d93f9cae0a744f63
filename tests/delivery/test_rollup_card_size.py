"""Issue 17 item 9: the roll-up for 500 customers is posted to Teams in parts that each stay under
Teams' ~28 KB message limit (the Workflows simulator refuses bigger ones with 413, as Teams does),
every customer is accounted for, and each part is posted exactly once."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF

CUSTOMERS = 500
TEAMS_LIMIT = 28 * 1024


def _registry_document(n: int) -> dict:
    """``n`` customers C001.. shaped like ACME, each with its own identities and channels."""
    raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
    acme = raw["customers"][0]
    customers = []
    for i in range(1, n + 1):
        code = f"C{i:03d}"
        entry = copy.deepcopy(acme)
        entry.update(code=code, name=f"Customer {code} Ltd")
        for src in entry["sources"].values():
            src["ref"] = {k: f"{v}-{code}" if k != "tenant_id" else f"0e0d1422-c634-cb77-b7f7-51b672f2{i:04d}"
                          for k, v in src["ref"].items()}
        entry["delivery"] = {**entry["delivery"], "teams": {"via": "workflow", "conn_id": f"teams_{code.lower()}"},
                             "archive": {"via": "local", "folder": f"{code}/Reports/Weekly"}}
        customers.append(entry)
    return {"msp": raw["msp"], "customers": customers}


@pytest.fixture
def big_msp(sim, tmp_path, use_connection):
    """500 customers: two in three reconciled with critical findings and a failed source (their
    render is not on record), the others failed before reconcile."""
    from msp_reports.reconcile import reconcile
    from msp_reports.registry import Thresholds
    from msp_reports.settings import Settings
    from devtools.simulators.teams import demo_connections
    from msp_reports.store import ReportStore

    from tests.factories import make_previous, make_snapshot

    registry = tmp_path / "customers.yaml"
    registry.write_text(yaml.safe_dump(_registry_document(CUSTOMERS)))
    settings = Settings(registry_path=str(registry), store_root=str(tmp_path / "store"),
                        archive_root=str(tmp_path / "archive"))
    store = ReportStore(settings.store_root)
    rec = reconcile(make_snapshot(failed={"sites": "cloudflare: HTTP 503 Service Unavailable"}),
                    make_previous(), Thresholds())
    risks_each = sum(f.severity == "critical" for f in rec.flags) + 1  # and the failed source
    actions_each = len({f.recommendation for f in rec.flags if f.severity in ("critical", "warning")})
    assert risks_each > 1 and actions_each > 1
    reconciled = [f"C{i:03d}" for i in range(1, CUSTOMERS + 1) if i % 3]
    for code in reconciled:
        doc = rec.model_dump(mode="json")
        doc["snapshot"]["customer"] = code
        store.write_json(code, WEEK_OF, "reconciled.json", doc)
    workflow = f"weekly-reports-{tmp_path.name}"
    for conn_id, conn in demo_connections(sim.base_url, sim.creds, {"teams_weekly_reports": workflow}).items():
        use_connection(conn_id, conn)
    codes = [f"C{i:03d}" for i in range(1, CUSTOMERS + 1)]
    items = [{"customer": code, "week_of": WEEK_OF.isoformat()} for code in codes]
    # what each section must account for: (customers named, lines in all; every report is undelivered)
    expected = {"Key risks": (set(reconciled), len(reconciled) * risks_each),
                "Actions this week": (set(codes), len(reconciled) * actions_each + CUSTOMERS)}
    return settings, items, workflow, expected


def _posts(sim, workflow: str) -> list[dict]:
    return list(sim.state.extra.get("teams_posts", {}).get(workflow, []))


def _section(posts: list[dict], heading: str) -> list[str]:
    """The lines of one section, whichever posts it runs over."""
    lines, inside = [], False
    for block in (b for p in posts for b in p["card"]["body"]):
        if block.get("weight") == "Bolder" and "size" not in block:
            inside = block["text"] in (heading, f"{heading} (continued)")
        elif inside:
            lines.append(block["text"])
    return lines


def _texts(card: dict) -> str:
    return "\n".join(b["text"] for b in card["body"] if b["type"] == "TextBlock")


def test_500_customers_roll_up_in_posts_under_the_teams_limit_each_customer_accounted_for(sim, big_msp):
    from msp_reports import pipeline
    from msp_reports.delivery.ledger import Ledger
    from msp_reports.store import ReportStore

    settings, items, workflow, expected = big_msp
    result = pipeline.rollup(settings, items)
    posts = _posts(sim, workflow)
    assert result["posted"] == "sent" and result["posts"] == len(posts) > 1
    sizes = [len(json.dumps(p["card"]).encode()) for p in posts]
    assert max(sizes) < TEAMS_LIMIT, sizes
    # as Graph would carry it too: the card as a JSON string inside the message
    assert max(len(json.dumps(json.dumps(p["card"])).encode()) for p in posts) < TEAMS_LIMIT
    texts = [_texts(p["card"]) for p in posts]
    assert all(f"(part {n} of {len(posts)})" in t for n, t in enumerate(texts, 1))
    everything = "\n".join(texts)
    assert "0 of 500 delivered." in texts[0]
    # every customer once in the state groups, and the group counts add up to 500
    grouped = re.findall(r"^\S+ (.+?) \((\d+)\)(?: continued)?: (.+)$", everything, flags=re.M)
    codes = [c for _, _, line in grouped for c in line.split(", ")]
    assert sorted(codes) == [f"C{i:03d}" for i in range(1, CUSTOMERS + 1)]
    counts = {state: int(n) for state, n, _ in grouped}
    assert counts == {"render failed": 334, "failed before reconcile": 166}
    # risks and actions: the first ones quoted, the others counted per customer, none lost
    for heading, (named, total) in expected.items():
        lines = _section(posts, heading)
        quoted = [t for t in lines if re.match(r"C\d{3}: ", t)]
        counted = [(c, int(n)) for t in lines if t.startswith("… and ")
                   for c, n in re.findall(r"(C\d{3}) \((\d+)\)", t)]
        assert 0 < len(quoted) < 50 and len(quoted) + sum(n for _, n in counted) == total
        assert {c for c, _ in counted} | {t[:4] for t in quoted} == named
    ledger = Ledger(ReportStore(settings.store_root), "_rollup", WEEK_OF)
    names = ["teams"] + [f"teams-part{n}" for n in range(2, len(posts) + 1)]
    receipts = [ledger.receipt(name) for name in names]
    assert [r["state"] for r in receipts] == ["sent"] * len(posts)
    assert len({r["idempotency_key"] for r in receipts}) == len(posts)
    assert [p["client_request_id"] for p in posts] == [r["idempotency_key"] for r in receipts]

    again = pipeline.rollup(settings, items)  # a retry of the task: no part is posted twice
    assert again["posted"] == "sent" and len(_posts(sim, workflow)) == len(posts)


def test_a_retry_after_a_failed_part_posts_only_the_parts_that_did_not_go(sim, big_msp, monkeypatch):
    from msp_reports import pipeline
    from msp_reports.delivery import teams

    settings, items, workflow, expected = big_msp
    real_post = teams.TeamsWorkflowHook.post_card
    calls = []

    def second_refused(self, card, key):  # the channel refuses the second post once (not accepted)
        calls.append(key)
        if len(calls) == 2:
            raise RuntimeError("HTTP 400 from the channel")
        return real_post(self, card, key)

    monkeypatch.setattr(teams.TeamsWorkflowHook, "post_card", second_refused)
    with pytest.raises(RuntimeError, match="HTTP 400"):
        pipeline.rollup(settings, items)
    assert len(_posts(sim, workflow)) == 1
    result = pipeline.rollup(settings, items)
    posts = _posts(sim, workflow)
    assert result["posts"] == len(posts) > 1
    assert len({p["client_request_id"] for p in posts}) == len(posts)  # each part once
    assert calls[2] == calls[1]  # the refused part went again with its own key; the first did not

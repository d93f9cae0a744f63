"""The real DAG, run by Airflow (``dag.test``) over the 12 demo customers against the simulators,
a real SMTP server and a local archive; then run again to prove nothing is sent twice."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from tests.factories import ROOT, WEEK_OF

pytestmark = pytest.mark.e2e
REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)


@pytest.fixture(scope="module")
def demo(sim, tmp_path_factory):
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import connection_env, demo_connections

    home = tmp_path_factory.mktemp("msp-home")
    registry = load_registry(Settings.load().registry_path)
    channels = {c.delivery.teams.conn_id: f"{c.code.lower()}-shared" for c in registry.customers}
    channels[registry.msp.internal_teams_conn_id] = "weekly-reports"
    saved = dict(os.environ)
    with MailSink(home / "outbox") as mail:
        conns = demo_connections(sim.base_url, sim.creds, channels)
        conns["smtp_default"] = mail.connection(str(registry.msp.from_email))
        os.environ.update(connection_env(conns))
        os.environ["MSP_REPORTS_HOME"] = str(home)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                       stdout=subprocess.DEVNULL, env=os.environ.copy())
        from devtools.demo import seed_history

        seed_history(WEEK_OF, 1)  # last week's snapshot: the baseline for the week-over-week rules
        yield {"home": home, "mail": mail, "registry": registry, "sim": sim}
    os.environ.clear()
    os.environ.update(saved)


def _approving(codes, by="e2e test", week_of=WEEK_OF):
    """Each report approved once it is rendered (an approval must postdate the report it approves)."""
    from msp_reports.settings import Settings
    from devtools.engineer import approving_when_rendered

    return approving_when_rendered(Settings.load().store_root, week_of, list(codes), by=by)


def _run_dag():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags["weekly_executive_report"]
    run_at = dt.datetime.combine(REPORT_MONDAY, dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
    return dag.test(logical_date=run_at, run_after=run_at)


def _received(demo, customer):
    """What the customer received on each channel, wherever that channel delivers (tests/delivery/observed.py)."""
    from tests.delivery.observed import received

    return received(customer, WEEK_OF, sim=demo["sim"], mail_folder=demo["mail"].folder,
                    archive_root=demo["home"] / "archive", sender=str(demo["registry"].msp.from_email),
                    store_root=demo["home"] / "store")  # the session's simulators serve other tests too


def _pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


@pytest.fixture(scope="module")
def first_run(demo):
    with _approving(c.code for c in demo["registry"].customers):
        dr = _run_dag()
    return dr


def test_twelve_reports_rendered_approved_and_delivered(demo, first_run):
    home, registry = demo["home"], demo["registry"]
    assert str(first_run.state) == "success"
    pdfs = sorted(home.glob(f"store/*/{WEEK_OF}/report.pdf"))
    assert len(pdfs) == 12
    for c in registry.customers:
        approvals = json.loads((home / f"store/{c.code}/{WEEK_OF}/approvals/0001.json").read_text())
        assert approvals["decision"] == "approve" and approvals["by"] == "e2e test"
        ledger = {ch: json.loads((home / f"store/{c.code}/{WEEK_OF}/ledger/{ch}.json").read_text())
                  for ch in ("email", "teams", "archive")}
        assert {r["state"] for r in ledger.values()} == {"sent"}
        assert {r["pdf_sha256"] for r in ledger.values()} == {approvals["pdf_sha256"]}



def test_groups_map_over_codes_and_each_task_pulls_only_its_own_item(demo, first_run):
    """Every mapped task instance pulls the whole mapped list: it must hold codes, not the items
    (with the items, each task would pull every customer's registry entry)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    codes = sorted(c.code for c in demo["registry"].customers)
    with create_session() as session:
        rows = {r.key: XComModel.deserialize_value(r) for r in session.query(XComModel).filter(
            XComModel.dag_id == first_run.dag_id, XComModel.run_id == first_run.run_id,
            XComModel.task_id == "plan_customers")}
        by_index: dict[int, set] = {}
        for ti in first_run.get_task_instances():
            if ti.task_id.startswith("customer_report."):
                by_index.setdefault(ti.map_index, set()).add(ti.rendered_map_index)
        labels = {label for found in by_index.values() for label in found}
    assert sorted(rows["return_value"]) == codes  # what the groups expand over: codes only
    for code in codes:  # each customer's item under its own key, with its own registry entry
        assert rows[f"customer:{code}"]["customer"] == code
        assert rows[f"customer:{code}"]["entry"]["code"] == code
    assert [i["customer"] for i in rows["items"]] == rows["return_value"]
    assert labels == set(codes)  # the grid names every mapped task by its customer, not 0..11
    assert all(len(found) == 1 for found in by_index.values())  # one code per map index, on every task
    mapped_bytes = len(json.dumps(rows["return_value"]))
    item_bytes = max(len(json.dumps(rows[f"customer:{c}"])) for c in codes)
    assert mapped_bytes < item_bytes  # a task pulls its item plus a list smaller than one item
def test_emails_go_to_cto_and_account_owner_with_the_approved_pdf(demo, first_run):
    from msp_reports.store import sha256

    home, registry = demo["home"], demo["registry"]
    mails: list[EmailMessage] = demo["mail"].messages()
    smtp = [c for c in registry.customers if c.delivery.email.via == "smtp"]
    assert len(mails) == len(smtp)  # the others went by the Gmail API or Graph (below)
    for m in mails:
        assert sorted(a.strip() for a in m["X-Envelope-To"].split(",")) == sorted(a.strip() for a in m["To"].split(","))
    for c in registry.customers:
        got = _received(demo, c)
        assert len(got.emails) == 1, (c.code, c.delivery.email.via)
        m = got.emails[0]
        assert m["to"] == c.recipients
        assert m["filename"] == f"{c.code}_weekly-report_{WEEK_OF}.pdf"
        assert c.name.split()[0] in m["html"] and c.cto.name in m["html"]
        approved = json.loads((home / f"store/{c.code}/{WEEK_OF}/approvals/0001.json").read_text())
        assert sha256(m["pdf"]) == approved["pdf_sha256"]
        cover = (home / f"store/{c.code}/{WEEK_OF}/cover_note.html").read_bytes()
        assert m["html"].strip() == cover.decode().strip() and sha256(cover) == approved["cover_note_sha256"]


def test_teams_posts_archive_and_rollup(demo, first_run):
    home, registry = demo["home"], demo["registry"]
    posts = demo["sim"].state.extra["teams_posts"]
    for c in registry.customers:
        got = _received(demo, c)
        assert len(got.posts) == 1, (c.code, c.delivery.teams.via)
        card_text = json.dumps(got.posts[0]["card"])
        stored_card = (home / f"store/{c.code}/{WEEK_OF}/teams_card.json").read_bytes()
        assert got.posts[0]["card"] == json.loads(stored_card), c.code  # the approved card, as rendered
        assert c.name in card_text
        others = [o for o in registry.customers if o.code != c.code]
        assert not any(o.name in card_text for o in others)
        assert got.archived == [(home / f"store/{c.code}/{WEEK_OF}/report.pdf").read_bytes()], c.code
        assert got.snapshots == [(home / f"store/{c.code}/{WEEK_OF}/snapshot.json").read_bytes()], c.code
    # one roll-up; the 09:00 missed-approvals notice may come too (the run starts after 09:00 and
    # each report is approved only once rendered), at most once
    notices = [p for p in posts["weekly-reports"] if "Not approved at" in json.dumps(p["card"])]
    assert len(notices) <= 1 and len(posts["weekly-reports"]) - len(notices) == 1
    rollup = (home / f"store/_rollup/{WEEK_OF}/rollup.md").read_text()
    assert "12 of 12 customer reports delivered" in rollup
    for code in ("ACME", "BRVO", "CNDR", "DLTA"):
        assert f"{code}:" in rollup  # each story customer has a key risk or action line


STORIES = {
    "ACME": ("Leeds / Network", "fell"),
    "BRVO": ("BRVO-FS01", "not backed up"),
    "CNDR": ("Ransomware behaviour detected", "still open"),
    "DLTA": ("backlog", "grew"),
}


@pytest.mark.parametrize("code", sorted(STORIES))
def test_each_story_is_in_its_own_executive_summary_and_no_other_report(demo, first_run, code):
    home = demo["home"]
    rec = json.loads((home / f"store/{code}/{WEEK_OF}/reconciled.json").read_text())
    from msp_reports.reconcile import Reconciled
    from msp_reports.render import executive_summary

    summary = " ".join(executive_summary(Reconciled.model_validate(rec)))
    needle, verb = STORIES[code]
    assert needle in summary and verb in summary
    texts = {p.parts[-3]: _pdf_text(p) for p in home.glob(f"store/*/{WEEK_OF}/report.pdf")}
    assert needle.replace("\n", " ") in texts[code].replace("\n", " ")
    unique = {"ACME": "Leeds", "BRVO": "BRVO-FS01", "CNDR": "Ransomware", "DLTA": "Pasadena"}[code]
    assert [c for c, t in texts.items() if unique in t] == [code]


def test_running_again_sends_nothing_twice(demo, first_run):
    mail, sim = demo["mail"], demo["sim"]
    before_mail = len(mail.messages())
    before_posts = {k: len(v) for k, v in sim.state.extra["teams_posts"].items()}
    before = {c.code: _received(demo, c) for c in demo["registry"].customers}
    home = demo["home"]

    def versions() -> dict[str, tuple]:  # what a re-run of a delivered week must leave alone
        return {c.code: (sorted(p.name for p in (home / f"store/{c.code}/{WEEK_OF}/approvals").iterdir()),
                         (home / f"store/{c.code}/{WEEK_OF}/render.json").read_bytes(),
                         (home / f"store/{c.code}/{WEEK_OF}/snapshot.json").read_bytes())
                for c in demo["registry"].customers}

    kept = versions()
    with _approving((c.code for c in demo["registry"].customers), by="second run"):
        dr = _run_dag()
    assert str(dr.state) == "success"
    # every customer finished at once as already delivered: nothing re-extracted or re-rendered, no
    # approval voided or added, and the sensor did not wait
    assert versions() == kept
    sensors = [ti for ti in dr.get_task_instances() if ti.task_id == "customer_report.wait_for_approval"]
    assert len(sensors) == 12 and {str(ti.state) for ti in sensors} == {"success"}
    assert len(mail.messages()) == before_mail
    for c in demo["registry"].customers:  # every channel, whatever carries it
        after_c = _received(demo, c)
        assert (len(after_c.emails), len(after_c.posts), len(after_c.archived)) == (1, 1, 1) == (
            len(before[c.code].emails), len(before[c.code].posts), len(before[c.code].archived)), c.code
    after = {k: len(v) for k, v in sim.state.extra["teams_posts"].items()}
    customer_channels = {k: v for k, v in after.items() if k != "weekly-reports"}
    assert customer_channels == {k: v for k, v in before_posts.items() if k != "weekly-reports"}


def test_rejected_customer_is_skipped_and_named_in_rollup_manual_run_for_some_customers(demo, first_run):
    """A manual run for a past week, limited to two customers: one approved, one rejected."""
    from airflow.models import Variable
    from airflow.dag_processing.dagbag import DagBag

    from msp_reports.approval import variable_key

    past = WEEK_OF - dt.timedelta(days=7)
    Variable.set(variable_key("ECHO", past), "reject the Berlin numbers need a second look")
    before = len(demo["mail"].messages())
    dag = DagBag(str(ROOT / "dags")).dags["weekly_executive_report"]
    run_at = dt.datetime.combine(WEEK_OF, dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
    with _approving(["FXTR"], week_of=past):
        dr = dag.test(logical_date=run_at, run_after=run_at, run_conf={"customers": ["ECHO", "FXTR"]})
    assert str(dr.state) == "success"
    tis = dr.get_task_instances()
    labels = {ti.map_index: ti.rendered_map_index for ti in tis if ti.task_id == "customer_report.render"}
    assert sorted(labels.values()) == ["ECHO", "FXTR"]  # only the two customers asked for
    index = {label: i for i, label in labels.items()}
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in tis}
    for channel in ("deliver_email", "post_to_teams", "archive"):
        assert states[(f"customer_report.{channel}", index["ECHO"])] == "skipped"
        assert states[(f"customer_report.{channel}", index["FXTR"])] == "success"
    new = demo["mail"].messages()[before:]
    assert [m.get_all("To") for m in new] == [[", ".join(demo["registry"].get("FXTR").recipients)]]
    rollup = (demo["home"] / f"store/_rollup/{past}/rollup.md").read_text()
    assert "ECHO | ⛔ rejected by unknown (Airflow Variable): the Berlin numbers need a second look" in rollup
    assert "FXTR | ✅ delivered" in rollup and "ACME" not in rollup

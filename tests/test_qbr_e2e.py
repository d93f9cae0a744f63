"""The QBR DAG run by Airflow (``dag.test``) for two customers over a store seeded with a whole
quarter of weekly snapshots (the weekly pipeline's own extract and reconcile against the
simulators), with a real SMTP server, the Teams and SharePoint/Drive simulators and a local
archive: each pack is delivered exactly once on every channel, a re-run sends nothing more, a
week missing from the store is shown as missing, and a narrative changed after approval voids it."""

from __future__ import annotations

import contextlib
import hashlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from tests.factories import ROOT

pytestmark = pytest.mark.e2e
QUARTER = "2026-Q3"
CODES = ["ACME", "CNDR"]  # London and Singapore; ACME approved on the review page's record, CNDR by Variable
MONDAY = dt.date(2026, 10, 5)  # the first Monday after the quarter: the scheduled run's day


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from msp_reports.qbr import Quarter
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from devtools.simulators.credentials import SimCredentials
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import SimServer, connection_env, demo_connections
    from devtools.simulators.world import World

    weeks = Quarter.parse(QUARTER).week_ofs()
    home = tmp_path_factory.mktemp("qbr-home")
    registry = load_registry(Settings.load().registry_path)
    channels = {c.delivery.teams.conn_id: f"{c.code.lower()}-shared" for c in registry.customers}
    channels[registry.msp.internal_teams_conn_id] = "weekly-reports"
    saved = dict(os.environ)
    with SimServer(World(weeks[-1], weeks=len(weeks)), SimCredentials.generate()) as sim, \
            MailSink(home / "outbox") as mail:
        sim.state.extra["uptimerobot_rate_limit"] = 1000
        sim.state.extra["cloudflare_limits"] = {"maxDuration": 86_400, "notOlderThan": 400 * 86_400}
        conns = demo_connections(sim.base_url, sim.creds, channels)
        conns["smtp_default"] = mail.connection(str(registry.msp.from_email))
        os.environ.update(connection_env(conns))
        os.environ["MSP_REPORTS_HOME"] = str(home)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                       stdout=subprocess.DEVNULL, env=os.environ.copy())
        from devtools.demo import seed_weeks

        missing = weeks[5]  # CNDR's sixth week never reached the store
        seed_weeks(weeks, ["ACME"])
        seed_weeks([w for w in weeks if w != missing], ["CNDR"])
        yield {"home": home, "mail": mail, "registry": registry, "sim": sim, "weeks": weeks, "missing": missing}
    os.environ.clear()
    os.environ.update(saved)


def _pack(home: Path, code: str) -> Path:
    return home / "store" / code / "qbr" / QUARTER


@contextlib.contextmanager
def _engineers(home: Path):
    """ACME approved as the review page records it (bound to the hashes shown), its Required Action
    answered if it parked; CNDR through the Airflow Variable with the PDF's hash pinned, set once the
    pack is published (before its wait looks: no watcher can answer a parked wait without the API)."""
    from airflow.models import Variable

    from devtools.engineer import approving_when_rendered
    from msp_reports.approval_request import QBR
    from msp_reports.qbr_store import quarter_first_day, variable_key

    root = str(home / "store")
    stop = threading.Event()

    def by_variable() -> None:
        path = _pack(home, "CNDR") / "render.json"
        while not stop.wait(0.05):
            if path.exists():
                Variable.set(variable_key("CNDR", QUARTER), f"approve {json.loads(path.read_text())['pdf_sha256'][:12]}")
                break
        # The wait reads the Variable before and after writing its request. Should it ever park
        # without having read it (there is no watcher with an API here), answer the request after
        # a minute so that the run ends and the record's "via" assertion fails instead of hanging.
        if not stop.wait(60) and not (_pack(home, "CNDR") / "approvals").exists():
            from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
            from msp_reports.review import hitl

            hitl.respond(SimpleAuthManagerUser(username="qbr e2e (fallback)", role="admin"), "CNDR", QUARTER,
                         "approve", kind=QBR)

    watcher = threading.Thread(target=by_variable, daemon=True)
    watcher.start()
    try:
        with approving_when_rendered(root, quarter_first_day(QUARTER), ["ACME"], by="qbr e2e (engineer)", kind=QBR):
            yield
    finally:
        stop.set()
        watcher.join(5)


def _run(conf=None):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(ROOT / "dags")).dags["quarterly_business_review"]
    run_at = dt.datetime.combine(MONDAY, dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
    return dag.test(logical_date=run_at, run_after=run_at,
                    run_conf=conf if conf is not None else {"quarter": QUARTER, "customers": CODES})


def _received(env, code):
    from devtools.inbox import received
    from msp_reports.qbr_store import archive_name, quarter_first_day

    return received(env["registry"].get(code), quarter_first_day(QUARTER), sim=env["sim"],
                    mail_folder=env["mail"].folder, archive_root=env["home"] / "archive",
                    sender=str(env["registry"].msp.from_email), store_root=env["home"] / "store",
                    filename=archive_name(code, QUARTER), folder=f"qbr/{QUARTER}")


@pytest.fixture(scope="module")
def first_run(env):
    with _engineers(env["home"]):
        return _run()


def test_two_packs_rendered_approved_and_delivered_once_on_every_channel(env, first_run):
    assert str(first_run.state) == "success"
    labels = {ti.rendered_map_index for ti in first_run.get_task_instances() if ti.task_id == "customer_pack.render"}
    assert labels == set(CODES)  # only the customers asked for
    for code in CODES:
        pack = _pack(env["home"], code)
        records = sorted((pack / "approvals").iterdir())
        approved = json.loads(records[-1].read_text())
        assert approved["decision"] == "approve"
        assert approved["via"] == ("airflow-variable" if code == "CNDR" else "demo (simulated engineer)")
        render = json.loads((pack / "render.json").read_text())
        sources = (pack / "sources.json").read_bytes()
        assert render["snapshot_sha256"] == approved["snapshot_sha256"] == hashlib.sha256(sources).hexdigest()
        ledger = {ch: json.loads((pack / "ledger" / f"{ch}.json").read_text()) for ch in ("email", "teams", "archive")}
        assert {r["state"] for r in ledger.values()} == {"sent"}
        assert {r["pdf_sha256"] for r in ledger.values()} == {approved["pdf_sha256"]}
        assert all(r["idempotency_key"].startswith(f"qbr.{code}.2026-07-01.") for r in ledger.values())

        got = _received(env, code)
        assert (len(got.emails), len(got.posts), len(got.archived)) == (1, 1, 1), code
        pdf = (pack / "report.pdf").read_bytes()
        assert got.emails[0]["pdf"] == pdf == got.archived[0]  # exactly the approved bytes
        assert got.emails[0]["filename"] == f"{code} QBR {QUARTER} (2026-10-05).pdf"
        assert got.emails[0]["subject"] == (pack / "subject.txt").read_text()
        assert got.posts[0]["card"] == json.loads((pack / "teams_card.json").read_text())
        assert got.snapshots == [sources]  # the pack's sources archived beside the PDF
        assert got.emails[0]["to"] == sorted(env["registry"].get(code).recipients)
    # each customer's pack went to its own people only (the account owner may be the same)
    acme, cndr = (env["registry"].get(c) for c in CODES)
    assert str(cndr.cto.email) not in _received(env, "ACME").emails[0]["to"]
    assert str(acme.cto.email) not in _received(env, "CNDR").emails[0]["to"]


def test_the_packs_are_built_from_the_stored_weeks_and_a_missing_week_is_shown(env, first_run):
    weeks, missing = env["weeks"], env["missing"]
    acme = json.loads((_pack(env["home"], "ACME") / "sources.json").read_text())
    cndr = json.loads((_pack(env["home"], "CNDR") / "sources.json").read_text())
    assert sorted(acme["snapshots"]) == [w.isoformat() for w in weeks] and None not in acme["snapshots"].values()
    for week, digest in acme["snapshots"].items():  # the hash of each weekly snapshot.json as stored
        stored = (env["home"] / "store" / "ACME" / week / "snapshot.json").read_bytes()
        assert digest == hashlib.sha256(stored).hexdigest()
    assert cndr["snapshots"][missing.isoformat()] is None
    assert [w for w, h in cndr["snapshots"].items() if h is None] == [missing.isoformat()]
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(_pack(env["home"], "CNDR") / "report.pdf").pages).split())
    assert "Missing" in text and "missing" in text
    acme_text = " ".join(" ".join(p.extract_text() for p in PdfReader(_pack(env["home"], "ACME") / "report.pdf").pages).split())
    assert "Acme" in acme_text and "Condor" not in acme_text
    # each customer's story (the world's latest week is the quarter's last) in its own pack only
    assert "Leeds / Network fell" in acme_text and "Leeds" not in text
    assert "Ransomware behaviour detected" in text and "Ransomware" not in acme_text


def test_running_again_sends_nothing_more(env, first_run):
    mail, sim, home = env["mail"], env["sim"], env["home"]
    before_mail = len(mail.messages())
    before_posts = {k: len(v) for k, v in sim.state.extra.get("teams_posts", {}).items()}

    def versions():
        return {code: (sorted(p.name for p in (_pack(home, code) / "approvals").iterdir()),
                       (_pack(home, code) / "render.json").read_bytes(),
                       {ch: json.loads((_pack(home, code) / "ledger" / f"{ch}.json").read_text())["sent_at"]
                        for ch in ("email", "teams", "archive")})
                for code in CODES}

    kept = versions()
    dr = _run()
    assert str(dr.state) == "success"
    assert versions() == kept  # nothing re-rendered, no decision added or voided, no receipt rewritten
    sensors = [ti for ti in dr.get_task_instances() if ti.task_id == "customer_pack.wait_for_approval"]
    assert len(sensors) == 2 and {str(ti.state) for ti in sensors} == {"success"}
    assert len(mail.messages()) == before_mail
    assert {k: len(v) for k, v in sim.state.extra.get("teams_posts", {}).items()} == before_posts
    for code in CODES:
        got = _received(env, code)
        assert (len(got.emails), len(got.posts), len(got.archived)) == (1, 1, 1), code


def test_an_unknown_customer_fails_the_plan_naming_it(env, first_run):
    dr = _run({"quarter": QUARTER, "customers": ["ACME", "NOPE"]})
    assert str(dr.state) == "failed"
    plan = next(ti for ti in dr.get_task_instances() if ti.task_id == "plan_customers")
    assert str(plan.state) == "failed"


def test_a_narrative_changed_after_approval_voids_it(env, first_run):
    """A third customer's pack, through the pipeline's functions: approved, then the narrative is
    edited (the review page's "Save and re-render"): the approval no longer stands, nothing can be
    delivered, and the wait is back to awaiting review; approving the new version delivers it."""
    from msp_reports import approval, qbr_pipeline
    from msp_reports.exceptions import ApprovalError
    from msp_reports.qbr_store import PackStore, quarter_first_day, record_decision
    from msp_reports.settings import Settings
    from devtools.demo import seed_weeks

    seed_weeks(env["weeks"][-2:], ["ECHO"])
    settings = Settings.load()
    item = qbr_pipeline.plan(settings, dt.datetime(2026, 10, 5, 6, tzinfo=ZoneInfo("Europe/London")),
                             {"quarter": QUARTER, "customers": ["ECHO"]}, schedule_timezone="Europe/London")[0]
    first = qbr_pipeline.render(settings, item)
    waiting = dt.datetime.now(dt.timezone.utc)  # when the sensor began waiting (a manual run, now)
    store, key = PackStore(settings.store_root), quarter_first_day(QUARTER)
    shown = approval.reviewed_version(store.week("ECHO", key).render_record())
    record_decision(settings.store_root, "ECHO", QUARTER, "approve", by="jane", via="review-page", reviewed=shown)
    assert qbr_pipeline.check_approval(settings, item, None, waiting_since=waiting)[0] == "approved"

    second = qbr_pipeline.render(settings, item, commentary="A quiet quarter; the Berlin move is done.")
    assert second["pdf_sha256"] != first["pdf_sha256"]
    assert approval.in_force(store, "ECHO", key) is None and approval.voided(store, "ECHO", key)["by"] == "jane"
    assert qbr_pipeline.check_approval(settings, item, None, waiting_since=waiting)[0] == "awaiting_review"
    with pytest.raises(ApprovalError, match="changed after approval|not approved"):
        qbr_pipeline.deliver(settings, item, "email")
    assert not (store.folder("ECHO", key) / "ledger").exists()  # nothing was tried
    with pytest.raises(approval.StaleReview):  # a decision on the version shown before is refused
        record_decision(settings.store_root, "ECHO", QUARTER, "approve", by="jane", via="review-page", reviewed=shown)
    text = " ".join(p.extract_text() for p in PdfReader(store.folder("ECHO", key).path + "/report.pdf").pages)
    assert "Berlin move is done" in " ".join(text.split())

    now = approval.reviewed_version(store.week("ECHO", key).render_record())
    record_decision(settings.store_root, "ECHO", QUARTER, "approve", by="jane", via="review-page", reviewed=now)
    assert qbr_pipeline.deliver(settings, item, "email")["state"] == "sent"
    assert qbr_pipeline.deliver(settings, item, "email")["state"] == "sent"  # a retry: the same receipt
    assert len(_received(env, "ECHO").emails) == 1


def _parked_request(code: str) -> dict | None:
    """The QBR run's unanswered Required Action for ``code`` (its subject and body), once its task waits on it."""
    from sqlalchemy import select

    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from msp_reports.approval_request import QBR

    with create_session() as session:
        row = session.execute(
            select(HITLDetail.subject, HITLDetail.body).join(TI, HITLDetail.ti_id == TI.id)
            .where(TI.dag_id == QBR.dag_id, TI.task_id == QBR.task_id, TI.state == TaskInstanceState.AWAITING_INPUT,
                   HITLDetail.responded_at.is_(None), HITLDetail.subject.contains(code))).first()
    return None if row is None else {"subject": row.subject, "body": row.body}


def test_a_pack_waits_as_a_required_action_and_the_qbr_view_answers_it_delivering_once(env, first_run):
    """FXTR, with nobody approving beforehand: its wait parks on a Required Action that names the
    customer and the quarter and gives the pack's headlines, PDF hash and links; the account
    engineer approves on the review page's QBR view, which answers that request: the run goes on
    and the pack is delivered exactly once on every channel, the one record naming the engineer."""
    import re

    from airflow.models import Variable

    from devtools.demo import seed_weeks
    from msp_reports.approval import HASHES
    from tests.review.review_helpers import TEST_USERS, api_clients, environment

    seed_weeks(env["weeks"][-2:], ["FXTR"])
    seen: dict = {}
    answered = threading.Event()
    stop = threading.Event()

    def engineer_on_the_qbr_view() -> None:
        while not stop.wait(0.2):
            if (request := _parked_request("FXTR")) is None:
                continue
            seen.update(request)
            reviewer = api_clients()("reviewer", "user")
            page = reviewer.get("/weekly-reports-review/qbr/", params={"quarter": QUARTER, "customer": "FXTR"})
            fields = dict(re.findall(r'name="(csrf_token|[a-z_]+_sha256)" value="([^"]*)"', page.text))
            seen["decided"] = reviewer.post(
                f"/weekly-reports-review/qbr/decision/FXTR/{QUARTER}", follow_redirects=False,
                data={**{k: fields[k] for k in ("csrf_token", *HASHES)}, "decision": "approve"}).status_code
            answered.set()
            return

    with environment({"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": TEST_USERS}):
        engineer = threading.Thread(target=engineer_on_the_qbr_view, daemon=True)
        engineer.start()
        try:
            dr = _run({"quarter": QUARTER, "customers": ["FXTR"]})
        finally:
            stop.set()
            engineer.join(30)
            Variable.delete(f"qbr_approval__FXTR__{QUARTER}")
    assert answered.is_set() and seen["decided"] == 303
    assert str(dr.state) == "success"
    pack = _pack(env["home"], "FXTR")
    render = json.loads((pack / "render.json").read_text())
    assert seen["subject"] == "QBR pack approval: FXTR 2026-Q3"
    body = seen["body"]
    assert "(FXTR), quarterly business review, 2026-Q3" in body and "**Headlines**" in body
    assert "weekly reports on record for the quarter" in body and f"`{render['pdf_sha256']}`" in body
    assert "/weekly-reports-review/qbr/?quarter=2026-Q3&customer=FXTR)" in body
    assert "/weekly-reports-review/qbr/pdf/FXTR/2026-Q3/report.pdf)" in body
    [record] = [json.loads(p.read_text()) for p in sorted((pack / "approvals").iterdir())]
    assert (record["decision"], record["by"], record["via"]) == ("approve", "reviewer", "review-page")
    assert record["pdf_sha256"] == render["pdf_sha256"]
    got = _received(env, "FXTR")
    assert (len(got.emails), len(got.posts), len(got.archived)) == (1, 1, 1)
    assert _parked_request("FXTR") is None  # answered, not left waiting
    wait = next(ti for ti in dr.get_task_instances() if ti.task_id == "customer_pack.wait_for_approval")
    assert str(wait.state) == "success"

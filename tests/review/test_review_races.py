"""The review page against the pipeline running at the same moment, and against hostile links
(issue 17, items 3 and 13; the page side of items 6 and 12).

The app is Airflow's own (``create_app``) with the review plugin mounted, as in
``test_review_api``; the pipeline is the real one against the simulators, with a real SMTP sink.
Each race is made deterministic by pausing one side at the exact point of the window.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
import threading

import pytest
import yaml

from tests.factories import ROOT, WEEK_OF
from msp_reports.approval import HASHES
from tests.review.review_helpers import TEST_USERS, environment, migrate_db, render_week, sim_env

PREFIX = "/weekly-reports-review"
WEEK = WEEK_OF.isoformat()
ITEM = {"customer": "ACME", "week_of": WEEK}


@pytest.fixture(scope="module")
def api(sim, tmp_path_factory):
    from msp_reports.settings import INCLUDE
    from devtools.simulators.mailsink import MailSink

    home = tmp_path_factory.mktemp("review-races")
    from_email = yaml.safe_load((INCLUDE / "customers.yaml").read_text())["msp"]["from_email"]
    with MailSink(home / "outbox") as mail, environment({
            **sim_env(sim, home), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": TEST_USERS,
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(mail.connection(from_email))}):
        migrate_db()
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from fastapi.testclient import TestClient

        app = create_app("core")
        manager = get_auth_manager()

        def client(username: str = "reviewer", role: str = "user") -> TestClient:
            c = TestClient(app, base_url="http://127.0.0.1:8080", raise_server_exceptions=False)
            c.cookies.set("_token", manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role)))
            return c

        yield {"client": client, "home": home, "mail": mail}
        from airflow.models import Variable

        Variable.delete(f"weekly_report_approval__ACME__{WEEK}")


@pytest.fixture
def week(api):
    """ACME's week rendered afresh (a clean store folder), and the settings the pipeline uses."""
    import shutil

    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore

    shutil.rmtree(api["home"] / "store" / "ACME" / WEEK, ignore_errors=True)
    render_week(WEEK_OF, ["ACME"])
    settings = Settings.load()
    return settings, ReportStore(settings.store_root)


def _page(client, customer="ACME", **params) -> tuple[str, dict]:
    r = client.get(f"{PREFIX}/", params={"week": WEEK, "customer": customer, **params})
    assert r.status_code == 200, r.text
    fields = dict(re.findall(r'name="(csrf_token|[a-z_]+_sha256)" '
                             r'value="([^"]*)"', r.text))
    return r.text, fields


def _approve_on_page(client) -> dict:
    _, fields = _page(client)
    body = {k: fields[k] for k in ("csrf_token", *HASHES)}
    r = client.post(f"{PREFIX}/decision/ACME/{WEEK}", data={**body, "decision": "approve"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return fields


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# ---- item 3: edit/re-render and start delivery are mutually exclusive --------------------------
def test_a_delivery_starting_while_the_page_re_renders_keeps_the_whole_week_on_one_version(api, week, monkeypatch):
    """The window of the issue: the page has checked "delivery started?" and is rendering when the
    email goes out. Today the re-render then publishes a second version: Teams and the archive
    fail with ApprovalError and the week is stuck half-delivered."""
    from msp_reports import pipeline, render

    settings, store = week
    client = api["client"]()
    approved = _approve_on_page(client)
    _, fields = _page(client)
    rendering, go = threading.Event(), threading.Event()
    real = render.render_report

    def paused_render(*args, **kwargs):  # the page's render (it runs in the app's worker thread)
        if not rendering.is_set():
            rendering.set()
            assert go.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_report", paused_render)
    answer = {}

    def save():
        answer["r"] = client.post(f"{PREFIX}/commentary/ACME/{WEEK}", follow_redirects=False, data={
            "commentary": "A late change of words.", "csrf_token": fields["csrf_token"],
            "shown_commentary_sha256": fields["shown_commentary_sha256"]})

    editor = threading.Thread(target=save)
    editor.start()
    assert rendering.wait(60)  # the page has passed its checks and is rendering
    email = pipeline.deliver(settings, ITEM, "email")  # 09:00: the delivery starts in the window
    go.set()
    editor.join(120)
    assert email["state"] == "sent" and email["pdf_sha256"] == approved["pdf_sha256"]
    r = answer["r"]
    assert r.status_code == 409 and "delivery has started" in r.json()["detail"]
    assert "A late change" not in (store.read_text("ACME", WEEK_OF, "commentary.md") or "")
    assert store.read_json("ACME", WEEK_OF, "render.json")["pdf_sha256"] == approved["pdf_sha256"]
    teams = pipeline.deliver(settings, ITEM, "teams")
    archive = pipeline.deliver(settings, ITEM, "archive")
    assert {d["state"] for d in (email, teams, archive)} == {"sent"}
    assert {d["pdf_sha256"] for d in (email, teams, archive)} == {approved["pdf_sha256"]}


def test_a_decision_after_delivery_started_is_refused_even_before_any_receipt(api, week):
    """Delivery start is recorded under the week's lock before the first channel is tried."""
    from msp_reports import approval

    settings, store = week
    client = api["client"]()
    _approve_on_page(client)
    approval.start_delivery(store, "ACME", WEEK_OF, now=dt.datetime.now(dt.timezone.utc))
    assert store.list("ACME", WEEK_OF, "ledger") == []  # no channel tried yet
    html, fields = _page(client)
    assert 'id="locked"' in html and re.search(r'<textarea id="commentary"[^>]*disabled', html)
    r = client.post(f"{PREFIX}/commentary/ACME/{WEEK}", follow_redirects=False, data={
        "commentary": "too late", "csrf_token": fields["csrf_token"],
        "shown_commentary_sha256": fields["shown_commentary_sha256"]})
    assert r.status_code == 409 and "delivery has started" in r.json()["detail"]


def test_the_page_never_shows_a_render_json_beside_another_renders_pdf(api, week, monkeypatch):
    """A render paused between writing the PDF and render.json: the page waits for the whole
    version instead of showing the old hashes beside the new PDF (which it would then approve)."""
    from msp_reports import pipeline
    from msp_reports.store import ReportStore

    settings, store = week
    client = api["client"]()
    _page(client)
    written, go = threading.Event(), threading.Event()
    real = ReportStore.write_bytes

    def paused_write(self, customer, week_of, name, data):
        out = real(self, customer, week_of, name, data)
        if name == "report.pdf" and threading.current_thread() is writer:
            written.set()
            assert go.wait(60)
        return out

    monkeypatch.setattr(ReportStore, "write_bytes", paused_write)
    store.write_text("ACME", WEEK_OF, "commentary.md", "New words from the engineer.\n")
    writer = threading.Thread(target=pipeline.render, args=(settings, ITEM))
    writer.start()
    assert written.wait(120)
    shown = {}
    reader = threading.Thread(target=lambda: shown.update(zip(("html", "fields"), _page(client))))
    reader.start()
    reader.join(1.0)
    paused_reader = reader.is_alive()  # today: answers at once, with the old render.json
    go.set()
    writer.join(120)
    reader.join(60)
    pdf = store.read_bytes("ACME", WEEK_OF, "report.pdf")
    assert store.read_json("ACME", WEEK_OF, "render.json")["pdf_sha256"] == _sha(pdf)
    assert shown["fields"]["pdf_sha256"] == _sha(pdf)  # what the page would have approved is what it showed
    assert paused_reader


def test_a_render_killed_between_the_pdf_and_render_json_leaves_no_mismatched_version(api, week):
    """A real kill (os._exit) right after the PDF is replaced: there is no published version
    until the retry, never a new PDF under the old render.json (which an old approval matches)."""
    from msp_reports import approval

    settings, store = week
    client = api["client"]()
    _approve_on_page(client)
    store.write_text("ACME", WEEK_OF, "commentary.md", "Words the killed render was publishing.\n")
    script = textwrap.dedent(f"""
        import os
        from msp_reports import pipeline
        from msp_reports.settings import Settings
        from msp_reports.store import ReportStore

        real = ReportStore.write_bytes

        def killed_after_pdf(self, customer, week_of, name, data):
            out = real(self, customer, week_of, name, data)
            if name == "report.pdf":
                os._exit(9)
            return out

        ReportStore.write_bytes = killed_after_pdf
        pipeline.render(Settings({settings.registry_path!r}, {settings.store_root!r}, {settings.archive_root!r}),
                        {ITEM!r})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 9, proc.stderr[-3000:]
    pdf = store.read_bytes("ACME", WEEK_OF, "report.pdf")
    meta = store.read_json("ACME", WEEK_OF, "render.json")
    assert meta is None or meta["pdf_sha256"] == _sha(pdf)  # today: the old render.json over the new PDF
    html, _ = _page(client)
    assert 'data-state="ACME">rendering' in html and 'id="approve"' not in html
    with pytest.raises(approval.ApprovalError):
        approval.approved_pdf(store, "ACME", WEEK_OF)
    from msp_reports import pipeline

    pipeline.render(settings, ITEM)  # the task's retry publishes the version whole
    meta = store.read_json("ACME", WEEK_OF, "render.json")
    assert meta["pdf_sha256"] == _sha(store.read_bytes("ACME", WEEK_OF, "report.pdf"))
    assert 'data-state="ACME">awaiting review' in _page(client)[0]


# ---- item 13: no words of a link's choosing on the page; a broken registry says so -----------
def test_the_status_banner_shows_only_the_pages_own_messages(api, week):
    client = api["client"]()
    forged = "Approved by the CTO. Urgent: call 555-0100 to confirm your bank details"
    html, _ = _page(client, msg=forged)
    assert "555-0100" not in html and 'role="status"' not in html  # today: shown as the page's banner
    html, _ = _page(client, msg="approved")  # a fixed key, but the report is not approved: no banner
    assert 'role="status"' not in html
    html, fields = _page(client, msg="saved")
    assert f'role="status">Commentary saved; report re-rendered ({fields["pdf_sha256"][:12]}).' in html
    _approve_on_page(client)
    html, _ = _page(client, msg="approved")
    assert f'role="status">Approved by reviewer (PDF {fields["pdf_sha256"][:12]}).' in html


def test_a_broken_registry_gives_an_error_page_naming_the_problem(api, week, tmp_path, monkeypatch):
    from msp_reports.settings import INCLUDE

    registry = yaml.safe_load((INCLUDE / "customers.yaml").read_text())
    del registry["customers"][0]["timezone"]
    broken = tmp_path / "customers.yaml"
    broken.write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("AIRFLOW_VAR_MSP_REPORTS_REGISTRY", str(broken))
    client = api["client"]()
    r = client.get(f"{PREFIX}/", params={"week": WEEK}, headers={"accept": "text/html"})
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")  # today: a bare 500
    detail = re.search(r'<p id="error-detail">(.*?)</p>', r.text, re.S).group(1)
    assert str(broken) in detail and "ACME" in detail and "timezone" in detail and "Fix the file" in detail
    r = client.get(f"{PREFIX}/pdf/ACME/{WEEK}/report.pdf")  # a JSON client gets the same words
    assert r.status_code == 500 and str(broken) in r.json()["detail"]
    (tmp_path / "notyaml").mkdir()
    monkeypatch.setenv("AIRFLOW_VAR_MSP_REPORTS_REGISTRY", str(tmp_path / "notyaml"))
    r = client.get(f"{PREFIX}/", params={"week": WEEK}, headers={"accept": "text/html"})
    assert r.status_code == 500 and "is a directory" in r.text


# ---- items 6 and 12 on the page ------------------------------------------------------------------
def test_the_page_shows_a_refused_variable_value_and_a_decision_still_works(api, week):
    from msp_reports import pipeline

    settings, store = week
    now = pipeline.send_time(settings, ITEM) + dt.timedelta(minutes=1)
    assert pipeline.check_approval(settings, ITEM, None, now=now)[0] == "awaiting_review"
    state, _, note = pipeline.check_approval(settings, ITEM, "approve <b>please</b>", now=now)
    assert state == "awaiting_review" and json.loads(note)["refused"] == "approve <b>please</b>"
    client = api["client"]()
    html, _ = _page(client)
    problem = re.search(r'<p class="decision voided" id="variable-problem" role="alert">(.*?)</p>', html, re.S).group(1)
    assert "weekly_report_approval__ACME__2026-11-16" in problem and "&lt;b&gt;please&lt;/b&gt;" in problem
    assert "Variable value refused" in html
    _approve_on_page(client)
    html, _ = _page(client)
    assert 'id="variable-problem"' not in html
    assert pipeline.check_approval(settings, ITEM, None, now=now)[0] == "approved"


def test_the_page_records_the_signed_in_user_and_labels_a_variables_name_as_a_note(api, week):
    from msp_reports import pipeline

    settings, store = week
    client = api["client"]("reviewer", "user")
    _, fields = _page(client)
    body = {k: fields[k] for k in ("csrf_token", *HASHES)}
    r = client.post(f"{PREFIX}/decision/ACME/{WEEK}", follow_redirects=False,
                    data={**body, "decision": "reject", "reason": "check backups", "by": "the.ceo"})
    assert r.status_code == 303
    assert store.records("ACME", WEEK_OF, "approvals")[-1]["by"] == "reviewer"
    now = pipeline.send_time(settings, ITEM) + dt.timedelta(minutes=1)
    raw = json.dumps({"decision": "reject", "reason": "hold it", "by": "the.ceo"})
    assert pipeline.check_approval(settings, ITEM, raw, now=now)[0] == "rejected"
    html, _ = _page(client)
    decision = re.search(r'<p class="decision">(.*?)</p>', html, re.S).group(1)
    assert "unknown (Airflow Variable)" in decision and "the.ceo" not in decision
    assert re.search(r'id="decision-note">Note: named in the Variable, not verified: the.ceo<', html)

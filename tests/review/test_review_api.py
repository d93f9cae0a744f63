"""The review page through Airflow's own FastAPI app: authentication, authorization, CSRF, 409s.

The app is ``airflow.api_fastapi.app.create_app`` with the project's plugins folder, so the
review app is mounted exactly as the API server mounts it, behind Airflow's middlewares, and
users are the simple auth manager's (JWTs issued by the auth manager itself).
"""

from __future__ import annotations

import io
import json
import re

import pytest
from pypdf import PdfReader

from tests.factories import WEEK_OF
from msp_reports.approval import HASHES
from tests.review.review_helpers import TEST_USERS, api_clients, environment, migrate_db, render_week, sim_env

PREFIX = "/weekly-reports-review"
WEEK = WEEK_OF.isoformat()


@pytest.fixture(scope="module")
def api(sim, tmp_path_factory):
    home = tmp_path_factory.mktemp("review-api")
    with environment({**sim_env(sim, home), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": TEST_USERS}):
        migrate_db()
        render_week(WEEK_OF, ["ACME", "BRVO"])
        client = api_clients()
        yield {"client": client, "home": home}
        from airflow.models import Variable

        for code in ("ACME", "BRVO"):  # leave the session's Airflow DB as it was
            Variable.delete(f"weekly_report_approval__{code}__{WEEK}")


def _page(client, customer="ACME") -> tuple[str, dict]:
    r = client.get(f"{PREFIX}/", params={"week": WEEK, "customer": customer})
    assert r.status_code == 200, r.text
    fields = dict(re.findall(r'name="(csrf_token|[a-z_]+_sha256)" '
                             r'value="([^"]*)"', r.text))
    return r.text, fields


def _records(home, code="ACME"):
    folder = home / "store" / code / WEEK / "approvals"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _decide(client, fields, decision="approve", code="ACME", **extra):
    body = {k: fields[k] for k in ("csrf_token", *HASHES) if k in fields}
    body.update(decision=decision, **extra)
    return client.post(f"{PREFIX}/decision/{code}/{WEEK}", data=body, follow_redirects=False)


def test_without_login_every_route_is_401_and_the_page_redirects_to_airflow_login(api):
    anonymous = api["client"]()
    assert anonymous.get(f"{PREFIX}/").status_code == 401
    assert anonymous.get(f"{PREFIX}/pdf/ACME/{WEEK}/report.pdf").status_code == 401
    assert anonymous.get(f"{PREFIX}/pdf/ACME/{WEEK}/page-1.png").status_code == 401
    assert anonymous.post(f"{PREFIX}/decision/ACME/{WEEK}", data={"decision": "approve"}).status_code == 401
    assert anonymous.post(f"{PREFIX}/commentary/ACME/{WEEK}", data={"commentary": "x"}).status_code == 401
    r = anonymous.get(f"{PREFIX}/", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/auth/login?next=")
    forged = api["client"]()
    forged.cookies.set("_token", "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJyZXZpZXdlciIsInJvbGUiOiJBRE1JTiJ9.forged")
    assert forged.get(f"{PREFIX}/").status_code in (401, 403)
    assert _records(api["home"]) == []


def test_a_viewer_reads_but_may_not_decide_or_edit(api):
    viewer = api["client"]("viewer", "viewer")
    html, fields = _page(viewer)
    assert "ACME" in html and "awaiting review" in html and fields["csrf_token"]
    pdf = viewer.get(f"{PREFIX}/pdf/ACME/{WEEK}/report.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == (api["home"] / "store" / "ACME" / WEEK / "report.pdf").read_bytes()
    png = viewer.get(f"{PREFIX}/pdf/ACME/{WEEK}/page-1.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert _decide(viewer, fields).status_code == 403
    r = viewer.post(f"{PREFIX}/commentary/ACME/{WEEK}", data={"commentary": "x", "csrf_token": fields["csrf_token"],
                                                               "shown_commentary_sha256": fields["shown_commentary_sha256"]})
    assert r.status_code == 403
    assert _records(api["home"]) == []


def test_the_page_shows_what_is_sent_with_the_pdf_and_binds_it(api):
    """The subject, the cover note (as it will be sent, sandboxed) and the Teams card are on the page,
    their hashes are in the form, and a decision without them is for another version: 409."""
    import html as htmllib

    viewer = api["client"]("viewer", "viewer")
    html, fields = _page(viewer)
    week = api["home"] / "store" / "ACME" / WEEK
    subject = (week / "subject.txt").read_text()
    assert f'<strong id="subject">{htmllib.escape(subject)}</strong>' in html
    card = json.loads((week / "teams_card.json").read_text())
    assert htmllib.escape(card["body"][0]["text"], quote=False) in html
    cover = viewer.get(f"{PREFIX}/pdf/ACME/{WEEK}/cover_note.html")
    assert cover.status_code == 200 and cover.content == (week / "cover_note.html").read_bytes()
    assert cover.headers["content-security-policy"].startswith("sandbox")
    assert viewer.get(f"{PREFIX}/pdf/NOPE/{WEEK}/cover_note.html").status_code == 404
    render = json.loads((week / "render.json").read_text())
    for key in ("subject_sha256", "cover_note_sha256", "teams_card_sha256"):
        assert fields[key] == render[key]
    reviewer = api["client"]("reviewer", "user")
    _, fields = _page(reviewer)
    r = _decide(reviewer, {**fields, "teams_card_sha256": ""})
    assert r.status_code == 409 and "teams_card" in r.json()["detail"]
    assert _records(api["home"]) == []


def test_state_changes_need_this_sessions_csrf_token_and_a_same_origin_request(api):
    reviewer = api["client"]("reviewer", "user")
    _, fields = _page(reviewer)
    assert _decide(reviewer, {**fields, "csrf_token": ""}).status_code == 403  # missing
    assert _decide(reviewer, {**fields, "csrf_token": "0" * 64}).status_code == 403  # forged
    # a valid token of another user's session does not work for this one
    other = api["client"]("admin", "admin")
    _, other_fields = _page(other)
    assert _decide(reviewer, {**fields, "csrf_token": other_fields["csrf_token"]}).status_code == 403
    # the right token, but the request comes from another site
    r = reviewer.post(f"{PREFIX}/decision/ACME/{WEEK}", headers={"Sec-Fetch-Site": "cross-site"},
                      data={**fields, "decision": "approve"}, follow_redirects=False)
    assert r.status_code == 403
    r = reviewer.post(f"{PREFIX}/decision/ACME/{WEEK}", headers={"Origin": "https://evil.example"},
                      data={**fields, "decision": "approve"}, follow_redirects=False)
    assert r.status_code == 403
    # the token is bound to the session cookie: without it the token is refused
    stolen = api["client"]("reviewer", "user")
    assert _decide(stolen, fields).status_code == 403
    assert _records(api["home"]) == []


def test_commentary_rerenders_the_pdf_voids_the_approval_and_a_stale_approval_is_409(api):
    from airflow.models import Variable

    reviewer = api["client"]("reviewer", "user")
    _, first = _page(reviewer, "BRVO")
    r = _decide(reviewer, first, code="BRVO")
    assert r.status_code == 303, r.text
    [record] = _records(api["home"], "BRVO")
    assert record["decision"] == "approve" and record["by"] == "reviewer" and record["via"] == "review-page"
    assert record["pdf_sha256"] == first["pdf_sha256"] and record["commentary_sha256"] == first["commentary_sha256"]
    assert json.loads(Variable.get(f"weekly_report_approval__BRVO__{WEEK}"))["recorded_at"] == record["recorded_at"]

    text = "The file server backup is fixed as of Friday. <script>alert(1)</script>"
    r = reviewer.post(f"{PREFIX}/commentary/BRVO/{WEEK}", follow_redirects=False,
                      headers={"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"},
                      data={"commentary": text, "csrf_token": first["csrf_token"],
                            "shown_commentary_sha256": first["shown_commentary_sha256"]})
    assert r.status_code == 303, r.text
    html, second = _page(reviewer, "BRVO")
    assert second["pdf_sha256"] != first["pdf_sha256"] and second["commentary_sha256"] != first["commentary_sha256"]
    assert "awaiting review" in html and "voided" in html  # the approval no longer applies
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    pdf = reviewer.get(f"{PREFIX}/pdf/BRVO/{WEEK}/report.pdf").content
    words = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "The file server backup is fixed as of Friday." in " ".join(words.split())

    # approving what was shown before the change is refused, and nothing is recorded
    r = _decide(reviewer, first, code="BRVO")
    assert r.status_code == 409 and "changed since it was shown" in r.json()["detail"]
    # saving over someone else's newer commentary is refused too
    r = reviewer.post(f"{PREFIX}/commentary/BRVO/{WEEK}", data={
        "commentary": "older text", "csrf_token": first["csrf_token"],
        "shown_commentary_sha256": first["shown_commentary_sha256"]})
    assert r.status_code == 409
    assert len(_records(api["home"], "BRVO")) == 1
    # the current version can be rejected, with a reason
    assert _decide(reviewer, second, "reject", code="BRVO").status_code == 400
    assert _decide(reviewer, second, "reject", code="BRVO", reason="numbers need a second look").status_code == 303
    html, _ = _page(reviewer, "BRVO")
    assert "numbers need a second look" in html and 'data-state="BRVO">rejected' in html


def test_unknown_customer_or_week_is_refused(api):
    reviewer = api["client"]("reviewer", "user")
    assert reviewer.get(f"{PREFIX}/pdf/NOPE/{WEEK}/report.pdf").status_code == 404
    assert reviewer.get(f"{PREFIX}/pdf/ACME/2026-11-17/report.pdf").status_code == 400
    assert reviewer.get(f"{PREFIX}/pdf/ACME/..%2F..%2Fetc/report.pdf").status_code in (400, 404)


def test_once_delivery_has_started_neither_commentary_nor_decision_can_change(api):
    """An email already sent fixes the version: an edit now would give Teams and the archive another."""
    from msp_reports.delivery.ledger import Ledger
    from msp_reports.store import ReportStore

    reviewer = api["client"]("reviewer", "user")
    html, fields = _page(reviewer, "ACME")
    assert 'id="locked"' not in html
    ledger = Ledger(ReportStore(str(api["home"] / "store")), "ACME", WEEK_OF)
    ledger._write("email", {"channel": "email", "state": "sent", "pdf_sha256": fields["pdf_sha256"]})
    try:
        html, fields = _page(reviewer, "ACME")
        assert re.search(r'<textarea id="commentary"[^>]*disabled', html) and 'id="approve"' not in html
        assert 'id="locked"' in html and "Delivery has started (email sent)" in html
        before = _records(api["home"], "ACME")
        r = reviewer.post(f"{PREFIX}/commentary/ACME/{WEEK}", follow_redirects=False, data={
            "commentary": "a late change", "csrf_token": fields["csrf_token"],
            "shown_commentary_sha256": fields.get("shown_commentary_sha256", "")})
        assert r.status_code == 409 and "delivery has started (email sent)" in r.json()["detail"]
        r = _decide(reviewer, fields, "reject", reason="too late")
        assert r.status_code == 409 and "delivery has started" in r.json()["detail"]
        assert _records(api["home"], "ACME") == before
        store = ReportStore(str(api["home"] / "store"))
        assert "a late change" not in (store.read_text("ACME", WEEK_OF, "commentary.md") or "")
    finally:
        (api["home"] / "store" / "ACME" / WEEK / "ledger" / "email.json").unlink()


def test_task_processes_load_the_plugin_without_the_review_app():
    """Every task process loads the plugins (``get_template_context``); the review app (1.8 s of
    imports) is imported only when the API server first serves the page."""
    import os
    import subprocess
    import sys

    from tests.factories import ROOT

    probe = (
        "import sys\n"
        "from airflow.sdk.plugins_manager import integrate_macros_plugins\n"
        "from airflow.sdk import plugins_manager as pm\n"
        "integrate_macros_plugins()\n"
        "names = [p.name for p in (pm._get_plugins()[0])]\n"
        "print(names, 'msp_reports.review.app' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout.strip().splitlines()[-1]
    assert out == "['weekly_report_review'] False"


def test_the_mounted_plugin_app_is_the_review_app(api):
    """What the API server mounts hands each request (and url_for) to the review app itself."""
    from review_plugin import WeeklyReportReviewPlugin

    from msp_reports.review.app import app as review_app

    mounted = WeeklyReportReviewPlugin.fastapi_apps[0]["app"]
    page, _ = _page(api["client"]("admin", "ADMIN"))  # served through Airflow's app and the mount
    assert "ACME" in page
    assert mounted.load() is review_app and mounted.routes is review_app.routes

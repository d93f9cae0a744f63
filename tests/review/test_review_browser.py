"""A real browser against a real ``airflow api-server``, while the real DAG waits for approval.

The DAG runs with ``dag.test`` in a subprocess (limited to ACME) against the simulators and a
real SMTP server; its ``wait_for_approval`` waits on its Required Action (``awaiting_input``)
when the account engineer logs in through Airflow's login page (simple auth manager), opens
"Weekly report review" from the UI, edits the commentary (the report is re-rendered), and
approves. The page answers the Required Action, the report is delivered, and the PDF in the
email carries the new commentary.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.factories import ROOT, WEEK_OF
from tests.review.review_helpers import INTERNAL_CHANNEL, sim_env

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")]
REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)
COMMENTARY = "Browser test: the Leeds core switch was replaced on Thursday; no repeat expected."
PASSWORD = "review-test-password"

_RUN_DAG = textwrap.dedent("""
    import datetime as dt, sys
    from zoneinfo import ZoneInfo
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(sys.argv[1]).dags["weekly_executive_report"]
    at = dt.datetime.combine(dt.date.fromisoformat(sys.argv[2]), dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
    dr = dag.test(logical_date=at, run_after=at, run_conf={"customers": ["ACME"]})
    print("DAG RUN STATE", dr.state)
""")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started, and its children (it leads its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}\n{log.read_text()[-4000:] if log else ''}")
        try:
            if result := check():
                return result
        except Exception:  # noqa: BLE001 - not ready yet
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:] if log else ''}")


@pytest.fixture
def stack(sim, tmp_path):
    """Airflow home, SMTP server, the DAG run in progress and the API server; all stopped afterwards."""
    from devtools.demo import import_pools
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import free_port

    home, reports = tmp_path / "airflow", tmp_path / "msp"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"reviewer": PASSWORD}))
    registry = load_registry(Settings.load().registry_path)
    port = free_port()
    procs: list[subprocess.Popen] = []
    with MailSink(tmp_path / "outbox") as mail:
        env = {
            **os.environ, **sim_env(sim, reports),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(mail.connection(str(registry.msp.from_email))),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reviewer:user",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__SECRET_KEY": "review-browser-test-secret-key-0123456789",
            "AIRFLOW__API_AUTH__JWT_SECRET": "review-browser-test-jwt-secret-0123456789-0123456789-0123456789",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
        }
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import_pools(env)
        posts_before = len(_missed_posts(sim))
        try:
            dag_log = tmp_path / "dag.log"
            with dag_log.open("w") as out:
                dag_run = subprocess.Popen([sys.executable, "-c", _RUN_DAG, str(ROOT / "dags"), REPORT_MONDAY.isoformat()],
                                           env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(dag_run)
            api_log = tmp_path / "api-server.log"
            with api_log.open("w") as out:
                api = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
                                        "--port", str(port), "--workers", "1"],
                                       env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(api)
            base = f"http://127.0.0.1:{port}"
            _wait_for("the API server", lambda: urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5).status == 200,
                      180, api, api_log)
            render = reports / "store" / "ACME" / WEEK_OF.isoformat() / "render.json"
            _wait_for("the DAG to render ACME", render.exists, 300, dag_run, dag_log)
            yield {"base": base, "mail": mail, "reports": reports, "dag_run": dag_run, "dag_log": dag_log,
                   "sim": sim, "registry": registry, "internal_posts_before": posts_before}
        finally:
            for proc in procs:
                _stop(proc)


def _missed_posts(sim) -> list[dict]:
    posts = sim.state.extra.get("teams_posts", {}).get(INTERNAL_CHANNEL, [])
    return [p for p in posts if "Not approved at" in json.dumps(p)]


def _text(pdf: bytes) -> str:
    import io

    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())


def test_engineer_logs_in_edits_commentary_approves_and_the_dag_delivers_it(stack):
    from playwright.sync_api import expect, sync_playwright

    base, reports = stack["base"], stack["reports"]
    folder = reports / "store" / "ACME" / WEEK_OF.isoformat()
    first_pdf = json.loads((folder / "render.json").read_text())["pdf_sha256"]
    review_url = f"{base}/weekly-reports-review/?week={WEEK_OF}&customer=ACME"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        # not logged in: the review page sends the browser to Airflow's login page
        page.goto(review_url)
        page.wait_for_url(re.compile(r"/auth/login"))
        page.locator("input[name=username]").fill("reviewer")
        page.locator("input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/weekly-reports-review/"))
        expect(page.locator("#state")).to_have_text("awaiting review")

        # the page is in the Airflow UI's navigation, framed by the UI
        page.goto(f"{base}/plugin/weekly-report-review")
        frame = page.frame_locator("iframe[title='Weekly report review']")
        expect(frame.locator("h1")).to_have_text("Weekly report review", timeout=30_000)
        frame.locator("#week").select_option(WEEK_OF.isoformat())
        frame.get_by_role("button", name="Show").click()
        # wait for the chosen week's list: the link of the page before the submit names another week
        frame.locator(f"a[data-customer=ACME][href*='week={WEEK_OF.isoformat()}']").click()
        expect(frame.locator("#state")).to_have_text("awaiting review")
        expect(frame.locator("img[alt='Page 1 of the report']")).to_be_visible()

        frame.locator("#commentary").fill(COMMENTARY)
        frame.locator("#save-commentary").click()
        expect(frame.locator(".message")).to_contain_text("report re-rendered", timeout=60_000)
        second_pdf = json.loads((folder / "render.json").read_text())["pdf_sha256"]
        assert second_pdf != first_pdf
        expect(frame.locator("#pdf-sha")).to_have_text(second_pdf[:12])

        frame.locator("#approve").click()
        expect(frame.locator(".message")).to_contain_text("Approved by reviewer")
        expect(frame.locator("#state")).to_have_text("approved")
        frame.locator("img[alt='Page 1 of the report']").evaluate("img => img.decode()")
        page.screenshot(path=str(ROOT / "docs" / "review-page.png"))
        browser.close()

    [record] = [json.loads(p.read_text()) for p in sorted((folder / "approvals").glob("*.json"))]
    assert record["decision"] == "approve" and record["by"] == "reviewer" and record["via"] == "review-page"
    assert record["pdf_sha256"] == second_pdf

    # the page answered the waiting Required Action, as the signed-in user; ACME is delivered with
    # the new commentary
    dag_run = stack["dag_run"]
    dag_run.wait(timeout=600)
    log = stack["dag_log"].read_text()
    assert "DAG RUN STATE success" in log, log[-4000:]
    login = urllib.request.Request(f"{base}/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                   data=json.dumps({"username": "reviewer", "password": PASSWORD}).encode())
    token = json.loads(urllib.request.urlopen(login, timeout=30).read())["access_token"]
    answered = urllib.request.Request(f"{base}/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails",
                                      headers={"Authorization": f"Bearer {token}"})
    [detail] = json.loads(urllib.request.urlopen(answered, timeout=30).read())["hitl_details"]
    assert detail["chosen_options"] == ["Approve"] and detail["responded_by_user"]["name"] == "reviewer"
    [mail] = stack["mail"].messages()
    assert sorted(a.strip() for a in mail["To"].split(",")) == stack["registry"].get("ACME").recipients
    [attachment] = list(mail.iter_attachments())
    from msp_reports.store import sha256

    assert sha256(attachment.get_content()) == second_pdf
    assert COMMENTARY in _text(attachment.get_content())
    # at 09:00 nobody had approved ACME yet: the internal channel was told, once
    missed = _missed_posts(stack["sim"])[stack["internal_posts_before"]:]
    assert len(missed) == 1 and "ACME" in json.dumps(missed[0])

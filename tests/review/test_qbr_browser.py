"""A real browser against a real ``airflow api-server`` while the real QBR DAG waits for approval.

The QBR DAG runs with ``dag.test`` in a subprocess (ACME, 2026-Q3) over a store seeded with the
quarter's weekly snapshots; its ``wait_for_approval`` is polling when the account engineer logs
in through Airflow's login page, opens the QBR view from the weekly review page, writes the
"quarter in review" narrative (the pack re-renders) and approves. The DAG then delivers the pack,
and the PDF in the email is the approved one, with the narrative.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.factories import ROOT
from tests.review.review_helpers import sim_env
from tests.review.test_review_browser import CHROMIUM, PASSWORD, _stop, _text, _wait_for

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")]
QUARTER = "2026-Q3"
NARRATIVE = "Browser test: a steady quarter; the Leeds network outage of 21 September is fixed for good."

_RUN_DAG = textwrap.dedent("""
    import datetime as dt, sys
    from zoneinfo import ZoneInfo
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(sys.argv[1]).dags["quarterly_business_review"]
    at = dt.datetime(2026, 10, 5, 6, 0, tzinfo=ZoneInfo("Europe/London"))
    dr = dag.test(logical_date=at, run_after=at, run_conf={"quarter": "2026-Q3", "customers": ["ACME"]})
    print("DAG RUN STATE", dr.state)
""")


@pytest.fixture
def stack(sim, tmp_path):
    from devtools.demo import import_pools
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import free_port
    from msp_reports.qbr import Quarter
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore
    from tests.qbr.seed import seed

    home, reports = tmp_path / "airflow", tmp_path / "msp"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"reviewer": PASSWORD}))
    registry = load_registry(Settings.load().registry_path)
    seed(ReportStore(str(reports / "store")), Quarter.parse(QUARTER).week_ofs())
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
            "AIRFLOW__API__SECRET_KEY": "qbr-browser-test-secret-key-0123456789",
            "AIRFLOW__API_AUTH__JWT_SECRET": "qbr-browser-test-jwt-secret-0123456789-0123456789-0123456789",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import_pools(env)
        try:
            dag_log = tmp_path / "dag.log"
            with dag_log.open("w") as out:
                dag_run = subprocess.Popen([sys.executable, "-c", _RUN_DAG, str(ROOT / "dags")], env=env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
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
            pack = reports / "store" / "ACME" / "qbr" / QUARTER
            _wait_for("the DAG to render ACME's pack", (pack / "render.json").exists, 300, dag_run, dag_log)
            yield {"base": base, "mail": mail, "pack": pack, "dag_run": dag_run, "dag_log": dag_log,
                   "registry": registry}
        finally:
            for proc in procs:
                _stop(proc)


def test_engineer_writes_the_narrative_approves_the_pack_and_the_dag_delivers_it(stack):
    from playwright.sync_api import expect, sync_playwright

    base, pack = stack["base"], stack["pack"]
    first_pdf = json.loads((pack / "render.json").read_text())["pdf_sha256"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{base}/weekly-reports-review/")
        page.wait_for_url(re.compile(r"/auth/login"))
        page.locator("input[name=username]").fill("reviewer")
        page.locator("input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/weekly-reports-review/"))
        page.locator("#qbr-link").click()  # from the weekly page to the QBR view
        expect(page.locator("h1")).to_have_text("QBR pack review")
        page.locator("#quarter").select_option(QUARTER)
        page.get_by_role("button", name="Show").click()
        page.locator(f"a[data-customer=ACME][href*='quarter={QUARTER}']").click()
        expect(page.locator("#state")).to_have_text("awaiting review")
        expect(page.locator("img[alt='Page 1 of the pack']")).to_be_visible()

        page.locator("#narrative").fill(NARRATIVE)
        page.locator("#save-narrative").click()
        expect(page.locator(".message")).to_contain_text("pack re-rendered", timeout=60_000)
        second_pdf = json.loads((pack / "render.json").read_text())["pdf_sha256"]
        assert second_pdf != first_pdf
        expect(page.locator("#pdf-sha")).to_have_text(second_pdf[:12])
        page.locator("#approve").click()
        expect(page.locator(".message")).to_contain_text("Approved by reviewer")
        expect(page.locator("#state")).to_have_text("approved")
        browser.close()

    [record] = [json.loads(p.read_text()) for p in sorted((pack / "approvals").glob("*.json"))]
    assert record["decision"] == "approve" and record["by"] == "reviewer" and record["via"] == "review-page"
    assert record["pdf_sha256"] == second_pdf
    stack["dag_run"].wait(timeout=600)
    log = stack["dag_log"].read_text()
    assert "DAG RUN STATE success" in log, log[-4000:]
    [mail] = stack["mail"].messages()
    assert sorted(a.strip() for a in mail["To"].split(",")) == stack["registry"].get("ACME").recipients
    [attachment] = [part for part in mail.iter_attachments()]
    assert attachment.get_filename() == "ACME QBR 2026-Q3 (2026-10-05).pdf"
    pdf = attachment.get_content()
    assert hashlib.sha256(pdf).hexdigest() == second_pdf
    assert NARRATIVE in _text(pdf)

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

import pytest

from tests.factories import ROOT, WEEK_OF
from tests.review.browser_stack import (airflow_stack, api, approval_records, chromium_page, needs_chromium,
                                        pdf_text, sign_in, token, wait_for)
from tests.review.review_helpers import INTERNAL_CHANNEL

pytestmark = [pytest.mark.e2e, needs_chromium]
REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)
COMMENTARY = "Browser test: the Leeds core switch was replaced on Thursday; no repeat expected."
PASSWORD = "review-test-password"


@pytest.fixture
def stack(sim, tmp_path):
    """Airflow home, SMTP server, the DAG run in progress and the API server; all stopped afterwards."""
    reports = tmp_path / "msp"
    with airflow_stack(sim, tmp_path, reports, {"reviewer": ("user", PASSWORD)}, "review-browser-test") as airflow:
        posts_before = len(_missed_posts(sim))
        dag_run = airflow.start_dag("weekly_executive_report", REPORT_MONDAY, {"customers": ["ACME"]})
        airflow.start_api_server()
        render = reports / "store" / "ACME" / WEEK_OF.isoformat() / "render.json"
        wait_for("the DAG to render ACME", render.exists, 300, dag_run, airflow.dag_log)
        yield {"base": airflow.base, "mail": airflow.mail, "reports": reports, "dag_run": dag_run,
               "dag_log": airflow.dag_log, "sim": sim, "registry": airflow.registry,
               "internal_posts_before": posts_before}


def _missed_posts(sim) -> list[dict]:
    posts = sim.state.extra.get("teams_posts", {}).get(INTERNAL_CHANNEL, [])
    return [p for p in posts if "Not approved at" in json.dumps(p)]


def test_engineer_logs_in_edits_commentary_approves_and_the_dag_delivers_it(stack):
    from playwright.sync_api import expect

    base, reports = stack["base"], stack["reports"]
    folder = reports / "store" / "ACME" / WEEK_OF.isoformat()
    first_pdf = json.loads((folder / "render.json").read_text())["pdf_sha256"]
    review_url = f"{base}/weekly-reports-review/?week={WEEK_OF}&customer=ACME"
    with chromium_page() as page:
        # not logged in: the review page sends the browser to Airflow's login page
        sign_in(page, review_url, "reviewer", PASSWORD)
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

    [record] = approval_records(folder)
    assert record["decision"] == "approve" and record["by"] == "reviewer" and record["via"] == "review-page"
    assert record["pdf_sha256"] == second_pdf

    # the page answered the waiting Required Action, as the signed-in user; ACME is delivered with
    # the new commentary
    dag_run = stack["dag_run"]
    dag_run.wait(timeout=600)
    log = stack["dag_log"].read_text()
    assert "DAG RUN STATE success" in log, log[-4000:]
    [detail] = api(base, "GET", "/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails",
                   token(base, "reviewer", PASSWORD))["hitl_details"]
    assert detail["chosen_options"] == ["Approve"] and detail["responded_by_user"]["name"] == "reviewer"
    [mail] = stack["mail"].messages()
    assert sorted(a.strip() for a in mail["To"].split(",")) == stack["registry"].get("ACME").recipients
    [attachment] = list(mail.iter_attachments())
    from msp_reports.store import sha256

    assert sha256(attachment.get_content()) == second_pdf
    assert COMMENTARY in pdf_text(attachment.get_content())
    # at 09:00 nobody had approved ACME yet: the internal channel was told, once
    missed = _missed_posts(stack["sim"])[stack["internal_posts_before"]:]
    assert len(missed) == 1 and "ACME" in json.dumps(missed[0])

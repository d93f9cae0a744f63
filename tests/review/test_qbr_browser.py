"""A real browser against a real ``airflow api-server`` while the real QBR DAG waits for approval.

The QBR DAG runs with ``dag.test`` in a subprocess (ACME, 2026-Q3) over a store seeded with the
quarter's weekly snapshots; its ``wait_for_approval`` is polling when the account engineer logs
in through Airflow's login page, opens the QBR view from the weekly review page, writes the
"quarter in review" narrative (the pack re-renders) and approves. The DAG then delivers the pack,
and the PDF in the email is the approved one, with the narrative.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from tests.review.browser_stack import (airflow_stack, approval_records, chromium_page, needs_chromium, pdf_text,
                                        sign_in, wait_for)

pytestmark = [pytest.mark.e2e, needs_chromium]
QUARTER = "2026-Q3"
NARRATIVE = "Browser test: a steady quarter; the Leeds network outage of 21 September is fixed for good."
PASSWORD = "review-test-password"


@pytest.fixture
def stack(sim, tmp_path):
    from msp_reports.qbr import Quarter
    from msp_reports.store import ReportStore
    from tests.qbr.seed import seed

    reports = tmp_path / "msp"
    seed(ReportStore(str(reports / "store")), Quarter.parse(QUARTER).week_ofs())
    with airflow_stack(sim, tmp_path, reports, {"reviewer": ("user", PASSWORD)}, "qbr-browser-test") as airflow:
        dag_run = airflow.start_dag("quarterly_business_review", dt.date(2026, 10, 5),
                                    {"quarter": QUARTER, "customers": ["ACME"]})
        airflow.start_api_server()
        pack = reports / "store" / "ACME" / "qbr" / QUARTER
        wait_for("the DAG to render ACME's pack", (pack / "render.json").exists, 300, dag_run, airflow.dag_log)
        yield {"base": airflow.base, "mail": airflow.mail, "pack": pack, "dag_run": dag_run,
               "dag_log": airflow.dag_log, "registry": airflow.registry}


def test_engineer_writes_the_narrative_approves_the_pack_and_the_dag_delivers_it(stack):
    from playwright.sync_api import expect

    base, pack = stack["base"], stack["pack"]
    first_pdf = json.loads((pack / "render.json").read_text())["pdf_sha256"]
    with chromium_page() as page:
        sign_in(page, f"{base}/weekly-reports-review/", "reviewer", PASSWORD)
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

    [record] = approval_records(pack)
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
    assert NARRATIVE in pdf_text(pdf)

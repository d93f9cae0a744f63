"""The three ways to decide, against a real ``airflow api-server`` while the real DAG waits.

The DAG runs with ``dag.test`` in a subprocess for ACME, ECHO and FXTR against the simulators and
a real SMTP server, sharing its database with the API server. Each customer's
``wait_for_approval`` parks in ``awaiting_input`` on a Required Action. In Chromium, the account
engineer (Airflow user ``jane``) signs in, finds the three on the Required Actions page, each with
its executive summary, PDF hash and links to the review page and the PDF; approves ACME there and
rejects ECHO there with a reason. FXTR is approved by setting its Variable through the REST API as
``jane``: the run's one Variable watcher (the Airflow connection ``msp_airflow_api``, a service
account) records it by the user Airflow's audit log names and answers the wait. ACME and FXTR
are delivered exactly once, ECHO is skipped, and every record (same fields on all three paths)
names ``jane``; the roll-up too.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.factories import ROOT, WEEK_OF
from tests.review.browser_stack import (airflow_stack, api, approval_records, chromium_page, needs_chromium, sign_in,
                                        token, wait_for)

pytestmark = [pytest.mark.e2e, needs_chromium]
REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)
CUSTOMERS = ["ACME", "ECHO", "FXTR"]
PASSWORD = "required-actions-test-password"
SERVICE_PASSWORD = "required-actions-service-password"
REASON = "the Berlin backup figures need a second look"


def _watcher_connection(port: int) -> dict[str, str]:
    """The watcher's service account: a credential in an Airflow connection, nowhere else."""
    return {"AIRFLOW_CONN_MSP_AIRFLOW_API": json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port,
                                                        "schema": "http", "login": "msp-watcher",
                                                        "password": SERVICE_PASSWORD})}


@pytest.fixture
def stack(request, sim, tmp_path):
    """The API server, then the DAG run (``dag.test``) for ``customers`` (the test's parameter, by
    default :data:`CUSTOMERS`) until each customer's Required Action waits; all stopped afterwards."""
    reports = tmp_path / "msp"
    customers = getattr(request, "param", CUSTOMERS)
    users = {"jane": ("op", PASSWORD), "msp-watcher": ("op", SERVICE_PASSWORD)}
    with airflow_stack(sim, tmp_path, reports, users, "required-actions-test", _watcher_connection) as airflow:
        airflow.start_api_server()
        base = airflow.base
        dag_run = airflow.start_dag("weekly_executive_report", REPORT_MONDAY, {"customers": customers})
        jane = token(base, "jane", PASSWORD)

        def parked() -> list[dict]:
            details = api(base, "GET", "/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails"
                                       "?response_received=false&state=awaiting_input", jane)["hitl_details"]
            return details if len(details) == len(customers) else []

        details = wait_for("every customer's Required Action", parked, 600, dag_run, airflow.dag_log)
        yield {"base": base, "mail": airflow.mail, "reports": reports, "dag_run": dag_run,
               "dag_log": airflow.dag_log, "registry": airflow.registry, "token": jane, "details": details,
               "sim": sim, "env": airflow.env}


def _records(reports: Path, code: str) -> list[dict]:
    return approval_records(reports / "store" / code / WEEK_OF.isoformat())


def test_required_actions_review_page_and_variable_end_the_same_wait(stack):
    from playwright.sync_api import expect

    base, reports = stack["base"], stack["reports"]
    renders = {c: json.loads((reports / "store" / c / WEEK_OF.isoformat() / "render.json").read_text())
               for c in CUSTOMERS}
    by_subject = {d["subject"]: d for d in stack["details"]}
    for code in CUSTOMERS:  # each request names the customer and week; its body the summary, hash and links
        detail = by_subject[f"Weekly report {code}, week of {WEEK_OF}: approve or reject"]
        assert detail["options"] == ["Approve", "Reject"]
        assert "**Executive summary**" in detail["body"] and renders[code]["pdf_sha256"] in detail["body"]
        assert f"{base}/weekly-reports-review/?week={WEEK_OF}&customer={code}" in detail["body"]
        assert f"{base}/weekly-reports-review/pdf/{code}/{WEEK_OF}/report.pdf" in detail["body"]

    # FXTR through its Variable, set with the REST API as jane as soon as its request waits: the
    # run's watcher answers its wait, but not before it has been parked SETTLE (an answer sooner
    # can have the resumed try failed by Airflow: msp_reports.review.hitl)
    key = f"weekly_report_approval__FXTR__{WEEK_OF}"
    api(base, "POST", "/api/v2/variables", stack["token"],
        {"key": key, "value": f"approve {renders['FXTR']['pdf_sha256'][:12]}"})

    with chromium_page() as page:
        sign_in(page, f"{base}/required_actions?response_received=false", "jane", PASSWORD)
        for code in CUSTOMERS:  # the Required Actions page lists every waiting customer
            expect(page.get_by_text(f"Weekly report {code}, week of {WEEK_OF}: approve or reject")).to_be_visible(
                timeout=60_000)
        page.screenshot(path=str(ROOT / "docs" / "required-actions.png"))

        def open_request(code: str) -> None:
            page.goto(f"{base}/required_actions?response_received=false")
            page.get_by_text(f"Weekly report {code}, week of {WEEK_OF}: approve or reject").click()
            expect(page.get_by_text("Executive summary")).to_be_visible(timeout=60_000)
            expect(page.get_by_text(renders[code]["pdf_sha256"])).to_be_visible()
            expect(page.get_by_role("link", name="Open the review page")).to_have_attribute(
                "href", f"{base}/weekly-reports-review/?week={WEEK_OF}&customer={code}")
            expect(page.get_by_role("link", name="Open the PDF")).to_be_visible()

        open_request("ACME")
        page.screenshot(path=str(ROOT / "docs" / "required-action.png"), full_page=True)
        page.get_by_role("button", name="Approve").click()
        wait_for("ACME's answer", lambda: _records(reports, "ACME"), 120)

        open_request("ECHO")
        page.locator("#element_reason").fill(REASON)  # the request's Reason field (its params)
        page.get_by_role("button", name="Reject").click()
        wait_for("ECHO's answer", lambda: _records(reports, "ECHO"), 120)

    dag_run = stack["dag_run"]
    dag_run.wait(timeout=900)
    log = stack["dag_log"].read_text()
    assert "DAG RUN STATE" in log, log[-4000:]

    [acme], [echo], [fxtr] = (_records(reports, c) for c in CUSTOMERS)
    assert (acme["decision"], acme["by"], acme["via"]) == ("approve", "jane", "required-actions")
    assert (echo["decision"], echo["by"], echo["via"], echo["reason"]) == ("reject", "jane", "required-actions", REASON)
    assert (fxtr["decision"], fxtr["by"], fxtr["via"]) == ("approve", "jane", "airflow-variable")
    assert set(acme) == set(echo) == set(fxtr)  # one record, whichever way the decision came
    for code, record in (("ACME", acme), ("FXTR", fxtr)):
        assert {h: record[h] for h in renders[code] if h.endswith("_sha256")} == \
               {h: v for h, v in renders[code].items() if h.endswith("_sha256")}

    sent = stack["mail"].messages()
    to = {code: ", ".join(stack["registry"].get(code).recipients) for code in CUSTOMERS}
    assert sorted(m["To"] for m in sent) == sorted([to["ACME"], to["FXTR"]])  # each once; ECHO never
    from msp_reports.store import sha256

    for message in sent:
        [attachment] = list(message.iter_attachments())
        code = next(c for c in ("ACME", "FXTR") if message["To"] == to[c])
        assert sha256(attachment.get_content()) == renders[code]["pdf_sha256"]
    rollup = (reports / "store" / "_rollup" / WEEK_OF.isoformat() / "rollup.md").read_text()
    assert re.search(r"ACME \| ✅ delivered.*approved by jane via required\\?-actions", rollup), rollup
    assert re.search(r"FXTR \| ✅ delivered.*approved by jane via airflow\\?-variable", rollup), rollup
    assert f"ECHO | ⛔ rejected by jane: {REASON}" in rollup, rollup
    assert "DAG RUN STATE success" in log, log[-4000:]
    fxtr_ti = by_subject[f"Weekly report FXTR, week of {WEEK_OF}: approve or reject"]["task_instance"]
    parked = api(base, "GET", f"/api/v2/eventLogs?dag_id=weekly_executive_report&event=awaiting_input"
                              f"&task_id={fxtr_ti['task_id']}&map_index={fxtr_ti['map_index']}",
                 stack["token"])["event_logs"]
    answered = api(base, "GET", f"/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails?response_received=true"
                                f"&task_id={fxtr_ti['task_id']}&map_index={fxtr_ti['map_index']}",
                   stack["token"])["hitl_details"]
    from msp_reports.approval_request import SETTLE

    first_parked = min(dt.datetime.fromisoformat(e["when"]) for e in parked)
    [fxtr_answer] = answered
    assert dt.datetime.fromisoformat(fxtr_answer["responded_at"]) >= first_parked + SETTLE


_RERENDER = textwrap.dedent("""
    import sys
    from msp_reports import pipeline
    from msp_reports.settings import Settings
    pipeline.render(Settings.load(), {"customer": sys.argv[1], "week_of": sys.argv[2]}, commentary=sys.argv[3])
""")


def _answer(stack: dict, detail: dict, option: str, reason: str = "") -> None:
    ti = detail["task_instance"]
    api(stack["base"], "PATCH", f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                                f"{ti['task_id']}/{ti['map_index']}/hitlDetails", stack["token"],
        {"chosen_options": [option], "params_input": {"reason": reason}})


@pytest.mark.parametrize("stack", [["ACME"]], indirect=True)
def test_an_answer_about_a_version_that_changed_sends_nothing_and_the_current_one_is_decided_elsewhere(stack):
    """The report is re-rendered (new commentary) while its request waits; an Approve given to the
    request (which describes the earlier version) is not taken: no record, nothing sent, the
    refusal shown on the review page, and the same request waits again (Airflow never rewrites a
    request). The current version, approved by its Variable, is what is delivered, once."""
    base, reports = stack["base"], stack["reports"]
    folder = reports / "store" / "ACME" / WEEK_OF.isoformat()
    old_pdf = json.loads((folder / "render.json").read_text())["pdf_sha256"]
    [request] = stack["details"]
    assert old_pdf in request["body"]
    subprocess.run([sys.executable, "-c", _RERENDER, "ACME", WEEK_OF.isoformat(), "Re-rendered while waiting.\n"],
                   check=True, env=stack["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    new_pdf = json.loads((folder / "render.json").read_text())["pdf_sha256"]
    assert new_pdf != old_pdf
    _answer(stack, request, "Approve")

    def waiting_again() -> dict | None:
        details = api(base, "GET", "/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails"
                                   "?response_received=false&state=awaiting_input", stack["token"])["hitl_details"]
        return details[0] if details and (folder / "variable_problem.json").exists() else None

    again = wait_for("the request to wait again", waiting_again, 300, stack["dag_run"], stack["dag_log"])
    assert again["task_instance"]["try_number"] == request["task_instance"]["try_number"]  # no retry, no failure
    assert _records(reports, "ACME") == [] and stack["mail"].messages() == []
    problem = json.loads((folder / "variable_problem.json").read_text())
    assert "report changed since it was shown (" in problem["error"] and "by jane" in problem["error"]

    key = f"weekly_report_approval__ACME__{WEEK_OF}"
    api(base, "POST", "/api/v2/variables", stack["token"], {"key": key, "value": f"approve {new_pdf[:12]}"})
    stack["dag_run"].wait(timeout=900)
    assert "DAG RUN STATE success" in stack["dag_log"].read_text()
    [record] = _records(reports, "ACME")
    assert (record["by"], record["via"], record["pdf_sha256"]) == ("jane", "airflow-variable", new_pdf)
    [message] = stack["mail"].messages()
    from msp_reports.store import sha256

    [attachment] = list(message.iter_attachments())
    assert sha256(attachment.get_content()) == new_pdf

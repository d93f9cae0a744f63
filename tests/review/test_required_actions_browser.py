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
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from tests.factories import ROOT, WEEK_OF
from tests.review.review_helpers import sim_env
from tests.review.test_review_browser import CHROMIUM, _stop, _wait_for

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")]
REPORT_MONDAY = WEEK_OF + dt.timedelta(days=7)
CUSTOMERS = ["ACME", "ECHO", "FXTR"]
PASSWORD = "required-actions-test-password"
SERVICE_PASSWORD = "required-actions-service-password"
REASON = "the Berlin backup figures need a second look"

_RUN_DAG = textwrap.dedent("""
    import datetime as dt, sys
    from zoneinfo import ZoneInfo
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(sys.argv[1]).dags["weekly_executive_report"]
    at = dt.datetime.combine(dt.date.fromisoformat(sys.argv[2]), dt.time(6, 0), tzinfo=ZoneInfo("Europe/London"))
    dr = dag.test(logical_date=at, run_after=at, run_conf={"customers": sys.argv[3].split(",")})
    print("DAG RUN STATE", dr.state)
""")


def _api(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> dict:
    request = urllib.request.Request(f"{base}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def _token(base: str, user: str, password: str) -> str:
    return _api(base, "POST", "/auth/token", body={"username": user, "password": password})["access_token"]


@pytest.fixture
def stack(request, sim, tmp_path):
    """The API server, then the DAG run (``dag.test``) for ``customers`` (the test's parameter, by
    default :data:`CUSTOMERS`) until each customer's Required Action waits; all stopped afterwards."""
    from devtools.demo import import_pools
    from devtools.simulators.mailsink import MailSink
    from devtools.simulators.server import free_port
    from msp_reports.registry import load_registry
    from msp_reports.settings import Settings

    home, reports = tmp_path / "airflow", tmp_path / "msp"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"jane": PASSWORD, "msp-watcher": SERVICE_PASSWORD}))
    registry = load_registry(Settings.load().registry_path)
    customers = getattr(request, "param", CUSTOMERS)
    port = free_port()
    procs: list[subprocess.Popen] = []
    with MailSink(tmp_path / "outbox") as mail:
        env = {
            **os.environ, **sim_env(sim, reports),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(mail.connection(str(registry.msp.from_email))),
            # the watcher's service account: a credential in an Airflow connection, nowhere else
            "AIRFLOW_CONN_MSP_AIRFLOW_API": json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port,
                                                        "schema": "http", "login": "msp-watcher",
                                                        "password": SERVICE_PASSWORD}),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "jane:op,msp-watcher:op",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__SECRET_KEY": "required-actions-test-secret-key-0123456789",
            "AIRFLOW__API_AUTH__JWT_SECRET": "required-actions-test-jwt-secret-0123456789-0123456789-012345",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT),
                                                        os.environ.get("PYTHONPATH")])),
        }
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import_pools(env)
        try:
            api_log = tmp_path / "api-server.log"
            with api_log.open("w") as out:
                api = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1",
                                        "--port", str(port), "--workers", "1"],
                                       env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(api)
            base = f"http://127.0.0.1:{port}"
            _wait_for("the API server", lambda: urllib.request.urlopen(f"{base}/api/v2/monitor/health",
                                                                      timeout=5).status == 200, 180, api, api_log)
            dag_log = tmp_path / "dag.log"
            with dag_log.open("w") as out:
                dag_run = subprocess.Popen([sys.executable, "-c", _RUN_DAG, str(ROOT / "dags"),
                                            REPORT_MONDAY.isoformat(), ",".join(customers)],
                                           env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(dag_run)
            token = _token(base, "jane", PASSWORD)

            def parked() -> list[dict]:
                details = _api(base, "GET", "/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails"
                                            "?response_received=false&state=awaiting_input", token)["hitl_details"]
                return details if len(details) == len(customers) else []

            details = _wait_for("every customer's Required Action", parked, 600, dag_run, dag_log)
            yield {"base": base, "mail": mail, "reports": reports, "dag_run": dag_run, "dag_log": dag_log,
                   "registry": registry, "token": token, "details": details, "sim": sim, "env": env}
        finally:
            for proc in procs:
                _stop(proc)


def _records(reports: Path, code: str) -> list[dict]:
    folder = reports / "store" / code / WEEK_OF.isoformat() / "approvals"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_required_actions_review_page_and_variable_end_the_same_wait(stack):
    from playwright.sync_api import expect, sync_playwright

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
    _api(base, "POST", "/api/v2/variables", stack["token"],
         {"key": key, "value": f"approve {renders['FXTR']['pdf_sha256'][:12]}"})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{base}/required_actions?response_received=false")
        page.wait_for_url(re.compile(r"/auth/login"))
        page.locator("input[name=username]").fill("jane")
        page.locator("input[name=password]").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/required_actions"))
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
        _wait_for("ACME's answer", lambda: _records(reports, "ACME"), 120)

        open_request("ECHO")
        page.locator("#element_reason").fill(REASON)  # the request's Reason field (its params)
        page.get_by_role("button", name="Reject").click()
        _wait_for("ECHO's answer", lambda: _records(reports, "ECHO"), 120)
        browser.close()

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
    parked = _api(base, "GET", f"/api/v2/eventLogs?dag_id=weekly_executive_report&event=awaiting_input"
                               f"&task_id={fxtr_ti['task_id']}&map_index={fxtr_ti['map_index']}",
                  stack["token"])["event_logs"]
    answered = _api(base, "GET", f"/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails?response_received=true"
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
    _api(stack["base"], "PATCH", f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
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
        details = _api(base, "GET", "/api/v2/dags/weekly_executive_report/dagRuns/~/hitlDetails"
                                    "?response_received=false&state=awaiting_input", stack["token"])["hitl_details"]
        return details[0] if details and (folder / "variable_problem.json").exists() else None

    again = _wait_for("the request to wait again", waiting_again, 300, stack["dag_run"], stack["dag_log"])
    assert again["task_instance"]["try_number"] == request["task_instance"]["try_number"]  # no retry, no failure
    assert _records(reports, "ACME") == [] and stack["mail"].messages() == []
    problem = json.loads((folder / "variable_problem.json").read_text())
    assert "report changed since it was shown (" in problem["error"] and "by jane" in problem["error"]

    key = f"weekly_report_approval__ACME__{WEEK_OF}"
    _api(base, "POST", "/api/v2/variables", stack["token"], {"key": key, "value": f"approve {new_pdf[:12]}"})
    stack["dag_run"].wait(timeout=900)
    assert "DAG RUN STATE success" in stack["dag_log"].read_text()
    [record] = _records(reports, "ACME")
    assert (record["by"], record["via"], record["pdf_sha256"]) == ("jane", "airflow-variable", new_pdf)
    [message] = stack["mail"].messages()
    from msp_reports.store import sha256

    [attachment] = list(message.iter_attachments())
    assert sha256(attachment.get_content()) == new_pdf

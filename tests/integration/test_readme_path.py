"""The README's own path, in order, as a newcomer walks it, with the commands exactly as written:

1. ``bash scripts/demo.sh``: twelve customers delivered for the latest week;
2. ``bash scripts/airflow.sh --port N`` in the background (simulators, SMTP, ``airflow standalone``);
3. in the browser, logged in as ``admin`` with the password the script printed: **Dags →
   weekly_executive_report → Trigger**, the conf ``{"customers": ["ACME", "BRVO"]}`` typed into the
   trigger form's Configuration JSON (under Advanced Options), "Unpause … on trigger" left ticked;
4. **Browse → Weekly report review**: ACME reaches *awaiting review*, its PDF preview shows, and
   **Approve this version**;
5. ``bash scripts/approve.sh BRVO <week_of> approve`` from the project folder, nothing else set;
6. both are delivered exactly once on every channel for that week, in airflow.sh's ``var/airflow``,
   and the demo's ``var/demo`` and ``.airflow/demo`` are untouched by the second command: the same
   week, delivered by the demo, is still to do for airflow.sh, and doing it there changes nothing of
   the demo's.

The scripts write under the project folder (``var/``, ``.airflow/``), so they run in a copy of the
project in the test's tmp dir, never in the checkout under test. The copy's ``.venv`` is a symlink
to the checkout's, and its ``scripts/bootstrap.sh`` (``uv sync``, which both scripts run first) is
replaced by a no-op: this test already runs in that synced ``.venv``, and ``uv sync`` from the copy
would re-point the shared environment's editable install at the copy. Everything else runs as
written.

Needs Chromium at /usr/bin/chromium (Playwright drives it): skipped without it, except under
``CI=true``, where it fails. About 10 minutes on an idle 2-core machine (the demo 2.5, airflow.sh's
first start 4, the run to both deliveries 3), 12 to 15 when it is busy: the demo and airflow.sh each
seed eight weeks of history for twelve customers, as the README's commands do.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.factories import ROOT
from tests.test_airflow_sh import Serve, _free_port

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
DAG_ID = "weekly_executive_report"
CONF = {"customers": ["ACME", "BRVO"]}
CHANNELS = ("email", "teams", "archive")
DEMO_TIMEOUT = 900
START_TIMEOUT = 900  # airflow.sh seeds eight weeks of history on its first start, then starts Airflow
RUN_TIMEOUT = 600
# who approve.sh's `airflow variables set` is recorded as: Airflow's audit log holds the OS user for the CLI
CLI_SETTER = f"{getpass.getuser()} (OS user, airflow CLI)"


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the README path test is mandatory in CI: {CHROMIUM} is not installed")
        pytest.skip(f"{CHROMIUM} is not installed")


def _newcomer_env() -> dict[str, str]:
    """A shell's environment: none of this test session's Airflow or MSP settings, no PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MSP_")) and k != "PYTHONPATH"}


def _copy_project(dest: Path) -> Path:
    """The project's files (not its ``.venv``, ``.git``, ``var``, ``.airflow``) under ``dest``."""
    top_level = {".venv", ".git", "var", ".airflow", "out", "logs", "config", ".env"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")}
        return skip | (top_level & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve())
    (dest / "scripts" / "bootstrap.sh").write_text(
        "#!/usr/bin/env bash\n# test copy: .venv is the checkout's, already synced (tests/integration/test_readme_path.py)\n")
    return dest


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _password(serve: Serve) -> str | None:
    for line in serve.lines:
        if m := re.search(r"Password for user 'admin': (\S+)", line) or re.search(r"log in as admin / (\S+)", line):
            return m.group(1)
    return None


def _token(base: str, password: str) -> str:
    r = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
    r.raise_for_status()
    return r.json()["access_token"]


def _wait(what: str, check, timeout: float, serve: Serve):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serve.proc.poll() is not None:
            raise AssertionError(f"{what}: airflow.sh exited {serve.proc.returncode}\n" + "\n".join(serve.lines[-40:]))
        if result := check():
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + "\n".join(serve.lines[-40:]))


def _login(page, base: str, password: str) -> None:
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _trigger_in_the_ui(page, base: str, headers: dict[str, str], conf: dict) -> dict:
    """Dags → weekly_executive_report → Trigger, the conf in Advanced Options → Configuration JSON;
    returns the run it started (read back through the REST API).

    The form renders again (and its editor with it) while the Dag's details load, the more so on a
    busy machine; each step waits until its element stays put, and the whole form is filled again
    when a render took what was typed. A run is created once: the REST API is asked before retrying.
    """
    from playwright.sync_api import expect

    def runs() -> list[dict]:
        return requests.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns", headers=headers, timeout=30).json()["dag_runs"]

    page.get_by_role("link", name="Dags").first.click()
    page.get_by_role("link", name=DAG_ID).first.click()
    for _attempt in range(8):
        if page.get_by_role("dialog").count() == 0:
            page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        try:  # a click during a render of the Dag page can open nothing: click again
            expect(dialog.get_by_text(re.compile(f"Unpause {DAG_ID} on trigger"))).to_be_visible(timeout=30_000)
        except AssertionError:
            continue
        page.wait_for_load_state("networkidle")
        editor = dialog.locator(".monaco-editor").first
        try:
            if not editor.is_visible():
                page.get_by_text("Advanced Options", exact=True).click(timeout=10_000)
            editor.wait_for(timeout=10_000)
            editor.click(timeout=10_000)
            page.keyboard.press("ControlOrMeta+a")
            page.keyboard.press("Delete")
            page.keyboard.insert_text(json.dumps(conf))  # one input event: no auto-closed brackets
            dialog.get_by_text("Configuration JSON").click(timeout=10_000)  # leave the editor
            page.wait_for_timeout(1_000)
            typed = editor.locator(".view-lines").inner_text(timeout=10_000).replace("\u00a0", " ")
            if json.loads(typed) != conf:
                continue  # a render put the form back: fill it again
            expect(dialog.get_by_label(re.compile("Unpause"))).to_be_checked()  # the README: leave it ticked
            dialog.get_by_role("button", name="Trigger").last.click(timeout=10_000)
            expect(page.get_by_text("Dag run has been successfully triggered")).to_be_visible(timeout=30_000)
        except Exception:  # noqa: BLE001 - detached by a render, or the toast came and went
            if runs():
                break
            continue
        break
    [run] = runs()
    return run


def _ledger(store: Path, code: str, week_of: str) -> dict[str, dict]:
    return {ch: json.loads(p.read_text()) for ch in CHANNELS
            if (p := store / code / week_of / "ledger" / f"{ch}.json").exists()}


def _delivered(store: Path, week_of: str) -> bool:
    return all(len(led := _ledger(store, code, week_of)) == len(CHANNELS)
               and all(r["state"] == "sent" for r in led.values()) for code in CONF["customers"])


def test_the_readme_path_in_order(tmp_path):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    from devtools.demo import MSP_TIMEZONE
    from msp_reports.week import report_monday

    project = _copy_project(tmp_path / "project")
    env = _newcomer_env()

    # 1. the demo
    demo = subprocess.run(["bash", "scripts/demo.sh"], cwd=project, env=env, capture_output=True, text=True,
                          timeout=DEMO_TIMEOUT)
    out = demo.stdout
    assert demo.returncode == 0, (out + demo.stderr)[-4000:]
    week_of = re.search(r"^Week of (\d{4}-\d{2}-\d{2}) — 12 customers$", out, re.M).group(1)
    states = re.findall(r"^  ([A-Z]{4}) +(\S.*?) {2,}", out, re.M)
    assert len(states) == 12 and {s for _, s in states} == {"delivered"}, out[-3000:]
    for line in ("PDF reports    12", "Emails         12", "Teams posts    12", "Archived PDFs  12"):
        assert line in out, out[-3000:]
    demo_state = {"var/demo": _tree_digest(project / "var" / "demo"),
                  ".airflow/demo": _tree_digest(project / ".airflow" / "demo")}
    assert demo_state["var/demo"] and (project / ".airflow" / "demo" / "airflow.db").exists()

    # 2. airflow.sh in the background
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = Serve(None, port, argv=["bash", "scripts/airflow.sh", "--port", str(port)], cwd=project)
    try:
        serve.wait_for(serve.healthy, START_TIMEOUT, f"airflow.sh's API server on port {port}")
        assert any(f"UI on http://127.0.0.1:{port}" in line for line in serve.lines)
        password = _password(serve)
        assert password, "airflow.sh printed no admin password:\n" + "\n".join(serve.lines[:20])
        # A triggered run reports on the week before the latest Monday (MSP time); the demo, on the
        # latest week whose Monday 09:00 has passed. They differ on Monday before 09:00, when the
        # run's deliveries would wait for 09:00 by design.
        now = dt.datetime.now(dt.timezone.utc)
        if (report_monday(now, MSP_TIMEZONE) - dt.timedelta(days=7)).isoformat() != week_of:
            pytest.skip(f"Monday before 09:00 {MSP_TIMEZONE}: the run's week ({now:%F %H:%M} UTC) is not yet "
                        "due, its deliveries wait for 09:00")
        store = project / "var" / "airflow" / "store"

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            _login(page, base, password)

            # 3. the manual run, triggered in the UI with the README's conf
            headers = {"Authorization": f"Bearer {_token(base, password)}"}
            run = _trigger_in_the_ui(page, base, headers, CONF)
            assert run["conf"] == CONF and run["run_type"] == "manual", run

            # 4. the review page from the UI's menu: ACME awaiting review, previewed, approved
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Weekly report review").click()
            frame = page.frame_locator("iframe[title='Weekly report review']")
            expect(frame.locator("h1")).to_have_text("Weekly report review", timeout=30_000)
            expect(frame.locator("#week")).to_have_value(week_of)  # the latest week comes first

            def acme_awaiting() -> bool:
                frame.get_by_role("button", name="Show").click()
                return frame.locator("[data-state=ACME]").inner_text(timeout=30_000) == "awaiting review"

            _wait("ACME awaiting review on the page", acme_awaiting, RUN_TIMEOUT, serve)
            frame.locator("a[data-customer=ACME]").click()
            expect(frame.locator("#state")).to_have_text("awaiting review")
            preview = frame.locator("img[alt='Page 1 of the report']")
            expect(preview).to_be_visible()
            width, height = preview.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
            assert 300 < width < height, (width, height)  # a page of the PDF, portrait
            render = json.loads((store / "ACME" / week_of / "render.json").read_text())
            expect(frame.locator("#pdf-sha")).to_have_text(render["pdf_sha256"][:12])
            frame.get_by_role("button", name="Approve this version").click()
            expect(frame.locator(".message")).to_contain_text("Approved by admin")
            expect(frame.locator("#state")).to_have_text("approved")

            # 5. BRVO from the command line, exactly as the README writes it
            _wait("BRVO rendered", lambda: (store / "BRVO" / week_of / "render.json").exists(), RUN_TIMEOUT, serve)
            cli = subprocess.run(["bash", "scripts/approve.sh", "BRVO", week_of, "approve"], cwd=project, env=env,
                                 capture_output=True, text=True, timeout=180)
            assert cli.returncode == 0, cli.stdout + cli.stderr
            assert f"weekly_report_approval__BRVO__{week_of} = 'approve'" in cli.stdout

            # 6. both delivered, once per channel
            _wait("ACME and BRVO delivered on every channel", lambda: _delivered(store, week_of), RUN_TIMEOUT, serve)
            frame.get_by_role("button", name="Show").click()
            for code in CONF["customers"]:
                expect(frame.locator(f"[data-state={code}]")).to_have_text("delivered", timeout=30_000)
            frame.locator("a[data-customer=BRVO]").click()
            expect(frame.locator("h2").first).to_contain_text("BRVO · Bravo Legal LLP")
            expect(frame.locator("#state")).to_have_text("delivered")
            # who set the Variable, from Airflow's audit log: for the CLI Airflow records the OS user
            expect(frame.locator(".decided")).to_contain_text(f"by {CLI_SETTER}")
            # a delivered week says so, not "delivery has started"
            expect(frame.locator("#locked")).to_contain_text("Delivered (email sent, teams sent, archive sent)")
            frame.locator("img[alt='Page 1 of the report']").evaluate("img => img.decode()")
            page.screenshot(path=str(tmp_path / "review-page.png"))
            browser.close()

        for code in CONF["customers"]:
            render = json.loads((store / code / week_of / "render.json").read_text())
            ledger = _ledger(store, code, week_of)
            for channel, receipt in ledger.items():
                assert receipt["resends"] == 0 and receipt["pdf_sha256"] == render["pdf_sha256"], (code, receipt)
                assert [h["state"] for h in receipt["history"]] == ["sent"], (code, channel, receipt["history"])
            approvals = [json.loads(p.read_text()) for p in sorted((store / code / week_of / "approvals").glob("*.json"))]
            assert [a["decision"] for a in approvals] == ["approve"], approvals
            assert approvals[0]["pdf_sha256"] == render["pdf_sha256"]
        acme, brvo = (json.loads(sorted((store / c / week_of / "approvals").glob("*.json"))[0].read_text())
                      for c in ("ACME", "BRVO"))
        assert (acme["by"], acme["via"]) == ("admin", "review-page")
        assert (brvo["by"], brvo["via"]) == (CLI_SETTER, "airflow-variable")

        var = project / "var" / "airflow"
        # ACME: SMTP (the sink's outbox) and a local archive, each exactly once
        [eml] = sorted((var / "outbox").glob(f"ACME-{week_of}-*.eml"))
        assert not list((var / "outbox").glob(f"BRVO-{week_of}-*.eml"))  # BRVO's mail goes through Gmail
        assert f"ACME_weekly-report_{week_of}.pdf" in eml.read_text(errors="replace")
        assert len(list((var / "archive").rglob(f"ACME_weekly-report_{week_of}.pdf"))) == 1
        # Teams (both through the Workflows webhook simulator): one card each
        sim_url = re.search(r"Simulators on (http://127\.0\.0\.1:\d+)", "\n".join(serve.lines)).group(1)
        posts = requests.get(f"{sim_url}/teams/_sim/posts", timeout=10).json()
        assert len(posts.get("acme-shared", [])) == 1 and len(posts.get("brvo-shared", [])) == 1, posts

        serve.terminate_and_check()
    finally:
        serve.kill()

    # the demo's week and Airflow home: untouched by airflow.sh and the run
    assert {"var/demo": _tree_digest(project / "var" / "demo"),
            ".airflow/demo": _tree_digest(project / ".airflow" / "demo")} == demo_state

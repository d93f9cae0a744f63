"""The review page's QBR view through Airflow's own API app (the plugin mounted as in production):
a reviewer reads a real pack, saves the "quarter in review" narrative (the pack re-renders with
it), approves it bound to the hashes shown (mirrored into the Variable); a stale decision is 409,
a narrative saved after approval voids it, a viewer may read but not decide."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from msp_reports.approval import HASHES
from tests.review.review_helpers import TEST_USERS, api_clients, environment, migrate_db

PREFIX = "/weekly-reports-review/qbr"
QUARTER = "2026-Q3"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from msp_reports import qbr_pipeline
    from msp_reports.qbr import Quarter
    from msp_reports.settings import Settings
    from msp_reports.store import ReportStore
    from tests.qbr.seed import seed

    home = tmp_path_factory.mktemp("qbr-review")
    with environment({"MSP_REPORTS_HOME": str(home), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": TEST_USERS}):
        migrate_db()
        seed(ReportStore(str(home / "store")), Quarter.parse(QUARTER).week_ofs())
        qbr_pipeline.render(Settings.load(), {"customer": "ACME", "quarter": QUARTER})
        yield {"client": api_clients(), "home": home}
        from airflow.models import Variable

        Variable.delete(f"qbr_approval__ACME__{QUARTER}")


def _page(client) -> tuple[str, dict]:
    r = client.get(f"{PREFIX}/", params={"quarter": QUARTER, "customer": "ACME"})
    assert r.status_code == 200, r.text
    return r.text, dict(re.findall(r'name="(csrf_token|[a-z_]+_sha256)" value="([^"]*)"', r.text))


def _decide(client, fields, decision="approve", **extra):
    body = {k: fields[k] for k in ("csrf_token", *HASHES) if k in fields}
    return client.post(f"{PREFIX}/decision/ACME/{QUARTER}", data={**body, "decision": decision, **extra},
                       follow_redirects=False)


def _pdf_text(data: bytes) -> str:
    out = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True)
    return " ".join(out.stdout.decode().split())


def test_anonymous_is_refused_and_a_viewer_reads_but_may_not_decide(api):
    assert api["client"]().get(f"{PREFIX}/").status_code == 401
    viewer = api["client"]("viewer", "viewer")
    text, fields = _page(viewer)
    assert "awaiting review" in text and "qbr_approval__ACME__2026-Q3" in text
    pdf = viewer.get(f"{PREFIX}/pdf/ACME/{QUARTER}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["x-report-sha256"] == fields["pdf_sha256"]
    assert "ACME QBR 2026-Q3 (2026-10-05).pdf" in pdf.headers["content-disposition"]
    assert viewer.get(f"{PREFIX}/pdf/ACME/{QUARTER}/page-1.png").headers["content-type"] == "image/png"
    assert _decide(viewer, fields).status_code == 403
    assert viewer.get(f"{PREFIX}/", params={"quarter": "2026-13"}).status_code == 400


def test_narrative_rerenders_the_pack_a_stale_decision_is_409_and_a_later_edit_voids_the_approval(api):
    reviewer = api["client"]("reviewer", "user")
    _, before = _page(reviewer)
    r = reviewer.post(f"{PREFIX}/narrative/ACME/{QUARTER}", follow_redirects=False, data={
        "narrative": "Quarter in review: <b>the Leeds move</b> went to plan.", "csrf_token": before["csrf_token"],
        "shown_narrative_sha256": re.search(r'name="shown_narrative_sha256" value="([^"]*)"',
                                            _page(reviewer)[0]).group(1)})
    assert r.status_code == 303, r.text
    text, after = _page(reviewer)
    assert after["pdf_sha256"] != before["pdf_sha256"]
    pdf = reviewer.get(f"{PREFIX}/pdf/ACME/{QUARTER}/report.pdf").content
    assert "the Leeds move</b> went to plan" in _pdf_text(pdf)  # the narrative, escaped, in the pack
    assert "&lt;b&gt;the Leeds move" in text  # and escaped on the page

    assert _decide(reviewer, before).status_code == 409  # the version shown before the edit
    r = _decide(reviewer, after)
    assert r.status_code == 303
    text, _ = _page(reviewer)
    assert "Approved by <strong>reviewer</strong>" in text
    from airflow.models import Variable

    stored = json.loads(Variable.get(f"qbr_approval__ACME__{QUARTER}"))
    assert stored["decision"] == "approve" and stored["pdf_sha256"] == after["pdf_sha256"]
    assert stored["via"] == "review-page" and stored["by"] == "reviewer"

    sha = re.search(r'name="shown_narrative_sha256" value="([^"]*)"', text).group(1)
    r = reviewer.post(f"{PREFIX}/narrative/ACME/{QUARTER}", follow_redirects=False,
                      data={"narrative": "Changed after approval.", "csrf_token": after["csrf_token"],
                            "shown_narrative_sha256": sha})
    assert r.status_code == 303
    text, _ = _page(reviewer)
    assert "awaiting review" in text and "was voided" in text

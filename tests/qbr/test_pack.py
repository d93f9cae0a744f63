"""The rendered QBR pack: real PDF text (pdftotext), determinism, traceability, hostile text."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
import sys

import pytest
from pypdf import PdfReader

from msp_reports import store as layout
from msp_reports.approval import ARTEFACTS
from msp_reports.qbr import SOURCES, Quarter, build_pack
from msp_reports.qbr.figures import QUARTER
from msp_reports.store import ReportStore, sha256
from tests.factories import MSP, ROOT, hostile_strings, make_customer
from tests.qbr.seed import CODE, customer, seed
from tests.render.conftest import tripwire  # noqa: F401 - the fixture: an HTTP server that records every request

Q3 = Quarter.parse("2026-Q3")
WEEKS = Q3.week_ofs()
GONE, BROKEN, NOTED = WEEKS[5], WEEKS[8], WEEKS[3]
NARRATIVE = "A steadier quarter than the last.\n\nThe Leeds server room move is done."


def pdftotext(pdf: bytes, *, layout: bool = False) -> str:
    """The PDF's text by poppler: in reading order, or laid out (a table row on one line)."""
    args = ["pdftotext", *(["-layout"] if layout else []), "-", "-"]
    return subprocess.run(args, input=pdf, capture_output=True, check=True).stdout.decode()


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u200b", ""))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A quarter with one week missing, one week's backups unavailable, and the quarter before it."""
    store = ReportStore(str(tmp_path_factory.mktemp("store")))
    stored = seed(store, Q3.previous().week_ofs()[-6:] + WEEKS, skip=[GONE],
                  failed={BROKEN: {"backups": "datto: HTTP 503"}},
                  commentary={NOTED: "Replaced the Leeds core switch on Tuesday night."})
    files = build_pack(store, customer(), MSP, Q3, NARRATIVE)
    return store, stored, files


def test_the_pack_holds_every_artefact_the_weekly_render_publishes(built):
    _, _, files = built
    assert set(ARTEFACTS.values()) - {layout.SNAPSHOT} <= set(files)
    assert set(files) == {layout.REPORT_PDF, layout.REPORT_MD, layout.SUBJECT, layout.COVER_NOTE, layout.TEAMS_CARD,
                          SOURCES}
    assert files[layout.REPORT_PDF].startswith(b"%PDF-")
    assert files[layout.SUBJECT].decode() == "Acme Manufacturing Ltd: quarterly business review, Q3 2026 (July – September)"
    card = json.loads(files[layout.TEAMS_CARD])
    assert card["type"] == "AdaptiveCard"
    facts = {f["title"]: f["value"] for b in card["body"] if b.get("type") == "FactSet" for f in b["facts"]}
    doc = json.loads(files[SOURCES])["figures"]
    assert facts["Tickets opened"] == f"{doc['tickets'][QUARTER]['opened']:,}"
    assert facts["Services meeting their target"] == "2 of 3"
    assert "Steadier" not in files[layout.COVER_NOTE].decode() and "steadier quarter" in files[layout.COVER_NOTE].decode()


def test_sources_name_every_week_by_the_hash_of_its_snapshot(built):
    store, stored, files = built
    doc = json.loads(files[SOURCES])
    assert list(doc["snapshots"]) == [w.isoformat() for w in WEEKS]
    for w in WEEKS:
        expected = None if w == GONE else sha256(store.read_bytes(CODE, w, layout.SNAPSHOT))
        assert doc["snapshots"][w.isoformat()] == expected
        if w != GONE:
            assert expected == sha256(stored[w])
    assert doc["figures"]["weeks_missing"] == [GONE.isoformat()]
    assert doc["figures"]["unavailable"]["backups"] == [BROKEN.isoformat()]
    assert doc["previous_quarter"]["quarter"] == "2026-Q2"
    assert sum(v is not None for v in doc["previous_quarter"]["snapshots"].values()) == 6
    assert doc["narrative_sha256"] == sha256(NARRATIVE.encode())
    assert doc["artefacts"][layout.REPORT_PDF] == sha256(files[layout.REPORT_PDF])


def test_two_builds_are_identical_bytes(built):
    store, _, files = built
    again = build_pack(store, customer(), MSP, Q3, NARRATIVE)
    assert again == files
    other = build_pack(store, customer(), MSP, Q3, NARRATIVE + " One more line.")
    assert other[layout.REPORT_PDF] != files[layout.REPORT_PDF]
    assert json.loads(other[SOURCES])["snapshots"] == json.loads(files[SOURCES])["snapshots"]


def test_pdf_text_shows_the_missing_week_and_the_summed_figures(built):
    store, _, files = built
    text = pdftotext(files[layout.REPORT_PDF], layout=True)
    flat = squash(pdftotext(files[layout.REPORT_PDF]))
    assert "Built from 12 of the quarter's 13 weekly reports." in flat
    assert "Missing: the weeks of 03 Aug (no weekly report on record)" in flat
    assert re.search(r"2026-08-03\s+—\s+Missing", text)  # the appendix row of the week
    assert "Data unavailable in the weeks of 24 Aug (Datto BCDR did not answer)" in flat
    doc = json.loads(files[SOURCES])["figures"]
    opened = doc["tickets"][QUARTER]["opened"]
    assert opened == sum(10 + n for n in range(6, 6 + 13) if n != 6 + 5)  # seed(): 10 + n opened in week n
    assert re.search(rf"Opened(\s+\d+){{3}}\s+{opened}\b", text)
    servers = next(r for r in doc["uptime"]["rows"] if r["key"] == ["Leeds HQ", "Servers"])
    assert f"{servers['periods'][QUARTER]['pct']:.3f}%" in text
    for heading in ("The quarter at a glance", "The quarter in review", "Uptime by site and device class",
                    "Tickets and service desk", "Changes executed", "Backups and recovery", "Security",
                    "Public sites", "Flagged events of the quarter", "Your engineer's weekly commentary",
                    "Recommendations for next quarter", "The weekly reports this pack is built from",
                    "How we measure"):
        assert heading in text, heading
    assert "Replaced the Leeds core switch on Tuesday night." in flat
    assert "The Leeds server room move is done." in flat
    assert "2026-Q2" in text  # the quarter-over-quarter column
    # 2026-Q2 has 6 of 13 weeks on record: its ticket count is no basis for a change; its uptime is
    assert re.search(r"Tickets opened\s+[\d,]+\s+[\d,]+\s+weeks missing", text)
    assert re.search(r"Uptime, all services\s+[\d.]+%\s+[\d.]+%\s+[+−±][\d.]+ points", text)
    # each week names the weekly report it is (poppler joins a name broken at a hyphen without it)
    assert "ACME_weeklyreport_20260706.pdf" in flat.replace(" ", "").replace("-", "")


def test_flagged_events_name_the_week_they_were_reported(built):
    _, _, files = built
    text = pdftotext(files[layout.REPORT_PDF], layout=True)
    section = text.split("Flagged events of the quarter", 1)[1].split("Your engineer's weekly commentary", 1)[0]
    # seed(): every third week is eventful (an open high-severity incident): 6 Jul, 27 Jul, 17 Aug, 7 Sep;
    # not in consecutive weeks, so each report is an event of its own
    found = re.findall(r"(\d\d \w\w\w 2026)\s+Critical\s+Security\s+High-severity incident", section)
    assert found == ["06 Jul 2026", "27 Jul 2026", "17 Aug 2026", "07 Sep 2026"]


def test_a_finding_reported_in_consecutive_weeks_is_one_event(tmp_path):
    from msp_reports.qbr.figures import quarter_figures
    from msp_reports.qbr.markdown import _flag_rows
    from tests.factories import make_snapshot
    from tests.qbr.seed import store_week

    store = ReportStore(str(tmp_path))
    previous = None
    for n, week_of in enumerate(WEEKS[:6]):
        snap = make_snapshot(week_of, healthy=n in (3, 4))  # the incident open in weeks 0-2, then again in 5
        store_week(store, snap, previous)
        previous = snap
    rows, _ = _flag_rows(quarter_figures(store, CODE, Q3))
    incident = [(r["week"], r["again"]) for r in rows if r["message"].startswith("High-severity incident")]
    assert incident == [("29 Jun 2026", "06 Jul, 13 Jul"), ("03 Aug 2026", "—")]


def test_quarter_over_quarter_with_every_week_on_record(tmp_path):
    store = ReportStore(str(tmp_path))
    seed(store, Q3.previous().week_ofs() + WEEKS)
    files = build_pack(store, customer(), MSP, Q3)
    doc = json.loads(files[SOURCES])
    now, before = doc["figures"]["tickets"][QUARTER], doc["previous_quarter"]["figures"]["tickets"][QUARTER]
    assert before["weeks"] == now["weeks"] == 13
    text = pdftotext(files[layout.REPORT_PDF], layout=True)
    assert re.search(rf"Tickets opened\s+{now['opened']}\s+{before['opened']}\s+\+{now['opened'] - before['opened']}\b",
                     text)
    assert "Uptime per month, all services" in text  # the six-month chart


def test_without_a_previous_quarter_there_is_no_comparison(tmp_path):
    store = ReportStore(str(tmp_path))
    seed(store, WEEKS[:4])
    files = build_pack(store, customer(), MSP, Q3)
    text = squash(pdftotext(files[layout.REPORT_PDF]))
    assert "No weekly report of 2026-Q2 is on record, so there is no quarter-over-quarter comparison yet." in text
    assert "Built from 4 of the quarter's 13 weekly reports." in text
    assert json.loads(files[SOURCES])["previous_quarter"] is None
    assert "The quarter in review" not in text  # no narrative, no empty section


def test_hostile_source_text_is_inert(tmp_path, tripwire):  # noqa: F811
    base, hits = tripwire
    texts = hostile_strings(base)
    store = ReportStore(str(tmp_path))
    seed(store, WEEKS, text=texts, commentary={WEEKS[1]: f"See ![pic]({base}/c.png)\n\n<iframe src='{base}'>"})
    who = make_customer(name=f"Acme <b>Ltd</b> [x]({base}/c)")
    files = build_pack(store, who, MSP, Q3, f"<script>alert(2)</script> [link]({base}/n)")
    md = files[layout.REPORT_MD].decode()
    assert "\u202e" not in md and "<script>" not in md
    text = pdftotext(files[layout.REPORT_PDF])
    flat = re.sub(r"\s+", "", text.replace("\u200b", ""))
    assert re.sub(r"\s+", "", "<script>alert(2)</script>") in flat
    assert re.sub(r"\s+", "", texts["site"]) in flat
    assert re.sub(r"\s+", "", f"See ![pic]({base}/c.png)") in flat
    assert re.sub(r"\s+", "", "<script>alert(1)</script>") in flat  # the incident title
    assert hits == []
    reader = PdfReader(io.BytesIO(files[layout.REPORT_PDF]))
    assert reader.attachments == {}
    for page in reader.pages:
        for annot in page.get("/Annots") or []:
            assert annot.get_object()["/Subtype"] not in ("/FileAttachment", "/Link")
    cover = files[layout.COVER_NOTE].decode()
    assert "<script>" not in cover and "&lt;script&gt;" in cover and "<b>Ltd" not in cover
    assert "<b>" not in json.dumps(json.loads(files[layout.TEAMS_CARD]))


def test_cli_writes_the_pack(built, tmp_path):
    store, _, files = built
    narrative = tmp_path / "narrative.txt"
    narrative.write_text(NARRATIVE, encoding="utf-8")
    out = tmp_path / "pack"
    run = subprocess.run(
        [sys.executable, "-m", "msp_reports.qbr", "build", "--store", store.root.path,
         "--registry", str(ROOT / "include" / "customers.yaml"), "--customer", CODE, "--quarter", "2026-Q3",
         "--out", str(out), "--narrative", str(narrative)],
        capture_output=True, text=True, env={"PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    doc = json.loads((out / SOURCES).read_text())
    assert doc["snapshots"] == json.loads(files[SOURCES])["snapshots"]
    # another process, the registry's entry for the same customer: the same PDF, byte for byte
    assert (out / layout.REPORT_PDF).read_bytes() == files[layout.REPORT_PDF]
    bad = subprocess.run([sys.executable, "-m", "msp_reports.qbr", "build", "--store", store.root.path,
                          "--registry", str(ROOT / "include" / "customers.yaml"), "--customer", "NOPE",
                          "--quarter", "2026-Q3", "--out", str(out)],
                         capture_output=True, text=True, env={"PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}"}, cwd=ROOT)
    assert bad.returncode == 2 and "NOPE" in bad.stderr


def test_a_fourteen_week_quarter_in_new_york(tmp_path):
    q4 = Quarter.parse("2026-Q4")
    store = ReportStore(str(tmp_path))
    seed(store, q4.week_ofs() + [q4.week_ofs()[-1] + dt.timedelta(days=7)], tz="America/New_York")
    files = build_pack(store, customer("America/New_York"), MSP, q4)
    text = squash(pdftotext(files[layout.REPORT_PDF]))
    assert "14 weeks, Mon 28 Sep 2026 – Sun 03 Jan 2027 · times in America/New_York" in text
    assert "Trends over the quarter's 14 weeks" in text and "Built from 14 of the quarter's 14 weekly reports." in text
    doc = json.loads(files[SOURCES])
    assert list(doc["snapshots"])[0] == "2026-09-28" and list(doc["snapshots"])[-1] == "2026-12-28"
    network = next(r for r in doc["figures"]["uptime"]["rows"] if r["key"] == ["Leeds HQ", "Network"])
    assert network["periods"][QUARTER]["seconds"] == 14 * 168 * 3600 + 3600  # 1 Nov 2026: a 169-hour week


def test_each_customers_pack_holds_only_its_own_weeks(tmp_path):
    """Two customers in one store: the other's text, figures and commentary never reach the pack."""
    store = ReportStore(str(tmp_path))
    seed(store, WEEKS, commentary={WEEKS[2]: "ACME only: the Leeds switch."})
    seed(store, WEEKS, code="BRVO", text={"incident": "BRVO-only incident title", "site": "Manhattan"},
         commentary={WEEKS[2]: "BRVO only: the Newark move."})
    mine = build_pack(store, customer(), MSP, Q3)
    text = squash(pdftotext(mine[layout.REPORT_PDF]))
    assert "ACME only: the Leeds switch." in text
    for theirs in ("BRVO", "Manhattan", "Newark"):
        assert theirs not in text and theirs not in mine[SOURCES].decode() and theirs not in mine[layout.REPORT_MD].decode()
    doc = json.loads(mine[SOURCES])
    assert all(sha == sha256(store.read_bytes(CODE, dt.date.fromisoformat(w), layout.SNAPSHOT))
               for w, sha in doc["snapshots"].items())

"""The Teams card and the internal roll-up carry the PDF's words and numbers, escaped."""

from __future__ import annotations

import re

from msp_reports.escaping import escape_markdown
from msp_reports.reconcile import customer_action, internal_action
from msp_reports.render import executive_summary, teams_summary
from tests.factories import MSP, WEEK_OF, hostile_strings, make_customer, make_reconciled
from tests.render.reading import flat, pdf_text


def test_teams_card(tripwire):
    base, _ = tripwire
    rec = make_reconciled(text=hostile_strings(base))
    card = teams_summary(rec, make_customer(), MSP)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [block["text"] for block in card["body"] if block["type"] == "TextBlock"]
    assert texts[0].startswith("Acme Manufacturing Ltd — weekly report")
    summary = executive_summary(rec)
    assert texts[2:5] == [escape_markdown(s) for s in (summary[0], summary[-2], summary[-1])]
    facts = {f["title"]: f["value"] for block in card["body"] if block["type"] == "FactSet" for f in block["facts"]}
    assert facts["Tickets opened / closed"] == "23 / 17" and facts["Backlog at week end"] == "14"
    every = " ".join(texts)
    assert "<script>" not in every and "](" not in every.replace("\\](", "")
    assert "\\<script\\>" in every and "\u202e" not in every


def test_teams_card_and_rollup_carry_the_pdf_numbers(report, tmp_path):
    from msp_reports.pipeline import customer_status
    from msp_reports.rollup import rollup_cards, rollup_markdown
    from msp_reports.store import ReportStore

    rec, rendered = report
    text = pdf_text(rendered.pdf)
    card = teams_summary(rec, make_customer(), MSP)
    facts = {f["title"]: f["value"] for block in card["body"] if block["type"] == "FactSet" for f in block["facts"]}
    assert facts["Uptime"] == re.search(r"Average across rows: (\S+?),", text).group(1) == "98.78%"
    opened, closed = (re.search(rf"{m}\s+(\d+)\s", text).group(1) for m in ("Opened", "Closed"))
    assert facts["Tickets opened / closed"] == f"{opened} / {closed}" == "23 / 17"
    assert facts["SLA breaches"] == re.search(r"SLA breaches\s+(\d+)\s", text).group(1) == "3"
    assert facts["Backlog at week end"] == re.search(r"Backlog at week end\s+(\d+)\s", text).group(1) == "14"
    assert facts["Secure score"] == re.search(r"Secure score: (\S+?),", text).group(1) == "71.4%"
    assert facts["Open incidents"] == re.search(r"Open incidents at week end: (\d+)", text).group(1) == "1"
    assert f"{facts['Backups within RPO']} backed-up assets within recovery point objective" in text.replace("\n", " ")
    for flag in rec.flags:  # the card's flag lines are the PDF's findings
        assert flat(flag.message) in flat(text)

    store = ReportStore(str(tmp_path))
    store.write_json("ACME", WEEK_OF, "reconciled.json", rec.model_dump(mode="json"))
    status = customer_status(store, make_customer(), WEEK_OF)
    markdown = rollup_markdown(MSP, WEEK_OF, [status])
    [card] = rollup_cards(MSP, WEEK_OF, [status])
    rollup_texts = " ".join(b["text"] for b in card["body"] if b["type"] == "TextBlock")
    critical = [f for f in rec.flags if f.severity == "critical"]
    assert critical
    for flag in critical:
        quoted = escape_markdown(f"ACME: {flag.message}", 600)
        assert quoted in markdown and quoted in rollup_texts
    for flag in rec.flags:  # the roll-up carries the internal action, the PDF the customer's wording
        assert escape_markdown(f"ACME: {internal_action(flag)}", 600) in markdown
        assert flat(customer_action(flag)) in flat(text)

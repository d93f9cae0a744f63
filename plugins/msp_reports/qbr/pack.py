"""The QBR pack: a quarter's figures (:mod:`.figures`) rendered like the weekly report.

:func:`build_pack` returns the files the weekly render publishes (PDF, Markdown, subject, cover
note, Teams card; named by :mod:`msp_reports.store`) plus ``sources.json``. The Markdown
(:mod:`.markdown`, ``qbr.md.j2`` in the weekly report's Jinja environment: ``finalize`` escapes
every value) becomes HTML through the same Markdown-it set-up (no raw HTML, links or images) and
page template (branding), and a PDF through the same WeasyPrint call and templates-only URL
fetcher: nothing remote is ever read. Same snapshots, commentaries and narrative → the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from msp_reports import store as layout
from msp_reports.messages import card_bytes
from msp_reports.qbr import charts
from msp_reports.qbr.figures import QuarterFigures, quarter_figures
from msp_reports.qbr.markdown import headlines, render_markdown
from msp_reports.qbr.messages import cover_note, pack_title, subject_line, teams_card
from msp_reports.qbr.quarter import Quarter
from msp_reports.registry import Customer, Msp
from msp_reports.render.branding import Branding, load_branding
from msp_reports.render.markdown import markdown_to_html
from msp_reports.render.pdf import html_to_pdf
from msp_reports.snapshot import DOMAINS
from msp_reports.store import ReportStore, sha256

SOURCES = "sources.json"  # the pack's manifest: the weekly snapshots by hash, and the figures


def sources_doc(fig: QuarterFigures, prev: QuarterFigures | None, customer: Customer, narrative: str,
                artefacts: dict[str, bytes]) -> dict[str, Any]:
    def weeks(f: QuarterFigures) -> list[dict[str, Any]]:
        return [{"week_of": w.week_of.isoformat(), "month": w.month, "state": w.state,
                 "snapshot_sha256": w.snapshot_sha256, "reconciled_sha256": w.reconciled_sha256,
                 "commentary_sha256": w.commentary_sha256, "flags_note": w.flags_note or None,
                 "unavailable": [d for d in DOMAINS if w.state == "ok" and w.domain_state(d) != "ok"]}
                for w in f.weeks]
    return {
        "kind": "qbr", "customer": customer.code, "quarter": str(fig.quarter), "timezone": customer.timezone,
        "snapshots": {w.week_of.isoformat(): w.snapshot_sha256 if w.state == "ok" else None for w in fig.weeks},
        "weeks": weeks(fig),
        "previous_quarter": None if prev is None else {
            "quarter": str(prev.quarter),
            "snapshots": {w.week_of.isoformat(): w.snapshot_sha256 if w.state == "ok" else None for w in prev.weeks},
            "figures": prev.as_dict()},
        "narrative_sha256": sha256(narrative.encode("utf-8")),
        "figures": fig.as_dict(),
        "artefacts": {name: sha256(data) for name, data in sorted(artefacts.items())},
    }


def build_pack(store: ReportStore, customer: Customer, msp: Msp, quarter: Quarter, narrative: str = "", *,
               branding: Branding | None = None) -> dict[str, bytes]:
    """The QBR pack of ``customer`` for ``quarter``, by file name; nothing is written to the store.

    Built from the stored weekly snapshots only (and their reconciled flags and commentaries);
    the previous quarter's are read for the comparison when any of its weeks is on record.
    """
    fig = quarter_figures(store, customer.code, quarter)
    prev = quarter_figures(store, customer.code, quarter.previous(), details=False)
    prev = prev if prev.on_record else None
    if branding is None:
        branding = load_branding().for_customer(customer.code)
    markdown = render_markdown(fig, prev, customer, msp, narrative, customer.timezone)
    head = headlines(fig)
    page = markdown_to_html(markdown, pack_title(customer, quarter), "en", author=msp.name, description=head[0],
                            branding=branding, blocks=charts.blocks(fig, branding, prev), customer_name=customer.name)
    files = {
        layout.REPORT_PDF: html_to_pdf(page),
        layout.REPORT_MD: markdown.encode("utf-8"),
        layout.SUBJECT: subject_line(customer, quarter).encode("utf-8"),
        layout.COVER_NOTE: cover_note(customer, msp, fig, narrative).encode("utf-8"),
        layout.TEAMS_CARD: card_bytes(teams_card(customer, msp, fig)),
    }
    doc = sources_doc(fig, prev, customer, narrative, files)
    files[SOURCES] = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return files

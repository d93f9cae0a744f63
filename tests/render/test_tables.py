"""Long tables: cut to a few rows, what needs attention first, the rest counted; headers repeat per page."""

from __future__ import annotations

import io
import re

from pypdf import PdfReader

from msp_reports.render import TABLE_ROW_LIMIT, render_report
from tests.factories import MSP, make_customer, make_reconciled
from tests.render.reading import flat


def test_long_tables_repeat_their_header_on_every_page():
    shown = TABLE_ROW_LIMIT  # the two named assets and all but two of the workstations
    rendered = render_report(make_reconciled(extra_assets=shown), make_customer(), MSP)
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(rendered.pdf)).pages]
    with_rows = [text for text in pages if "ACME-WS0" in text]
    assert len(with_rows) >= 2
    for text in with_rows:  # the RPO table's rows, or the RTO table's, under their own header
        assert re.search(r"Asset\s+Appliance\s+Last good backup", text) or re.search(
            r"Asset\s+RTO\s+Last verified recovery", text)
    assert any(re.search(r"Asset\s+RTO\s+Last verified recovery", text) for text in with_rows)
    text = flat("".join(pages))
    # the failed ACME-FS01 (RPO missed) is shown first however long the list; the rest is counted
    assert "ACME-FS01" in text and f"ACME-WS{shown - 3:03d}" in text and f"ACME-WS{shown - 2:03d}" not in text
    assert flat("… and 2 more assets, by last status: 2 success.") in text

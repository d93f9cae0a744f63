"""The roll-up's decision column reads as a sentence: no doubled brackets around who and how."""

from msp_reports.rollup import _decision


def test_decision_line_has_no_doubled_brackets():
    record = {"decision": "approve", "by": "demo (account engineer)", "via": "airflow-variable",
              "recorded_at": "2026-11-30T06:01:12+00:00", "pdf_sha256": "ab" * 32}
    line = _decision(record)
    assert line.startswith("approved by demo (account engineer) via airflow-variable, 2026-11-30 06:01 UTC")
    assert ") (" not in line
    assert _decision({**record, "decision": "reject"}).startswith("rejected by")

"""The executive summary and the recommendations: deterministic, worst first, each once."""

from __future__ import annotations

from msp_reports.reconcile import customer_action
from msp_reports.render import STANDING_RECOMMENDATION, executive_summary, recommendations
from tests.factories import make_reconciled


def test_executive_summary_is_deterministic_and_worst_first():
    rec = make_reconciled()
    summary = executive_summary(rec)
    shuffled = rec.model_copy(update={"flags": list(reversed(rec.flags))})
    assert executive_summary(shuffled) == summary == executive_summary(make_reconciled())
    assert 3 <= len(summary) <= 6
    worst = next(f for f in rec.flags if f.kind == "sla_drop")
    assert summary[0] == worst.message
    assert recommendations(rec)[0] == customer_action(worst)  # the customer's wording, not the roll-up's
    assert summary[-1] == f"Our first action: {customer_action(worst)}"


def test_healthy_week_says_so_with_numbers():
    rec = make_reconciled(healthy=True, baseline=False)
    assert rec.flags == []
    summary = executive_summary(rec)
    assert 3 <= len(summary) <= 6
    assert summary[0].startswith("A healthy week: uptime averaged 99.96%")
    assert "12 tickets opened and 15 closed, 0 SLA breaches, 6 open at week end" in summary[0]
    assert recommendations(rec) == [STANDING_RECOMMENDATION]


def test_recommendations_are_deduplicated():
    rec = make_reconciled(extra_assets=0)
    doubled = rec.model_copy(update={"flags": rec.flags + rec.flags})
    assert recommendations(doubled) == recommendations(rec)
    assert len(set(recommendations(rec))) == len(recommendations(rec))

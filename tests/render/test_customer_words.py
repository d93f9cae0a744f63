"""What a CTO reads: a missed target is never a healthy week, the thresholds are stated, the
customer is spoken to (internal actions stay in the roll-up), one figure per site and class,
charts only where there is data, and a missed target stands out."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.factories import MSP, WEEK_OF, make_customer, make_previous, make_snapshot, with_tickets
from tests.render.reading import flat, pdf_text

from msp_reports import messages
from msp_reports.reconcile import internal_action, reconcile
from msp_reports.registry import Thresholds
from msp_reports.render import executive_summary, render_markdown, render_report, teams_summary, trends_html
from msp_reports.render.markdown import KEEP_CLASS, MISSED_CLASS, markdown_to_html
from msp_reports.snapshot import BackupData
from msp_reports.week import ReportWeek

INTERNAL = "send the customer a written update"


def _fxtr() -> object:
    """FXTR in the demo: a clean week but for SLA breaches up from 2 to 4 (below the rise of 3 that flags)."""
    prev = with_tickets(make_previous(), sla_breaches=2)
    return reconcile(with_tickets(make_snapshot(healthy=True), sla_breaches=4), prev, Thresholds())


def _echo() -> object:
    """ECHO in the demo: one asset's last good backup older than its RPO, its last run failed."""
    snap = make_snapshot(healthy=True)
    assets = snap.backups.data.assets
    late = assets[0].model_copy(update={"last_good_backup": snap.week_end - dt.timedelta(hours=25),
                                        "last_status": "Failed"})
    data = BackupData(assets=[late, *assets[1:]])
    snap = snap.model_copy(update={"backups": snap.backups.model_copy(update={"data": data})})
    return reconcile(snap, with_tickets(make_previous(), sla_breaches=0), Thresholds())


def test_sla_breaches_up_below_the_threshold_is_not_called_healthy():
    rec = _fxtr()
    assert rec.flags == []  # +2 is below the rule's rise of 3: no finding
    text = " ".join(executive_summary(rec))
    assert "healthy" not in text.lower() and "met its targets" not in text
    assert "4 tickets missed their SLA (2 the week before)" in text
    assert "a rise of 3 or more" in text  # the threshold, stated beside it


def test_rpo_missed_with_a_failed_run_is_a_finding_not_a_healthy_week():
    rec = _echo()
    assert [f.kind for f in rec.flags] == ["rpo_missed"]
    summary = executive_summary(rec)
    assert summary[0].startswith("ACME-FS01 missed its 24-hour recovery point objective")
    assert not any("healthy" in s.lower() or "met its targets" in s for s in summary)


def test_report_states_the_thresholds_it_flags_by():
    rec = reconcile(make_snapshot(healthy=True), make_previous(), Thresholds(sla_breach_growth=5, backup_stale_hours=36))
    markdown = render_markdown(rec, make_customer(), MSP)
    appendix = markdown[markdown.index("## How we measure"):]
    assert "SLA breaches rise by 5 or more" in appendix and "A rise of 5 or more on the week before" in appendix
    assert "Backup not run in 36 h" in appendix and "more than 36 hours" in appendix
    assert "A rise of 5 or more SLA breaches on the week before" in markdown  # under the tickets table


def test_internal_action_wording_never_reaches_the_customer():
    rec = reconcile(make_snapshot(), make_previous(), Thresholds())  # an open high-severity incident
    incident = next(f for f in rec.flags if f.kind == "open_incident")
    assert INTERNAL in internal_action(incident)  # the roll-up's action keeps the internal wording
    customer = make_customer()
    rendered = render_report(rec, customer, MSP)
    week = ReportWeek.starting(WEEK_OF, customer.timezone)
    files = messages.build(rec, customer, MSP, week)
    for name, text in (("pdf", pdf_text(rendered.pdf)), ("markdown", rendered.markdown),
                       ("cover note", messages.cover_of(files)), ("card", str(teams_summary(rec, customer, MSP)))):
        assert flat("the customer") not in flat(text), name
    assert "will send you a written update" in " ".join(executive_summary(rec) + [rendered.markdown])


def test_cover_note_carries_the_engineers_commentary_escaped():
    rec = reconcile(make_snapshot(healthy=True), make_previous(), Thresholds())
    customer = make_customer()
    files = messages.build(rec, customer, MSP, ReportWeek.starting(WEEK_OF, customer.timezone),
                           "Leeds moves to the new core on Friday.\n\n<b>Maintenance</b> from 22:00.")
    cover = messages.cover_of(files)
    assert "A note from Priya Shah, your account engineer:" in cover
    assert "<p>Leeds moves to the new core on Friday.</p>" in cover and "&lt;b&gt;Maintenance&lt;/b&gt;" in cover


def test_a_trend_with_no_figure_in_any_week_is_said_not_drawn():
    snap = make_snapshot(healthy=True)
    security = snap.security.data.model_copy(update={"secure_score_pct": None, "secure_score_prev_pct": None})
    snap = snap.model_copy(update={"security": snap.security.model_copy(update={"data": security})})
    html = str(trends_html(reconcile(snap, None, Thresholds()), []))
    assert html.count("<svg") == 3  # uptime, backlog and recovery: not the secure score
    assert "<svg" not in html.split("Secure score", 1)[1].split("</td>", 1)[0]
    assert "No data: the source reported no figure in any of the last 8 weeks." in html
    assert "n/a" not in html.split("Secure score", 1)[1].split("</td>", 1)[0]


def test_a_missed_target_is_marked_and_short_tables_are_kept_whole():
    rec = reconcile(make_snapshot(), make_previous(), Thresholds())
    markdown = render_markdown(rec, make_customer(), MSP)
    html = markdown_to_html(markdown, "t")
    assert f'<td style="text-align:center" class="{MISSED_CLASS}">No</td>' in html  # Met / RPO met
    assert f'<table class="{KEEP_CLASS}">' in html
    css = html[html.index("<style"):html.index("</style>")]
    assert "td.missed" in css and "table.keep { break-inside: avoid; }" in css
    assert "h2 {" in css and "break-after: avoid" in css


@pytest.mark.parametrize("order", [("zabbix", "librenms"), ("librenms", "zabbix")])
def test_two_uptime_systems_show_one_row_per_site_and_class_by_registry_order(order):
    from msp_reports.snapshot import Section, SourceStatus, UptimeData, UptimeRow, merge_sections

    def part(system: str, pct: float) -> Section:
        rows = [UptimeRow(site="Rotterdam", device_class="Network", uptime_pct=pct, downtime_minutes=4,
                          slo_pct=99.9, source=system)]
        if system == "librenms":
            rows.append(UptimeRow(site="Utrecht", device_class="Servers", uptime_pct=100.0, downtime_minutes=0,
                                  slo_pct=99.9, source=system))
        status = SourceStatus(domain="uptime", system=system, ok=True, fetched_at=dt.datetime(2026, 11, 23, 6))
        return Section(status=status, data=UptimeData(rows=rows))

    pct = {"zabbix": 99.96, "librenms": 99.99}
    merged = merge_sections("uptime", [part(s, pct[s]) for s in order])
    rows = [(r.site, r.device_class, r.source) for r in merged.data.rows]
    assert rows.count(("Rotterdam", "Network", order[0])) == 1
    assert ("Rotterdam", "Network", order[1]) not in rows  # the same devices are not shown twice
    assert ("Utrecht", "Servers", "librenms") in rows  # a row only one system has is kept
    snap = make_snapshot(healthy=True).model_copy(update={"uptime": merged})
    markdown = render_markdown(reconcile(snap, None, Thresholds()), make_customer(), MSP)
    first = {"zabbix": "Zabbix", "librenms": "LibreNMS"}[order[0]]
    assert f"the row shows {first}'s figure" in markdown

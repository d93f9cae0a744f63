"""Failed, partial and stale sections: named, bannered, never shown as zero; every section names its source."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from msp_reports.reconcile import reconcile
from msp_reports.registry import Thresholds
from msp_reports.render import executive_summary, render_markdown, render_report, section_data, section_state, teams_summary
from msp_reports.snapshot import Section, SourceStatus, UptimeData, WeeklySnapshot
from tests.factories import MSP, TZ, make_customer, make_previous, make_reconciled, make_snapshot
from tests.render.reading import between, flat, pdf_text

FURNITURE = re.compile(r"— weekly report, |^Confidential: |^\d+\.\s*$|^Source: ")


def test_failed_source_is_unavailable_never_zero():
    failure = "service unavailable after retries"
    rec = make_reconciled(failed={"tickets": failure, "backups": "authentication rejected"})
    rendered = render_report(rec, make_customer(), MSP)
    text = pdf_text(rendered.pdf)
    tickets = between(text, "Tickets", "Changes executed")
    assert "Data unavailable: ConnectWise PSA did not provide this week" in tickets
    assert "service unavailable after retries" not in tickets  # the technical error stays internal
    backups = between(text, "Backups", "Security")
    assert "Data unavailable: Datto BCDR did not provide this week" in backups
    for body in (tickets, backups, between(text, "Changes executed", "Backups")):
        figures = "\n".join(line for line in body.splitlines() if not FURNITURE.search(line))
        assert not re.search(r"\d", figures), figures
        assert "Opened" not in figures and "ACME-FS01" not in figures
    summary = executive_summary(rec)
    assert any("tickets (ConnectWise PSA) and backups (Datto BCDR) were unavailable" in s for s in summary)
    assert not any("service desk" in s or "backup recovery point" in s for s in summary)
    card = teams_summary(rec, make_customer(), MSP)
    facts = {f["title"]: f["value"] for block in card["body"] if block["type"] == "FactSet" for f in block["facts"]}
    assert facts["Tickets"].startswith("Unavailable") and "SLA breaches" not in facts


def with_as_of(snap: WeeklySnapshot, domain: str, hours_before_end: float) -> WeeklySnapshot:
    section = getattr(snap, domain)
    status = section.status.model_copy(update={"as_of": snap.week_end - dt.timedelta(hours=hours_before_end)})
    return snap.model_copy(update={domain: section.model_copy(update={"status": status})})


def test_stale_data_gets_a_banner_and_fresh_data_none():
    snap = with_as_of(with_as_of(make_snapshot(), "backups", 30), "uptime", 7)
    rec = reconcile(snap, make_previous(), Thresholds())
    text = pdf_text(render_report(rec, make_customer(), MSP).pdf)
    backups = between(text, "Backups", "Security")
    as_of = (snap.week_end - dt.timedelta(hours=30)).astimezone(ZoneInfo(TZ))
    assert flat(f"Stale data: Datto BCDR last reported data at {as_of:%a %d %b %Y %H:%M}, 30 hours before "
                "the end of the week; we expect backups data within 26 hours.") in flat(backups)
    assert "ACME-SQL01" in backups  # the figures are still shown, under the banner
    assert "Stale data: Zabbix" in between(text, "Uptime by site and device class", "Tickets")
    assert text.count("Stale data:") == 2

    # a threshold per domain can be raised; fresh sections carry no banner
    relaxed = render_markdown(rec, make_customer(), MSP, freshness_hours={"backups": 48, "uptime": 8})
    assert "Stale data:" not in relaxed
    assert "Stale data:" not in render_markdown(make_reconciled(), make_customer(), MSP)
    tight = render_markdown(make_reconciled(), make_customer(), MSP, freshness_hours={"sites": 0.01})
    assert tight.count("Stale data:") == 1 and "**Stale data: Cloudflare health checks**" in tight

    card = teams_summary(rec, make_customer(), MSP)
    notes = [b["text"] for b in card["body"] if b["type"] == "TextBlock" and b.get("color") == "Warning"
             and "older than" in b["text"]]
    assert len(notes) == 2 and any("Backups: Datto BCDR data as of" in n for n in notes)
    with pytest.raises(ValueError, match="unknown domain"):
        render_markdown(rec, make_customer(), MSP, freshness_hours={"backup": 48})
    with pytest.raises(ValueError, match="positive number"):
        render_markdown(rec, make_customer(), MSP, freshness_hours={"backups": -1})


def test_every_section_names_its_source_and_as_of_time(report):
    rec, rendered = report
    text = pdf_text(rendered.pdf)
    as_of = rec.snapshot.uptime.status.as_of.astimezone(ZoneInfo(TZ))
    for heading, end, system in (("Uptime by site and device class", "Tickets", "Zabbix"),
                                 ("Tickets", "Changes executed", "ConnectWise PSA"),
                                 ("Changes executed", "Backups", "ConnectWise PSA"),
                                 ("Backups", "Security", "Datto BCDR"),
                                 ("Security", "Public sites", "Microsoft Defender"),
                                 ("Public sites", "Recommendations", "Cloudflare health checks")):
        assert flat(f"Source: {system} · fetched") in flat(between(text, heading, end)), heading
        assert flat(f"data as of {as_of:%a %d %b %Y %H:%M}") in flat(between(text, heading, end)), heading


def partial_section(status: SourceStatus, data, parts: list[SourceStatus]):
    """A section served by two systems; works before and after ``Section.parts`` lands in snapshot.py."""
    if "parts" in Section.model_fields:
        return Section[type(data)](status=status, data=data, parts=parts)

    class SectionWithParts(Section[type(data)]):
        parts: list[SourceStatus] = []

    return SectionWithParts(status=status, data=data, parts=parts)


def test_partial_section_shows_the_answering_system_and_names_the_failed_one():
    snap = make_snapshot()
    fetched = snap.uptime.status.fetched_at
    parts = [SourceStatus(domain="uptime", system="Zabbix", ok=True, fetched_at=fetched,
                          as_of=snap.week_end - dt.timedelta(minutes=5)),
             SourceStatus(domain="uptime", system="LibreNMS", ok=False, error="timeout", fetched_at=fetched)]
    aggregate = SourceStatus(domain="uptime", system="Zabbix + LibreNMS", ok=False, error="LibreNMS: timeout",
                             fetched_at=fetched, as_of=parts[0].as_of)
    rows = [r.model_copy(update={"source": "Zabbix"}) for r in snap.uptime.data.rows]
    section = partial_section(aggregate, UptimeData(rows=rows), parts)
    snap = snap.model_copy(update={"uptime": section})
    assert section_state(section) == "partial"
    rec = reconcile(snap, make_previous(), Thresholds())

    text = pdf_text(render_report(rec, make_customer(), MSP).pdf)
    uptime = between(text, "Uptime by site and device class", "Tickets")
    assert "Partial data: LibreNMS did not provide this week" in uptime
    assert "The figures below come from Zabbix only" in uptime
    assert "Data unavailable" not in uptime
    assert re.search(r"Sources: Zabbix \(data as of .*\), LibreNMS \(unavailable\)", uptime)
    assert re.search(r"Downtime \(min\)\s+Source", uptime)
    assert re.search(r"Leeds HQ Servers 96\.42% 99\.90% No 361 Zabbix", uptime)
    assert "Average across rows: 98.78%" in uptime
    summary = " ".join(executive_summary(rec))
    assert "Uptime figures cover Zabbix only, as LibreNMS did not answer" in summary
    assert "uptime averaged 98.78%" in summary  # the answering system's figures still count
    # single-system sections keep their plain tables
    assert not re.search(r"RPO met\s+Source", text)


def test_section_state_trusts_data_only_from_systems_that_answered():
    snap = make_snapshot(failed={"tickets": "down"})
    ok, failed = snap.uptime, snap.tickets
    assert section_state(ok) == "ok" and section_state(failed) == "failed"
    # data left behind by a failed fetch is never shown
    broken = ok.model_copy(update={"status": ok.status.model_copy(update={"ok": False})})
    assert section_state(broken) == "failed" and section_data(broken) is None
    good, bad = ok.status, ok.status.model_copy(update={"ok": False, "system": "LibreNMS"})
    assert section_state(partial_section(bad, ok.data, [good, bad])) == "partial"
    assert section_state(partial_section(bad, ok.data, [bad, bad])) == "failed"
    assert section_state(partial_section(good, ok.data, [good, good])) == "ok"

"""Two systems in one domain: merged into one section, each row naming its source."""

import datetime as dt

import pytest
import yaml
from tests.factories import NOW, snapshot, status

from msp_reports.exceptions import RegistryError
from msp_reports.reconcile import reconcile
from msp_reports.registry import Thresholds, load_registry, parse_registry
from msp_reports.snapshot import (
    ChangeRecord, PriorityCount, Section, TicketData, UptimeData, UptimeRow, merge_sections,
)

from tests.factories import ROOT


def _rows(source, *rows):
    return UptimeData(rows=[UptimeRow(site=s, device_class=c, uptime_pct=p, downtime_minutes=1, slo_pct=99.9,
                                      source=source) for s, c, p in rows])


def _tickets(opened, closed, breaches, backlog, source):
    return TicketData(opened=opened, closed=closed, sla_breaches=breaches, backlog_end=backlog,
                      by_priority=[PriorityCount(priority="P2", opened=opened, closed=closed, sla_breaches=breaches)],
                      changes=[ChangeRecord(ref=f"{source}-1", summary="x", executed_at=NOW, status="Closed", source=source)])


def test_uptime_from_two_systems_keeps_each_rows_source():
    merged = merge_sections("uptime", [
        Section(status=status("uptime", "zabbix"), data=_rows("zabbix", ("Leeds", "Servers", 99.99))),
        Section(status=status("uptime", "librenms"), data=_rows("librenms", ("Leeds", "Network", 99.5))),
    ])
    assert merged.status.ok and merged.status.system == "zabbix + librenms"
    assert [(r.device_class, r.source) for r in merged.data.rows] == [("Servers", "zabbix"), ("Network", "librenms")]
    assert [p.system for p in merged.parts] == ["zabbix", "librenms"]


def test_tickets_add_up_and_priorities_merge():
    merged = merge_sections("tickets", [
        Section(status=status("tickets", "connectwise"), data=_tickets(10, 8, 1, 5, "connectwise")),
        Section(status=status("tickets", "halopsa"), data=_tickets(4, 5, 2, 3, "halopsa")),
    ])
    d = merged.data
    assert (d.opened, d.closed, d.sla_breaches, d.backlog_end) == (14, 13, 3, 8)
    assert [(p.priority, p.opened) for p in d.by_priority] == [("P2", 14)]
    assert {c.source for c in d.changes} == {"connectwise", "halopsa"}


def test_one_of_two_failed_is_partial_and_not_zero():
    merged = merge_sections("tickets", [
        Section(status=status("tickets", "connectwise"), data=_tickets(10, 8, 1, 5, "connectwise")),
        Section(status=status("tickets", "halopsa", ok=False, error="halopsa: HTTP 503")),
    ])
    assert not merged.status.ok and merged.partial
    assert merged.status.error == "halopsa: HTTP 503"
    assert merged.data.opened == 10  # what ConnectWise said, and the banner says HaloPSA is missing
    # a partial week raises an unavailable flag for the missing system and no ticket-trend or delta
    snap = snapshot(backlog=50, opened=60, closed=2, breaches=30)
    snap = snap.model_copy(update={"tickets": merged})
    prev = snapshot(dt.date(2026, 11, 9), backlog=1, breaches=0)
    rec = reconcile(snap, prev, Thresholds())
    assert [(f.kind, f.subject) for f in rec.flags if f.domain == "tickets"] == [("source_unavailable", "halopsa")]
    assert rec.deltas["tickets_opened"].current is None


def test_all_failed_has_no_data():
    merged = merge_sections("backups", [
        Section(status=status("backups", "datto", ok=False, error="datto: 401")),
        Section(status=status("backups", "veeam", ok=False, error="veeam: 503")),
    ])
    assert merged.data is None and merged.status.error == "datto: 401; veeam: 503"


def test_registry_accepts_a_list_of_systems_and_names_the_bad_one():
    raw = yaml.safe_load((ROOT / "include" / "customers.yaml").read_text())
    uptime = raw["customers"][0]["sources"]["uptime"]
    raw["customers"][0]["sources"]["uptime"] = [uptime, dict(uptime)]
    with pytest.raises(RegistryError, match=r"customer 'ACME': sources.uptime\[1\].system 'zabbix' is listed twice"):
        parse_registry(raw)
    raw["customers"][0]["sources"]["uptime"] = [uptime, {"system": "datto", "conn_id": "x", "ref": {"client_company": "y"}}]
    with pytest.raises(RegistryError, match=r"sources.uptime\[1\].system 'datto' serves backups"):
        parse_registry(raw)
    single = load_registry(ROOT / "include" / "customers.yaml").get("ACME")
    assert [s.system for s in single.sources["uptime"]] == ["zabbix"]

import datetime as dt

from tests.factories import snapshot

from msp_reports.reconcile import reconcile
from msp_reports.registry import Thresholds

PREV = dt.date(2026, 11, 9)


def kinds(rec):
    return [f.kind for f in rec.flags]


def test_sla_drop_of_three_points_is_flagged_per_row():
    prev = snapshot(PREV, uptime=[("Leeds", "Network", 99.95), ("Leeds", "Servers", 99.9)])
    cur = snapshot(uptime=[("Leeds", "Network", 96.9), ("Leeds", "Servers", 97.0)])
    rec = reconcile(cur, prev, Thresholds())
    drops = [f for f in rec.flags if f.kind == "sla_drop"]
    assert [f.subject for f in drops] == ["Leeds / Network"]  # 3.05 points; Servers fell 2.9: below threshold
    assert drops[0].severity == "critical" and "96.90%" in drops[0].message
    assert "slo_missed" in kinds(rec)  # Servers: below its SLO, though not a 3-point drop


def test_threshold_is_per_customer():
    prev = snapshot(PREV, uptime=[("Leeds", "Network", 99.95)])
    cur = snapshot(uptime=[("Leeds", "Network", 98.0)])
    assert "sla_drop" not in kinds(reconcile(cur, prev, Thresholds()))
    assert "sla_drop" in kinds(reconcile(cur, prev, Thresholds(sla_drop_points=1.5)))


def test_backup_not_run_in_48_hours_at_week_end():
    cur = snapshot()
    end = cur.week_end
    cur = snapshot(assets=[("ACME-FS01", end - dt.timedelta(hours=49)), ("ACME-DC01", end - dt.timedelta(hours=47)),
                           ("ACME-SQL01", None)])
    flagged = sorted(f.subject for f in reconcile(cur, None, Thresholds()).flags if f.kind == "backup_stale")
    assert flagged == ["ACME-FS01", "ACME-SQL01"]


def test_open_incident_is_flagged_and_high_is_critical():
    cur = snapshot(incidents=[("4711", "Ransomware behaviour", "high", "open"), ("4712", "Phish", "low", "resolved"),
                              ("4713", "Odd sign-in", "medium", "open")])
    flags = [f for f in reconcile(cur, None, Thresholds()).flags if f.kind == "open_incident"]
    assert [(f.subject, f.severity) for f in flags] == [("4711", "critical"), ("4713", "warning")]
    assert flags[0] == reconcile(cur, None, Thresholds()).flags[0]  # worst first


def test_ticket_trend_wrong_way_needs_baseline():
    prev = snapshot(PREV, backlog=10, breaches=1)
    cur = snapshot(backlog=16, opened=30, closed=24, breaches=4)
    rec = reconcile(cur, prev, Thresholds())
    assert sorted(f.subject for f in rec.flags if f.kind == "ticket_trend") == ["backlog", "sla_breaches"]
    no_base = reconcile(cur, None, Thresholds())
    assert "ticket_trend" not in kinds(no_base)
    assert not no_base.has_baseline and no_base.deltas["backlog"].change is None


def test_failed_source_flags_unavailable_and_no_numbers():
    prev = snapshot(PREV)
    cur = snapshot(failed=("tickets", "uptime"), uptime=[("Leeds", "Network", 50.0)])
    rec = reconcile(cur, prev, Thresholds())
    assert sorted(f.domain for f in rec.flags if f.kind == "source_unavailable") == ["tickets", "uptime"]
    assert "sla_drop" not in kinds(rec) and "ticket_trend" not in kinds(rec)
    assert rec.deltas["backlog"].current is None and rec.deltas["uptime_pct"].current is None


def test_healthy_week_has_no_flags_and_deltas():
    rec = reconcile(snapshot(backlog=9, breaches=0), snapshot(PREV, backlog=10, breaches=1), Thresholds())
    assert rec.flags == []
    assert rec.deltas["backlog"].change == -1
    assert rec.deltas["secure_score_pct"].current == 71.0


def test_rpo_missed_short_of_stale_is_a_point_to_watch():
    """ECHO-APP01 in the demo: last good backup 25 h before week end (RPO 24 h), last run failed."""
    cur = snapshot()
    end = cur.week_end
    cur = snapshot(assets=[("ECHO-APP01", end - dt.timedelta(hours=25)), ("ECHO-DC01", end - dt.timedelta(hours=3))])
    assets = cur.backups.data.assets
    failed = assets[0].model_copy(update={"last_status": "Failed"})
    cur = cur.model_copy(update={"backups": cur.backups.model_copy(update={
        "data": cur.backups.data.model_copy(update={"assets": [failed, assets[1]]})})})
    [flag] = reconcile(cur, None, Thresholds()).flags
    assert (flag.kind, flag.severity, flag.subject) == ("rpo_missed", "warning", "ECHO-APP01")
    assert "24-hour recovery point objective" in flag.message and "last status Failed" in flag.message
    # past the stale threshold it is the critical backup_stale, not both
    stale = snapshot(assets=[("ECHO-APP01", end - dt.timedelta(hours=49))])
    assert kinds(reconcile(stale, None, Thresholds())) == ["backup_stale"]


def test_backup_times_are_in_the_customers_timezone():
    """BRVO (New York): the flag's last-good time reads as the report's table does, not in UTC."""
    cur = snapshot(tz="America/New_York")
    last_good = dt.datetime(2026, 11, 19, 21, 0, tzinfo=dt.timezone.utc)  # 16:00 in New York
    cur = snapshot(tz="America/New_York", assets=[("BRVO-FS01", last_good)])
    [flag] = [f for f in reconcile(cur, None, Thresholds()).flags if f.kind == "backup_stale"]
    assert "(last good Thu 19 Nov 2026 16:00)" in flag.message and "UTC" not in flag.message


def test_each_flag_has_customer_wording_apart_from_the_internal_action():
    from msp_reports.reconcile import customer_action, internal_action

    prev = snapshot(PREV, backlog=10, breaches=1, uptime=[("Leeds", "Network", 99.95)])
    end = snapshot().week_end
    cur = snapshot(backlog=16, opened=30, closed=24, breaches=4, uptime=[("Leeds", "Network", 96.0)],
                   assets=[("ACME-FS01", end - dt.timedelta(hours=60)), ("ACME-DC01", end - dt.timedelta(hours=30))],
                   incidents=[("4711", "Ransomware behaviour", "high", "open")])
    rec = reconcile(cur, prev, Thresholds())
    assert {"sla_drop", "backup_stale", "rpo_missed", "open_incident", "ticket_trend"} <= set(kinds(rec))
    for flag in rec.flags:
        assert flag.customer_action and customer_action(flag) != internal_action(flag)
        assert "the customer" not in customer_action(flag)
    incident = next(f for f in rec.flags if f.kind == "open_incident")
    assert "send the customer a written update" in internal_action(incident)  # the roll-up keeps it
    # a flag stored before customer_action existed still never shows the internal wording
    old = incident.model_copy(update={"customer_action": ""})
    assert "the customer" not in customer_action(old)


# --- recovery (RTO) -----------------------------------------------------------------------
def _with_assets(snap, assets):
    from msp_reports.snapshot import BackupData

    return snap.model_copy(update={"backups": snap.backups.model_copy(update={"data": BackupData(assets=assets)})})


def test_recovery_flags_failed_unverified_and_over_rto():
    from tests.factories import verified

    cur = snapshot(assets=[(n, None) for n in ("A-OK", "A-FAILED", "A-OLD", "A-NEVER", "A-SLOW", "A-LEGACY")])
    end, base = cur.week_end, {a.name: a for a in cur.backups.data.assets}
    day = dt.timedelta(days=1)
    assets = [
        verified(base["A-OK"], at=end - day, minutes=30),
        verified(base["A-FAILED"], at=end - day, passed=False),
        verified(base["A-OLD"], at=end - 31 * day),
        base["A-NEVER"].model_copy(update={"rto_hours": 8.0}),
        verified(base["A-SLOW"], at=end - 2 * day, minutes=9 * 60, kind="restore"),
        base["A-LEGACY"],  # stored before RTO was reported: not judged
    ]
    flags = {f.subject: f for f in reconcile(_with_assets(cur, assets), None, Thresholds()).flags
             if f.kind in ("recovery_failed", "recovery_unverified", "rto_missed")}
    assert {s: f.kind for s, f in flags.items()} == {
        "A-FAILED": "recovery_failed", "A-OLD": "recovery_unverified", "A-NEVER": "recovery_unverified",
        "A-SLOW": "rto_missed"}
    assert flags["A-FAILED"].severity == "critical"
    assert "31 days" in flags["A-OLD"].message and "last 30 days" in flags["A-OLD"].message
    assert "never had a recovery test" in flags["A-NEVER"].message
    assert "took 9.0 h, longer than its 8 h" in flags["A-SLOW"].message
    states = {a.name: a.rto_state(end) for a in assets}
    assert states == {"A-OK": "met", "A-FAILED": "missed", "A-OLD": "not_verified", "A-NEVER": "not_verified",
                      "A-SLOW": "missed", "A-LEGACY": "not_verified"}


def test_the_verification_window_is_per_customer():
    from tests.factories import verified

    cur = snapshot(assets=[("A", None)])
    asset = verified(cur.backups.data.assets[0], at=cur.week_end - dt.timedelta(days=10))
    strict = asset.model_copy(update={"verify_within_days": 7})
    assert not [f for f in reconcile(_with_assets(cur, [asset]), None, Thresholds()).flags
                if f.kind == "recovery_unverified"]
    assert [f.subject for f in reconcile(_with_assets(cur, [strict]), None, Thresholds()).flags
            if f.kind == "recovery_unverified"] == ["A"]

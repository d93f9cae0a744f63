"""The quarter's figures are sums of the weekly snapshots' raw figures, by the week's Thursday."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from msp_reports import store as layout
from msp_reports.qbr import Quarter
from msp_reports.qbr.figures import QUARTER, month_key, quarter_figures
from msp_reports.qbr.quarter import week_month
from msp_reports.snapshot import WeeklySnapshot
from msp_reports.store import ReportStore, sha256
from tests.factories import make_snapshot
from tests.qbr.seed import CODE, seed, store_week

Q3 = Quarter.parse("2026-Q3")
WEEKS = Q3.week_ofs()


def _snaps(store: ReportStore) -> list[WeeklySnapshot]:
    out = []
    for w in WEEKS:
        raw = store.read_bytes(CODE, w, layout.SNAPSHOT)
        if raw is not None:
            out.append(WeeklySnapshot.model_validate_json(raw))
    return out


def _seconds(s: WeeklySnapshot) -> int:
    return int((s.week_end - s.week_start).total_seconds())


@pytest.fixture
def store(tmp_path) -> ReportStore:
    return ReportStore(str(tmp_path))


def test_uptime_is_summed_downtime_over_summed_week_seconds(store):
    seed(store, WEEKS)
    fig = quarter_figures(store, CODE, Q3)
    snaps = _snaps(store)
    line = next(x for x in fig.uptime if x.key == ("Leeds HQ", "Servers"))
    for period in [month_key(m) for m in Q3.months()] + [QUARTER]:
        weeks = [s for s in snaps if period == QUARTER or month_key(week_month(s.week_of)) == period]
        rows = [next(r for r in s.uptime.data.rows if r.device_class == "Servers" and r.site == "Leeds HQ")
                for s in weeks]
        down = sum(r.downtime_minutes * 60 for r in rows)
        secs = sum(_seconds(s) for s in weeks)
        got = line.periods[period]
        assert got.downtime_seconds == pytest.approx(down)
        assert got.seconds == secs and got.weeks == len(weeks)
        assert got.pct == round(100 * (1 - down / secs), 3)
    # the quarter over all rows: every row-week's downtime over every row-week's seconds
    all_down = sum(r.downtime_minutes * 60 for s in snaps for r in s.uptime.data.rows)
    all_secs = sum(_seconds(s) for s in snaps for _ in s.uptime.data.rows)
    assert fig.uptime_total[QUARTER].pct == round(100 * (1 - all_down / all_secs), 3)


def test_stored_percentages_are_not_averaged(store):
    """A week whose stored percentage disagrees with its downtime: the downtime decides."""
    seed(store, WEEKS)
    odd = make_snapshot(WEEKS[0], healthy=True)
    rows = [r.model_copy(update={"uptime_pct": 50.0, "downtime_minutes": 0.0}) if r.device_class == "Servers" else r
            for r in odd.uptime.data.rows]
    odd = odd.model_copy(update={"uptime": odd.uptime.model_copy(
        update={"data": odd.uptime.data.model_copy(update={"rows": rows})})})
    store_week(store, odd)
    fig = quarter_figures(store, CODE, Q3)
    line = next(x for x in fig.uptime if x.key == ("Leeds HQ", "Servers"))
    snaps = _snaps(store)
    mean_of_pcts = sum(next(r.uptime_pct for r in s.uptime.data.rows if r.device_class == "Servers") for s in snaps) / 13
    down = sum(next(r.downtime_minutes for r in s.uptime.data.rows if r.device_class == "Servers") * 60 for s in snaps)
    assert line.periods[QUARTER].pct == round(100 * (1 - down / sum(map(_seconds, snaps))), 3)
    assert mean_of_pcts < line.periods[QUARTER].pct - 3  # the 50 % week would have dragged a mean down


def test_tickets_per_month_are_sums_of_the_weeks(store):
    seed(store, WEEKS)
    fig = quarter_figures(store, CODE, Q3)
    snaps = _snaps(store)
    for month in Q3.months():
        weeks = [s for s in snaps if week_month(s.week_of) == month]
        period = fig.tickets[month_key(month)]
        assert period.weeks == len(weeks) and len(weeks) in (4, 5)
        assert period.opened == sum(s.tickets.data.opened for s in weeks)
        assert period.closed == sum(s.tickets.data.closed for s in weeks)
        assert period.sla_breaches == sum(s.tickets.data.sla_breaches for s in weeks)
        assert period.backlog_end == weeks[-1].tickets.data.backlog_end  # a stock: the month's last week
    assert fig.tickets[QUARTER].opened == sum(s.tickets.data.opened for s in snaps) == sum(10 + n for n in range(13))
    assert fig.tickets[QUARTER].changes == sum(len(s.tickets.data.changes) for s in snaps)


def test_missing_week_and_failed_source_are_left_out_not_zero(store):
    gone, broken = WEEKS[5], WEEKS[8]
    seed(store, WEEKS, skip=[gone], failed={broken: {"tickets": "connectwise: HTTP 503"}})
    fig = quarter_figures(store, CODE, Q3)
    snaps = _snaps(store)
    assert [w.state for w in fig.weeks].count("missing") == 1 and fig.weeks[5].state == "missing"
    counted = [s for s in snaps if s.week_of != broken]
    assert fig.tickets[QUARTER].weeks == 11
    assert fig.tickets[QUARTER].opened == sum(s.tickets.data.opened for s in counted)
    assert fig.backlog_weekly[5] is None and fig.backlog_weekly[8] is None  # gaps, not zeros
    assert [w.week_of for w in fig.unavailable("tickets")] == [broken]
    # the failed ticket source does not take the week's uptime with it; the missing week has none
    line = next(x for x in fig.uptime if x.key == ("Leeds HQ", "Network"))
    assert line.periods[QUARTER].weeks == 12
    assert line.periods[QUARTER].seconds == sum(_seconds(s) for s in snaps)
    august = fig.tickets[month_key(dt.date(2026, 8, 1))]
    assert august.weeks == 2  # 3, 10, 17, 24 Aug: 3 Aug missing, 24 Aug's tickets unavailable


def test_a_month_without_any_week_has_no_figure(store):
    seed(store, [w for w in WEEKS if week_month(w) != dt.date(2026, 8, 1)])
    fig = quarter_figures(store, CODE, Q3)
    aug = month_key(dt.date(2026, 8, 1))
    assert fig.tickets[aug].weeks == 0 and fig.tickets[aug].backlog_end is None
    assert all(line.periods[aug].pct is None for line in fig.uptime)
    assert fig.uptime_total[aug].pct is None and fig.backups[aug].rpo_pct is None


@pytest.mark.parametrize("tz, quarter, weeks, short_or_long", [
    ("Pacific/Auckland", "2026-Q3", 13, -3600),  # NZ summer time starts Sun 27 Sep 2026: a 167-hour week
    ("America/New_York", "2026-Q4", 14, +3600),  # US summer time ends Sun 1 Nov 2026: a 169-hour week
])
def test_customer_timezone_gets_its_own_weeks(store, tz, quarter, weeks, short_or_long):
    q = Quarter.parse(quarter)
    around = [q.week_ofs()[0] - dt.timedelta(days=7), *q.week_ofs(), q.week_ofs()[-1] + dt.timedelta(days=7)]
    seed(store, around, tz=tz)
    fig = quarter_figures(store, CODE, q)
    assert [w.week_of for w in fig.weeks] == q.week_ofs() and len(fig.weeks) == weeks
    assert all(w.state == "ok" and w.snapshot.timezone == tz for w in fig.weeks)
    line = next(x for x in fig.uptime if x.key == ("Leeds HQ", "Network"))
    assert line.periods[QUARTER].seconds == weeks * 168 * 3600 + short_or_long
    if tz == "Pacific/Auckland":  # the first week starts on 28 June in UTC, and is still the quarter's
        assert fig.weeks[0].snapshot.week_start == dt.datetime(2026, 6, 28, 12, 0, tzinfo=dt.timezone.utc)
    assert fig.tickets[QUARTER].weeks == weeks


def test_another_customers_snapshot_is_not_used(store):
    seed(store, WEEKS)
    other = make_snapshot(WEEKS[2]).model_copy(update={"customer": "BRVO"})
    store.write_json(CODE, WEEKS[2], layout.SNAPSHOT, other.model_dump(mode="json"))
    fig = quarter_figures(store, CODE, Q3)
    assert fig.weeks[2].state == "invalid" and fig.tickets[QUARTER].weeks == 12


def test_flags_and_commentary_come_with_their_week(store):
    seed(store, WEEKS, commentary={WEEKS[3]: "Replaced the core switch."})
    fig = quarter_figures(store, CODE, Q3)
    assert fig.flags and {f.week_of for f in fig.flags} <= set(WEEKS)
    eventful = {w for i, w in enumerate(WEEKS) if i % 3 == 1}
    assert {f.week_of for f in fig.flags if f.flag.kind == "open_incident"} == eventful
    assert [w.commentary for w in fig.weeks if w.commentary] == ["Replaced the core switch."]
    # an open incident is counted once, however many weekly reports listed it
    assert fig.security[QUARTER].raised == len({(i.source, i.ref) for i in fig.incidents if i.raised_in_quarter})


def test_a_week_failing_todays_checks_is_not_usable_and_hashed(store):
    seed(store, WEEKS)
    raw = json.loads(store.read_bytes(CODE, WEEKS[4], layout.SNAPSHOT))
    raw["uptime"]["data"]["rows"][0]["uptime_pct"] = 150.0  # an impossible figure stored by an old release
    store.write_json(CODE, WEEKS[4], layout.SNAPSHOT, raw)
    fig = quarter_figures(store, CODE, Q3)
    week = fig.weeks[4]
    assert week.state == "invalid" and week.snapshot is None
    assert week.snapshot_sha256 == sha256(store.read_bytes(CODE, WEEKS[4], layout.SNAPSHOT))
    assert fig.tickets[QUARTER].weeks == 12 and all(line.periods[QUARTER].weeks <= 12 for line in fig.uptime)


def test_flags_of_a_reconciled_week_that_no_longer_matches_its_snapshot_are_not_shown(store):
    seed(store, WEEKS)
    changed = json.loads(store.read_bytes(CODE, WEEKS[1], layout.SNAPSHOT))
    changed["tickets"]["data"]["opened"] += 1  # snapshot.json edited after reconcile
    store.write_json(CODE, WEEKS[1], layout.SNAPSHOT, changed)
    fig = quarter_figures(store, CODE, Q3)
    assert fig.weeks[1].flags == [] and fig.weeks[1].flags_note == "reconciled.json does not match snapshot.json"
    assert fig.weeks[4].flags  # the other eventful weeks keep theirs

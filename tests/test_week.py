import datetime as dt

import pytest

from msp_reports.week import ReportWeek, not_before, report_monday

UTC = dt.timezone.utc


def test_week_is_monday_to_monday_in_customer_timezone():
    w = ReportWeek.starting(dt.date(2026, 11, 16), "America/Los_Angeles")
    assert w.start == dt.datetime(2026, 11, 16, 8, 0, tzinfo=UTC)  # PST = UTC-8
    assert w.end == dt.datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    sg = ReportWeek.starting(dt.date(2026, 11, 16), "Asia/Singapore")
    assert sg.start == dt.datetime(2026, 11, 15, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(("week_of", "tz", "hours"), [
    (dt.date(2026, 10, 12), "Europe/London", 168),
    (dt.date(2026, 10, 19), "Europe/London", 169),  # clocks go back Sunday 25 Oct
    (dt.date(2026, 10, 19), "Asia/Singapore", 168),  # no DST there
    (dt.date(2026, 3, 23), "Europe/London", 167),  # clocks go forward 29 Mar
    (dt.date(2026, 3, 9) - dt.timedelta(days=7), "America/Los_Angeles", 167),  # 8 Mar 2026
])
def test_dst_weeks_are_167_or_169_hours(week_of, tz, hours):
    assert ReportWeek.starting(week_of, tz).hours == hours


def test_week_must_start_on_monday():
    with pytest.raises(ValueError, match="not a Monday"):
        ReportWeek.starting(dt.date(2026, 11, 17), "Europe/London")


def test_clip_counts_only_in_week_part():
    w = ReportWeek.starting(dt.date(2026, 11, 16), "Europe/London")
    before = w.start - dt.timedelta(minutes=30)
    assert w.clip(before, w.start + dt.timedelta(minutes=10)) == 600
    assert w.clip(w.end - dt.timedelta(minutes=5), None) == 300  # still open: runs to week end
    assert w.clip(w.end, w.end + dt.timedelta(hours=1)) == 0


def test_report_monday_uses_msp_timezone():
    # Sunday 23:30 UTC is already Monday in Singapore, still Sunday in London
    t = dt.datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert report_monday(t, "Europe/London") == dt.date(2026, 11, 16)
    assert report_monday(t, "Asia/Singapore") == dt.date(2026, 11, 23)
    assert not_before(dt.date(2026, 11, 23), "Europe/London") == dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

"""The quarter's weeks: a week belongs to the quarter and month of its Thursday."""

from __future__ import annotations

import datetime as dt

import pytest

from msp_reports.qbr import Quarter
from msp_reports.qbr.quarter import week_month


def test_parse_and_name():
    q = Quarter.parse("2026-Q3")
    assert (q.year, q.number, str(q)) == (2026, 3, "2026-Q3")
    assert Quarter.parse("2026q4") == Quarter(2026, 4)
    assert (q.first_day, q.last_day) == (dt.date(2026, 7, 1), dt.date(2026, 9, 30))
    assert q.previous() == Quarter(2026, 2) and Quarter(2026, 1).previous() == Quarter(2025, 4)
    assert Quarter.containing(dt.date(2026, 12, 31)) == Quarter(2026, 4)
    for bad in ("2026-Q5", "2026", "Q3-2026", ""):
        with pytest.raises(ValueError):
            Quarter.parse(bad)


def test_weeks_of_2026_q3_and_q4():
    q3 = Quarter.parse("2026-Q3").week_ofs()
    assert len(q3) == 13 and q3[0] == dt.date(2026, 6, 29) and q3[-1] == dt.date(2026, 9, 21)
    q4 = Quarter.parse("2026-Q4").week_ofs()  # 1 Oct and 31 Dec 2026 are Thursdays: 14 weeks
    assert len(q4) == 14 and q4[0] == dt.date(2026, 9, 28) and q4[-1] == dt.date(2026, 12, 28)
    assert len(Quarter.parse("2027-Q1").week_ofs()) == 12  # 90 days, 12 Thursdays
    assert week_month(dt.date(2026, 6, 29)) == dt.date(2026, 7, 1)  # Thursday 2 July
    assert week_month(dt.date(2026, 8, 31)) == dt.date(2026, 9, 1)
    assert week_month(dt.date(2026, 7, 27)) == dt.date(2026, 7, 1)  # Thursday 30 July


def test_quarters_partition_the_weeks():
    """Over ten years, consecutive quarters' weeks are every Monday once: no gap, no week twice."""
    q, mondays = Quarter(2020, 1), []
    while q < Quarter(2030, 1):
        weeks = q.week_ofs()
        assert all(w.weekday() == 0 and Quarter.of_week(w) == q for w in weeks)
        assert 12 <= len(weeks) <= 14
        mondays += weeks
        q = q.next()
    assert all(b - a == dt.timedelta(days=7) for a, b in zip(mondays, mondays[1:]))


def test_last_complete_quarter():
    # 2026-Q3's last week (of Mon 21 Sep) ends on Mon 28 Sep, 00:00 local
    assert Quarter.parse("2026-Q3").ends == dt.date(2026, 9, 28)
    assert Quarter.last_complete(dt.date(2026, 9, 27)) == Quarter(2026, 2)
    assert Quarter.last_complete(dt.date(2026, 9, 28)) == Quarter(2026, 3)
    assert Quarter.last_complete(dt.date(2026, 10, 5)) == Quarter(2026, 3)
    assert Quarter.last_complete(dt.date(2027, 1, 4)) == Quarter(2026, 4)

"""The report week: Monday 00:00 to Monday 00:00 in the customer's own timezone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc


@dataclass(frozen=True)
class ReportWeek:
    """One customer's reporting week.

    ``week_of`` is the Monday the week starts on (the date in file names); ``start`` and
    ``end`` are the UTC instants of Monday 00:00 local and the following Monday 00:00 local,
    so a DST week is 167 or 169 hours long.
    """

    week_of: dt.date
    timezone: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def starting(cls, week_of: dt.date, timezone: str) -> ReportWeek:
        if week_of.weekday() != 0:
            raise ValueError(f"week_of {week_of} is not a Monday")
        tz = ZoneInfo(timezone)
        start = dt.datetime.combine(week_of, dt.time(0), tzinfo=tz).astimezone(UTC)
        end = dt.datetime.combine(week_of + dt.timedelta(days=7), dt.time(0), tzinfo=tz).astimezone(UTC)
        return cls(week_of=week_of, timezone=timezone, start=start, end=end)

    @classmethod
    def before(cls, report_monday: dt.date, timezone: str) -> ReportWeek:
        """The week that ends on ``report_monday`` (the Monday the report is sent)."""
        return cls.starting(report_monday - dt.timedelta(days=7), timezone)

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def previous(self) -> ReportWeek:
        return ReportWeek.starting(self.week_of - dt.timedelta(days=7), self.timezone)

    def clip(self, begin: dt.datetime, finish: dt.datetime | None) -> float:
        """Seconds of ``[begin, finish)`` inside the week; an open interval runs to week end."""
        finish = finish or self.end
        lo, hi = max(begin, self.start), min(finish, self.end)
        return max(0.0, (hi - lo).total_seconds())

    def label(self) -> str:
        last = self.week_of + dt.timedelta(days=6)
        return f"{self.week_of:%d %b %Y} – {last:%d %b %Y}"


def report_monday(run_after: dt.datetime, msp_timezone: str) -> dt.date:
    """The Monday (in the MSP's timezone) on or before ``run_after``: the day the report is due."""
    local = run_after.astimezone(ZoneInfo(msp_timezone)).date()
    return local - dt.timedelta(days=local.weekday())


def not_before(report_day: dt.date, msp_timezone: str, at: dt.time = dt.time(9, 0)) -> dt.datetime:
    """Earliest delivery instant: ``at`` on the report's Monday, MSP time, as UTC."""
    return dt.datetime.combine(report_day, at, tzinfo=ZoneInfo(msp_timezone)).astimezone(UTC)
